/**
 * Sealing: the platform's private keys are stored encrypted, under a key that never enters the
 * database (ADR 0018). A copy of the database, a backup or a read through SQL alone then
 * cannot sign as the platform; it takes the database *and* the sealing key.
 *
 * A sealed value is `bpseal1.<key id>.<iv>.<ciphertext and tag>` (base64url), AES-256-GCM
 * with a fresh 96-bit IV each time. The caller's `context` (the table, environment and key id
 * of the row) is authenticated with it, so a sealed value moved to another row fails to open
 * instead of becoming that row's key. The key id (16 hex digits of an HMAC of a fixed label)
 * names the sealing key without revealing it, so that a platform started with the wrong key
 * says so instead of reporting a corrupt value.
 *
 * The key comes from `BASEPLATE_SECRET_KEY`, or from a file (`BASEPLATE_SECRET_KEY_FILE`,
 * default `<dataDir>/secret.key`) that the first start makes: 32 random bytes in base64, mode
 * 0600, made durable before anything is sealed with it.
 *
 * @example
 * const key = resolveSealingKey(config.secretKey, { mayMake: false })
 * const sealed = key.seal(pem, 'platform_keys/live/pk_123')
 * key.unseal(sealed, 'platform_keys/live/pk_123') === pem
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { assert } from '../../assert.js'
import { secretKeyBytes, type SecretKeySource } from '../../config.js'

const format = 'bpseal1'
/** What every sealed value starts with (a SQL `like` may match on it). */
export const sealedPrefix = `${format}.`
const ivBytes = 12
const tagBytes = 16

/** A sealed value that cannot be opened: not sealed, another key, or altered or moved. */
export class SealingError extends Error {
  override readonly name = 'SealingError'
}

export interface SealingKey {
  /** Names the key without revealing it. */
  readonly id: string
  seal(plaintext: string, context: string): string
  /** Throws {@link SealingError} unless `sealed` was sealed by this key with the same context. */
  unseal(sealed: string, context: string): string
}

export function isSealed(value: string): boolean {
  return value.startsWith(sealedPrefix)
}

export function sealingKey(bytes: Buffer): SealingKey {
  assert(bytes.length === secretKeyBytes, `a sealing key is ${secretKeyBytes} bytes`)
  const key = crypto.createSecretKey(bytes)
  const id = crypto.createHmac('sha256', key).update('baseplate sealing key id').digest('hex').slice(0, 16)
  const associated = (context: string) => Buffer.from(`${format}:${id}:${context}`, 'utf8')
  return {
    id,
    seal(plaintext, context) {
      const iv = crypto.randomBytes(ivBytes)
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagBytes })
      cipher.setAAD(associated(context))
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()])
      return `${format}.${id}.${iv.toString('base64url')}.${body.toString('base64url')}`
    },
    unseal(sealed, context) {
      const parts = sealed.split('.')
      if (parts.length !== 4 || parts[0] !== format) throw new SealingError(`${context} is not sealed`)
      if (parts[1] !== id) {
        throw new SealingError(
          `${context} was sealed under the key ${parts[1]}, but this platform has the key ${id}: ` +
            'start it with the secret key the database was sealed with',
        )
      }
      const iv = Buffer.from(parts[2]!, 'base64url')
      const body = Buffer.from(parts[3]!, 'base64url')
      if (iv.length !== ivBytes || body.length <= tagBytes) throw new SealingError(`${context} is not a sealed value`)
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv, { authTagLength: tagBytes })
      decipher.setAAD(associated(context))
      decipher.setAuthTag(body.subarray(body.length - tagBytes))
      try {
        return Buffer.concat([decipher.update(body.subarray(0, body.length - tagBytes)), decipher.final()]).toString(
          'utf8',
        )
      } catch {
        throw new SealingError(`${context} does not open: it was altered, or sealed for another row`)
      }
    },
  }
}

/**
 * The sealing key from the environment, or from its file. A missing file is made only when
 * `mayMake` (a database that holds no sealed key yet): otherwise the keys it holds were sealed
 * under a key that is not here, and a new one would only seal more keys under a key about to be
 * lost (a data directory thrown away with its container, a secret that failed to mount).
 */
export function resolveSealingKey(source: SecretKeySource, options: { readonly mayMake: boolean }): SealingKey {
  if (source.kind === 'value') return sealingKey(source.value.reveal())
  const existing = readKeyFile(source.path)
  if (existing !== null) return sealingKey(existing)
  if (!options.mayMake) {
    throw new SealingError(
      `the database holds sealed platform keys, but the secret key file ${source.path} does not exist: restore it ` +
        '(or point BASEPLATE_SECRET_KEY_FILE at it, or set BASEPLATE_SECRET_KEY)',
    )
  }
  return sealingKey(makeKeyFile(source.path))
}

/**
 * A warning when the key file may be read or written by anyone but its owner, else null (a key
 * from the environment, no file yet, a file of mode 0600 or 0400). Only a warning: Kubernetes
 * mounts secrets 0644 by default, and refusing to start there would teach operators to work
 * around the check rather than fix the mode.
 */
export function keyFileExposure(source: SecretKeySource): string | null {
  if (source.kind !== 'file') return null
  let mode: number
  try {
    mode = fs.statSync(source.path).mode
  } catch {
    return null
  }
  if ((mode & 0o077) === 0) return null
  return (
    `the secret key file ${source.path} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}: ` +
    'others than its owner may read or write it; chmod 600 it (a Kubernetes secret: defaultMode 0400, ' +
    'and no fsGroup, which makes it group-readable)'
  )
}

/** The key in `file`, or null if there is no such file; a malformed one throws. */
export function readKeyFile(file: string): Buffer | null {
  try {
    return parseKeyFile(fs.readFileSync(file, 'utf8'), file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

function makeKeyFile(file: string): Buffer {
  const directory = path.dirname(file)
  fs.mkdirSync(directory, { recursive: true })
  // Written whole under a temporary name and made durable, then linked into place: a second
  // process starting at the same moment either wins the link or reads the finished file, and
  // a crash never leaves keys sealed under a key file that did not reach the disk.
  const temporary = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`
  const descriptor = fs.openSync(temporary, 'wx', 0o600)
  try {
    fs.writeSync(descriptor, `${crypto.randomBytes(secretKeyBytes).toString('base64')}\n`)
    fs.fsyncSync(descriptor)
  } finally {
    fs.closeSync(descriptor)
  }
  try {
    fs.linkSync(temporary, file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  } finally {
    fs.rmSync(temporary, { force: true })
  }
  const directoryDescriptor = fs.openSync(directory, 'r')
  try {
    fs.fsyncSync(directoryDescriptor)
  } finally {
    fs.closeSync(directoryDescriptor)
  }
  return parseKeyFile(fs.readFileSync(file, 'utf8'), file)
}

function parseKeyFile(text: string, file: string): Buffer {
  const trimmed = text.trim()
  // Either base64 alphabet, as BASEPLATE_SECRET_KEY accepts.
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed) ? Buffer.from(trimmed, 'base64') : Buffer.alloc(0)
  if (bytes.length !== secretKeyBytes) {
    throw new SealingError(`${file} must hold a ${secretKeyBytes}-byte key in base64 (openssl rand -base64 32)`)
  }
  return bytes
}
