/**
 * Alipay-format asynchronous notifications, received by a merchant endpoint and verified with
 * the real `alipay-sdk`: `checkNotifySignV2` for every notification (a subject with `%` and
 * Chinese included), `checkNotifySign` for one without `%` (it decodes values again and throws
 * on a `%`, which the guide documents). Retries follow Alipay's schedule until the receiver
 * answers `success`; the notify URL comes from the request, else from the app's setting.
 */
import { describe, expect, it } from 'vitest'
import type { Kysely } from 'kysely'
import type { PaymentServices } from '../src/capabilities/payment/index.js'
import { alipayAttemptsMax, alipayNotificationFormat, alipayRetryDelaysMs } from '../src/gateway/alipay/index.js'
import { dispatchEvents } from '../src/platform/notifications/dispatcher.js'
import { startNotificationWorker } from '../src/platform/notifications/worker.js'
import * as receiverMigration from '../src/storage/migrations/2026-12-08T01-00_alipay_notify_receiver.js'
import { addMember } from '../src/platform/identity/service.js'
import type { AlipayNotificationsTable } from '../src/gateway/alipay/tables.js'
import type { UserPrincipal } from '../src/server/route-kit.js'
import type { CoreTables } from '../src/storage/tables.js'
import { useAlipayWorld, type AlipayWorld } from './alipay-gateway-world.js'
import { eventually, json, session, signUp } from './fixtures.js'
import { forEachDialect } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'

async function deliverAll(w: AlipayWorld): Promise<void> {
  const worker = w.platform.workers.notifications!
  while ((await worker.runOnce()) > 0) {
    // Fan out and attempt until nothing is due.
  }
}

async function notification(w: AlipayWorld, tradeNo: string): Promise<AlipayNotificationsTable[]> {
  return (w.platform.storage.db as unknown as Kysely<{ alipay_notifications: AlipayNotificationsTable }>)
    .selectFrom('alipay_notifications')
    .selectAll()
    .where('trade_id', '=', tradeNo)
    .orderBy('created_at')
    .execute()
}

function alipayFormat(w: AlipayWorld) {
  const { storage, platformKeys, registry, config } = w.platform
  return alipayNotificationFormat({
    storage,
    platformKeys,
    payment: registry.service<PaymentServices>('payment'),
    settings: config.alipay,
  })
}

/**
 * A worker of the test's own beside the world's, with small caps: one attempt at a time per
 * receiver, four per app, eight in all; it polls once a minute, so only a settle wakes it soon.
 */
function cappedWorker(w: AlipayWorld, fetchImpl: (input: string | URL | Request) => Promise<Response>) {
  return startNotificationWorker({
    storage: w.platform.storage,
    platformKeys: w.platform.platformKeys,
    clock: { now: () => Date.now() + w.skew },
    fetch: fetchImpl as typeof fetch,
    pollIntervalMs: 60_000,
    deliveriesInFlightMax: 8,
    receiverInFlightMax: 1,
    appInFlightMax: 4,
    formats: [alipayFormat(w)],
  })
}

/** Trades paid through the gateway, each notified at its own URL. */
async function paidTrades(w: AlipayWorld, notifyUrls: readonly string[]): Promise<void> {
  for (const notifyUrl of notifyUrls) {
    const outTradeNo = new URL(notifyUrl).searchParams.get('order')!
    const precreated = await w.v2(
      'alipay.trade.precreate',
      { outTradeNo, totalAmount: '1.00', subject: 'per-order URL' },
      { notifyUrl },
    )
    await w.payOnPage(precreated.qrCode)
  }
}

function notificationsAt(w: AlipayWorld, notifyUrls: readonly string[]) {
  return (w.platform.storage.db as unknown as Kysely<{ alipay_notifications: AlipayNotificationsTable }>)
    .selectFrom('alipay_notifications')
    .selectAll()
    .where('notify_url', 'in', notifyUrls)
}

forEachDialect('alipay notifications', (dialect) => {
  const world = useAlipayWorld(dialect)

  describe('trade_status_sync', () => {
    it('notifies a payment, signed for checkNotifySignV2, retried until the receiver answers success', async () => {
      const w = world()
      const { received, answers, url } = w.receiver
      received.length = 0
      const subject = '100% 纯棉 T恤 & 袜子'
      const precreated = await w.v2(
        'alipay.trade.precreate',
        { outTradeNo: 'N-1', totalAmount: '59.90', subject, passbackParams: 'order%3D42' },
        { notifyUrl: url },
      )
      await w.payOnPage(precreated.qrCode)
      answers.push('fail')
      await deliverAll(w)
      expect(received).toHaveLength(1)
      const first = received[0]!
      expect(first.contentType).toMatch(/^application\/x-www-form-urlencoded/)
      expect({ deliveryId: first.deliveryId, attempt: first.attempt }).toEqual({
        deliveryId: first.fields.notify_id,
        attempt: '1',
      })
      expect(first.fields).toMatchObject({
        notify_type: 'trade_status_sync',
        app_id: w.sandbox.appId,
        auth_app_id: w.sandbox.merchant.id,
        out_trade_no: 'N-1',
        trade_status: 'TRADE_SUCCESS',
        total_amount: '59.90',
        receipt_amount: '59.90',
        buyer_id: w.sandbox.buyer.id,
        subject,
        passback_params: 'order%3D42',
        charset: 'utf-8',
        sign_type: 'RSA2',
      })
      expect(JSON.parse(first.fields.fund_bill_list!)).toEqual([{ amount: '59.90', fundChannel: 'ALIPAYACCOUNT' }])
      // No empty field is ever sent.
      expect(Object.values(first.fields).every((value) => value !== '')).toBe(true)
      expect(w.sdk.checkNotifySignV2(first.fields)).toBe(true)
      // The older checkNotifySign decodes every value once more and throws on the `%`.
      expect(() => w.sdk.checkNotifySign(first.fields)).toThrow(URIError)
      // A changed field no longer verifies.
      expect(w.sdk.checkNotifySignV2({ ...first.fields, total_amount: '0.01' })).toBe(false)

      // 'fail' is not success: nothing more until the first retry is due, 4 minutes on.
      await deliverAll(w)
      expect(received).toHaveLength(1)
      const [pending] = await notification(w, first.fields.trade_no!)
      expect(pending).toMatchObject({ status: 'pending', attempts: 1, last_error: 'HTTP 200: fail' })
      // Four minutes after the attempt ended (it started last_attempt_at).
      const wait = pending!.next_attempt_at! - pending!.last_attempt_at!
      expect(wait).toBeGreaterThanOrEqual(alipayRetryDelaysMs[0]!)
      expect(wait).toBeLessThan(alipayRetryDelaysMs[0]! + 5_000)
      w.skew = alipayRetryDelaysMs[0]! + 1_000
      try {
        await deliverAll(w)
      } finally {
        w.skew = 0
      }
      expect(received).toHaveLength(2)
      const retry = received[1]!
      expect(retry.fields.notify_id).toBe(first.fields.notify_id)
      expect({ deliveryId: retry.deliveryId, attempt: retry.attempt }).toEqual({
        deliveryId: first.fields.notify_id,
        attempt: '2',
      })
      expect(retry.fields.notify_time! > first.fields.notify_time!).toBe(true)
      expect(w.sdk.checkNotifySignV2(retry.fields)).toBe(true)
      const [delivered] = await notification(w, first.fields.trade_no!)
      expect(delivered).toMatchObject({ status: 'delivered', attempts: 2, next_attempt_at: null })
      expect(alipayAttemptsMax).toBe(8)
      await expectLedgerConsistent(w.platform.storage.db)
    })

    it('retires a notification whose last attempt died with its worker instead of claiming it forever', async () => {
      const w = world()
      const { received, answers, url } = w.receiver
      received.length = 0
      const precreated = await w.v2(
        'alipay.trade.precreate',
        { outTradeNo: 'N-CRASH', totalAmount: '1.00', subject: 'crash' },
        { notifyUrl: url },
      )
      await w.payOnPage(precreated.qrCode)
      // The worker makes the notification from the trade's event; its first attempt is refused.
      answers.push('fail')
      await deliverAll(w)
      expect(received).toHaveLength(1)
      const [row] = await notification(w, received[0]!.fields.trade_no!)
      const db = w.platform.storage.db as unknown as Kysely<{ alipay_notifications: AlipayNotificationsTable }>
      // As a worker that claimed the last allowed attempt and died in the POST leaves it: lease lapsed.
      const lapsed = Date.now() - 1_000
      await db
        .updateTable('alipay_notifications')
        .set({
          status: 'delivering',
          attempts: alipayAttemptsMax,
          locked_until: lapsed,
          next_attempt_at: lapsed,
          lock_token: 'lock_dead',
        })
        .where('id', '=', row!.id)
        .execute()
      answers.push('success')
      // Retiring it is the step's work: the worker is told so, and goes on rather than sleep.
      expect(await w.platform.workers.notifications!.runOnce()).toBe(1)
      await deliverAll(w)
      answers.length = 0
      expect(received, 'no ninth attempt').toHaveLength(1)
      const [retired] = await notification(w, row!.trade_id)
      expect(retired).toMatchObject({ status: 'dead', attempts: alipayAttemptsMax, next_attempt_at: null })
      expect(retired!.last_error).toMatch(/worker stopped/)
    })

    it('verifies with checkNotifySign too when no value holds a %, and notifies refunds', async () => {
      const w = world()
      const { received, url } = w.receiver
      received.length = 0
      const paid = await w.v3('alipay.trade.pay', {
        out_trade_no: 'N-2',
        total_amount: '18.00',
        subject: '停车费 浙A12345',
        auth_code: w.sandbox.buyer.paymentCode,
        notify_url: url,
      })
      await deliverAll(w)
      expect(received).toHaveLength(1)
      const payment = received[0]!.fields
      expect(payment).toMatchObject({
        trade_no: paid.data.trade_no,
        trade_status: 'TRADE_SUCCESS',
        subject: '停车费 浙A12345',
      })
      expect(w.sdk.checkNotifySign(payment)).toBe(true)
      expect(w.sdk.checkNotifySignV2(payment)).toBe(true)

      await w.v2('alipay.trade.refund', { tradeNo: paid.data.trade_no, refundAmount: '8.00', outRequestNo: 'NR-1' })
      await w.v3('alipay.trade.refund', {
        trade_no: paid.data.trade_no,
        refund_amount: '10.00',
        out_request_no: 'NR-2',
      })
      await deliverAll(w)
      expect(received).toHaveLength(3)
      // The two refunds' notifications are attempted concurrently: they may arrive in either order.
      const byRequest = (outBizNo: string) => received.find((item) => item.fields.out_biz_no === outBizNo)!.fields
      const [partial, full] = [byRequest('NR-1'), byRequest('NR-2')]
      expect(partial).toMatchObject({ trade_status: 'TRADE_SUCCESS', out_biz_no: 'NR-1', refund_fee: '8.00' })
      expect(partial.gmt_refund).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/)
      expect(full).toMatchObject({ trade_status: 'TRADE_CLOSED', out_biz_no: 'NR-2', refund_fee: '18.00' })
      expect(full.gmt_close).toBe(full.gmt_refund)
      for (const fields of [partial, full]) {
        expect(w.sdk.checkNotifySign(fields)).toBe(true)
        expect(w.sdk.checkNotifySignV2(fields)).toBe(true)
      }
      await expectLedgerConsistent(w.platform.storage.db)
    })

    it("falls back to the app's notify URL, and notifies a closed trade", async () => {
      const w = world()
      const { received, url } = w.receiver
      received.length = 0
      // Without a notify URL anywhere, nothing is sent.
      const quiet = await w.v2('alipay.trade.precreate', { outTradeNo: 'N-3', totalAmount: '1.00', subject: 'quiet' })
      await w.v2('alipay.trade.close', { outTradeNo: 'N-3' })
      await deliverAll(w)
      expect(quiet.code).toBe('10000')
      expect(received).toHaveLength(0)

      // The app's notify URL is set in the console by a developer of the ISV.
      const app = w.platform.app
      const developer = await signUp(app, 'isv')
      const settingsUrl = `/v1/organizations/${w.sandbox.isv.id}/apps/${w.sandbox.appId}/alipay-settings`
      const put = (body: unknown) => session(app, 'PUT', settingsUrl, developer.token, body)
      // Another tenant's app is not found, as everywhere.
      expect((await put({ notify_url: `${url}?via=app` })).statusCode).toBe(404)
      const db = w.platform.storage.db as Kysely<CoreTables>
      const owner = await db
        .selectFrom('memberships')
        .select('user_id')
        .where('organization_id', '=', w.sandbox.isv.id)
        .executeTakeFirstOrThrow()
      const principal: UserPrincipal = { kind: 'user', userId: owner.user_id, isOperator: false, sessionToken: '' }
      await db
        .transaction()
        .execute((tx) => addMember(tx, principal, w.sandbox.isv.id, developer.email, 'developer', Date.now()))
      expect(json(await put({ notify_url: 'ftp://isv.example/notify' }))).toMatchObject({ code: 'WEBHOOK_URL_INVALID' })
      const saved = await put({ notify_url: `${url}?via=app` })
      expect(saved.statusCode, saved.body).toBe(200)
      expect(json(await session(app, 'GET', settingsUrl, developer.token))).toMatchObject({
        app_id: w.sandbox.appId,
        notify_url: `${url}?via=app`,
      })
      await w.v3('alipay.trade.precreate', { out_trade_no: 'N-4', total_amount: '2.00', subject: '到期 Closing' })
      await w.v3('alipay.trade.close', { out_trade_no: 'N-4' })
      await deliverAll(w)
      expect(received).toHaveLength(1)
      expect(received[0]!.fields).toMatchObject({
        out_trade_no: 'N-4',
        trade_status: 'TRADE_CLOSED',
        total_amount: '2.00',
      })
      expect(received[0]!.fields.gmt_payment).toBeUndefined()
      expect(w.sdk.checkNotifySignV2(received[0]!.fields)).toBe(true)
    })

    it('counts notify URLs that differ only in their query as one receiver, their server, for the caps', async () => {
      const w = world()
      await deliverAll(w)
      const { url } = w.receiver
      const orders = ['Q-1', 'Q-2', 'Q-3']
      const urls = orders.map((order) => `${url}?order=${order}`)
      const queued = () => notificationsAt(w, urls).execute()
      await paidTrades(w, urls)
      // The receiver's server holds every request until the test answers it.
      const held: Array<() => void> = []
      const requested: string[] = []
      let inFlight = 0
      let inFlightMax = 0
      const holdingFetch = (input: string | URL | Request) => {
        const target = String(input)
        if (!target.startsWith(url)) return Promise.resolve(new Response(null, { status: 204 }))
        requested.push(target)
        inFlight += 1
        inFlightMax = Math.max(inFlightMax, inFlight)
        return new Promise<Response>((resolve) =>
          held.push(() => {
            inFlight -= 1
            resolve(new Response('success'))
          }),
        )
      }
      const background = cappedWorker(w, holdingFetch)
      try {
        for (let answered = 0; answered < orders.length; answered += 1) {
          await eventually(async () => (held.length > answered ? true : null))
          // Room for a second attempt to start beside the held one, were the URLs separate receivers.
          await new Promise((resolve) => setTimeout(resolve, 100))
          held[answered]!()
        }
        await eventually(async () => {
          const rows = await queued()
          return rows.length === orders.length && rows.every((row) => row.status === 'delivered') ? rows : null
        })
      } finally {
        await background.stop()
      }
      expect(new Set(requested)).toEqual(new Set(urls))
      expect(inFlightMax).toBe(1)
      expect((await queued()).map((row) => row.receiver)).toEqual(orders.map(() => new URL(url).origin))
    })

    it("skips a server at its cap in the claim's SQL, so another server's notification goes ahead", async () => {
      const w = world()
      await deliverAll(w)
      const { url } = w.receiver
      // The same loopback receiver under another origin: another server, as far as the caps go.
      const otherUrl = url.replace('//127.0.0.1:', '//localhost:')
      expect(new URL(otherUrl).origin).not.toBe(new URL(url).origin)
      // More of the held server's notifications due first than a claim reads (twice the free slots).
      const backlog = Array.from({ length: 20 }, (_, n) => `${url}?order=S-${n}`)
      const other = `${otherUrl}?order=S-other`
      await paidTrades(w, [...backlog, other])
      const now = Date.now()
      await dispatchEvents(w.platform.storage, { now, batchSizeMax: 100, fanOuts: [alipayFormat(w).fanOut] })
      const db = w.platform.storage.db as unknown as Kysely<{ alipay_notifications: AlipayNotificationsTable }>
      await db
        .updateTable('alipay_notifications')
        .set({ next_attempt_at: now - 1_000 })
        .where('notify_url', 'in', backlog)
        .execute()
      await db
        .updateTable('alipay_notifications')
        .set({ next_attempt_at: now })
        .where('notify_url', '=', other)
        .execute()

      const held: Array<() => void> = []
      let releasing = false
      const holdingFetch = (input: string | URL | Request) => {
        const target = String(input)
        if (target === other || releasing || !target.startsWith(url)) return Promise.resolve(new Response('success'))
        return new Promise<Response>((resolve) => held.push(() => resolve(new Response('success'))))
      }
      const background = cappedWorker(w, holdingFetch)
      try {
        // Without the skip in SQL, each claim would read only the held server's rows and take none.
        await eventually(async () => {
          const [row] = await notificationsAt(w, [other]).execute()
          return row?.status === 'delivered' ? row : null
        })
        expect(held).toHaveLength(1)
      } finally {
        releasing = true
        for (const release of held) release()
        await background.stop()
      }
    })

    it('gives the notifications still to be delivered their server as receiver when the column arrives', async () => {
      const w = world()
      await deliverAll(w)
      const { url, answers } = w.receiver
      const urls = ['M-1', 'M-2'].map((order) => `${url}/late?order=${order}`)
      await paidTrades(w, urls)
      answers.push('fail')
      await deliverAll(w)
      // The schema as it was before the migration: no receiver column.
      const db = w.platform.storage.db as Kysely<any>
      await db.schema.alterTable('alipay_notifications').dropColumn('receiver').execute()
      await receiverMigration.up(db)
      const rows = await db
        .selectFrom('alipay_notifications')
        .select(['notify_url', 'status', 'receiver'])
        .where('notify_url', 'in', urls)
        .orderBy('status')
        .execute()
      // Which of the two failed depends on the order of their attempts; the finished one stays null.
      expect(rows).toEqual([
        { notify_url: expect.any(String), status: 'delivered', receiver: null },
        { notify_url: expect.any(String), status: 'pending', receiver: new URL(url).origin },
      ])
      expect(new Set(rows.map((row) => row.notify_url))).toEqual(new Set(urls))

      // A row queued by an older process during a rolling upgrade has no receiver: still delivered.
      await db.updateTable('alipay_notifications').set({ receiver: null }).where('notify_url', 'in', urls).execute()
      w.skew = alipayRetryDelaysMs[0]! + 1_000
      try {
        await deliverAll(w)
      } finally {
        w.skew = 0
      }
      const after = await db
        .selectFrom('alipay_notifications')
        .select('status')
        .where('notify_url', 'in', urls)
        .execute()
      expect(after.map((row) => row.status)).toEqual(['delivered', 'delivered'])
    })
  })
})
