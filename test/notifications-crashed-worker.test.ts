/**
 * A delivery whose attempt kills its worker every time (the process dies in the middle of the
 * POST, each time) must still run out of attempts, as ADR 0008 says: an attempt is counted
 * when claimed, and once the last allowed attempt's lease lapses without an outcome the
 * delivery is dead. Before the fix it was claimed again every lease (40 s), forever.
 */
import type { Kysely } from 'kysely'
import { expect, it } from 'vitest'
import {
  attemptsMaxDefault,
  startNotificationWorker,
  type NotificationTables,
} from '../src/platform/notifications/index.js'
import { createAppWithKey, ed25519KeyPair, json, session, signed, signUp } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

forEachDialect('webhooks: a delivery that crashes its workers', (dialect) => {
  const clock = manualClock()
  const bp = useTestPlatform(dialect, { clock, config: { BASEPLATE_SESSION_TTL_S: String(30 * 24 * 3600) } })

  it(`is attempted ${attemptsMaxDefault} times, then dead, never a ${attemptsMaxDefault + 1}th`, async () => {
    const tenant = await signUp(bp().app, 'merchant')
    const testApp = await createAppWithKey(bp().app, tenant, ed25519KeyPair(), 'sandbox')
    const base = `/v1/organizations/${tenant.organizationId}/apps/${testApp.appId}`
    const endpoint = await session(bp().app, 'POST', `${base}/webhook-endpoints`, tenant.token, {
      url: 'http://127.0.0.1:9/never-answers',
    })
    expect(endpoint.statusCode, endpoint.body).toBe(201)
    const store = await signed(
      bp().app,
      testApp,
      {
        method: 'POST',
        url: '/v1/stores',
        idempotencyKey: 'store-crash-1',
        body: { out_store_no: 'CRASH-1', name: '店 CRASH-1', address: '上海市静安区' },
      },
      clock.now(),
    )
    expect(store.statusCode, store.body).toBe(201)
    const db = bp().storage.db as unknown as Kysely<NotificationTables>
    const platformKeys = bp().platformKeys

    let posts = 0
    for (let worker = 1; worker <= attemptsMaxDefault + 3; worker += 1) {
      // A worker that dies in its POST: the call never settles and the worker is abandoned.
      let posted = (): void => undefined
      const postedOnce = new Promise<void>((resolve) => {
        posted = resolve
      })
      const crashing = startNotificationWorker({
        storage: bp().storage,
        platformKeys,
        clock,
        background: false,
        fetch: () => {
          posts += 1
          posted()
          return new Promise<Response>(() => undefined)
        },
      })
      // The step ends by itself only if it attempted nothing.
      await Promise.race([postedOnce, crashing.runOnce()])
      const row = await db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow()
      if (row.status === 'dead') break
      expect(row).toMatchObject({ status: 'delivering', attempts: worker })
      clock.set(Number(row.next_attempt_at)) // the lease lapses
    }
    const row = await db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow()
    expect(posts).toBe(attemptsMaxDefault)
    expect(row).toMatchObject({
      status: 'dead',
      attempts: attemptsMaxDefault,
      next_attempt_at: null,
      locked_until: null,
      lock_token: null,
    })
    expect(row.last_error).toMatch(/worker stopped/)
    // The delivery log shows it like any dead delivery; a redelivery would start afresh.
    const log = await session(bp().app, 'GET', `${base}/webhook-deliveries`, tenant.token)
    expect(json(log).data[0]).toMatchObject({ status: 'dead', attempts: attemptsMaxDefault })
  })
})
