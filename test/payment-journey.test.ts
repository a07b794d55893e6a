/**
 * Journeys 1–3 of the design brief, end to end over real HTTP on both databases, through the
 * SDK: an ISV signs up and makes a sandbox app; a merchant consents on the platform's page; the
 * app exchanges the code, funds a test consumer, takes a barcode payment, a QR payment and a
 * payment for a known buyer, queries, refunds in parts, settles after the delay, and receives
 * every event as a signed webhook on its endpoint.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseConfig } from '../src/config.js'
import { openPlatform, type Platform } from '../src/server/platform.js'
import { createClient, verifyWebhook, type BaseplateClient } from '../sdk/src/index.js'
import { createAppWithKey, json, rsaKeyPair, session, signUp, type Tenant, type TestApp } from './fixtures.js'
import { forEachDialect, freshTarget, manualClock, testSecretKey, type TestTarget } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'

const callback = 'https://isv.example.com/callback'
const formType = { 'content-type': 'application/x-www-form-urlencoded' }

function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)
  expect(match, `hidden field ${name}`).not.toBeNull()
  return match![1]!.replace(/&amp;/g, '&')
}

async function startReceiver() {
  const bodies: Array<{ headers: http.IncomingHttpHeaders; body: string }> = []
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      bodies.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') })
      response.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()))
  return { bodies, url, close }
}

forEachDialect('the ISV journey through the SDK', (dialect) => {
  const clock = manualClock(Date.now())
  let target: TestTarget
  let platform: Platform
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  let client: BaseplateClient
  let isv: Tenant
  let merchant: Tenant
  let testApp: TestApp
  let platformKey: string

  beforeAll(async () => {
    target = await freshTarget(dialect)
    receiver = await startReceiver()
    platform = await openPlatform(parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_SECRET_KEY: testSecretKey }), {
      target: target.target,
      clock,
      workers: { notifications: { pollIntervalMs: 50 } },
    })
    const endpoint = await platform.app.listen({ port: 0, host: '127.0.0.1' })
    const app = platform.app
    isv = await signUp(app, 'isv')
    merchant = await signUp(app, 'merchant', 'education')
    testApp = await createAppWithKey(app, isv, rsaKeyPair())
    const base = `/v1/organizations/${isv.organizationId}/apps/${testApp.appId}`
    expect(
      (await session(app, 'PUT', `${base}/redirect-uris`, isv.token, { redirect_uris: [callback] })).statusCode,
    ).toBe(200)
    const hook = await session(app, 'POST', `${base}/webhook-endpoints`, isv.token, { url: receiver.url })
    expect(hook.statusCode, hook.body).toBe(201)
    platformKey = json(await app.inject({ method: 'GET', url: '/v1/platform-keys/sandbox' })).public_key_pem
    client = createClient({
      endpoint,
      appId: testApp.appId,
      privateKey: testApp.keyPair.privateKeyPem,
      platformPublicKey: platformKey,
      now: clock.now,
    })
  })
  afterAll(async () => {
    await platform?.close()
    await receiver?.close()
    await target?.dispose()
  })

  it('authorises, pays three ways, refunds, settles, and notifies', async () => {
    // The merchant consents on the platform's page; the app gets a code on its redirect URI.
    const query = {
      app_id: testApp.appId,
      redirect_uri: callback,
      scope: 'payment:trade,payment:refund,' + 'payment:settlement,payment:sandbox,ledger:read',
      state: 'journey',
    }
    const page = await platform.app.inject({
      method: 'GET',
      url: '/oauth/authorize',
      query,
      cookies: { bp_session: merchant.token },
    })
    expect(page.statusCode, page.body).toBe(200)
    const approved = await platform.app.inject({
      method: 'POST',
      url: '/oauth/authorize',
      cookies: { bp_session: merchant.token },
      headers: formType,
      payload: new URLSearchParams({
        ...query,
        csrf_token: hidden(page.body, 'csrf_token'),
        merchant_id: merchant.organizationId,
        decision: 'approve',
      }).toString(),
    })
    expect(approved.statusCode, approved.body).toBe(302)
    const redirect = new URL(String(approved.headers.location))
    expect(redirect.searchParams.get('state')).toBe('journey')
    const grant = await client.post('/v1/oauth/token', {
      body: { grant_type: 'authorization_code', code: redirect.searchParams.get('app_auth_code')! },
    })
    expect(grant.merchant_id).toBe(merchant.organizationId)
    const token = { appAuthToken: grant.app_auth_token }

    // A funded sandbox buyer and the code their wallet shows.
    const buyer = await client.post('/v1/sandbox/consumers', { ...token, body: { display_name: '李雷' } })
    await client.post('/v1/sandbox/consumers/{consumer_id}/top-ups', {
      ...token,
      params: { consumer_id: buyer.id },
      body: { amount: 50_000 },
      idempotencyKey: 'journey-top-up',
    })
    const code = async () =>
      (
        await client.post('/v1/sandbox/consumers/{consumer_id}/payment-codes', {
          ...token,
          params: { consumer_id: buyer.id },
          body: {},
        })
      ).code

    const barcode = await client.post('/v1/trades/pay', {
      ...token,
      body: { out_trade_no: 'J-1', total_amount: 12_000, subject: '学费 Tuition', auth_code: await code() },
    })
    expect(barcode).toMatchObject({ status: 'paid', fee_amount: 72, fee_rate_bps: 60, fee_policy_version: 0 })

    const qr = await client.post('/v1/trades/precreate', {
      ...token,
      body: { out_trade_no: 'J-2', total_amount: 3_000, subject: '教材 Books' },
    })
    const paidPage = await platform.app.inject({
      method: 'POST',
      url: new URL(qr.qr_code!).pathname,
      headers: formType,
      payload: `code=${await code()}`,
    })
    expect(paidPage.statusCode, paidPage.body).toBe(200)

    const forBuyer = await client.post('/v1/trades', {
      ...token,
      body: { out_trade_no: 'J-3', total_amount: 2_000, subject: '报名费 Fee', buyer_id: buyer.id },
    })
    await platform.app.inject({
      method: 'POST',
      url: new URL(forBuyer.qr_code!).pathname,
      headers: formType,
      payload: `code=${await code()}`,
    })
    for (const id of [qr.id, forBuyer.id]) {
      expect((await client.get('/v1/trades/{trade_id}', { ...token, params: { trade_id: id } })).status).toBe('paid')
    }

    await client.post('/v1/trades/{trade_id}/refunds', {
      ...token,
      params: { trade_id: barcode.id },
      body: { out_request_no: 'J-1-R1', amount: 2_000 },
    })
    const second = await client.post('/v1/trades/{trade_id}/refunds', {
      ...token,
      params: { trade_id: barcode.id },
      body: { out_request_no: 'J-1-R2', amount: 1_000 },
    })
    expect(second.trade_refunded_amount).toBe(3_000)
    expect(
      (await client.get('/v1/sandbox/consumers/{consumer_id}', { ...token, params: { consumer_id: buyer.id } }))
        .balance,
    ).toBe(50_000 - 12_000 - 3_000 - 2_000 + 3_000)

    clock.advance(86_400_000 + 1_000)
    const settled = await client.post('/v1/settlements', token)
    expect(settled.settled_trades).toBe(3)
    const balances = await client.get('/v1/balances', token)
    // 17,000 paid, 3,000 refunded; fees 72 + 18 + 12 = 102, of which 18 refunded: 14,000 − 84.
    expect(balances).toMatchObject({ pending_amount: 0, available_amount: 13_916 })
    await expectLedgerConsistent(platform.storage.db)

    // Every event reached the app's endpoint, signed with the sandbox platform key.
    const wanted = ['authorization.granted', 'payment.trade.paid', 'payment.refund.succeeded', 'payment.trade.settled']
    const deadline = Date.now() + 15_000
    let types: string[] = []
    while (Date.now() < deadline) {
      types = receiver.bodies.map(
        (hit) =>
          verifyWebhook({
            headers: hit.headers,
            body: hit.body,
            publicKey: platformKey,
            toleranceS: 3 * 86_400,
            now: clock.now,
          }).type,
      )
      if (
        wanted.every((type) => types.includes(type)) &&
        types.filter((t) => t === 'payment.trade.settled').length === 3
      ) {
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    for (const type of wanted) expect(types, `received ${type}`).toContain(type)
    expect(types.filter((type) => type === 'payment.trade.paid')).toHaveLength(3)
  })
})
