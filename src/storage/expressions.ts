/**
 * Small SQL expressions both dialects share.
 *
 * @example
 * await db.updateTable('payment_trades').set({ updated_at: notBefore('updated_at', now) }).where(...)
 */
import { sql, type RawBuilder } from 'kysely'

/**
 * `column` set to `ms`, unless it already holds a later time: a lock that also stamps its row
 * never moves the row's time backwards (a job's run may have begun before the row's last change).
 */
export function notBefore(column: string, ms: number): RawBuilder<number> {
  return sql<number>`case when ${sql.ref(column)} < ${ms} then ${ms} else ${sql.ref(column)} end`
}
