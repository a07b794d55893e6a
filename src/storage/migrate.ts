/**
 * Runs every pending migration: the platform's own, then each capability's. Migrations are
 * frozen in time (they take `Kysely<any>` and import nothing from the application) and only
 * go forward. Names start with an ISO time; a capability added later may carry an older
 * time than migrations already run, so unordered migrations are allowed.
 */
import { Migrator, type Kysely, type MigrationResult } from 'kysely'
import type { CapabilityModule, Migration } from '../capabilities/contract.js'
import { collectMigrations } from '../capabilities/registry.js'
import * as core0001 from './migrations/2026-11-25T00-00_core.js'

export const coreMigrations: Readonly<Record<string, Migration>> = {
  '2026-11-25T00-00_core': core0001,
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError'
}

export async function migrateToLatest(db: Kysely<any>, modules: readonly CapabilityModule<any>[])
  : Promise<MigrationResult[]> {
  const migrations = collectMigrations(coreMigrations, modules)
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    allowUnorderedMigrations: true,
    migrationTableName: 'baseplate_migrations',
    migrationLockTableName: 'baseplate_migrations_lock',
  })
  const { error, results } = await migrator.migrateToLatest()
  if (error !== undefined) {
    const failed = results?.find((result) => result.status === 'Error')
    throw new MigrationError(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String(error)}`,
      { cause: error })
  }
  return results ?? []
}
