// Frozen in time: this migration must never import application code or change once released.
//
// An Alipay-format notification's receiver for the delivery slots' caps (ADR 0021): the origin
// of its notify URL (scheme, host and port), so that notify URLs that differ only in their path
// or query (one per trade) share one receiver's cap and one timeout limit. The column is
// nullable, so adding it rewrites nothing; rows still to be delivered get their origin, a batch
// of ids per statement, and finished rows stay null (nothing claims them again).
import type { Kysely } from 'kysely'

const idsPerStatementMax = 500

function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return url
  }
}

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('alipay_notifications').addColumn('receiver', 'text').execute()
  const pending = await db
    .selectFrom('alipay_notifications')
    .select(['id', 'notify_url'])
    .where('status', 'in', ['pending', 'delivering'])
    .execute()
  const idsByOrigin = new Map<string, string[]>()
  for (const row of pending) {
    const origin = originOf(row.notify_url)
    idsByOrigin.set(origin, [...(idsByOrigin.get(origin) ?? []), row.id])
  }
  for (const [origin, ids] of idsByOrigin) {
    for (let at = 0; at < ids.length; at += idsPerStatementMax) {
      await db
        .updateTable('alipay_notifications')
        .set({ receiver: origin })
        .where('id', 'in', ids.slice(at, at + idsPerStatementMax))
        .execute()
    }
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('alipay_notifications').dropColumn('receiver').execute()
}
