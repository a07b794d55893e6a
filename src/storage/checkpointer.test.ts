import Database from 'better-sqlite3'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startCheckpointer } from './checkpointer.js'

describe('checkpointer', () => {
  let dir: string
  let file: string
  let db: Database.Database

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-checkpoint-'))
    file = path.join(dir, 'c.db')
    db = new Database(file)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    // Only the worker may checkpoint here, so that what it copies is measurable.
    db.pragma('wal_autocheckpoint = 0')
    db.exec('create table t (id integer primary key, body text not null)')
  })
  afterEach(() => {
    db.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const walFrames = () => (db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>)[0]!.log
  const until = async (condition: () => Promise<boolean>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error('timed out')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  it('copies committed pages into the database file from its own thread, while the writer goes on', async () => {
    const checkpointer = startCheckpointer(file, { intervalMs: 5 })
    try {
      const insert = db.prepare('insert into t (body) values (?)')
      const write = db.transaction((count: number) => {
        for (let index = 0; index < count; index += 1) insert.run('x'.repeat(200))
      })
      for (let round = 0; round < 20; round += 1) {
        write(100)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      await until(async () => (await checkpointer.stats()).pagesCopied > 0, 5_000)
      const stats = await checkpointer.stats()
      expect(stats.checkpoints).toBeGreaterThan(0)
      // The database file itself (not the log) now holds rows: a connection that ignores the
      // log would find them. Every committed row is still visible through the normal path.
      expect(fs.statSync(file).size).toBeGreaterThan(100 * 4096)
      expect((db.prepare('select count(*) as n from t').get() as { n: number }).n).toBe(2_000)
      expect(walFrames()).toBeGreaterThan(0)
    } finally {
      await checkpointer.close()
    }
  })

  it('answers concurrent questions each with its own answer', async () => {
    const checkpointer = startCheckpointer(file, { intervalMs: 5 })
    try {
      const answers = await Promise.all([checkpointer.stats(), checkpointer.stats(), checkpointer.stats()])
      for (const answer of answers) expect(answer).toEqual({ checkpoints: 0, pagesCopied: 0 })
    } finally {
      await checkpointer.close()
    }
  })

  it('closes, and closing twice is harmless', async () => {
    const checkpointer = startCheckpointer(file, { intervalMs: 5 })
    await checkpointer.close()
    await checkpointer.close()
    expect(await checkpointer.stats()).toEqual({ checkpoints: 0, pagesCopied: 0 })
  })
})
