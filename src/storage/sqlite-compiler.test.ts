import Database from 'better-sqlite3'
import { Kysely, sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { GroupCommitSqliteDialect } from './group-commit.js'
import { prepared } from './prepared.js'

interface Tables {
  items: { id: number; name: string }
}

describe('SQLite compiler: integer counts as literals', () => {
  let db: Kysely<Tables>
  let database: Database.Database

  beforeEach(async () => {
    database = new Database(':memory:')
    database.exec('create table items (id integer primary key, name text not null)')
    const insert = database.prepare('insert into items (id, name) values (?, ?)')
    for (let id = 1; id <= 10; id += 1) insert.run(id, `item ${id}`)
    db = new Kysely<Tables>({ dialect: new GroupCommitSqliteDialect(database) })
  })
  afterEach(async () => {
    await db.destroy()
  })

  const page = (limit: unknown, offset: unknown) =>
    db
      .selectFrom('items')
      .select('id')
      .orderBy('id')
      .limit(limit as number)
      .offset(offset as number)

  it('writes integer limit and offset into the SQL text, and pages the same', async () => {
    const query = page(3, 4)
    const compiled = query.compile()
    expect(compiled.sql).toMatch(/ limit 3 offset 4$/)
    expect(compiled.parameters).toEqual([])
    expect((await query.execute()).map((row) => row.id)).toEqual([5, 6, 7])
    const big = page(2n, 8n)
    expect(big.compile().sql).toMatch(/ limit 2 offset 8$/)
    expect((await big.execute()).map((row) => row.id)).toEqual([9, 10])
  })

  it('binds every other count as before: text, fractions, expressions', () => {
    // Text never becomes SQL, whatever it holds.
    const text = page('1; drop table items', '0').compile()
    expect(text.sql).toMatch(/ limit \? offset \?$/)
    expect(text.parameters).toEqual(['1; drop table items', '0'])
    expect(page(1.5, 0).compile().parameters).toEqual([1.5])
    expect(page(Number.MAX_SAFE_INTEGER + 2, 0).compile().parameters).toEqual([Number.MAX_SAFE_INTEGER + 2])
    const expression = db
      .selectFrom('items')
      .select('id')
      .limit(sql<number>`${2} + ${1}`)
      .compile()
    expect(expression.sql).toMatch(/ limit \? \+ \?$/)
    expect(expression.parameters).toEqual([2, 1])
  })

  it("keeps a prepared query's named count a bound parameter", async () => {
    const firstItems = prepared((kysely: Kysely<Tables>, p: { count: number }) =>
      kysely.selectFrom('items').select('id').orderBy('id').limit(p.count),
    )
    expect((await firstItems.rows(db, { count: 2 })).map((row) => row.id)).toEqual([1, 2])
    expect((await firstItems.rows(db, { count: 4 })).map((row) => row.id)).toEqual([1, 2, 3, 4])
  })

  it('keeps the statements in use while many page sizes come and go', async () => {
    const prepare = vi.spyOn(database, 'prepare')
    const hot = () => db.selectFrom('items').select('name').where('id', '=', 1).execute()
    await hot()
    const hotSql = prepare.mock.calls.at(-1)![0]
    // More distinct page sizes than the statement cache holds (500), the hot query between each.
    for (let limit = 1; limit <= 600; limit += 1) {
      await page(limit, 0).execute()
      await hot()
    }
    expect(prepare.mock.calls.filter(([sql]) => sql === hotSql)).toHaveLength(1)
    expect(prepare.mock.calls.length).toBe(601)
  })
})
