/**
 * The world a reliability run or a benchmark drives: a fresh database (a temporary SQLite
 * folder or a new PostgreSQL schema) prepared the way `baseplate sandbox --json` prepares
 * one — an ISV's sandbox app with an RSA-2048 key, a merchant that authorised it, a buyer
 * with a reusable payment code — and the buyer topped up so that a long run never runs dry.
 * The server then runs in another process against the same database.
 *
 * @example
 * const database = await freshDatabase('sqlite')
 * const world = await prepareWorld(database, { balanceFen: 1e9, publicUrl: 'http://127.0.0.1:9000' })
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import type { PaymentServices } from '../../../src/capabilities/payment/index.js'
import { createSandbox, ensureOrganization, sandboxScopes } from '../../../src/cli/sandbox.js'
import { parseConfig, type Config } from '../../../src/config.js'
import { registerKey } from '../../../src/platform/apps/service.js'
import { grantAuthorization } from '../../../src/platform/authorization/index.js'
import { fen } from '../../../src/platform/money/money.js'
import { preparePlatform } from '../../../src/server/platform.js'
import type { AppPrincipal } from '../../../src/server/route-kit.js'
import { openStorage, type Storage, type StorageTarget } from '../../../src/storage/database.js'

export type WorldDatabase =
  | { readonly kind: 'sqlite'; readonly dir: string; dispose(): Promise<void> }
  | {
      readonly kind: 'postgres'
      readonly url: string
      readonly schema: string
      /** Where its secret key file lives: servers sharing the database must share the key. */
      readonly keyDir: string
      dispose(): Promise<void>
    }

export interface World {
  readonly appId: string
  readonly privateKey: crypto.KeyObject
  readonly platformPublicKey: crypto.KeyObject
  /** The platform's RSA key of the sandbox, as alipay-sdk takes it (`alipayPublicKey`). */
  readonly alipayPublicKeyPem: string
  readonly appAuthToken: string
  readonly isvId: string
  readonly merchantId: string
  readonly buyerId: string
  readonly paymentCode: string
  /** The buyer's wallet balance once prepared, in fen. */
  readonly openingBalanceFen: number
}

/** A fresh, empty database of the given kind. */
export async function freshDatabase(kind: 'sqlite' | 'postgres', postgresUrl?: string): Promise<WorldDatabase> {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-reliability-'))
    return { kind, dir, dispose: async () => fs.rmSync(dir, { recursive: true, force: true }) }
  }
  if (postgresUrl === undefined) throw new Error('PostgreSQL needs a URL')
  const schema = `bp_rel_${crypto.randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: postgresUrl })
  await admin.connect()
  await admin.query(`create schema ${schema}`)
  await admin.end()
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-reliability-key-'))
  return {
    kind,
    url: postgresUrl,
    schema,
    keyDir,
    dispose: async () => {
      const client = new pg.Client({ connectionString: postgresUrl })
      await client.connect()
      await client.query(`drop schema ${schema} cascade`)
      await client.end()
      fs.rmSync(keyDir, { recursive: true, force: true })
    },
  }
}

/** The environment that points a server (or the CLI) at the database. */
export function databaseEnv(database: WorldDatabase): Record<string, string> {
  if (database.kind === 'sqlite') return { BASEPLATE_DATA_DIR: database.dir }
  const url = new URL(database.url)
  url.searchParams.set('options', `-c search_path=${database.schema}`)
  return { DATABASE_URL: url.toString(), BASEPLATE_SECRET_KEY_FILE: path.join(database.keyDir, 'secret.key') }
}

/**
 * The server settings of a suite where one app sends the whole load on purpose (a storm, a
 * fuzz run, a crash under load): the per-app rate limit (ADR 0012, tested by the overload and
 * admission suites) would answer 429 to what the suite means to measure.
 */
export const oneAppDrivesTheLoad: Readonly<Record<string, string>> = { BASEPLATE_APP_RATE_LIMIT_PER_S: '0' }

export function storageTargetOf(database: WorldDatabase): StorageTarget {
  if (database.kind === 'sqlite') return { kind: 'sqlite', file: path.join(database.dir, 'baseplate.db') }
  return { kind: 'postgres', url: database.url, schema: database.schema, poolSizeMax: 4 }
}

/** Opens the database in this process, for checks after (or between) server runs. */
export function openDatabase(database: WorldDatabase): Promise<Storage> {
  return openStorage(storageTargetOf(database))
}

/** Migrates the database and creates the sandbox, then closes it again. */
export async function prepareWorld(
  database: WorldDatabase,
  options: { readonly balanceFen: number; readonly publicUrl: string },
): Promise<World> {
  return onPlatform(database, options.publicUrl, async ({ storage, registry, config }) => {
    const now = Date.now()
    const sandbox = await createSandbox(storage.db, registry, config, now)
    const payment = registry.service<PaymentServices>('payment')
    const principal = isvApp(sandbox.appId, sandbox.isv.id)
    const balance = await storage.db.transaction().execute(async (tx) => {
      const current = await payment.consumers.get(tx, principal, sandbox.buyer.id)
      if (current.balance < options.balanceFen) {
        await payment.consumers.topUp(tx, principal, sandbox.buyer.id, fen(options.balanceFen - current.balance), now)
      }
      return (await payment.consumers.get(tx, principal, sandbox.buyer.id)).balance
    })
    return {
      appId: sandbox.appId,
      privateKey: crypto.createPrivateKey(sandbox.appPrivateKey),
      platformPublicKey: crypto.createPublicKey(sandbox.platformPublicKey),
      alipayPublicKeyPem: sandbox.alipayPublicKey,
      appAuthToken: sandbox.appAuthToken,
      isvId: sandbox.isv.id,
      merchantId: sandbox.merchant.id,
      buyerId: sandbox.buyer.id,
      paymentCode: sandbox.buyer.paymentCode,
      openingBalanceFen: balance,
    }
  })
}

/** Runs `work` on the migrated platform of `database`, in this process, and closes it after. */
async function onPlatform<T>(
  database: WorldDatabase,
  publicUrl: string,
  work: (platform: Awaited<ReturnType<typeof preparePlatform>> & { config: Config }) => Promise<T>,
): Promise<T> {
  const config = parseConfig({
    BASEPLATE_LOG_LEVEL: 'silent',
    BASEPLATE_PUBLIC_URL: publicUrl,
    ...databaseEnv(database),
  })
  const platform = await preparePlatform(config)
  try {
    return await work({ ...platform, config })
  } finally {
    await platform.storage.close()
  }
}

/** The ISV's sandbox app acting for itself. */
function isvApp(appId: string, isvId: string): AppPrincipal {
  return { kind: 'app', appId, organizationId: isvId, environment: 'sandbox', actingFor: null, tenantId: isvId }
}

/**
 * `count` worlds that share `world`'s app (the first is `world` itself): each further one a
 * merchant of its own that authorised the app, with a buyer of its own topped up with
 * `balanceFen`. A load spread over them does not queue every payment on the same two accounts
 * as the sandbox's one merchant and one buyer do. Merchants and buyers have fixed emails
 * and names, so a second call finds them again rather than adding more.
 */
export async function manyMerchants(
  database: WorldDatabase,
  world: World,
  options: { readonly count: number; readonly balanceFen: number; readonly publicUrl: string },
): Promise<World[]> {
  return onPlatform(database, options.publicUrl, async ({ storage, registry }) => {
    const now = Date.now()
    const payment = registry.service<PaymentServices>('payment')
    const principal = isvApp(world.appId, world.isvId)
    const worlds: World[] = [world]
    for (let n = 1; n < options.count; n += 1) {
      const merchant = await ensureOrganization(
        storage.db,
        `bench-merchant-${n}@baseplate.local`,
        { name: `Bench merchant ${n}`, kind: 'merchant', industry: 'retail' },
        now,
      )
      const grant = await grantAuthorization(
        storage.db,
        {
          appId: world.appId,
          merchantId: merchant.organizationId,
          scopes: sandboxScopes,
          actor: 'sandbox',
          knownScopes: registry.scopes,
        },
        now,
      )
      const buyer = await storage.db.transaction().execute(async (tx) => {
        const consumer = await payment.consumers.findOrCreate(tx, principal, `Bench buyer ${n}`, now)
        await payment.consumers.topUp(tx, principal, consumer.id, fen(options.balanceFen), now)
        const code = await payment.consumers.mintCode(tx, principal, consumer.id, true, now)
        return {
          id: consumer.id,
          code: code.code,
          balance: (await payment.consumers.get(tx, principal, consumer.id)).balance,
        }
      })
      worlds.push({
        ...world,
        appAuthToken: grant.app_auth_token,
        merchantId: merchant.organizationId,
        buyerId: buyer.id,
        paymentCode: buyer.code,
        openingBalanceFen: buyer.balance,
      })
    }
    return worlds
  })
}

/** The ISV's owner, as a console principal: who may change the ISV's apps directly in the database. */
export async function isvOwner(db: Kysely<any>, world: World) {
  const owner = await db
    .selectFrom('memberships')
    .select('user_id')
    .where('organization_id', '=', world.isvId)
    .executeTakeFirstOrThrow()
  return { kind: 'user', userId: owner.user_id as string, isOperator: false, sessionToken: '' } as const
}

/**
 * Registers an Ed25519 key beside the app's RSA key (both stay valid for `overlapS`) and
 * returns the world signing with it: 10× cheaper to sign than RSA-2048, for suites that sign
 * tens of thousands of requests in the test process itself.
 */
export async function withEd25519Key(database: WorldDatabase, world: World, overlapS = 6 * 3600): Promise<World> {
  const storage = await openDatabase(database)
  try {
    const principal = await isvOwner(storage.db, world)
    const pair = crypto.generateKeyPairSync('ed25519')
    await storage.db
      .transaction()
      .execute((tx) =>
        registerKey(
          tx,
          principal,
          world.isvId,
          world.appId,
          { publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), overlapS },
          Date.now(),
        ),
      )
    return { ...world, privateKey: pair.privateKey }
  } finally {
    await storage.close()
  }
}

/** What the database says about the buyer's wallet and the merchant's trades. */
export async function walletBalance(db: Kysely<any>, buyerId: string): Promise<number> {
  const row = await db
    .selectFrom('ledger_accounts')
    .select(sql<number>`credits_posted - debits_posted`.as('balance'))
    .where('kind', '=', 'consumer_wallet')
    .where('owner_id', '=', buyerId)
    .executeTakeFirst()
  return Number(row?.balance ?? 0)
}
