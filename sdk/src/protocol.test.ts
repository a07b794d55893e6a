import crypto from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeBase64Strict, newNonce, signText, verifyText } from './protocol.js'

describe('decodeBase64Strict', () => {
  it('decodes canonical padded standard base64', () => {
    for (const length of [0, 1, 2, 3, 4, 64, 256]) {
      const bytes = crypto.randomBytes(length)
      expect(decodeBase64Strict(bytes.toString('base64'))).toEqual(bytes)
    }
  })

  it('refuses every other spelling of the same bytes', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x41])
    const canonical = bytes.toString('base64') // '+/+/QQ=='
    expect(decodeBase64Strict(canonical)).toEqual(bytes)
    for (const spelling of [
      bytes.toString('base64url'), // '-_-_QQ'
      canonical.replace(/=+$/, ''), // no padding
      `${canonical.slice(0, 4)} ${canonical.slice(4)}`, // whitespace
      `${canonical}\n`,
      canonical.replace('QQ==', 'QR=='), // stray bits after the last byte
      `${canonical}=`,
      `=${canonical}`,
      '****',
    ]) {
      expect(decodeBase64Strict(spelling), spelling).toBeNull()
    }
  })
})

describe('verifyText', () => {
  it('accepts the signature as signed and refuses it respelled', () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519')
    const signature = signText('text', privateKey)
    expect(verifyText('text', signature, publicKey)).toBe(true)
    const url = Buffer.from(signature, 'base64').toString('base64url')
    expect(verifyText('text', url, publicKey)).toBe(false)
    expect(verifyText('text', signature.replace(/=+$/, ''), publicKey)).toBe(false)
  })
})

describe('newNonce', () => {
  // The server's rule for a nonce (src/server/authenticate.ts): what the SDK makes must pass it.
  const serverNoncePattern = /^[A-Za-z0-9_-]{16,64}$/
  const uuidV7Pattern = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  it('is a UUIDv7 carrying the time it was made, which the server accepts', () => {
    const at = Date.parse('2026-11-25T04:00:00.123Z')
    const nonce = newNonce(at)
    expect(nonce).toMatch(uuidV7Pattern)
    expect(nonce).toMatch(serverNoncePattern)
    expect(parseInt(nonce.replace(/-/g, '').slice(0, 12), 16)).toBe(at)
  })

  it('sorts by time as text, so later nonces land after earlier ones in an index', () => {
    const start = Date.parse('2026-11-25T04:00:00Z')
    const nonces = Array.from({ length: 2_000 }, (_, index) => newNonce(start + index * 37))
    expect([...nonces].sort()).toEqual(nonces)
    // Milliseconds that differ only in their last hex digit, and across a carry of the first.
    expect(newNonce(0xfff) < newNonce(0x1000)).toBe(true)
    expect(newNonce(2 ** 40 - 1) < newNonce(2 ** 40)).toBe(true)
  })

  it('differs on every call within one millisecond', () => {
    const nonces = new Set(Array.from({ length: 10_000 }, () => newNonce(1_795_579_200_000)))
    expect(nonces.size).toBe(10_000)
  })

  it('refuses a time it cannot carry', () => {
    for (const bad of [-1, 2 ** 48, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => newNonce(bad), String(bad)).toThrow(RangeError)
    }
  })
})
