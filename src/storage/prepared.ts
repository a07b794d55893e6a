/**
 * Queries built and compiled once, then run many times with new values. Kysely builds an
 * immutable tree and compiles it to SQL on every call; on the pay path that was about a fifth
 * of a call's CPU (ADR 0014). A prepared query keeps Kysely's typed builder for writing the
 * query and skips the rebuilding: the builder runs once per database, with a placeholder for
 * each named value, and later calls only swap the values into the compiled parameter list.
 *
 * The invariant that makes this safe is checked when the query is compiled, not trusted:
 * every read of a named value gets its own placeholder, and each placeholder must come out as
 * exactly one whole bound parameter — so no read shaped the SQL text, went through
 * `JSON.stringify` or arithmetic, or chose a branch — and no trace of one may appear anywhere
 * else, in any letter case. A builder that breaks it fails at its first
 * use with a programming error, on every database alike. Lists (`in (…)`) and optional
 * columns therefore do not belong here: their SQL changes with the values.
 *
 * On PostgreSQL a prepared query is also a server-side prepared statement, parsed and planned
 * once per connection (`named-statements.ts`); on SQLite the driver's statement cache does that.
 *
 * @example
 * const appById = prepared((db: Kysely<CoreTables>, p: { id: string }) =>
 *   db.selectFrom('apps').select(['id', 'environment']).where('id', '=', p.id),
 * )
 * const app = await appById.first(db, { id: appId })
 */
import { PostgresAdapter, type CompiledQuery, type DatabaseConnection, type Kysely, type KyselyPlugin } from 'kysely'
import { assert } from '../assert.js'
import { nameStatement } from './named-statements.js'

interface Compiled {
  readonly compiled: CompiledQuery
  /** For each bound parameter: the name of the value it takes, or `constant` to keep it as built. */
  readonly sources: ReadonlyArray<{ readonly name: string } | { readonly constant: unknown }>
}

interface ExecutorInternals {
  readonly adapter: object
  readonly plugins: readonly KyselyPlugin[]
  provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T>
}

/** Kysely keeps its executor internal; its adapter is one per database and its plugins shape the SQL. */
function executorOf(db: Kysely<any>): ExecutorInternals {
  return (db as unknown as { getExecutor(): ExecutorInternals }).getExecutor()
}

/**
 * Whether `db` (or the transaction) runs on PostgreSQL. For the rare statement that only
 * PostgreSQL can write (data-modifying `WITH`), beside the portable one SQLite runs.
 */
export function onPostgres(db: Kysely<any>): boolean {
  return executorOf(db).adapter instanceof PostgresAdapter
}

/** Starts every placeholder; a placeholder is this, a read number, `:` and the value's name. */
const marker = '\u0000bp-prepared#'
/** Any trace of a placeholder, whatever was done to its case. */
const markerTrace = /\u0000bp-prepared#/i

export interface PreparedQuery<D, P, R> {
  /** Every row. */
  rows(db: Kysely<D>, values: P): Promise<R[]>
  /** The first row, or undefined. */
  first(db: Kysely<D>, values: P): Promise<R | undefined>
  /** How many rows an insert, update or delete touched. */
  affected(db: Kysely<D>, values: P): Promise<number>
}

export function prepared<D, P extends object, R>(
  build: (db: Kysely<D>, values: P) => { compile(): CompiledQuery<R> },
): PreparedQuery<D, P, R> {
  // One compiled form per database (its adapter), since dialects write different SQL.
  const byAdapter = new WeakMap<object, Compiled>()

  const compiledFor = (db: Kysely<D>): Compiled | null => {
    const executor = executorOf(db as Kysely<any>)
    // A plugin may rewrite the tree per query: build afresh rather than reason about it.
    if (executor.plugins.length > 0) return null
    let entry = byAdapter.get(executor.adapter)
    if (entry === undefined) {
      entry = compileWithPlaceholders(db, build)
      byAdapter.set(executor.adapter, entry)
    }
    return entry
  }

  const execute = async (db: Kysely<D>, values: P) => {
    const entry = compiledFor(db)
    if (entry === null) return db.executeQuery(build(db, definedValues(values)).compile())
    const parameters = entry.sources.map((source) => {
      if ('constant' in source) return source.constant
      const value = (values as Record<string, unknown>)[source.name]
      assert(value !== undefined, `prepared query: no value for ${source.name}`)
      return value
    })
    const query = { ...entry.compiled, parameters } as CompiledQuery<R>
    // What Kysely's executeQuery does, without the executor it allocates per query and the
    // result transforms of plugins (there are none here): the executor's own connection
    // provider still queues the statement behind earlier ones of the same transaction and
    // refuses a transaction that has ended.
    return executorOf(db).provideConnection((connection) => connection.executeQuery<R>(query))
  }

  return {
    rows: async (db, values) => (await execute(db, values)).rows as R[],
    first: async (db, values) => (await execute(db, values)).rows[0] as R | undefined,
    affected: async (db, values) => Number((await execute(db, values)).numAffectedRows ?? 0n),
  }
}

/** The values, refusing a read of one that is undefined (Kysely would drop its column). */
function definedValues<P extends object>(values: P): P {
  return new Proxy(values, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver)
      assert(typeof name !== 'string' || value !== undefined, `prepared query: no value for ${String(name)}`)
      return value
    },
  })
}

function compileWithPlaceholders<D, P extends object, R>(
  db: Kysely<D>,
  build: (db: Kysely<D>, values: P) => { compile(): CompiledQuery<R> },
): Compiled {
  // Every read gets its own placeholder, so each read is checked on its own: one read bound as
  // it is does not excuse another that was computed on, transformed or branched on.
  const issued = new Map<string, string>()
  const refuse = () => {
    throw new Error('prepared query: read values one by one by name, not as a whole object')
  }
  const placeholders = new Proxy({} as P, {
    get(_target, name) {
      assert(typeof name === 'string', 'prepared query: values are read by name')
      const placeholder = `${marker}${issued.size}:${name}`
      issued.set(placeholder, name)
      return placeholder
    },
    has: refuse,
    ownKeys: refuse,
    getOwnPropertyDescriptor: refuse,
  })
  const compiled = build(db, placeholders).compile()
  assert(!markerTrace.test(compiled.sql), 'prepared query: a value shaped the SQL text; bind it instead')
  const bound = new Set<string>()
  const sources = compiled.parameters.map((parameter) => {
    const name = typeof parameter === 'string' ? issued.get(parameter) : undefined
    if (name !== undefined) {
      assert(!bound.has(parameter as string), 'prepared query: one read bound twice')
      bound.add(parameter as string)
      return { name }
    }
    assert(
      typeof parameter !== 'string' || !markerTrace.test(parameter),
      'prepared query: a value was transformed before binding; bind it as it is',
    )
    return { constant: parameter }
  })
  for (const [placeholder, name] of issued) {
    assert(bound.has(placeholder), `prepared query: ${name} was read but is not a bound parameter`)
  }
  // Fixed from here on: on PostgreSQL each connection prepares it once (named-statements.ts).
  nameStatement(compiled.sql)
  return { compiled, sources }
}

/**
 * The full column list of a table's row type, checked by the compiler to miss none: a prepared
 * insert of whole rows binds each column by name, so a column added later must be added here.
 *
 * @example
 * const tradeColumns = everyColumn<TradesTable>()(['id', 'status', …])
 */
export function everyColumn<T>() {
  return <const K extends readonly (keyof T & string)[]>(
    columns: K & (Exclude<keyof T, K[number]> extends never ? unknown : { missing: Exclude<keyof T, K[number]> }),
  ): K => columns
}

/** The named columns of `row`, read one by one (so that placeholders bind while compiling). */
export function pickColumns<T, K extends keyof T & string>(row: T, columns: readonly K[]): Pick<T, K> {
  const picked = {} as Pick<T, K>
  for (const column of columns) picked[column] = row[column]
  return picked
}
