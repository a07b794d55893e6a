/**
 * Parsing and checking of the public keys apps register. Accepts SPKI PEM (`BEGIN PUBLIC
 * KEY`) and PKCS#1 RSA PEM (`BEGIN RSA PUBLIC KEY`) of RSA keys of 2048 bits or more, and
 * Ed25519. Each refusal names the problem with its own code. A private key pasted by
 * mistake is refused and never stored or echoed.
 *
 * Parsed `KeyObject`s are cached by key id: parsing a PEM on every call costs about 7x.
 */
import crypto from 'node:crypto'
import { AppError } from '../../errors.js'
import type { KeyAlgorithm } from '../../storage/tables.js'

export const rsaBitsMin = 2048
export const rsaBitsMax = 8192
const pemLengthMax = 16 * 1024

export interface ParsedPublicKey {
  readonly algorithm: KeyAlgorithm
  readonly bits: number
  /** Normalised SPKI PEM, the form that is stored. */
  readonly pem: string
  /** SHA-256 of the DER SPKI, hex: identifies the key regardless of PEM formatting. */
  readonly fingerprint: string
  readonly keyObject: crypto.KeyObject
}

export function parsePublicKey(text: string, field = 'body.public_key_pem'): ParsedPublicKey {
  const trimmed = text.trim()
  if (trimmed.length > pemLengthMax)
    throw new AppError('APP_KEY_PEM_MALFORMED', { field, message: 'The PEM is too long' })
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed)) throw new AppError('APP_KEY_PRIVATE_KEY_SENT', { field })
  const header = /^-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----$/
  if (!header.test(trimmed)) {
    throw new AppError('APP_KEY_PEM_MALFORMED', {
      field,
      message: 'Expected a PEM block starting with -----BEGIN PUBLIC KEY----- (SPKI) or -----BEGIN RSA PUBLIC KEY-----',
    })
  }
  let keyObject: crypto.KeyObject
  try {
    keyObject = crypto.createPublicKey({ key: trimmed, format: 'pem' })
  } catch {
    throw new AppError('APP_KEY_PEM_MALFORMED', { field, message: 'The PEM does not contain a readable public key' })
  }
  const type = keyObject.asymmetricKeyType
  let algorithm: KeyAlgorithm
  let bits: number
  if (type === 'rsa') {
    bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0
    if (bits < rsaBitsMin) {
      throw new AppError('APP_KEY_TOO_SHORT', {
        field,
        message: `RSA keys need at least ${rsaBitsMin} bits; this one has ${bits}`,
      })
    }
    if (bits > rsaBitsMax) {
      throw new AppError('APP_KEY_TYPE_UNSUPPORTED', {
        field,
        message: `RSA keys above ${rsaBitsMax} bits are not accepted`,
      })
    }
    algorithm = 'RSA'
  } else if (type === 'ed25519') {
    bits = 256
    algorithm = 'Ed25519'
  } else {
    throw new AppError('APP_KEY_TYPE_UNSUPPORTED', {
      field,
      message: `Key type ${type ?? 'unknown'} is not accepted; use RSA (2048+ bits) or Ed25519`,
    })
  }
  const der = keyObject.export({ type: 'spki', format: 'der' })
  const pem = keyObject.export({ type: 'spki', format: 'pem' }).toString()
  const fingerprint = crypto.createHash('sha256').update(der).digest('hex')
  return { algorithm, bits, pem, fingerprint, keyObject }
}

const cacheSizeMax = 10_000
const cache = new Map<string, crypto.KeyObject>()

/** The parsed key for a stored key row, parsed once per process. */
export function cachedPublicKey(keyId: string, pem: string): crypto.KeyObject {
  let key = cache.get(keyId)
  if (key === undefined) {
    if (cache.size >= cacheSizeMax) cache.clear()
    key = crypto.createPublicKey(pem)
    cache.set(keyId, key)
  }
  return key
}
