/**
 * Runs every pending migration: the platform's own, then each capability's. Migrations are
 * frozen in time (they take `Kysely<any>` and import nothing from the application) and only
 * go forward. Names start with an ISO time; a capability added later may carry an older
 * time than migrations already run, so unordered migrations are allowed.
 */
import { Migrator, sql, type Kysely, type MigrationResult } from 'kysely'
import type { DialectName } from './database.js'
import type { CapabilityModule, Migration } from '../capabilities/contract.js'
import { collectMigrations } from '../capabilities/registry.js'
import * as core0001 from './migrations/2026-11-25T00-00_core.js'
import * as authorizations from './migrations/2026-11-25T01-00_authorizations.js'
import * as notifications from './migrations/2026-11-25T02-00_notifications.js'
import * as governance from './migrations/2026-11-25T03-00_governance.js'
import * as alipayGateway from './migrations/2026-11-26T00-00_alipay_gateway.js'
import * as appKeysOrder from './migrations/2026-12-06T00-00_app_keys_order.js'
import * as sealedPlatformKeys from './migrations/2026-12-07T00-00_sealed_platform_keys.js'
import * as sessionsIndexes from './migrations/2026-12-08T00-00_sessions_indexes.js'
import * as alipayNotifyReceiver from './migrations/2026-12-08T01-00_alipay_notify_receiver.js'

export const coreMigrations: Readonly<Record<string, Migration>> = {
  '2026-11-25T00-00_core': core0001,
  '2026-11-25T01-00_authorizations': authorizations,
  '2026-11-25T02-00_notifications': notifications,
  '2026-11-25T03-00_governance': governance,
  '2026-11-26T00-00_alipay_gateway': alipayGateway,
  '2026-12-06T00-00_app_keys_order': appKeysOrder,
  '2026-12-07T00-00_sealed_platform_keys': sealedPlatformKeys,
  '2026-12-08T00-00_sessions_indexes': sessionsIndexes,
  '2026-12-08T01-00_alipay_notify_receiver': alipayNotifyReceiver,
}

/** Attempts when another schema vanishes under Kysely's table listing (see isForeignSchemaGone). */
const foreignSchemaRetriesMax = 3

/**
 * Kysely's migrator looks for its bookkeeping tables by listing the tables of *every* schema it
 * can see; on PostgreSQL a schema dropped by someone else during that listing fails it with
 * 3F000 (invalid_schema_name) naming that schema, or 42P01 (undefined_table) naming one of its
 * tables as `"schema.table"`. The listing also calls `pg_get_serial_sequence` on every column,
 * which fails with 42703 (undefined_column, no schema named) when another session is creating
 * or altering that table as it runs: other schemas migrating, or another process migrating ours
 * on a first start (before Kysely's migration lock, which comes after the listing). Nothing of
 * ours changed, and the listing comes before any migration runs, so the attempt is simply
 * repeated. Our own schema or table missing is a real error and is not retried.
 */
export function isForeignSchemaGone(error: unknown, ownSchema: string | undefined): boolean {
  if (ownSchema === undefined || typeof error !== 'object' || error === null) return false
  const { code, message } = error as { code?: unknown; message?: unknown }
  if (typeof message !== 'string') return false
  if (code === '3F000') return !message.includes(`"${ownSchema}"`)
  if (code === '42P01') return /"[^".]+\.[^"]+"/.test(message) && !message.includes(`"${ownSchema}.`)
  if (code === '42703') return (error as { routine?: unknown }).routine === 'pg_get_serial_sequence'
  return false
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError'
}

export async function migrateToLatest(
  db: Kysely<any>,
  modules: readonly CapabilityModule<any>[],
  dialect: DialectName,
): Promise<MigrationResult[]> {
  const migrations = collectMigrations(coreMigrations, modules)
  if (dialect === 'postgres') return migrateWith(db, migrations, dialect)
  // Nothing pending (every restart): no lock taken.
  if (!(await anyPending(db, Object.keys(migrations)))) return []
  // On SQLite, Kysely takes no lock (its adapter has none, and runs migrations outside a
  // transaction), and it reads which migrations ran before it first writes: two processes
  // starting at once on a new database both ran the first migration, and one failed ("table
  // already exists"). So the whole migration is one holder of the connection that first opens
  // the group commit's transaction — `BEGIN IMMEDIATE`, SQLite's write lock — with an empty
  // transaction; the group, and the lock, last until the holder lets go
  // (src/storage/group-commit.ts). A second process waits for it (busy_timeout), then finds
  // everything done.
  return db.connection().execute(async (connection) => {
    await connection.transaction().execute(async () => undefined)
    return migrateWith(connection, migrations, dialect)
  })
}

/** Whether a migration has not run yet, by a plain read of Kysely's bookkeeping (no lock). */
async function anyPending(db: Kysely<any>, names: readonly string[]): Promise<boolean> {
  let done: Set<string>
  try {
    const rows = await db.selectFrom('baseplate_migrations').select('name').execute()
    done = new Set(rows.map((row) => row.name as string))
  } catch {
    return true
  }
  return names.some((name) => !done.has(name))
}

async function migrateWith(
  db: Kysely<any>,
  migrations: Readonly<Record<string, Migration>>,
  dialect: DialectName,
): Promise<MigrationResult[]> {
  // Kysely looks for its bookkeeping tables by name across every schema it can see; on
  // PostgreSQL, name ours explicitly so that another schema's tables are never mistaken for them.
  const schema =
    dialect === 'postgres'
      ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
      : undefined
  const migrator = new Migrator({
    db,
    ...(schema === undefined ? {} : { migrationTableSchema: schema }),
    provider: { getMigrations: async () => migrations },
    allowUnorderedMigrations: true,
    migrationTableName: 'baseplate_migrations',
    migrationLockTableName: 'baseplate_migrations_lock',
  })
  let outcome = await migrator.migrateToLatest()
  for (let attempt = 1; attempt < foreignSchemaRetriesMax && isForeignSchemaGone(outcome.error, schema); attempt += 1) {
    outcome = await migrator.migrateToLatest()
  }
  const { error, results } = outcome
  if (error !== undefined) {
    const failed = results?.find((result) => result.status === 'Error')
    throw new MigrationError(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String(error)}`, {
      cause: error,
    })
  }
  return results ?? []
}
