import Database from 'better-sqlite3'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Kysely, sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { GroupCommitSqliteDialect, PendingCommits } from './group-commit.js'
import { prepared } from './prepared.js'

interface Tables {
  t: { id: string }
}

describe('group commit', () => {
  let dir: string
  let dialect: GroupCommitSqliteDialect
  let db: Kysely<Tables>
  /** A second connection: it sees only what has committed. */
  let observer: Database.Database

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-group-'))
    const file = path.join(dir, 'g.db')
    const raw = new Database(file)
    raw.pragma('journal_mode = WAL')
    raw.pragma('synchronous = FULL')
    raw.exec('create table t (id text primary key)')
    dialect = new GroupCommitSqliteDialect(raw)
    db = new Kysely<Tables>({ dialect })
    observer = new Database(file, { readonly: true })
  })
  afterEach(async () => {
    observer.close()
    await db.destroy()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const committed = () =>
    (observer.prepare('select id from t order by id').all() as Array<{ id: string }>).map((r) => r.id)
  const insert = (executor: Kysely<Tables>, id: string) => executor.insertInto('t').values({ id }).execute()

  /**
   * A deferred holder whose group will fail at COMMIT: a deferred foreign key is checked then,
   * the one way to make a COMMIT itself fail here (as a full disk would).
   */
  async function oweDoomedGroup(also?: (held: Kysely<Tables>) => Promise<unknown>): Promise<PendingCommits> {
    const parent = sql`references t (id) deferrable initially deferred`
    await sql`create table child (id text primary key, parent text ${parent})`.execute(db)
    await sql`pragma foreign_keys = on`.execute(db)
    const owed = new PendingCommits()
    await db.connection().execute(async (held) => {
      dialect.deferCurrentHolder(owed)
      await also?.(held)
      await sql`insert into child (id, parent) values ('orphan', 'nobody')`.execute(held)
    })
    return owed
  }

  it('answers a write only once it has committed, and commits concurrent writes together', async () => {
    await Promise.all([
      db
        .transaction()
        .execute((tx) => insert(tx, 'a'))
        .then(() => expect(committed()).toContain('a')),
      insert(db, 'b').then(() => expect(committed()).toContain('b')),
      insert(db, 'c').then(() => expect(committed()).toContain('c')),
    ])
    expect(dialect.stats().commits).toBe(1)
  })

  it('a failing transaction undoes its own writes and nobody else’s', async () => {
    const failing = db.transaction().execute(async (tx) => {
      await insert(tx, 'x')
      throw new Error('no')
    })
    await Promise.all([insert(db, 'a'), expect(failing).rejects.toThrow('no'), insert(db, 'b')])
    expect(committed()).toEqual(['a', 'b'])
  })

  it('a deferred holder goes on before the commit; settling waits for it', async () => {
    const owed = new PendingCommits()
    await db.connection().execute(async (held) => {
      dialect.deferCurrentHolder(owed)
      await insert(held, 'early')
      // The held connection also runs transactions, in the same deferred holder.
      await held.transaction().execute((tx) => insert(tx, 'early-tx'))
    })
    expect(committed(), 'not durable yet when the holder returns').toEqual([])
    await owed.settle()
    expect(committed()).toEqual(['early', 'early-tx'])
  })

  it('a reader of uncommitted writes owes their commit as well', async () => {
    const owed = new PendingCommits()
    const writer = insert(db, 'w')
    const seen = await db.connection().execute(async (held) => {
      dialect.deferCurrentHolder(owed)
      return held.selectFrom('t').select('id').execute()
    })
    expect(seen.map((row) => row.id)).toEqual(['w'])
    expect(committed()).toEqual([])
    await owed.settle()
    expect(committed()).toEqual(['w'])
    await writer
  })

  it('a commit that fails fails everyone who owed it, and keeps none of the group', async () => {
    const owed = await oweDoomedGroup((held) => insert(held, 'lost'))
    const bystander = insert(db, 'bystander')
    await expect(owed.settle()).rejects.toThrow(/FOREIGN KEY/)
    await expect(bystander).rejects.toThrow(/FOREIGN KEY/)
    expect(committed()).toEqual([])
    // The next group starts afresh.
    await insert(db, 'after')
    expect(committed()).toEqual(['after'])
  })

  it('work checked against a lost owed group does not commit', async () => {
    const owed = await oweDoomedGroup()
    expect(() => owed.throwIfLost(), 'still open: nothing known yet').not.toThrow()
    // The group commits (and fails) on the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve))
    expect(() => owed.throwIfLost()).toThrow(/FOREIGN KEY/)
    const work = db.transaction().execute(async (tx) => {
      owed.throwIfLost()
      await insert(tx, 'work')
    })
    await expect(work).rejects.toThrow(/FOREIGN KEY/)
    await expect(owed.settle()).rejects.toThrow(/FOREIGN KEY/)
    expect(committed()).toEqual([])
  })

  it('a transaction or connection kept past its callback cannot run inside the next holder', async () => {
    const insertPrepared = prepared((executor: Kysely<Tables>, p: { id: string }) =>
      executor.insertInto('t').values({ id: p.id }),
    )
    let kept: Kysely<Tables> | null = null
    let keptConnection: Kysely<Tables> | null = null
    let keptNested: Kysely<Tables> | null = null
    await db.connection().execute(async (held) => {
      keptConnection = held
      await insert(held, 'held')
      await held.transaction().execute(async (tx) => {
        keptNested = tx
        await insertPrepared.affected(tx, { id: 'nested' })
      })
    })
    await db.transaction().execute(async (tx) => {
      kept = tx
      await insertPrepared.affected(tx, { id: 'inside' })
      expect(await tx.selectFrom('t').select('id').orderBy('id').execute()).toEqual([
        { id: 'held' },
        { id: 'inside' },
        { id: 'nested' },
      ])
    })
    expect(committed()).toEqual(['held', 'inside', 'nested'])
    let release!: () => void
    const next = db.transaction().execute(async (tx) => {
      await insert(tx, 'next')
      await new Promise<void>((resolve) => (release = resolve))
      throw new Error('the next holder rolls back')
    })
    await new Promise((resolve) => setImmediate(resolve))
    // Kysely refuses an ended transaction; the lease refuses an ended connection.
    await expect(insertPrepared.affected(kept!, { id: 'stale' })).rejects.toThrow(/already committed/)
    await expect(insertPrepared.affected(keptNested!, { id: 'stale' })).rejects.toThrow(/already committed/)
    await expect(insert(kept!, 'stale')).rejects.toThrow(/already committed/)
    await expect(insert(keptConnection!, 'stale')).rejects.toThrow(/already let go/)
    await expect(insertPrepared.affected(keptConnection!, { id: 'stale' })).rejects.toThrow(/already let go/)
    release()
    await expect(next).rejects.toThrow(/rolls back/)
    await insert(db, 'after')
    expect(committed()).toEqual(['after', 'held', 'inside', 'nested'])
  })

  it('a prepared query runs after the statements its transaction issued before it', async () => {
    const byId = prepared((executor: Kysely<Tables>, p: { id: string }) =>
      executor.selectFrom('t').select('id').where('id', '=', p.id),
    )
    const seen = await db.transaction().execute(async (tx) => {
      const [, , rows] = await Promise.all([insert(tx, 'a'), insert(tx, 'b'), byId.rows(tx, { id: 'b' })])
      return rows
    })
    expect(seen).toEqual([{ id: 'b' }])
  })
})
