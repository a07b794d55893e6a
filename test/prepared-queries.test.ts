import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openStorage, type Storage } from '../src/storage/database.js'
import { prepared } from '../src/storage/prepared.js'
import { forEachDialect, freshTarget, type TestTarget } from './harness.js'

interface Tables {
  accounts: { id: string; owner: string; balance: number; note: string | null }
}

const byOwner = prepared((db: Kysely<Tables>, p: { owner: string; balanceMin: number }) =>
  db
    .selectFrom('accounts')
    .select(['id', 'balance'])
    .where('owner', '=', p.owner)
    .where('balance', '>=', p.balanceMin)
    .orderBy('id')
    .limit(10),
)
const insert = prepared((db: Kysely<Tables>, p: Tables['accounts']) =>
  db.insertInto('accounts').values({ id: p.id, owner: p.owner, balance: p.balance, note: p.note }),
)
// The same value bound twice, and a constant beside it.
const move = prepared((db: Kysely<Tables>, p: { id: string; amount: number }) =>
  db
    .updateTable('accounts')
    .set({ balance: sql`balance + ${p.amount}`, note: 'moved' })
    .where('id', '=', p.id)
    .where(sql<boolean>`balance + ${p.amount} >= 0`),
)

forEachDialect('prepared queries', (dialect) => {
  let target: TestTarget
  let storage: Storage
  let db: Kysely<Tables>

  beforeAll(async () => {
    target = await freshTarget(dialect)
    storage = await openStorage(target.target)
    db = storage.db as unknown as Kysely<Tables>
    await db.schema
      .createTable('accounts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('balance', 'bigint', (c) => c.notNull())
      .addColumn('note', 'text')
      .execute()
  })
  afterAll(async () => {
    await storage.close()
    await target.dispose()
  })

  it('runs with new values each time, inside and outside transactions', async () => {
    await insert.affected(db, { id: 'a1', owner: 'ann', balance: 5, note: null })
    await db.transaction().execute(async (tx) => {
      expect(await insert.affected(tx, { id: 'a2', owner: 'ann', balance: 50, note: 'x' })).toBe(1)
      expect(await insert.affected(tx, { id: 'b1', owner: 'bob', balance: 7, note: null })).toBe(1)
    })
    expect(await byOwner.rows(db, { owner: 'ann', balanceMin: 0 })).toEqual([
      { id: 'a1', balance: 5 },
      { id: 'a2', balance: 50 },
    ])
    expect(await byOwner.rows(db, { owner: 'ann', balanceMin: 6 })).toEqual([{ id: 'a2', balance: 50 }])
    expect(await byOwner.first(db, { owner: 'bob', balanceMin: 0 })).toEqual({ id: 'b1', balance: 7 })
    expect(await byOwner.first(db, { owner: 'nobody', balanceMin: 0 })).toBeUndefined()
  })

  it('binds a value used twice in both places, and keeps constants', async () => {
    expect(await move.affected(db, { id: 'a1', amount: -6 })).toBe(0)
    expect(await move.affected(db, { id: 'a1', amount: -5 })).toBe(1)
    const row = await db.selectFrom('accounts').selectAll().where('id', '=', 'a1').executeTakeFirstOrThrow()
    expect(row).toEqual({ id: 'a1', owner: 'ann', balance: 0, note: 'moved' })
  })

  if (dialect === 'postgres') {
    it('runs as a statement each connection prepares once; a failed run leaves it usable', async () => {
      await db.connection().execute(async (conn) => {
        // What this connection has prepared: each statement's text and how often it has run.
        const preparedHere = async () =>
          (
            await sql<{ name: string; statement: string; runs: number }>`
              select name, statement, generic_plans + custom_plans as runs from pg_prepared_statements`.execute(conn)
          ).rows
        const runsOf = async (fragment: string) => {
          const found = (await preparedHere()).filter((row) => row.statement.includes(fragment))
          expect(found.length, fragment).toBeLessThanOrEqual(1)
          return found.length === 0 ? 0 : Number(found[0]!.runs)
        }
        const [ownerRuns, insertRuns] = [await runsOf('"balance" >='), await runsOf('insert into "accounts"')]
        await byOwner.rows(conn, { owner: 'ann', balanceMin: 0 })
        expect(await byOwner.rows(conn, { owner: 'bob', balanceMin: 0 })).toEqual([{ id: 'b1', balance: 7 }])
        expect(await runsOf('"balance" >=')).toBe(ownerRuns + 2)
        // A unique violation fails the run, not the statement: the next run uses it again.
        await expect(insert.affected(conn, { id: 'b1', owner: 'bob', balance: 1, note: null })).rejects.toThrow(
          /duplicate key/,
        )
        expect(await insert.affected(conn, { id: 'n1', owner: 'nia', balance: 1, note: null })).toBe(1)
        expect(await runsOf('insert into "accounts"')).toBe(insertRuns + 2)
        // Nor does a run refused inside a failed transaction: after the rollback it runs again.
        await sql`begin`.execute(conn)
        await expect(sql`select 1 / 0`.execute(conn)).rejects.toThrow(/division by zero/)
        await expect(byOwner.rows(conn, { owner: 'ann', balanceMin: 0 })).rejects.toThrow(/aborted/)
        await sql`rollback`.execute(conn)
        expect(await byOwner.rows(conn, { owner: 'bob', balanceMin: 0 })).toEqual([{ id: 'b1', balance: 7 }])
        // A query built per call runs unnamed, as Kysely sends it.
        await conn.selectFrom('accounts').select('note').where('owner', '=', 'nia').execute()
        expect((await preparedHere()).filter((row) => row.statement.includes('select "note"'))).toEqual([])
        for (const row of await preparedHere()) expect(row.name).toMatch(/^bp_[0-9a-f]{16}$/)
      })
    })
  }

  if (dialect === 'postgres') {
    it('drops a connection whose statement no longer fits its table, so the next run prepares it afresh', async () => {
      await sql`create table plans (id text primary key, v integer)`.execute(db)
      await sql`insert into plans values ('p', 1)`.execute(db)
      const planned = db as unknown as Kysely<{ plans: { id: string; v: number | string } }>
      const byId = prepared((d: typeof planned, p: { id: string }) =>
        d.selectFrom('plans').select(['id', 'v']).where('id', '=', p.id),
      )
      await planned.connection().execute(async (conn) => {
        expect(await byId.first(conn, { id: 'p' })).toEqual({ id: 'p', v: 1 })
        // A migration elsewhere changes what the statement returns.
        await sql`alter table plans alter column v type text`.execute(db)
        await expect(byId.first(conn, { id: 'p' })).rejects.toThrow(/cached plan must not change result type/)
      })
      // pg would keep the broken statement on that connection for good; it was dropped instead.
      for (let run = 0; run < 3; run += 1) expect(await byId.first(planned, { id: 'p' })).toEqual({ id: 'p', v: '1' })
    })
  }

  it('refuses a missing value instead of binding undefined', async () => {
    await expect(byOwner.rows(db, { owner: 'ann' } as never)).rejects.toThrow(/no value for balanceMin/)
  })

  it('refuses builders whose SQL would depend on the values', async () => {
    const shaped = prepared((d: Kysely<Tables>, p: { column: string }) =>
      d.selectFrom('accounts').select(sql.ref(p.column).as('c')),
    )
    const transformed = prepared((d: Kysely<Tables>, p: { note: string }) =>
      d.selectFrom('accounts').select('id').where('note', 'like', `${p.note}%`),
    )
    const cased = prepared((d: Kysely<Tables>, p: { note: string }) =>
      d.selectFrom('accounts').select('id').where('note', '=', p.note.toUpperCase()),
    )
    const branched = prepared((d: Kysely<Tables>, p: { owner: string }) =>
      p.owner === ''
        ? d.selectFrom('accounts').select('id')
        : d.selectFrom('accounts').select('id').where('id', '=', 'x'),
    )
    await expect(shaped.rows(db, { column: 'id' })).rejects.toThrow(/shaped the SQL text/)
    await expect(transformed.rows(db, { note: 'x' })).rejects.toThrow(/transformed before binding/)
    await expect(cased.rows(db, { note: 'x' })).rejects.toThrow(/transformed before binding/)
    await expect(branched.rows(db, { owner: 'ann' })).rejects.toThrow(/owner was read but is not a bound parameter/)
  })

  it('checks every read on its own: one read bound as it is excuses no other', async () => {
    // Each of these also binds the value plainly once, which a check by name alone would accept.
    const computed = prepared((d: Kysely<Tables>, p: { id: string; balance: number }) =>
      d.insertInto('accounts').values({ id: p.id, owner: 'x', balance: p.balance, note: String(1000 - p.balance) }),
    )
    const transformedToo = prepared((d: Kysely<Tables>, p: { note: string }) =>
      d.selectFrom('accounts').select('id').where('note', '=', p.note).where('owner', '=', p.note.toUpperCase()),
    )
    const branchedOnNull = prepared((d: Kysely<Tables>, p: { note: string | null }) =>
      d
        .selectFrom('accounts')
        .select('id')
        .where('note', p.note === null ? 'is' : '=', p.note),
    )
    const wholeObject = prepared((d: Kysely<Tables>, p: Tables['accounts']) =>
      d.insertInto('accounts').values({ ...p }),
    )
    await expect(computed.affected(db, { id: 'c1', balance: 1 })).rejects.toThrow(/balance was read but is not a bound/)
    await expect(transformedToo.rows(db, { note: 'x' })).rejects.toThrow(/transformed before binding/)
    await expect(branchedOnNull.rows(db, { note: null })).rejects.toThrow(/note was read but is not a bound/)
    await expect(wholeObject.affected(db, { id: 'w', owner: 'w', balance: 1, note: null })).rejects.toThrow(
      /one by one by name/,
    )
    // Nothing was written by the refused insert.
    expect(await db.selectFrom('accounts').select('id').where('id', 'in', ['c1', 'w']).execute()).toEqual([])
  })
})
