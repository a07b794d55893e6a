/**
 * The platform's own Ed25519 key pair per environment, used to sign responses and (later)
 * webhooks so that callers verify them without a shared secret. Created on first start.
 *
 * The private key is stored in the platform's database: every API process must sign, and the
 * database is the one store they all share. Protect the database (and its backups) as you
 * would the key; see docs/decisions/0004-platform-keys.md.
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import type { AppEnvironment, CoreTables } from '../../storage/tables.js'
import { newId } from '../ids.js'

export const environments: readonly AppEnvironment[] = ['sandbox', 'live']

export interface PlatformKey {
  readonly environment: AppEnvironment
  readonly keyId: string
  readonly publicKeyPem: string
  readonly privateKey: crypto.KeyObject
}

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
}

/** Loads both environments' keys once; the server keeps them in memory. */
export async function loadPlatformKeys(db: Kysely<any>): Promise<ReadonlyMap<AppEnvironment, PlatformKey>> {
  const rows = await (db as Kysely<CoreTables>).selectFrom('platform_keys').selectAll().execute()
  const keys = new Map<AppEnvironment, PlatformKey>()
  for (const row of rows) {
    keys.set(row.environment, {
      environment: row.environment,
      keyId: row.key_id,
      publicKeyPem: row.public_key_pem,
      privateKey: crypto.createPrivateKey(row.private_key_pem),
    })
  }
  for (const environment of environments) assert(keys.has(environment), `platform key for ${environment} is missing`)
  return keys
}
