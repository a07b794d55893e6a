import crypto from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeBase64Strict, signText, verifyText } from './protocol.js'

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
