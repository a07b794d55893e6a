/**
 * Group commit for SQLite: the writes of concurrent requests share one real transaction and
 * one fsync, so that `synchronous=FULL` (an acknowledged commit survives a power loss) costs
 * about what `NORMAL` costs. Without it every request paid three fsyncs (its nonce, its
 * idempotency reservation, its work), and those fsyncs were most of its time.
 *
 * How it works. SQLite has one connection, which Kysely hands out under a mutex, one holder at
 * a time: a transaction, or a single statement outside one. The first holder that writes opens
 * a *group* (`BEGIN IMMEDIATE`); later holders run inside the same open transaction:
 * - a Kysely transaction becomes `SAVEPOINT bp_request` … `RELEASE` (or `ROLLBACK TO`), so a
 *   request that fails undoes its own work and nothing of the others';
 * - a statement outside a transaction is atomic by itself, as SQLite makes every statement.
 * When the mutex falls idle (no holder, nobody waiting), the group commits on the next turn of
 * the event loop (`setImmediate`), one `COMMIT` for all of them; a group older than
 * {@link GroupCommitOptions.groupAgeMsMax} commits between two holders even while others wait.
 *
 * Durability is never given away: a holder that wrote, or that read while the group held
 * uncommitted writes (it may have seen them), gets its result only once the group has
 * committed — its promise resolves after the fsync, so nothing built on it (an HTTP answer
 * above all) can leave earlier. If the commit fails, every such holder gets the error, and the
 * group's work is rolled back as a whole, as a crash would have done.
 *
 * @example
 * const db = new Kysely<Tables>({ dialect: new GroupCommitSqliteDialect(database) })
 * await db.transaction().execute((tx) => post(tx, payment)) // resolves once durable
 */
import type BetterSqlite3 from 'better-sqlite3'
import {
  CompiledQuery,
  SqliteDialect,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
} from 'kysely'
import { assert } from '../assert.js'
import { SqliteLiteralCountCompiler } from './sqlite-compiler.js'

export interface GroupCommitOptions {
  /** A group this old commits at the next change of holder, even with holders waiting. */
  readonly groupAgeMsMax?: number
  /** Prepared statements kept for reuse, by SQL text. */
  readonly statementCacheSize?: number
}

export interface GroupCommitStats {
  /** Groups committed (each one COMMIT, one fsync when it wrote). */
  readonly commits: number
  /** Holders (transactions and single statements) that needed a commit: waited for it, or owed it. */
  readonly durableHolders: number
}

/** What a request that owes a group's commit can see of it. */
export interface OwedGroup {
  /** Settles when the group's COMMIT has returned: resolved if it committed, rejected if not. */
  readonly done: Promise<void>
  /** Set the moment the group is known lost (before `done` rejects): its writes are gone. */
  readonly failure: { readonly error: unknown } | null
}

interface Group extends OwedGroup {
  readonly openedAt: number
  dirty: boolean
  failure: { readonly error: unknown } | null
  resolve(): void
  reject(error: unknown): void
}

const requestSavepoint = 'bp_request'

/**
 * Commits a request still owes its client. A holder that runs under
 * {@link GroupCommitSqliteDialect.deferCurrentHolder} does not wait for its group's commit when
 * it lets the connection go; its group is recorded here instead, and the request settles the
 * debt once, before it answers. A signed write then waits for one commit instead of three (its
 * nonce, its idempotency reservation, its work), and its early writes still never reach the
 * client before they are durable.
 *
 * @example
 * const owed = new PendingCommits()
 * await storage.deferDurability(owed, (db) => authenticate(db))
 * await owed.settle() // before any answer leaves
 */
export class PendingCommits {
  readonly #groups: OwedGroup[] = []

  add(group: OwedGroup): void {
    if (!this.#groups.includes(group)) this.#groups.push(group)
  }

  /**
   * Throws if a group this request owes is already lost. Call it first thing inside the
   * request's work transaction, once it holds the connection: every earlier group has then
   * committed or failed, and a group still open is the one the work joins, sharing its fate. So
   * the work never commits when what it stands on (its nonce, its reservation, what
   * authentication read) was rolled back.
   */
  throwIfLost(): void {
    for (const group of this.#groups) if (group.failure !== null) throw group.failure.error
  }

  /** Resolves once every recorded group has committed; rejects if one of them failed. */
  async settle(): Promise<void> {
    while (this.#groups.length > 0) await this.#groups.shift()!.done
  }
}

export class GroupCommitSqliteDialect extends SqliteDialect {
  readonly #database: BetterSqlite3.Database
  readonly #options: GroupCommitOptions
  #driver: GroupCommitDriver | null = null

  constructor(database: BetterSqlite3.Database, options: GroupCommitOptions = {}) {
    super({ database })
    this.#database = database
    this.#options = options
  }

  /** Integer LIMIT and OFFSET in the SQL text: a bound one makes SQLite prepare again each run. */
  override createQueryCompiler(): QueryCompiler {
    return new SqliteLiteralCountCompiler()
  }

  override createDriver(): Driver {
    this.#driver = new GroupCommitDriver(this.#database, this.#options)
    return this.#driver
  }

  stats(): GroupCommitStats {
    return this.#driver?.stats() ?? { commits: 0, durableHolders: 0 }
  }

  /**
   * Called by the current holder of the connection (inside `db.connection().execute(...)`):
   * when it lets the connection go, the commit it needs goes to `owed` instead of being awaited.
   */
  deferCurrentHolder(owed: PendingCommits): void {
    assert(this.#driver !== null, 'the dialect has no driver yet')
    this.#driver.deferCurrentHolder(owed)
  }
}

class GroupCommitDriver implements Driver {
  readonly #db: BetterSqlite3.Database
  readonly #groupAgeMsMax: number
  readonly #statements: StatementCache
  /** The current holder's lease on the connection; each acquisition gets a new one. */
  #lease: GroupConnection | null = null
  #locked = false
  readonly #waiting: Array<() => void> = []
  #group: Group | null = null
  #commitScheduled = false
  /** The current holder wrote, or read while the group was dirty: it must wait for the commit. */
  #holderNeedsCommit = false
  #holderGroup: Group | null = null
  /** Where the current holder's commit goes instead of being awaited; null: it is awaited. */
  #holderDeferredTo: PendingCommits | null = null
  #inRequestTransaction = false
  /** The group died under the current request transaction: its further statements must fail. */
  #requestTransactionBroken: unknown = null
  /** Transaction control, prepared once: `exec` would parse it again on every request. */
  readonly #control: Record<'begin' | 'commit' | 'savepoint' | 'release' | 'rollbackTo', BetterSqlite3.Statement>
  #commits = 0
  #durableHolders = 0
  #destroyed = false

  constructor(db: BetterSqlite3.Database, options: GroupCommitOptions) {
    this.#db = db
    this.#groupAgeMsMax = options.groupAgeMsMax ?? 20
    this.#statements = new StatementCache(db, options.statementCacheSize ?? 500)
    this.#control = {
      begin: db.prepare('begin immediate'),
      commit: db.prepare('commit'),
      savepoint: db.prepare(`savepoint ${requestSavepoint}`),
      release: db.prepare(`release ${requestSavepoint}`),
      rollbackTo: db.prepare(`rollback to ${requestSavepoint}`),
    }
  }

  async init(): Promise<void> {
    assert(!this.#db.inTransaction, 'the database must not be inside a transaction when Kysely takes it')
  }

  stats(): GroupCommitStats {
    return { commits: this.#commits, durableHolders: this.#durableHolders }
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.#locked) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    else this.#locked = true
    this.#holderNeedsCommit = false
    this.#holderGroup = null
    this.#holderDeferredTo = null
    this.#lease = new GroupConnection(this)
    return this.#lease
  }

  deferCurrentHolder(owed: PendingCommits): void {
    assert(this.#locked, 'only the holder of the connection can defer its commit')
    this.#holderDeferredTo = owed
  }

  async beginTransaction(): Promise<void> {
    this.#openGroup()
    this.#control.savepoint.run()
    this.#inRequestTransaction = true
  }

  async commitTransaction(): Promise<void> {
    if (this.#requestTransactionBroken !== null) throw this.#requestTransactionBroken
    this.#control.release.run()
    this.#inRequestTransaction = false
    this.#noteGroupState()
  }

  async rollbackTransaction(): Promise<void> {
    this.#inRequestTransaction = false
    this.#requestTransactionBroken = null
    // An error that made SQLite abandon the whole transaction took the savepoint with it;
    // #checkGroupAlive has failed the group already.
    if (!this.#db.inTransaction) return
    this.#control.rollbackTo.run()
    this.#control.release.run()
    // Earlier members of the group may have written: whatever this holder read may be theirs.
    this.#noteGroupState()
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await connection.executeQuery(compileRaw(compile, `savepoint ${quoteName(name)}`))
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await connection.executeQuery(compileRaw(compile, `rollback to ${quoteName(name)}`))
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await connection.executeQuery(compileRaw(compile, `release ${quoteName(name)}`))
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    assert(connection === this.#lease, 'only the holder of the connection can let it go')
    assert(!this.#inRequestTransaction, 'a transaction released the connection without ending')
    this.#lease.end()
    this.#lease = null
    const group = this.#holderNeedsCommit ? this.#holderGroup : null
    const deferredTo = this.#holderDeferredTo
    this.#holderDeferredTo = null
    if (group !== null) this.#durableHolders += 1
    // Between two holders, a group that has grown old commits now rather than wait for a lull.
    if (
      this.#group !== null &&
      this.#waiting.length > 0 &&
      performance.now() - this.#group.openedAt >= this.#groupAgeMsMax
    ) {
      this.#commitGroup()
    }
    const next = this.#waiting.shift()
    if (next !== undefined) next()
    else {
      this.#locked = false
      this.#scheduleCommit()
    }
    if (group === null) return
    if (deferredTo !== null) deferredTo.add(group)
    else await group.done
  }

  async destroy(): Promise<void> {
    this.#destroyed = true
    if (this.#group !== null && !this.#locked) this.#commitGroup()
    this.#db.close()
  }

  /** Runs one statement for the current holder; called by the connection. */
  run(compiledQuery: CompiledQuery): QueryResult<unknown> {
    if (this.#requestTransactionBroken !== null) throw this.#requestTransactionBroken
    const { sql, parameters } = compiledQuery
    const statement = this.#statements.get(sql)
    if (!statement.readonly) this.#openGroup()
    try {
      if (statement.reader) {
        const rows = statement.all(parameters as unknown[]) as unknown[]
        if (!statement.readonly) this.#group!.dirty = true
        return { rows }
      }
      const { changes, lastInsertRowid } = statement.run(parameters as unknown[])
      if (!statement.readonly) this.#group!.dirty = true
      return {
        numAffectedRows: changes !== undefined && changes !== null ? BigInt(changes) : undefined,
        insertId: lastInsertRowid !== undefined && lastInsertRowid !== null ? BigInt(lastInsertRowid) : undefined,
        rows: [],
      }
    } catch (error) {
      this.#checkGroupAlive(error)
      throw error
    } finally {
      this.#noteGroupState()
    }
  }

  iterate(compiledQuery: CompiledQuery): IterableIterator<unknown> {
    // Iteration holds the statement busy, so it gets a statement of its own.
    const statement = this.#db.prepare(compiledQuery.sql)
    this.#noteGroupState()
    return statement.iterate(compiledQuery.parameters as unknown[]) as IterableIterator<unknown>
  }

  #openGroup(): void {
    if (this.#group !== null) return
    assert(!this.#destroyed, 'the database is closed')
    this.#control.begin.run()
    let resolve!: () => void
    let reject!: (error: unknown) => void
    const done = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    // Nobody may be waiting when a group fails; that must not be an unhandled rejection.
    done.catch(() => undefined)
    this.#group = { openedAt: performance.now(), dirty: false, failure: null, done, resolve, reject }
  }

  /** Marks the holder as needing the commit when the group holds uncommitted writes. */
  #noteGroupState(): void {
    const group = this.#group
    if (group !== null && group.dirty) {
      this.#holderNeedsCommit = true
      this.#holderGroup = group
    }
  }

  #checkGroupAlive(error: unknown): void {
    const group = this.#group
    if (group === null || this.#db.inTransaction) return
    // SQLite rolled the whole transaction back (a full disk, an I/O error): every member's
    // work is gone, so every member must fail, as after a crash.
    this.#group = null
    if (this.#inRequestTransaction) this.#requestTransactionBroken = error
    group.failure = { error }
    group.reject(error)
  }

  #scheduleCommit(): void {
    if (this.#commitScheduled || this.#group === null) return
    this.#commitScheduled = true
    setImmediate(() => {
      this.#commitScheduled = false
      // Someone took the connection meanwhile: its release schedules the commit again.
      if (!this.#locked && this.#group !== null) this.#commitGroup()
    })
  }

  #commitGroup(): void {
    const group = this.#group
    if (group === null) return
    this.#group = null
    try {
      this.#control.commit.run()
      this.#commits += 1
      group.resolve()
    } catch (error) {
      if (this.#db.inTransaction) {
        try {
          this.#db.exec('rollback')
        } catch {
          // The rollback failing too leaves nothing more to undo here.
        }
      }
      group.failure = { error }
      group.reject(error)
    }
  }
}

/**
 * One holder's lease on the connection, from acquisition to release. A statement through a
 * lease that has ended (a `db.connection()` instance kept past its callback; Kysely guards a
 * transaction's own) fails instead of running inside whoever holds the connection now.
 */
class GroupConnection implements DatabaseConnection {
  readonly #driver: GroupCommitDriver
  #held = true

  constructor(driver: GroupCommitDriver) {
    this.#driver = driver
  }

  end(): void {
    this.#held = false
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    assert(this.#held, 'a statement ran on a connection its holder had already let go')
    return this.#driver.run(compiledQuery) as QueryResult<R>
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    assert(this.#held, 'a statement ran on a connection its holder had already let go')
    for (const row of this.#driver.iterate(compiledQuery)) yield { rows: [row as R] }
  }
}

/** Prepared statements by SQL text: Kysely prepares afresh on every query otherwise. */
class StatementCache {
  readonly #db: BetterSqlite3.Database
  readonly #size: number
  readonly #statements = new Map<string, BetterSqlite3.Statement>()

  constructor(db: BetterSqlite3.Database, size: number) {
    this.#db = db
    this.#size = size
  }

  get(sql: string): BetterSqlite3.Statement {
    let statement = this.#statements.get(sql)
    if (statement !== undefined) {
      // Least recently used goes first: page sizes written into the SQL (sqlite-compiler.ts)
      // make many rare texts, which must not push out the statements every request runs.
      this.#statements.delete(sql)
      this.#statements.set(sql, statement)
      return statement
    }
    statement = this.#db.prepare(sql)
    if (this.#statements.size >= this.#size) this.#statements.delete(this.#statements.keys().next().value!)
    this.#statements.set(sql, statement)
    return statement
  }
}

function quoteName(name: string): string {
  assert(/^[A-Za-z_][A-Za-z0-9_]*$/.test(name), 'a savepoint name is a plain identifier')
  return `"${name}"`
}

function compileRaw(_compile: QueryCompiler['compileQuery'], sql: string): CompiledQuery {
  return CompiledQuery.raw(sql)
}
