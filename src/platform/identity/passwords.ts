/**
 * Password hashing with scrypt (N=2^15, r=8, p=1: about 50 ms and 32 MiB a hash on this
 * class of machine). Stored as `scrypt$N$r$p$salt$hash`, so parameters can rise later
 * without breaking old hashes.
 */
import crypto from 'node:crypto'
import { promisify } from 'node:util'

const scrypt = promisify(crypto.scrypt) as (
  password: string,
  salt: Buffer,
  keyLength: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>

const costN = 2 ** 15
const blockSizeR = 8
const parallelismP = 1
const keyLengthBytes = 32
const saltLengthBytes = 16
const memoryMaxBytes = 64 * 1024 * 1024

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(saltLengthBytes)
  const hash = await scrypt(password, salt, keyLengthBytes, {
    N: costN,
    r: blockSizeR,
    p: parallelismP,
    maxmem: memoryMaxBytes,
  })
  return ['scrypt', costN, blockSizeR, parallelismP, salt.toString('base64'), hash.toString('base64')].join('$')
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [, n, r, p, saltText, hashText] = parts as [string, string, string, string, string, string]
  const expected = Buffer.from(hashText, 'base64')
  const actual = await scrypt(password, Buffer.from(saltText, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: memoryMaxBytes,
  })
  return crypto.timingSafeEqual(actual, expected)
}

/** A hash to compare against when the user does not exist, so timing does not tell. */
let decoyHash: Promise<string> | undefined
export function decoyPasswordHash(): Promise<string> {
  decoyHash ??= hashPassword(crypto.randomBytes(16).toString('hex'))
  return decoyHash
}
