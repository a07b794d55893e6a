import type { Kysely } from 'kysely'
import { beforeAll, expect, it } from 'vitest'
import { createAppWithKey, json, rsaKeyPair, signed, signUp, type TestApp } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'

forEachDialect('stores capability', (dialect) => {
  const bp = useTestPlatform(dialect)
  let testApp: TestApp
  const db = () => bp().storage.db as Kysely<any>

  beforeAll(async () => {
    testApp = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant', 'parking'), rsaKeyPair())
  })
  const create = (outStoreNo: string) =>
    signed(bp().app, testApp, {
      method: 'POST',
      url: '/v1/stores',
      idempotencyKey: `create-${outStoreNo}`,
      body: { out_store_no: outStoreNo, name: `Store ${outStoreNo}`, address: '上海市静安区', city_code: '310106' },
    })

  it('writes the store and its event in the same transaction', async () => {
    const response = await create('EV-1')
    expect(response.statusCode, response.body).toBe(201)
    const store = json(response)
    const events = await db().selectFrom('outbox_events').selectAll().where('type', '=', 'stores.created').execute()
    expect(events.map((event) => JSON.parse(event.payload).id)).toContain(store.id)
    expect(events.find((event) => JSON.parse(event.payload).id === store.id)?.organization_id).toBe(
      testApp.tenant.organizationId,
    )
  })

  it('closes a store once; a second close is refused and emits nothing', async () => {
    const store = json(await create('CL-1'))
    const closed = await signed(bp().app, testApp, { method: 'POST', url: `/v1/stores/${store.id}/close` })
    expect(json(closed)).toMatchObject({ status: 'closed' })
    const again = await signed(bp().app, testApp, { method: 'POST', url: `/v1/stores/${store.id}/close` })
    expect(again.statusCode).toBe(409)
    expect(json(again).code).toBe('STORES_ALREADY_CLOSED')
    const events = await db()
      .selectFrom('outbox_events')
      .select('payload')
      .where('type', '=', 'stores.closed')
      .execute()
    expect(events.filter((event) => JSON.parse(event.payload).id === store.id)).toHaveLength(1)
  })

  it('paginates with limit and starting_after', async () => {
    for (const n of ['P-1', 'P-2', 'P-3']) await create(n)
    const seen: string[] = []
    let after: string | undefined
    for (;;) {
      const page = json(
        await signed(bp().app, testApp, {
          method: 'GET',
          url: `/v1/stores?limit=2${after ? `&starting_after=${after}` : ''}`,
        }),
      )
      seen.push(...page.data.map((store: { id: string }) => store.id))
      if (!page.has_more) break
      after = page.data[page.data.length - 1].id
    }
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen.length).toBeGreaterThanOrEqual(5)
  })

  it('resolves its limit to the declared default at version 0', async () => {
    const value = await bp().registry.policy.get<number>(db(), 'stores.open_stores_max', {
      merchantId: testApp.tenant.organizationId,
      at: Date.now(),
    })
    expect(value).toMatchObject({ value: 200, version: 0 })
  })
})

forEachDialect('stores limit from an enacted policy', (dialect) => {
  // The same module code, with a policy source that enacts a limit of 2 open stores.
  const bp = useTestPlatform(dialect, {
    policySource: {
      resolve: async (_db, key) => (key === 'stores.open_stores_max' ? { value: 2, version: 7 } : null),
    },
  })

  it('refuses the store above the limit, naming the policy version, and writes nothing', async () => {
    const testApp = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant'), rsaKeyPair())
    const create = (n: number) =>
      signed(bp().app, testApp, {
        method: 'POST',
        url: '/v1/stores',
        idempotencyKey: `limit-${n}`,
        body: { out_store_no: `L-${n}`, name: 'x', address: 'y' },
      })
    expect((await create(1)).statusCode).toBe(201)
    const second = json(await create(2))
    expect((await create(3)).statusCode).toBe(422)
    const refused = json(await create(4))
    expect(refused.code).toBe('STORES_LIMIT_REACHED')
    expect(refused.message).toContain('policy version 7')
    // Closing one frees a place.
    await signed(bp().app, testApp, { method: 'POST', url: `/v1/stores/${second.id}/close` })
    expect((await create(5)).statusCode).toBe(201)
  })
})
