/**
 * The append-only, hash-chained audit log. Every security-relevant action (logins, keys,
 * apps, memberships, and later governance) is appended in the same transaction as the
 * change it records. Row n stores `hash = sha256(prev_hash || canonical(row n))`, and the
 * one-row `audit_head` holds the last sequence number and hash, so editing a row, deleting
 * one in the middle or cutting off the tail are all detected by {@link verifyAuditLog}.
 *
 * @example
 * await appendAudit(tx, { actor: 'user_x', action: 'app.created', target: 'app_y', data: {} }, now)
 */
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { sha256Hex } from '../ids.js'
import type { CoreTables } from '../../storage/tables.js'

export interface AuditEntry {
  readonly actor: string
  readonly action: string
  readonly target: string
  readonly data: Readonly<Record<string, unknown>>
}

export const genesisHash = '0'.repeat(64)
const verifyPageSize = 1000

function rowHash(
  prevHash: string,
  row: { seq: number; at: number; actor: string; action: string; target: string; data: string },
): string {
  const canonical = JSON.stringify([row.seq, row.at, row.actor, row.action, row.target, row.data])
  return sha256Hex(`${prevHash}\n${canonical}`)
}

/** Appends one entry. Call it inside the transaction of the change it records. */
export async function appendAudit(db: Kysely<any>, entry: AuditEntry, now: number): Promise<number> {
  const core = db as Kysely<CoreTables>
  // Bumping the head first takes its row lock on PostgreSQL, which serialises concurrent
  // appenders; SQLite serialises writers anyway. RETURNING yields the new seq and the
  // previous hash, since the hash column is only rewritten below.
  const head = await core
    .updateTable('audit_head')
    .set((eb) => ({ seq: eb('seq', '+', 1) }))
    .where('id', '=', 1)
    .returning(['seq', 'hash'])
    .executeTakeFirstOrThrow()
  const row = {
    seq: head.seq,
    at: now,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    data: JSON.stringify(entry.data),
  }
  const hash = rowHash(head.hash, row)
  await core
    .insertInto('audit_log')
    .values({ ...row, prev_hash: head.hash, hash })
    .execute()
  await core.updateTable('audit_head').set({ hash }).where('id', '=', 1).execute()
  return row.seq
}

export interface AuditProblem {
  readonly seq: number
  readonly problem: string
}

export interface AuditVerification {
  readonly ok: boolean
  readonly entries: number
  readonly headSeq: number
  readonly problems: readonly AuditProblem[]
}

/** Recomputes the chain from the first row and compares it with the head. */
export async function verifyAuditLog(db: Kysely<any>): Promise<AuditVerification> {
  const core = db as Kysely<CoreTables>
  const problems: AuditProblem[] = []
  let expectedSeq = 1
  let prevHash = genesisHash
  let entries = 0
  let afterSeq = 0
  for (;;) {
    const rows = await core
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(verifyPageSize)
      .execute()
    for (const row of rows) {
      entries += 1
      if (row.seq !== expectedSeq) {
        problems.push({ seq: row.seq, problem: `expected seq ${expectedSeq}: rows are missing` })
      }
      if (row.prev_hash !== prevHash) {
        problems.push({ seq: row.seq, problem: 'prev_hash does not match the previous row' })
      }
      if (rowHash(row.prev_hash, row) !== row.hash) {
        problems.push({ seq: row.seq, problem: 'row content does not match its hash (edited)' })
      }
      expectedSeq = row.seq + 1
      prevHash = row.hash
      afterSeq = row.seq
    }
    if (rows.length < verifyPageSize) break
  }
  const head = await core.selectFrom('audit_head').selectAll().where('id', '=', 1).executeTakeFirst()
  assert(head !== undefined, 'audit_head row is missing: migrations did not run')
  if (head.seq !== expectedSeq - 1 || head.hash !== prevHash) {
    problems.push({ seq: head.seq, problem: 'the head does not match the last row (rows cut off the end)' })
  }
  return { ok: problems.length === 0, entries, headSeq: head.seq, problems }
}
