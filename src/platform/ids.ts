import crypto from 'node:crypto'

const idAlphabet = '0123456789abcdefghjkmnpqrstvwxyz'
const idChars = 20
/** Leading characters that carry the creation time: 45 bits of milliseconds, enough until the year 3084. */
const idTimeChars = 9
const idRandomChars = idChars - idTimeChars
/** Random bytes drawn from the CSPRNG in one call and handed out once each, in order. */
const randomPoolBytes = 4096
const randomPool = Buffer.alloc(randomPoolBytes)
let randomPoolOffset = randomPoolBytes

/**
 * A new identifier: a short type prefix and 20 characters of Crockford-ish base32. The first 9
 * carry the creation time in milliseconds and the other 11 are random (55 bits from the CSPRNG,
 * fresh for every id), so ids cannot be guessed or enumerated across tenants, yet ids made
 * close in time sort close together. That is what keeps inserts cheap: a new row's primary
 * key lands on the table's last page instead of a random one, so the rows of a commit group
 * share their index pages and each commit writes far fewer pages (ADR 0014). The random bytes
 * come from the CSPRNG 4 KiB at a time; every byte is used once.
 *
 * @example
 * newId('app') // 'app_1kq3v8x2m7q1c8v5n3b6'
 */
export function newId(prefix: string): string {
  if (randomPoolOffset + idRandomChars > randomPoolBytes) {
    crypto.randomFillSync(randomPool)
    randomPoolOffset = 0
  }
  let time = ''
  for (let rest = Date.now(), index = 0; index < idTimeChars; index += 1, rest = Math.floor(rest / 32)) {
    time = idAlphabet[rest % 32]! + time
  }
  let text = prefix + '_' + time
  for (let index = 0; index < idRandomChars; index += 1) text += idAlphabet[randomPool[randomPoolOffset + index]! & 31]
  randomPoolOffset += idRandomChars
  return text
}

/** A high-entropy secret for tokens; only its SHA-256 is ever stored. */
export function newSecret(prefix: string): string {
  return `${prefix}_${crypto.randomBytes(32).toString('base64url')}`
}

export function sha256Hex(text: string): string {
  return crypto.createHash('sha256').update(text, 'utf8').digest('hex')
}

/** A clock the platform reads through, so tests can move time. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }
