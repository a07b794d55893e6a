/**
 * The ceiling of the storage layer: the payment transaction of the reference prototype,
 * in raw better-sqlite3 prepared statements, WAL with synchronous=FULL — look up the
 * idempotency key, insert the trade, post two entries, move two balances with a guard against
 * going negative, store the idempotent response. Measured with `perCommit` transactions
 * grouped into each COMMIT (what group commit achieves) and with one COMMIT each.
 *
 * Also the same transaction through Kysely on the platform's own SQLite dialect (group commit,
 * prepared-statement cache), many transactions in flight at once: Kysely's overhead over raw
 * statements (target ≤ 1.5×).
 *
 * @example
 * const grouped = rawSqlitePayments({ seconds: 2, perCommit: 100 })
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Database from 'better-sqlite3'
import { Kysely, sql, type Generated } from 'kysely'
import { assert } from '../../src/assert.js'
import { GroupCommitSqliteDialect } from '../../src/storage/group-commit.js'
import { prepared } from '../../src/storage/prepared.js'

const schema = `
  create table idempotency (key text primary key, response text not null);
  create table trades (id integer primary key, out_trade_no text not null unique, amount integer not null);
  create table accounts (id integer primary key, balance integer not null, floor integer not null);
  create table entries (id integer primary key, trade_id integer not null, account_id integer not null,
    amount integer not null);
  insert into accounts (id, balance, floor) values (1, 1000000000000, 0), (2, 0, -9223372036854775807);
`

function freshFile(): { file: string; dispose(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-bench-sqlite-'))
  return { file: path.join(dir, 'bench.db'), dispose: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

function open(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  // As the platform opens its database (ADR 0015): savepoint journals stay in memory.
  db.pragma('temp_store = MEMORY')
  return db
}

export interface RateResult {
  readonly transactions: number
  readonly seconds: number
  readonly perSecond: number
}

/**
 * `savepointEach` wraps every payment in `SAVEPOINT … RELEASE`, as the platform's group commit
 * does for each request so that one that fails undoes only its own work (a diagnostic: what
 * that atomicity costs, apart from Kysely).
 */
export function rawSqlitePayments(options: {
  seconds: number
  perCommit: number
  savepointEach?: boolean
}): RateResult {
  const target = freshFile()
  const db = open(target.file)
  try {
    db.exec(schema)
    const lookup = db.prepare('select response from idempotency where key = ?')
    const insertTrade = db.prepare('insert into trades (out_trade_no, amount) values (?, ?)')
    const insertEntry = db.prepare('insert into entries (trade_id, account_id, amount) values (?, ?, ?)')
    const debit = db.prepare('update accounts set balance = balance - ? where id = ? and balance - ? >= floor')
    const credit = db.prepare('update accounts set balance = balance + ? where id = ?')
    const save = db.prepare('insert into idempotency (key, response) values (?, ?)')
    const savepoint = db.prepare('savepoint payment')
    const release = db.prepare('release payment')
    const savepointEach = options.savepointEach === true
    let next = 0
    const payment = db.transaction((count: number) => {
      for (let i = 0; i < count; i += 1) {
        const key = `T${(next += 1)}`
        if (savepointEach) savepoint.run()
        if (lookup.get(key) === undefined) {
          const tradeId = Number(insertTrade.run(key, 1).lastInsertRowid)
          insertEntry.run(tradeId, 1, -1)
          insertEntry.run(tradeId, 2, 1)
          if (debit.run(1, 1, 1).changes !== 1) throw new Error('insufficient funds')
          credit.run(1, 2)
          save.run(key, `{"trade":${tradeId}}`)
        }
        if (savepointEach) release.run()
      }
    })
    const started = performance.now()
    const deadline = started + options.seconds * 1000
    let done = 0
    while (performance.now() < deadline) {
      payment(options.perCommit)
      done += options.perCommit
    }
    const seconds = (performance.now() - started) / 1000
    return { transactions: done, seconds, perSecond: done / seconds }
  } finally {
    db.close()
    target.dispose()
  }
}

interface BenchTables {
  idempotency: { key: string; response: string }
  trades: { id: Generated<number>; out_trade_no: string; amount: number }
  entries: { id: Generated<number>; trade_id: number; account_id: number; amount: number }
  accounts: { id: number; balance: number; floor: number }
}

/** The transaction's statements written once with the platform's prepared queries (its hot path's way). */
const preparedPayment = {
  seen: prepared((db: Kysely<BenchTables>, p: { key: string }) =>
    db.selectFrom('idempotency').select('response').where('key', '=', p.key),
  ),
  trade: prepared((db: Kysely<BenchTables>, p: { key: string }) =>
    db.insertInto('trades').values({ out_trade_no: p.key, amount: 1 }).returning('id'),
  ),
  entries: prepared((db: Kysely<BenchTables>, p: { tradeId: number }) =>
    db.insertInto('entries').values([
      { trade_id: p.tradeId, account_id: 1, amount: -1 },
      { trade_id: p.tradeId, account_id: 2, amount: 1 },
    ]),
  ),
  debit: prepared((db: Kysely<BenchTables>, _p: Record<string, never>) =>
    db
      .updateTable('accounts')
      .set({ balance: sql`balance - ${1}` })
      .where('id', '=', 1)
      .where(sql<boolean>`balance - ${1} >= floor`),
  ),
  credit: prepared((db: Kysely<BenchTables>, _p: Record<string, never>) =>
    db
      .updateTable('accounts')
      .set({ balance: sql`balance + ${1}` })
      .where('id', '=', 2),
  ),
  save: prepared((db: Kysely<BenchTables>, p: { key: string; response: string }) =>
    db.insertInto('idempotency').values({ key: p.key, response: p.response }),
  ),
}

/**
 * The same transaction in Kysely over the platform's group-commit dialect, `inFlight` at a
 * time: `built` builds and compiles every statement on every call (Kysely's usual way);
 * `prepared` writes them with `src/storage/prepared.ts`, as the platform's pay path does.
 */
export async function kyselySqlitePayments(options: {
  seconds: number
  inFlight: number
  queries: 'built' | 'prepared'
}): Promise<RateResult> {
  const target = freshFile()
  const database = open(target.file)
  database.exec(schema)
  const db = new Kysely<BenchTables>({ dialect: new GroupCommitSqliteDialect(database) })
  try {
    let next = 0
    const built = async (tx: Kysely<BenchTables>, key: string) => {
      const seen = await tx.selectFrom('idempotency').select('response').where('key', '=', key).executeTakeFirst()
      if (seen !== undefined) return
      const trade = await tx
        .insertInto('trades')
        .values({ out_trade_no: key, amount: 1 })
        .returning('id')
        .executeTakeFirstOrThrow()
      await tx
        .insertInto('entries')
        .values([
          { trade_id: trade.id, account_id: 1, amount: -1 },
          { trade_id: trade.id, account_id: 2, amount: 1 },
        ])
        .execute()
      const debited = await tx
        .updateTable('accounts')
        .set({ balance: sql`balance - ${1}` })
        .where('id', '=', 1)
        .where(sql<boolean>`balance - ${1} >= floor`)
        .executeTakeFirst()
      if (debited.numUpdatedRows !== 1n) throw new Error('insufficient funds')
      await tx
        .updateTable('accounts')
        .set({ balance: sql`balance + ${1}` })
        .where('id', '=', 2)
        .execute()
      await tx
        .insertInto('idempotency')
        .values({ key, response: `{"trade":${trade.id}}` })
        .execute()
    }
    const viaPrepared = async (tx: Kysely<BenchTables>, key: string) => {
      if ((await preparedPayment.seen.first(tx, { key })) !== undefined) return
      const trade = await preparedPayment.trade.first(tx, { key })
      assert(trade !== undefined, 'the trade was inserted')
      await preparedPayment.entries.affected(tx, { tradeId: trade.id })
      if ((await preparedPayment.debit.affected(tx, {})) !== 1) throw new Error('insufficient funds')
      await preparedPayment.credit.affected(tx, {})
      await preparedPayment.save.affected(tx, { key, response: `{"trade":${trade.id}}` })
    }
    const body = options.queries === 'built' ? built : viaPrepared
    const payment = async () => {
      const key = `T${(next += 1)}`
      await db.transaction().execute((tx) => body(tx, key))
    }
    const started = performance.now()
    const deadline = started + options.seconds * 1000
    let done = 0
    const lane = async () => {
      while (performance.now() < deadline) {
        await payment()
        done += 1
      }
    }
    await Promise.all(Array.from({ length: options.inFlight }, lane))
    const seconds = (performance.now() - started) / 1000
    return { transactions: done, seconds, perSecond: done / seconds }
  } finally {
    await db.destroy()
    target.dispose()
  }
}
