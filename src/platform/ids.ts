import crypto from 'node:crypto'

const idAlphabet = '0123456789abcdefghjkmnpqrstvwxyz'
const idRandomChars = 20
/** Random bytes drawn from the CSPRNG in one call and handed out once each, in order. */
const randomPoolBytes = 4096
const randomPool = Buffer.alloc(randomPoolBytes)
let randomPoolOffset = randomPoolBytes

/**
 * A new identifier: a short type prefix and 20 random characters of Crockford-ish base32,
 * about 100 bits of entropy, so ids cannot be guessed or enumerated across tenants. The bytes
 * come from the CSPRNG 4 KiB at a time (one system call for about 200 ids on the payment path
 * instead of one each); every byte is used once.
 *
 * @example
 * newId('app') // 'app_4k9x2m7q1c8v5n3b6z0d'
 */
export function newId(prefix: string): string {
  if (randomPoolOffset + idRandomChars > randomPoolBytes) {
    crypto.randomFillSync(randomPool)
    randomPoolOffset = 0
  }
  let text = prefix + '_'
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
