/**
 * Deleting expired rows without stalling the server. A minute of nonces at a steady 650
 * calls/s is about 39,000 rows: deleted by one statement, it held the event loop (and so every
 * request) for most of a second each minute, which the soak test measured as p99 climbing from
 * 70 ms to 300–800 ms ten minutes in, when the first nonces expired. In batches, with the event
 * loop free between them, requests interleave. A nonce's row lies on a random leaf of its
 * table's key, so each deleted row costs a page (about 90 µs on SQLite, measured in the soak):
 * a batch of 100 holds the event loop for about 10 ms.
 *
 * @example
 * await deleteExpired(db, 'request_nonces', Date.now())
 */
import type { Kysely } from 'kysely'

/** Rows one statement deletes, give or take the rows that share the batch's last expiry. */
export const expiredBatchRowsMax = 100

/**
 * Deletes the rows of `table` whose `expires_at` is at or before `until`, a batch at a time:
 * each batch ends at the expiry of its last row (an index on `expires_at` finds it where the
 * table has one: nonces, idempotency records, authorisation codes), so ties with that row go
 * too. Returns how many rows went.
 */
export async function deleteExpired(db: Kysely<any>, table: string, until: number): Promise<number> {
  let deleted = 0
  for (;;) {
    const last = await db
      .selectFrom(table)
      .select('expires_at')
      .where('expires_at', '<=', until)
      .orderBy('expires_at')
      .offset(expiredBatchRowsMax - 1)
      .limit(1)
      .executeTakeFirst()
    const bound = last === undefined ? until : Number(last.expires_at)
    const result = await db.deleteFrom(table).where('expires_at', '<=', bound).executeTakeFirst()
    deleted += Number(result.numDeletedRows)
    if (last === undefined) return deleted
    await new Promise((resolve) => setImmediate(resolve))
  }
}

export interface Housekeeping {
  /** Stops the timer and waits for a run in progress, so none meets a closed database. */
  stop(): Promise<void>
}

/**
 * Runs `run` every `intervalMs`, never two at once: a run that outlasts the interval (a backlog
 * after downtime) is not joined by another, and the tick that finds it running is skipped. A
 * failed run goes to `onError`, and the next tick runs again. A run that never settled would
 * stop housekeeping; each statement is bounded by the database's own timeouts (SQLite's busy
 * timeout; PostgreSQL's, where the operator sets one). The timer does not keep the process alive.
 *
 * @example
 * const housekeeping = startHousekeeping(() => platform.housekeep(), 5_000, (error) => log.error(error))
 * await housekeeping.stop()
 */
export function startHousekeeping(
  run: () => Promise<unknown>,
  intervalMs: number,
  onError: (error: unknown) => void,
): Housekeeping {
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) throw new RangeError('intervalMs must be a whole ms ≥ 1')
  let running: Promise<void> | null = null
  const timer = setInterval(() => {
    running ??= Promise.resolve()
      .then(run)
      .then(
        () => undefined,
        (error: unknown) => {
          try {
            onError(error)
          } catch {
            // A failing report must not stop housekeeping, nor make stop() throw.
          }
        },
      )
      .finally(() => {
        running = null
      })
  }, intervalMs)
  timer.unref()
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
