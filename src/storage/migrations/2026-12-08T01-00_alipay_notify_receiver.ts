// Frozen in time: this migration must never import application code or change once released.
//
// An Alipay-format notification's receiver for the delivery slots' caps (ADR 0021): the origin
// of its notify URL (scheme, host and port), so that notify URLs that differ only in their path
// or query (one per trade) share one receiver's cap and one timeout limit. Rows still to be
// delivered get their origin; finished ones keep their URL, which nothing reads again.
import type { Kysely } from 'kysely'

function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return url
  }
}

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('alipay_notifications').addColumn('receiver', 'text').execute()
  await db
    .updateTable('alipay_notifications')
    .set((eb) => ({ receiver: eb.ref('notify_url') }))
    .execute()
  const pending = await db
    .selectFrom('alipay_notifications')
    .select(['id', 'notify_url'])
    .where('status', 'in', ['pending', 'delivering'])
    .execute()
  for (const row of pending) {
    await db
      .updateTable('alipay_notifications')
      .set({ receiver: originOf(row.notify_url) })
      .where('id', '=', row.id)
      .execute()
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('alipay_notifications').dropColumn('receiver').execute()
}
