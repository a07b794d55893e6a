import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { expect, it } from 'vitest'
import { createEventPublisher, type EventInput } from '../src/platform/events/outbox.js'
import { forEachDialect, useTestPlatform } from './harness.js'

const publisher = createEventPublisher(
  new Map([['test.counted', Type.Object({ n: Type.Integer() }, { additionalProperties: false })]]),
)

function counted(n: number, appId: string | null = null): EventInput {
  return { type: 'test.counted', organizationId: `org_${n}`, appId, payload: { n } }
}

forEachDialect('outbox', (dialect) => {
  const bp = useTestPlatform(dialect)
  const db = () => bp().storage.db as Kysely<any>
  const rowsOf = (ids: readonly string[]) =>
    db().selectFrom('outbox_events').selectAll().where('id', 'in', ids).orderBy('id').execute()

  it('writes the events of one change in statements of up to four; their ids sort in the list order', async () => {
    for (const count of [1, 2, 4, 5, 9]) {
      const events = Array.from({ length: count }, (_, n) => counted(n, n % 2 === 0 ? null : `app_${n}`))
      const ids = await db()
        .transaction()
        .execute((tx) => publisher.emitAll(tx, events, 1_000 + count))
      expect(new Set(ids).size).toBe(count)
      // In the list's order for the dispatcher, which sends by created_at and then id.
      expect([...ids].sort()).toEqual(ids)
      const rows = await rowsOf(ids)
      expect(rows).toHaveLength(count)
      const byId = new Map(rows.map((row) => [row.id, row]))
      ids.forEach((id, n) => {
        const row = byId.get(id)
        expect(row, `event ${n} of ${count}`).toMatchObject({
          type: 'test.counted',
          organization_id: `org_${n}`,
          app_id: n % 2 === 0 ? null : `app_${n}`,
          created_at: 1_000 + count,
          dispatched_at: null,
        })
        expect(JSON.parse(row!.payload)).toEqual({ n })
      })
    }
  })

  it('refuses the whole list, writing none, when one payload or type is not declared', async () => {
    const before = await db().selectFrom('outbox_events').select(db().fn.countAll().as('n')).executeTakeFirstOrThrow()
    const bad = [counted(1), counted(2), counted(3), counted(4), { ...counted(5), payload: { n: 'five' } }]
    await expect(publisher.emitAll(db(), bad, 1)).rejects.toThrow(/payload of test.counted/)
    await expect(publisher.emitAll(db(), [counted(1), { ...counted(2), type: 'test.unknown' }], 1)).rejects.toThrow(
      /not declared/,
    )
    const after = await db().selectFrom('outbox_events').select(db().fn.countAll().as('n')).executeTakeFirstOrThrow()
    expect(Number(after.n)).toBe(Number(before.n))
  })

  it('emit writes one event and returns its id', async () => {
    const id = await publisher.emit(db(), counted(7, 'app_7'), 5)
    expect(await rowsOf([id])).toMatchObject([{ id, organization_id: 'org_7', app_id: 'app_7', created_at: 5 }])
  })
})
