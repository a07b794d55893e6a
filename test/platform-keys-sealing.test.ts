/**
 * The platform's private keys are stored sealed under the secret key (ADR 0018): nothing in
 * the database signs as the platform without that key, a restart with the same key signs with
 * the same keys, a start with another key stops before it changes anything, and keys an
 * earlier version stored in the clear are sealed by the first start that has the key.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Kysely } from 'kysely'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.js'
import { keyFileExposure, resolveSealingKey, SealingError, sealingKey } from '../src/platform/signing/sealing.js'
import { openPlatform, preparePlatform } from '../src/server/platform.js'
import { openStorage } from '../src/storage/database.js'
import { forEachDialect, freshTarget, type TestTarget } from './harness.js'

interface KeyRow {
  environment: 'sandbox' | 'live'
  key_id: string
  public_key_pem: string
  private_key_sealed: string
}
const keyTables = ['platform_keys', 'platform_rsa_keys'] as const

function configWith(secret: Buffer) {
  return parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_SECRET_KEY: secret.toString('base64') })
}

async function rows(target: TestTarget, table: (typeof keyTables)[number]): Promise<KeyRow[]> {
  const storage = await openStorage(target.target)
  try {
    return await (storage.db as unknown as Kysely<Record<string, KeyRow>>)
      .selectFrom(table)
      .select(['environment', 'key_id', 'public_key_pem', 'private_key_sealed'])
      .orderBy('environment')
      .execute()
  } finally {
    await storage.close()
  }
}

/** A private key signs something its row's public key verifies. */
function pairMatches(privateKey: crypto.KeyObject, publicKeyPem: string): boolean {
  const message = Buffer.from('baseplate')
  const algorithm = privateKey.asymmetricKeyType === 'rsa' ? 'sha256' : null
  return crypto.verify(algorithm, message, publicKeyPem, crypto.sign(algorithm, message, privateKey))
}

describe('sealing', () => {
  const key = sealingKey(crypto.randomBytes(32))

  it('opens what it sealed, for the same context only', () => {
    const sealed = key.seal('-----BEGIN PRIVATE KEY-----\nabc\n', 'platform_keys/live/pk_1')
    expect(sealed).toMatch(/^bpseal1\.[0-9a-f]{16}\./)
    expect(sealed).not.toContain('PRIVATE KEY')
    expect(key.unseal(sealed, 'platform_keys/live/pk_1')).toBe('-----BEGIN PRIVATE KEY-----\nabc\n')
    // Every seal draws a fresh IV: the same key sealed twice does not look the same.
    expect(key.seal('x', 'c')).not.toBe(key.seal('x', 'c'))
    expect(() => key.unseal(sealed, 'platform_keys/sandbox/pk_1')).toThrow(/sealed for another row/)
  })

  it('refuses an altered value, another key and a value that is not sealed', () => {
    const sealed = key.seal('secret', 'c')
    const parts = sealed.split('.')
    const body = Buffer.from(parts[3]!, 'base64url')
    body[0]! ^= 1
    const altered = [...parts.slice(0, 3), body.toString('base64url')].join('.')
    expect(() => key.unseal(altered, 'c')).toThrow(SealingError)
    const other = sealingKey(crypto.randomBytes(32))
    expect(() => other.unseal(sealed, 'c')).toThrow(
      new RegExp(`sealed under the key ${key.id}.*has the key ${other.id}`),
    )
    expect(() => key.unseal('-----BEGIN PRIVATE KEY-----', 'c')).toThrow(/is not sealed/)
  })
})

describe('the secret key file', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  })
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-key-'))
    dirs.push(dir)
    return dir
  }

  it('is made once, readable by its owner only, and read back by every later start', () => {
    const file = path.join(tempDir(), 'nested', 'secret.key')
    const first = resolveSealingKey({ kind: 'file', path: file, named: true }, { mayMake: true })
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64')).toHaveLength(32)
    const again = resolveSealingKey({ kind: 'file', path: file, named: true }, { mayMake: false })
    expect(again.id).toBe(first.id)
    expect(again.unseal(first.seal('x', 'c'), 'c')).toBe('x')
    // No temporary file is left beside it.
    expect(fs.readdirSync(path.dirname(file))).toEqual(['secret.key'])
  })

  it('is reported when others than its owner may read it, and only then', () => {
    const file = path.join(tempDir(), 'secret.key')
    const source = { kind: 'file', path: file, named: true } as const
    expect(keyFileExposure(source)).toBeNull() // no file yet
    resolveSealingKey(source, { mayMake: true })
    expect(keyFileExposure(source)).toBeNull() // made 0600
    fs.chmodSync(file, 0o400)
    expect(keyFileExposure(source)).toBeNull()
    for (const mode of [0o644, 0o640, 0o602]) {
      fs.chmodSync(file, mode)
      expect(keyFileExposure(source)).toContain(`${file} has mode 0${mode.toString(8)}`)
    }
    // The key itself never enters the warning.
    expect(keyFileExposure(source)).not.toContain(fs.readFileSync(file, 'utf8').trim())
    const value = parseConfig({ BASEPLATE_SECRET_KEY: crypto.randomBytes(32).toString('base64') }).secretKey
    expect(keyFileExposure(value)).toBeNull()
  })

  it('refuses a file that does not hold a 32-byte key', () => {
    const file = path.join(tempDir(), 'secret.key')
    fs.writeFileSync(file, 'short\n')
    expect(() => resolveSealingKey({ kind: 'file', path: file, named: true }, { mayMake: true })).toThrow(
      /must hold a 32-byte key/,
    )
  })

  it('is not made where it may not be (a database that already holds keys)', () => {
    const file = path.join(tempDir(), 'secret.key')
    expect(() => resolveSealingKey({ kind: 'file', path: file, named: true }, { mayMake: false })).toThrow(
      /holds sealed platform keys, but the secret key file .* does not exist/,
    )
    expect(fs.existsSync(file)).toBe(false)
  })
})

forEachDialect('platform keys at rest', (dialect) => {
  let target: TestTarget | undefined
  afterEach(async () => {
    await target?.dispose()
    target = undefined
  })

  it('are stored sealed, and a restart with the same secret key signs with the same keys', async () => {
    target = await freshTarget(dialect)
    const secret = crypto.randomBytes(32)
    const first = await openPlatform(configWith(secret), { target: target.target })
    const signedFirst = first.platformKeys.get('live')!
    await first.close()

    for (const table of keyTables) {
      const stored = await rows(target, table)
      expect(stored.map((row) => row.environment)).toEqual(['live', 'sandbox'])
      for (const row of stored) {
        expect(row.private_key_sealed).toMatch(/^bpseal1\./)
        expect(row.private_key_sealed).not.toContain('PRIVATE KEY')
      }
    }

    const second = await openPlatform(configWith(secret), { target: target.target })
    try {
      const live = second.platformKeys.get('live')!
      expect(live.keyId).toBe(signedFirst.keyId)
      expect(live.rsa.keyId).toBe(signedFirst.rsa.keyId)
      expect(pairMatches(live.privateKey, signedFirst.publicKeyPem)).toBe(true)
      expect(pairMatches(live.rsa.privateKey, signedFirst.rsa.publicKeyPem)).toBe(true)
    } finally {
      await second.close()
    }
  })

  it('refuses to start with another secret key, and changes nothing, whatever opens it', async () => {
    target = await freshTarget(dialect)
    const platform = await openPlatform(configWith(crypto.randomBytes(32)), { target: target.target })
    await platform.close()
    const before = [await rows(target, 'platform_keys'), await rows(target, 'platform_rsa_keys')]
    const wrongKey = /was sealed under the key [0-9a-f]{16}, but this platform has the key [0-9a-f]{16}/
    await expect(openPlatform(configWith(crypto.randomBytes(32)), { target: target.target })).rejects.toThrow(wrongKey)
    // What `baseplate migrate` and the other commands run: the same check, before any write.
    await expect(preparePlatform(configWith(crypto.randomBytes(32)), { target: target.target })).rejects.toThrow(
      wrongKey,
    )
    expect([await rows(target, 'platform_keys'), await rows(target, 'platform_rsa_keys')]).toEqual(before)
  })

  // In one process, two SQLite connections cannot take turns: better-sqlite3's busy handler
  // waits synchronously, so the waiter blocks the very event loop the holder needs to commit.
  // Separate processes on SQLite are test/concurrent-starts.test.ts.
  it.runIf(dialect === 'postgres')(
    'lets two first starts with different keys seal under one: the other is refused',
    async () => {
      target = await freshTarget(dialect)
      // Migrated, but without keys: concurrent first migrations are another matter.
      const { storage } = await preparePlatform(configWith(crypto.randomBytes(32)), { target: target.target })
      for (const table of keyTables) await (storage.db as Kysely<any>).deleteFrom(table).execute()
      await storage.close()
      const secrets = [crypto.randomBytes(32), crypto.randomBytes(32)]
      const outcomes = await Promise.allSettled(
        secrets.map((secret) => preparePlatform(configWith(secret), { target: target!.target })),
      )
      for (const outcome of outcomes) if (outcome.status === 'fulfilled') await outcome.value.storage.close()
      const won = outcomes.findIndex((outcome) => outcome.status === 'fulfilled')
      expect(won).toBeGreaterThanOrEqual(0)
      const lost = outcomes[1 - won]!
      expect(lost.status).toBe('rejected')
      expect(String((lost as PromiseRejectedResult).reason)).toMatch(/was sealed under the key/)
      const winner = sealingKey(secrets[won]!)
      for (const table of keyTables) {
        const stored = await rows(target, table)
        expect(stored).toHaveLength(2)
        for (const row of stored) winner.unseal(row.private_key_sealed, `${table}/${row.environment}/${row.key_id}`)
      }
    },
  )

  it('lets migrate and the verify commands touch no key (keys: false)', async () => {
    target = await freshTarget(dialect)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-nokeys-'))
    try {
      const keyFile = path.join(dir, 'secret.key')
      const config = parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_SECRET_KEY_FILE: keyFile })
      const { storage } = await preparePlatform(config, { target: target.target, keys: false })
      await storage.close()
      expect(fs.existsSync(keyFile)).toBe(false)
      expect(await rows(target, 'platform_keys')).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  if (dialect === 'postgres') {
    it('refuses PostgreSQL with the default key file, which each host would make for itself', async () => {
      target = await freshTarget(dialect)
      const config = parseConfig({ BASEPLATE_LOG_LEVEL: 'silent' })
      await expect(preparePlatform(config, { target: target.target })).rejects.toThrow(
        /with DATABASE_URL, set BASEPLATE_SECRET_KEY/,
      )
    })
  }

  it('makes no new key file for a database that holds keys: a lost file stops the start', async () => {
    target = await freshTarget(dialect)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-keyfile-'))
    try {
      const fileConfig = (name: string) =>
        parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_SECRET_KEY_FILE: path.join(dir, name) })
      const platform = await openPlatform(fileConfig('first.key'), { target: target.target })
      await platform.close()
      expect(fs.existsSync(path.join(dir, 'first.key'))).toBe(true)
      const before = await rows(target, 'platform_keys')
      await expect(preparePlatform(fileConfig('lost.key'), { target: target.target })).rejects.toThrow(
        /holds sealed platform keys, but the secret key file .*lost\.key does not exist/,
      )
      expect(fs.existsSync(path.join(dir, 'lost.key'))).toBe(false)
      expect(await rows(target, 'platform_keys')).toEqual(before)
      const again = await openPlatform(fileConfig('first.key'), { target: target.target })
      await again.close()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('seals keys an earlier version stored in the clear, under a key file the upgrade makes', async () => {
    target = await freshTarget(dialect)
    const secret = crypto.randomBytes(32)
    const key = sealingKey(secret)
    const { storage } = await preparePlatform(configWith(secret), { target: target.target })
    // Back to what the previous version left: the migration not run, and each private key as
    // PKCS#8 PEM, in the clear, in the column it had.
    const clear = new Map<string, string>()
    const db = storage.db as unknown as Kysely<Record<string, KeyRow & { private_key_pem: string }>>
    for (const table of keyTables) {
      for (const row of await db.selectFrom(table).selectAll().execute()) {
        const pem = key.unseal(row.private_key_sealed, `${table}/${row.environment}/${row.key_id}`)
        clear.set(`${table}/${row.environment}`, pem)
        await db
          .updateTable(table)
          .set({ private_key_sealed: pem })
          .where('environment', '=', row.environment)
          .execute()
      }
      await db.schema.alterTable(table).renameColumn('private_key_sealed', 'private_key_pem').execute()
    }
    await (storage.db as Kysely<any>)
      .deleteFrom('baseplate_migrations')
      .where('name', '=', '2026-12-07T00-00_sealed_platform_keys')
      .execute()
    await storage.close()

    // The upgrade as most deployments meet it: the default key file, which did not exist before.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-upgrade-'))
    const keyFile = path.join(dir, 'secret.key')
    const upgraded = parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_SECRET_KEY_FILE: keyFile })
    const platform = await openPlatform(upgraded, { target: target.target })
    try {
      const madeKey = resolveSealingKey({ kind: 'file', path: keyFile, named: true }, { mayMake: false })
      expect(madeKey.id).not.toBe(key.id)
      for (const table of keyTables) {
        for (const row of await rows(target, table)) {
          expect(row.private_key_sealed).toMatch(/^bpseal1\./)
          const context = `${table}/${row.environment}/${row.key_id}`
          expect(madeKey.unseal(row.private_key_sealed, context)).toBe(clear.get(`${table}/${row.environment}`))
        }
      }
      const sandbox = platform.platformKeys.get('sandbox')!
      expect(pairMatches(sandbox.privateKey, sandbox.publicKeyPem)).toBe(true)
      expect(pairMatches(sandbox.rsa.privateKey, sandbox.rsa.publicKeyPem)).toBe(true)
    } finally {
      await platform.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('will not open a sealed key moved into another environment', async () => {
    target = await freshTarget(dialect)
    const secret = crypto.randomBytes(32)
    const { storage } = await preparePlatform(configWith(secret), { target: target.target })
    try {
      const db = storage.db as unknown as Kysely<Record<string, KeyRow>>
      const sandbox = await db
        .selectFrom('platform_keys')
        .selectAll()
        .where('environment', '=', 'sandbox')
        .executeTakeFirstOrThrow()
      await db
        .updateTable('platform_keys')
        .set({ private_key_sealed: sandbox.private_key_sealed })
        .where('environment', '=', 'live')
        .execute()
    } finally {
      await storage.close()
    }
    await expect(openPlatform(configWith(secret), { target: target.target })).rejects.toThrow(
      /platform_keys\/live\/.* does not open: it was altered, or sealed for another row/,
    )
  })
})
