/**
 * Housekeeping deletes expired rows in batches (src/storage/expiry.ts): all of them however many
 * share an expiry or span batches, none that is still live, on both databases.
 */
import { expect, it } from 'vitest'
import { deleteExpired, expiredBatchRowsMax } from '../src/storage/expiry.js'
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
})
