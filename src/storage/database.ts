/**
 * Opens the database the platform runs on: embedded SQLite by default, PostgreSQL when
 * `DATABASE_URL` is set. Both go through Kysely, so the rest of the code has one query layer.
 *
 * Durability: SQLite runs in WAL mode with `synchronous=FULL`, so an acknowledged commit
 * survives a power loss, not only a process crash; the commits of concurrent requests are
 * grouped (one fsync for many, see group-commit.ts) so that FULL stays fast. PostgreSQL keeps
 * `synchronous_commit=on`.
 *
 * @example
 * const storage = await openStorage({ kind: 'sqlite', file: 'data/baseplate.db' })
 * await storage.db.selectFrom('users').selectAll().execute()
 */
import fs from 'node:fs'
import path from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { assert } from '../assert.js'
import type { Config } from '../config.js'
import { startCheckpointer } from './checkpointer.js'
import { GroupCommitSqliteDialect, type PendingCommits } from './group-commit.js'
import { namingPreparedQueries } from './named-statements.js'
import type { CoreTables } from './tables.js'

export type DialectName = 'sqlite' | 'postgres'

export type StorageTarget =
  | { readonly kind: 'sqlite'; readonly file: string }
  | { readonly kind: 'postgres'; readonly url: string; readonly schema?: string; readonly poolSizeMax?: number }

export interface Storage {
  readonly dialect: DialectName
  readonly db: Kysely<CoreTables>
  /**
   * Runs `work` on one connection whose commit is owed rather than awaited: on SQLite the
   * writes join the current commit group and `owed` records it; the caller must
   * `await owed.settle()` before anything built on them (an answer above all) leaves. On
   * PostgreSQL every statement commits by itself, so there is nothing to owe. `work` must use
   * the `db` it is given (the connection is held: `storage.db` would wait for it forever).
   */
  deferDurability<T>(owed: PendingCommits, work: (db: Kysely<CoreTables>) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** How often the worker thread checkpoints the WAL. */
const checkpointIntervalMs = 50

const int8Oid = 20
// PostgreSQL returns BIGINT as a string so that no precision is lost silently. Every BIGINT
// here is an amount in fen, a count or an epoch-millisecond time, all far below 2^53, so
// parse it once, here, and fail loudly should one ever not fit.
pg.types.setTypeParser(int8Oid, (text: string) => {
  const value = Number(text)
  assert(Number.isSafeInteger(value), `BIGINT ${text} exceeds the safe integer range`)
  return value
})

export function storageTarget(config: Config): StorageTarget {
  if (config.databaseUrl !== null) return { kind: 'postgres', url: config.databaseUrl }
  return { kind: 'sqlite', file: path.join(config.dataDir, 'baseplate.db') }
}

export async function openStorage(target: StorageTarget): Promise<Storage> {
  if (target.kind === 'sqlite') return openSqlite(target.file)
  return openPostgres(target)
}

function openSqlite(file: string): Storage {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true })
  const database = new SqliteDatabase(file)
  database.pragma('journal_mode = WAL')
  database.pragma('synchronous = FULL')
  database.pragma('foreign_keys = ON')
  // Each request is a savepoint inside the group's transaction (group-commit.ts): SQLite copies
  // every page it changes into a sub-journal, kept for `rollback to`. Past 64 KiB that journal
  // spilled to a temporary file, and a pay call's ~20 pages crossed it, so every request wrote
  // and truncated a file (ADR 0015). It is never needed after a crash, so memory is as safe.
  database.pragma('temp_store = MEMORY')
  // Another process (the CLI next to a running server) may hold the write lock briefly.
  database.pragma('busy_timeout = 5000')
  assert(database.pragma('synchronous', { simple: true }) === 2, 'SQLite must run with synchronous=FULL')
  // Checkpoints copy pages on a worker thread (checkpointer.ts), off the event loop.
  const checkpointer = file === ':memory:' ? null : startCheckpointer(file, { intervalMs: checkpointIntervalMs })
  // Concurrent requests share commits (one fsync per group), so FULL stays fast: group-commit.ts.
  const dialect = new GroupCommitSqliteDialect(database)
  const db = new Kysely<CoreTables>({ dialect })
  return {
    dialect: 'sqlite',
    db,
    deferDurability: (owed, work) =>
      db.connection().execute((held) => {
        dialect.deferCurrentHolder(owed)
        return work(held)
      }),
    close: async () => {
      await checkpointer?.close()
      await db.destroy()
    },
  }
}

async function openPostgres(target: Extract<StorageTarget, { kind: 'postgres' }>): Promise<Storage> {
  const options: pg.PoolConfig = {
    connectionString: target.url,
    max: target.poolSizeMax ?? 10,
    connectionTimeoutMillis: 5000,
  }
  if (target.schema !== undefined) {
    assert(/^[a-z_][a-z0-9_]*$/.test(target.schema), 'schema name must be a plain identifier')
    options.options = `-c search_path=${target.schema}`
  }
  const pgPool = new pg.Pool(options)
  // A connection that fails while idle in the pool is dropped by the pool; without a listener
  // the pool's 'error' event would end the process.
  pgPool.on('error', () => undefined)
  // Prepared queries run as named statements, parsed and planned once per connection (ADR 0016).
  const pool = namingPreparedQueries(pgPool)
  const db = new Kysely<CoreTables>({ dialect: new PostgresDialect({ pool }) })
  const setting = await sql<{ synchronous_commit: string }>`show synchronous_commit`.execute(db)
  assert(setting.rows[0]?.synchronous_commit !== 'off', 'PostgreSQL must run with synchronous_commit on')
  return {
    dialect: 'postgres',
    db,
    // Nothing owed; one pooled connection for the whole step rather than one per statement.
    deferDurability: (_owed, work) => db.connection().execute(work),
    close: () => db.destroy(),
  }
}

/** True when a database error is a unique-constraint violation, on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const code = (error as { code?: unknown }).code
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
}
