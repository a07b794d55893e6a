import crypto from 'node:crypto'

/**
 * A new identifier: a short type prefix and 20 random characters of Crockford-ish base32,
 * about 100 bits of entropy, so ids cannot be guessed or enumerated across tenants.
 *
 * @example
 * newId('app') // 'app_4k9x2m7q1c8v5n3b6z0d'
 */
export function newId(prefix: string): string {
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz'
  const bytes = crypto.randomBytes(20)
  let text = ''
  for (const byte of bytes) text += alphabet[byte & 31]
  return `${prefix}_${text}`
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
