import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openStorage, type Storage } from './database.js'

describe('SQLite storage settings', () => {
  let dir: string
  let storage: Storage

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-storage-'))
    storage = await openStorage({ kind: 'sqlite', file: path.join(dir, 'baseplate.db') })
  })
  afterEach(async () => {
    await storage.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const pragma = async (name: string) => {
    const { rows } = await sql.raw<Record<string, unknown>>(`pragma ${name}`).execute(storage.db)
    return rows[0]![name]
  }

  it('commits durably in WAL mode, checks foreign keys and keeps savepoint journals in memory', async () => {
    expect(await pragma('journal_mode')).toBe('wal')
    // 2 = FULL: every commit is fsynced before it returns (power-loss safe).
    expect(await pragma('synchronous')).toBe(2)
    expect(await pragma('foreign_keys')).toBe(1)
    // 2 = MEMORY: a request's savepoint journal never spills to a temporary file (ADR 0015).
    expect(await pragma('temp_store')).toBe(2)
  })
})
