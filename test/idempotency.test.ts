import { beforeAll, expect, it } from 'vitest'
import type { Kysely } from 'kysely'
import { createAppWithKey, json, rsaKeyPair, signed, signUp, type TestApp } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

const clock = manualClock(Date.now())

async function storeCount(db: Kysely<any>, organizationId: string): Promise<number> {
  const row = await db
    .selectFrom('stores')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('organization_id', '=', organizationId)
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

forEachDialect('idempotency', (dialect) => {
  const bp = useTestPlatform(dialect, { clock })
  let testApp: TestApp

  beforeAll(async () => {
    testApp = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant'), rsaKeyPair())
  })
  const call = (key: string | undefined, body: unknown) =>
    signed(
      bp().app,
      testApp,
      {
        method: 'POST',
        url: '/v1/stores',
        body,
        ...(key === undefined ? {} : { idempotencyKey: key }),
      },
      clock.now(),
    )

  it('replays the first response byte for byte and executes once', async () => {
    const body = { out_store_no: 'IDEM-1', name: 'Store', address: 'Somewhere 1' }
    const first = await call('key-1', body)
    expect(first.statusCode, first.body).toBe(201)
    const second = await call('key-1', body)
    expect(second.statusCode).toBe(201)
    expect(second.body).toBe(first.body)
    expect(second.headers['idempotent-replayed']).toBe('true')
    expect(await storeCount(bp().storage.db, testApp.tenant.organizationId)).toBe(1)
  })

  it('refuses the same key with another body, and changes nothing', async () => {
    const before = await storeCount(bp().storage.db, testApp.tenant.organizationId)
    const response = await call('key-1', { out_store_no: 'IDEM-2', name: 'Other', address: 'Elsewhere' })
    expect(response.statusCode).toBe(422)
    expect(json(response).code).toBe('IDEMPOTENCY_KEY_REUSED')
    expect(await storeCount(bp().storage.db, testApp.tenant.organizationId)).toBe(before)
  })

  it('requires a key where the route says so', async () => {
    const response = await call(undefined, { out_store_no: 'NOKEY', name: 'x', address: 'y' })
    expect(response.statusCode).toBe(400)
    expect(json(response).code).toBe('IDEMPOTENCY_KEY_REQUIRED')
  })

  it('keeps a lasting failure for the key, as Stripe does', async () => {
    const body = { out_store_no: 'IDEM-1', name: 'Duplicate number', address: 'x' }
    const first = await call('key-dup', body)
    expect(json(first).code).toBe('STORES_OUT_STORE_NO_TAKEN')
    const again = await call('key-dup', body)
    expect(again.body).toBe(first.body)
    expect(again.headers['idempotent-replayed']).toBe('true')
  })

  it('executes 50 concurrent duplicates exactly once; the others get the stored result or 409', async () => {
    const body = { out_store_no: 'CONC-1', name: 'Concurrent', address: 'x' }
    const before = await storeCount(bp().storage.db, testApp.tenant.organizationId)
    const responses = await Promise.all(Array.from({ length: 50 }, () => call('key-concurrent', body)))
    const statuses = responses.map((response) => response.statusCode)
    expect(
      statuses.every((status) => status === 201 || status === 409),
      statuses.join(','),
    ).toBe(true)
    const created = responses.filter((response) => response.statusCode === 201)
    expect(created.length).toBeGreaterThanOrEqual(1)
    // Every success is the same stored response.
    expect(new Set(created.map((response) => response.body)).size).toBe(1)
    for (const conflict of responses.filter((response) => response.statusCode === 409)) {
      expect(json(conflict).code).toBe('IDEMPOTENCY_REQUEST_IN_PROGRESS')
    }
    expect(await storeCount(bp().storage.db, testApp.tenant.organizationId)).toBe(before + 1)
    const retry = await call('key-concurrent', body)
    expect(retry.body).toBe(created[0]!.body)
  })

  it('lets a retry take over a reservation abandoned by a crash, after the lock expires', async () => {
    const body = { out_store_no: 'CRASH-1', name: 'Crash', address: 'x' }
    // Simulate a process that reserved the key and died before its transaction committed.
    const principal = `app:${testApp.appId}:${testApp.tenant.organizationId}`
    const fingerprint = (await import('../src/platform/ids.js')).sha256Hex(`POST /v1/stores\n${JSON.stringify(body)}`)
    await bp()
      .storage.db.insertInto('idempotency_records')
      .values({
        principal,
        idempotency_key: 'key-crash',
        fingerprint,
        state: 'running',
        response_status: null,
        response_body: null,
        locked_at: clock.now(),
        created_at: clock.now(),
        expires_at: clock.now() + 86_400_000,
      })
      .execute()
    const during = await call('key-crash', body)
    expect(json(during).code).toBe('IDEMPOTENCY_REQUEST_IN_PROGRESS')
    clock.advance(61_000)
    const after = await call('key-crash', body)
    expect(after.statusCode, after.body).toBe(201)
    expect(json(after).out_store_no).toBe('CRASH-1')
  })

  it('scopes keys per app: another app may use the same key', async () => {
    const other = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant'), rsaKeyPair(1))
    const response = await signed(
      bp().app,
      other,
      {
        method: 'POST',
        url: '/v1/stores',
        idempotencyKey: 'key-1',
        body: { out_store_no: 'IDEM-1', name: 'Store', address: 'Somewhere 1' },
      },
      clock.now(),
    )
    expect(response.statusCode, response.body).toBe(201)
    expect(json(response).organization_id).toBe(other.tenant.organizationId)
  })

  it('replays at 23 h 59 m, and housekeeping prunes the key once its 24 hours are over', async () => {
    const keyRows = async () =>
      (await bp().storage.db.selectFrom('idempotency_records').select('idempotency_key').execute()).filter(
        (row) => row.idempotency_key === 'key-edge',
      ).length
    const body = { out_store_no: 'EDGE-1', name: 'Edge', address: 'x' }
    const first = await call('key-edge', body)
    expect(first.statusCode, first.body).toBe(201)
    clock.advance((23 * 3600 + 59 * 60) * 1000)
    await bp().housekeep()
    const replay = await call('key-edge', body)
    expect(replay.headers['idempotent-replayed']).toBe('true')
    expect(replay.body).toBe(first.body)
    expect(await keyRows()).toBe(1)
    clock.advance(60 * 1000)
    await bp().housekeep()
    expect(await keyRows()).toBe(0)
  })

  it('forgets a key after 24 hours', async () => {
    const body = { out_store_no: 'TTL-1', name: 'TTL', address: 'x' }
    expect((await call('key-ttl', body)).statusCode).toBe(201)
    clock.advance(24 * 3600 * 1000 + 1000)
    const later = await call('key-ttl', body)
    // The key executes again, and the natural key (out_store_no) is what refuses the duplicate.
    expect(json(later).code).toBe('STORES_OUT_STORE_NO_TAKEN')
    expect(later.headers['idempotent-replayed']).toBeUndefined()
  })
})
