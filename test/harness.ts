/**
 * Runs a suite once per database. SQLite always runs; PostgreSQL runs when reachable, and
 * with BASEPLATE_TEST_PG=required an unreachable PostgreSQL fails the suite instead of
 * skipping it. Each platform gets its own SQLite file or PostgreSQL schema, so test files
 * run in parallel without sharing state.
 *
 * @example
 * forEachDialect('stores', (dialect) => {
 *   const bp = useTestPlatform(dialect)
 *   it('creates a store', async () => { … bp().app.inject(…) … })
 * })
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { loadConfig, parseConfig, withoutPassword, type Config } from '../src/config.js'
import { openPlatform, type Platform, type PlatformOptions } from '../src/server/platform.js'
import type { StorageTarget } from '../src/storage/database.js'
import type { DialectName } from '../src/storage/database.js'

/** The suite's switches (BASEPLATE_TEST_PG, BASEPLATE_TEST_DATABASE_URL), read by config.ts. */
export const testConfig: Config = loadConfig()

/**
 * The secret key that seals platform keys (ADR 0018), one per test file: its platforms and the
 * CLI it runs against the same database must share it, and none writes a key file.
 */
export const testSecretKey = crypto.randomBytes(32).toString('base64')

async function postgresReachable(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('select 1')
    return null
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  } finally {
    await client.end().catch(() => undefined)
  }
}

const postgresProblem =
  testConfig.testPostgres === 'skip' ? 'BASEPLATE_TEST_PG=skip' : await postgresReachable(testConfig.testDatabaseUrl)

export const dialects: readonly DialectName[] = ['sqlite', 'postgres']

export interface TestTarget {
  readonly target: StorageTarget
  dispose(): Promise<void>
}

/** A fresh, empty database: a temporary SQLite file or a new PostgreSQL schema. */
export async function freshTarget(dialect: DialectName): Promise<TestTarget> {
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-test-'))
    return {
      target: { kind: 'sqlite', file: path.join(dir, 'baseplate.db') },
      dispose: async () => fs.rmSync(dir, { recursive: true, force: true }),
    }
  }
  const schema = `bp_test_${crypto.randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: testConfig.testDatabaseUrl })
  await admin.connect()
  await admin.query(`create schema ${schema}`)
  await admin.end()
  return {
    target: { kind: 'postgres', url: testConfig.testDatabaseUrl, schema, poolSizeMax: 20 },
    dispose: async () => {
      const client = new pg.Client({ connectionString: testConfig.testDatabaseUrl })
      await client.connect()
      await client.query(`drop schema ${schema} cascade`)
      await client.end()
    },
  }
}

/** Declares `body` once per dialect; the PostgreSQL half skips or fails as configured. */
export function forEachDialect(name: string, body: (dialect: DialectName) => void): void {
  for (const dialect of dialects) {
    if (dialect === 'postgres' && postgresProblem !== null) {
      if (testConfig.testPostgres === 'required') {
        describe(`${name} [postgres]`, () => {
          it('needs PostgreSQL (BASEPLATE_TEST_PG=required)', () => {
            throw new Error(
              `PostgreSQL at ${withoutPassword(testConfig.testDatabaseUrl)} is unreachable: ${postgresProblem}`,
            )
          })
        })
      } else {
        describe.skip(`${name} [postgres] (skipped: ${postgresProblem})`, () => body(dialect))
      }
      continue
    }
    describe(`${name} [${dialect}]`, () => body(dialect))
  }
}

/** A platform per describe block, opened before its tests and closed after. */
export function useTestPlatform(
  dialect: DialectName,
  options: Omit<PlatformOptions, 'target'> & {
    config?: Record<string, string>
  } = {},
): () => Platform {
  let platform: Platform | undefined
  let target: TestTarget | undefined
  beforeAll(async () => {
    target = await freshTarget(dialect)
    const config = parseConfig({
      BASEPLATE_LOG_LEVEL: 'silent',
      BASEPLATE_SECRET_KEY: testSecretKey,
      ...options.config,
    })
    platform = await openPlatform(config, { ...options, target: target.target })
  })
  afterAll(async () => {
    await platform?.close()
    await target?.dispose()
  })
  return () => {
    if (platform === undefined) throw new Error('platform not open yet')
    return platform
  }
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.UTC(2026, 10, 25, 4, 0, 0)) {
  let now = start
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms
    },
    set: (ms: number) => {
      now = ms
    },
  }
}
