/**
 * The platform's prepared queries (`prepared.ts`) as named, server-side prepared statements on
 * PostgreSQL. Kysely sends every query unnamed, so PostgreSQL parses, analyses and plans it
 * again on every run; on the pay path that was about a third of the database's CPU per call
 * (ADR 0016). A prepared query's SQL text is fixed once it is compiled, so each connection
 * prepares it once, under a name derived from the text, and later runs only bind and execute.
 *
 * Only texts that `prepared()` compiled are named: they are few (one per query the code
 * defines) and fixed, so a connection holds a bounded set of statements. Everything else
 * (queries built per call, with lists whose length varies) runs unnamed as before.
 *
 * @example
 * const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: namingPreparedQueries(new pg.Pool()) }) })
 */
import crypto from 'node:crypto'
import type { PostgresPool, PostgresPoolClient } from 'kysely'
import type pg from 'pg'
import { assert } from '../assert.js'

/** Statement names by SQL text; a text enters once, when `prepared()` compiles it. */
const statementNames = new Map<string, string>()

/** Marks a compiled prepared-query text to run as a named statement on PostgreSQL. */
export function nameStatement(sql: string): void {
  if (statementNames.has(sql)) return
  // 64 bits of the text's hash: PostgreSQL names are at most 63 bytes, and pg refuses one name
  // for two texts rather than run the wrong one.
  const name = `bp_${crypto.createHash('sha256').update(sql).digest('hex').slice(0, 16)}`
  statementNames.set(sql, name)
}

/** A pool whose clients run named texts as named statements, and everything else as before. */
export function namingPreparedQueries(pool: pg.Pool): PostgresPool {
  // One wrapper per pooled client: Kysely keeps its connection object per client object.
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>()
  return {
    async connect() {
      const client = await pool.connect()
      let wrapper = wrappers.get(client)
      if (wrapper === undefined) {
        wrapper = namingClient(client)
        wrappers.set(client, wrapper)
      }
      return wrapper
    },
    end: () => pool.end(),
  }
}

function namingClient(client: pg.PoolClient): PostgresPoolClient {
  // Set when a named statement may be broken on this connection for good: pg remembers a name
  // as prepared and never parses it again, so the connection is destroyed on release.
  let poisoned = false
  const query = (text: unknown, parameters?: ReadonlyArray<unknown>): unknown => {
    if (typeof text !== 'string') return client.query(text as pg.Submittable)
    assert(parameters !== undefined, 'Kysely passes parameters with every text')
    const name = statementNames.get(text)
    const values = [...parameters]
    if (name === undefined) return client.query(text, values)
    return client.query({ name, text, values }).catch((error: unknown) => {
      if (breaksNamedStatement(error)) poisoned = true
      throw error
    })
  }
  return {
    query: query as PostgresPoolClient['query'],
    release: (destroy?: boolean) => client.release(destroy === true || poisoned),
  }
}

/**
 * Errors after which a named statement on the connection may stay broken: its cached plan no
 * longer fits the table (a migration changed what it returns: 0A000), the server no longer
 * has it (26000), or pg failed before the server answered (no SQLSTATE; pg may then have
 * closed the statement while still taking it as prepared). Any other error (a unique
 * violation, a refused guard) fails one run and leaves the statement usable.
 */
function breaksNamedStatement(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code !== 'string' || code === '0A000' || code === '26000'
}
