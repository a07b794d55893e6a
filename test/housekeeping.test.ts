/**
 * Housekeeping deletes expired rows in batches (src/storage/expiry.ts): all of them however many
 * share an expiry or span batches, none that is still live, on both databases; every table it
 * cleans has an index on the expiry; and its timer runs on time, one run at a time.
 */
import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { deleteExpired, expiredBatchRowsMax, startHousekeeping } from '../src/storage/expiry.js'
import { expiringTables } from '../src/server/platform.js'
import { forEachDialect, useTestPlatform } from './harness.js'

forEachDialect('housekeeping', (dialect) => {
  const bp = useTestPlatform(dialect)

  it('deletes every expired nonce across batches and ties, and keeps the live ones', async () => {
    const db = bp().storage.db
    const now = 1_000_000_000
    const rows = [
      // A run of ties bigger than a batch, then rows one ms apart, then live ones.
      ...Array.from({ length: expiredBatchRowsMax + 37 }, (_, i) => ({ expires_at: now - 5_000, nonce: `tie-${i}` })),
      ...Array.from({ length: 2 * expiredBatchRowsMax + 3 }, (_, i) => ({ expires_at: now - i, nonce: `old-${i}` })),
      ...Array.from({ length: 5 }, (_, i) => ({ expires_at: now + 1 + i, nonce: `live-${i}` })),
    ]
    for (let at = 0; at < rows.length; at += 200) {
      await db
        .insertInto('request_nonces')
        .values(rows.slice(at, at + 200).map((row) => ({ app_id: 'app_housekeeping', ...row })))
        .execute()
    }
    const expired = rows.length - 5
    expect(await deleteExpired(db, 'request_nonces', now)).toBe(expired)
    const left = await db
      .selectFrom('request_nonces')
      .select('nonce')
      .where('app_id', '=', 'app_housekeeping')
      .execute()
    expect(left.map((row) => row.nonce).sort()).toEqual(['live-0', 'live-1', 'live-2', 'live-3', 'live-4'])
    expect(await deleteExpired(db, 'request_nonces', now)).toBe(0)
  })

  it('finds the expired rows of every table it cleans through an index on the expiry', async () => {
    const db = bp().storage.db
    for (const table of [...expiringTables, 'authorization_codes']) {
      const indexed =
        dialect === 'sqlite'
          ? await sql<{ name: string }>`
              select l.name from pragma_index_list(${table}) l, pragma_index_info(l.name) i
              where i.seqno = 0 and i.name = 'expires_at'`.execute(db)
          : await sql<{ name: string }>`
              select i.relname as name from pg_index x
              join pg_class t on t.oid = x.indrelid join pg_class i on i.oid = x.indexrelid
              join pg_attribute a on a.attrelid = t.oid and a.attnum = x.indkey[0]
              where t.relname = ${table} and pg_table_is_visible(t.oid) and a.attname = 'expires_at'`.execute(db)
      expect(indexed.rows.length, `an index of ${table} led by expires_at`).toBeGreaterThan(0)
    }
  })
})

describe('startHousekeeping', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  /** A run that settles only when the test says so. */
  function controlledRuns() {
    const pending: Array<{ resolve: () => void; reject: (error: unknown) => void }> = []
    const run = vi.fn(
      () =>
        new Promise<void>((resolve, reject) => {
          pending.push({ resolve, reject })
        }),
    )
    return { run, pending }
  }

  it('runs every interval, and never starts a run while one is still going', async () => {
    const { run, pending } = controlledRuns()
    const onError = vi.fn()
    const housekeeping = startHousekeeping(run, 5_000, onError)
    await vi.advanceTimersByTimeAsync(4_999)
    expect(run).toHaveBeenCalledTimes(0)
    await vi.advanceTimersByTimeAsync(1)
    expect(run).toHaveBeenCalledTimes(1)
    // The run outlasts three more intervals: no second run joins it.
    await vi.advanceTimersByTimeAsync(15_000)
    expect(run).toHaveBeenCalledTimes(1)
    pending[0]!.resolve()
    await vi.advanceTimersByTimeAsync(5_000)
    expect(run).toHaveBeenCalledTimes(2)
    pending[1]!.resolve()
    await vi.advanceTimersByTimeAsync(5_000)
    expect(run).toHaveBeenCalledTimes(3)
    pending[2]!.resolve()
    await housekeeping.stop()
    expect(onError).not.toHaveBeenCalled()
  })

  it('reports a failed run and runs again at the next interval', async () => {
    const { run, pending } = controlledRuns()
    const onError = vi.fn()
    const housekeeping = startHousekeeping(run, 1_000, onError)
    await vi.advanceTimersByTimeAsync(1_000)
    const failure = new Error('database is locked')
    pending[0]!.reject(failure)
    await vi.advanceTimersByTimeAsync(0)
    expect(onError).toHaveBeenCalledWith(failure)
    await vi.advanceTimersByTimeAsync(1_000)
    expect(run).toHaveBeenCalledTimes(2)
    pending[1]!.resolve()
    await housekeeping.stop()
    expect(onError).toHaveBeenCalledTimes(1)
  })

  it('stop waits for the run in progress, and no run starts after it', async () => {
    const { run, pending } = controlledRuns()
    const housekeeping = startHousekeeping(run, 1_000, vi.fn())
    await vi.advanceTimersByTimeAsync(1_000)
    let stopped = false
    const stopping = housekeeping.stop().then(() => (stopped = true))
    await vi.advanceTimersByTimeAsync(5_000)
    expect(stopped).toBe(false)
    pending[0]!.resolve()
    await stopping
    expect(stopped).toBe(true)
    await vi.advanceTimersByTimeAsync(10_000)
    expect(run).toHaveBeenCalledTimes(1)
  })

  it('refuses an interval that is not a whole number of milliseconds', () => {
    for (const bad of [0, -5, 1.5, Number.NaN]) {
      expect(
        () =>
          startHousekeeping(
            vi.fn(async () => undefined),
            bad,
            vi.fn(),
          ),
        String(bad),
      ).toThrow(RangeError)
    }
  })
})
