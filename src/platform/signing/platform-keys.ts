/**
 * The platform's own key pairs per environment, created on first start:
 *
 * - Ed25519 signs native responses and webhooks, so that callers verify them without a
 *   shared secret (fast: about 20k signatures a second on a core);
 * - RSA-2048 signs what the Alipay-compatible gateway sends (responses and notifications),
 *   because `alipay-sdk` verifies SHA256withRSA and nothing else. ISVs configure its public
 *   key as `alipayPublicKey`.
 *
 * The private keys are stored in the platform's database, which every API process shares
 * (docs/decisions/0004-platform-keys.md), sealed under the secret key, which the database
 * never holds (`sealing.ts`, ADR 0018). Keys stored before sealing existed are sealed by the
 * first start that has the secret key.
 */
import crypto from 'node:crypto'
import { promisify } from 'node:util'
import { sql, type Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { onPostgres } from '../../storage/prepared.js'
import type { AppEnvironment, CoreTables } from '../../storage/tables.js'
import { newId } from '../ids.js'
import { isSealed, SealingError, sealedPrefix, type SealingKey } from './sealing.js'

export const environments: readonly AppEnvironment[] = ['sandbox', 'live']
/** RSA2 as Alipay uses it: 2048-bit keys, SHA-256. */
export const platformRsaBits = 2048

export interface RsaPlatformKey {
  readonly keyId: string
  readonly bits: number
  readonly publicKeyPem: string
  readonly privateKey: crypto.KeyObject
  /** The PKCS#8 PEM, for signing threads that parse their own copy. */
  readonly privateKeyPem: string
}

export interface PlatformKey {
  readonly environment: AppEnvironment
  readonly keyId: string
  readonly publicKeyPem: string
  /** Ed25519: native responses and webhooks. */
  readonly privateKey: crypto.KeyObject
  /** RSA: the Alipay-compatible gateway. */
  readonly rsa: RsaPlatformKey
}

/** The migration that added `platform_rsa_keys`; its rows, typed here as nothing else reads them. */
interface RsaKeysTables {
  platform_rsa_keys: {
    environment: AppEnvironment
    key_id: string
    bits: number
    public_key_pem: string
    private_key_sealed: string
    created_at: number
  }
}

const keyTables = ['platform_keys', 'platform_rsa_keys'] as const
type KeyTable = (typeof keyTables)[number]
const storedColumns = ['environment', 'key_id', 'private_key_sealed'] as const

/** What a sealed private key is bound to: the row it belongs in, so that it opens nowhere else. */
function sealContext(table: KeyTable, environment: AppEnvironment, keyId: string): string {
  return `${table}/${environment}/${keyId}`
}

const generateKeyPair = promisify(crypto.generateKeyPair)

/**
 * Creates the keys a first start needs, sealed under `key`, and seals any key an earlier
 * version stored in the clear — but first checks that every sealed key opens with `key`, and
 * throws {@link SealingError} before writing anything if one does not. All of it is one
 * transaction that concurrent starts take in turn (SQLite has one writer; PostgreSQL locks both
 * tables), so no two processes ever seal keys of one database under two different keys.
 */
export async function ensurePlatformKeys(db: Kysely<any>, now: number, key: SealingKey): Promise<void> {
  // RSA generation costs about 0.1 s a key: the keys missing now are made first, in parallel on
  // the thread pool and outside the transaction; one still missing inside it is made there.
  const rsaMissing = await missingEnvironments(db, 'platform_rsa_keys')
  const rsaPairs = new Map(
    await Promise.all(rsaMissing.map(async (environment) => [environment, await generateRsaPair()] as const)),
  )
  await db.transaction().execute(async (tx) => {
    if (onPostgres(tx)) await sql`lock table platform_keys, platform_rsa_keys in share row exclusive mode`.execute(tx)
    const keys = tx as Kysely<RsaKeysTables & CoreTables>
    const stored = {
      platform_keys: await keys.selectFrom('platform_keys').select(storedColumns).execute(),
      platform_rsa_keys: await keys.selectFrom('platform_rsa_keys').select(storedColumns).execute(),
    }
    for (const table of keyTables) {
      for (const row of stored[table]) if (isSealed(row.private_key_sealed)) openKey(key, table, row)
    }
    for (const environment of environments) {
      if (!stored.platform_keys.some((row) => row.environment === environment)) {
        const pair = crypto.generateKeyPairSync('ed25519')
        const keyId = newId('pk')
        const privateKeyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
        await keys
          .insertInto('platform_keys')
          .values({
            environment,
            key_id: keyId,
            algorithm: 'Ed25519',
            public_key_pem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
            private_key_sealed: key.seal(privateKeyPem, sealContext('platform_keys', environment, keyId)),
            created_at: now,
          })
          .execute()
      }
      if (!stored.platform_rsa_keys.some((row) => row.environment === environment)) {
        const pair = rsaPairs.get(environment) ?? (await generateRsaPair())
        const keyId = newId('pkr')
        await keys
          .insertInto('platform_rsa_keys')
          .values({
            environment,
            key_id: keyId,
            bits: platformRsaBits,
            public_key_pem: pair.publicKey,
            private_key_sealed: key.seal(pair.privateKey, sealContext('platform_rsa_keys', environment, keyId)),
            created_at: now,
          })
          .execute()
      }
    }
    // Keys an earlier version stored in the clear: sealed in place.
    for (const table of keyTables) {
      for (const row of stored[table]) {
        if (isSealed(row.private_key_sealed)) continue
        await keys
          .updateTable(table)
          .set({
            private_key_sealed: key.seal(row.private_key_sealed, sealContext(table, row.environment, row.key_id)),
          })
          .where('environment', '=', row.environment)
          .execute()
      }
    }
  })
}

/**
 * Whether the database holds a sealed platform key: then it needs the key that sealed it, and a
 * new one must not be made. Keys in the clear (from before sealing) do not count, so the first
 * start after the upgrade makes the key file and seals them.
 */
export async function holdsSealedKeys(db: Kysely<any>): Promise<boolean> {
  for (const table of keyTables) {
    const sealed = await (db as Kysely<CoreTables>)
      .selectFrom(table as 'platform_keys')
      .select('environment')
      .where('private_key_sealed', 'like', `${sealedPrefix}%`)
      .limit(1)
      .execute()
    if (sealed.length > 0) return true
  }
  return false
}

async function missingEnvironments(db: Kysely<any>, table: KeyTable): Promise<AppEnvironment[]> {
  const rows = await (db as Kysely<CoreTables>)
    .selectFrom(table as 'platform_keys')
    .select('environment')
    .execute()
  return environments.filter((environment) => !rows.some((row) => row.environment === environment))
}

function generateRsaPair(): Promise<{ publicKey: string; privateKey: string }> {
  return generateKeyPair('rsa', {
    modulusLength: platformRsaBits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
}

/** A stored private key, opened; a key still in the clear is refused (ensurePlatformKeys seals them). */
function openKey(
  key: SealingKey,
  table: KeyTable,
  row: { environment: AppEnvironment; key_id: string; private_key_sealed: string },
) {
  const context = sealContext(table, row.environment, row.key_id)
  if (!isSealed(row.private_key_sealed)) throw new SealingError(`${context} is stored in the clear`)
  return key.unseal(row.private_key_sealed, context)
}

/** Loads and opens both environments' keys once; the server keeps them in memory. */
export async function loadPlatformKeys(
  db: Kysely<any>,
  key: SealingKey,
): Promise<ReadonlyMap<AppEnvironment, PlatformKey>> {
  const rows = await (db as Kysely<CoreTables>).selectFrom('platform_keys').selectAll().execute()
  const rsaRows = await (db as Kysely<RsaKeysTables>).selectFrom('platform_rsa_keys').selectAll().execute()
  const keys = new Map<AppEnvironment, PlatformKey>()
  for (const row of rows) {
    const rsa = rsaRows.find((candidate) => candidate.environment === row.environment)
    assert(rsa !== undefined, `RSA platform key for ${row.environment} is missing`)
    const rsaPrivateKeyPem = openKey(key, 'platform_rsa_keys', rsa)
    keys.set(row.environment, {
      environment: row.environment,
      keyId: row.key_id,
      publicKeyPem: row.public_key_pem,
      privateKey: crypto.createPrivateKey(openKey(key, 'platform_keys', row)),
      rsa: {
        keyId: rsa.key_id,
        bits: rsa.bits,
        publicKeyPem: rsa.public_key_pem,
        privateKey: crypto.createPrivateKey(rsaPrivateKeyPem),
        privateKeyPem: rsaPrivateKeyPem,
      },
    })
  }
  for (const environment of environments) assert(keys.has(environment), `platform key for ${environment} is missing`)
  return keys
}

/**
 * The RSA public key of an environment, as the sandbox command prints it (`alipayPublicKey`).
 *
 * @example
 * const pem = await rsaPublicKeyPem(storage.db, 'sandbox')
 */
export async function rsaPublicKeyPem(db: Kysely<any>, environment: AppEnvironment): Promise<string> {
  const row = await (db as Kysely<RsaKeysTables>)
    .selectFrom('platform_rsa_keys')
    .select('public_key_pem')
    .where('environment', '=', environment)
    .executeTakeFirstOrThrow()
  return row.public_key_pem
}
