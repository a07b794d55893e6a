/**
 * The platform's own key pairs per environment, created on first start:
 *
 * - Ed25519 signs native responses and webhooks, so that callers verify them without a
 *   shared secret (fast: about 20k signatures a second on a core);
 * - RSA-2048 signs what the Alipay-compatible gateway sends (responses and notifications),
 *   because `alipay-sdk` verifies SHA256withRSA and nothing else. ISVs configure its public
 *   key as `alipayPublicKey`.
 *
 * The private keys are stored in the platform's database: every API process must sign, and the
 * database is the one store they all share. Protect the database (and its backups) as you
 * would the keys; see docs/decisions/0004-platform-keys.md.
 */
import crypto from 'node:crypto'
import { promisify } from 'node:util'
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import type { AppEnvironment, CoreTables } from '../../storage/tables.js'
import { newId } from '../ids.js'

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
    private_key_pem: string
    created_at: number
  }
}

const generateKeyPair = promisify(crypto.generateKeyPair)

export async function ensurePlatformKeys(db: Kysely<any>, now: number): Promise<void> {
  for (const environment of environments) {
    const pair = crypto.generateKeyPairSync('ed25519')
    await (db as Kysely<CoreTables>)
      .insertInto('platform_keys')
      .values({
        environment,
        key_id: newId('pk'),
        algorithm: 'Ed25519',
        public_key_pem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        private_key_pem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        created_at: now,
      })
      .onConflict((oc) => oc.column('environment').doNothing())
      .execute()
  }
  // RSA generation costs about 0.1 s a key, so only missing keys are generated, in parallel
  // on the thread pool. Concurrent first starts are still safe: the first insert wins.
  const rsa = db as Kysely<RsaKeysTables>
  const present = new Set(
    (await rsa.selectFrom('platform_rsa_keys').select('environment').execute()).map((row) => row.environment),
  )
  const missing = environments.filter((environment) => !present.has(environment))
  const pairs = await Promise.all(
    missing.map(() =>
      generateKeyPair('rsa', {
        modulusLength: platformRsaBits,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      }),
    ),
  )
  for (const [index, environment] of missing.entries()) {
    const pair = pairs[index]!
    await rsa
      .insertInto('platform_rsa_keys')
      .values({
        environment,
        key_id: newId('pkr'),
        bits: platformRsaBits,
        public_key_pem: pair.publicKey,
        private_key_pem: pair.privateKey,
        created_at: now,
      })
      .onConflict((oc) => oc.column('environment').doNothing())
      .execute()
  }
}

/** Loads both environments' keys once; the server keeps them in memory. */
export async function loadPlatformKeys(db: Kysely<any>): Promise<ReadonlyMap<AppEnvironment, PlatformKey>> {
  const rows = await (db as Kysely<CoreTables>).selectFrom('platform_keys').selectAll().execute()
  const rsaRows = await (db as Kysely<RsaKeysTables>).selectFrom('platform_rsa_keys').selectAll().execute()
  const keys = new Map<AppEnvironment, PlatformKey>()
  for (const row of rows) {
    const rsa = rsaRows.find((candidate) => candidate.environment === row.environment)
    assert(rsa !== undefined, `RSA platform key for ${row.environment} is missing`)
    keys.set(row.environment, {
      environment: row.environment,
      keyId: row.key_id,
      publicKeyPem: row.public_key_pem,
      privateKey: crypto.createPrivateKey(row.private_key_pem),
      rsa: {
        keyId: rsa.key_id,
        bits: rsa.bits,
        publicKeyPem: rsa.public_key_pem,
        privateKey: crypto.createPrivateKey(rsa.private_key_pem),
        privateKeyPem: rsa.private_key_pem,
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
