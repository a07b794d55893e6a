/**
 * The newcomer's path, end to end on both databases: `baseplate sandbox --json` against the
 * database of a running server, then the SDK with nothing but that JSON: pay by barcode,
 * precreate and pay on the page, query, refund in parts, and settle.
 */
import crypto from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseConfig } from '../src/config.js'
import { openPlatform, type Platform } from '../src/server/platform.js'
import { createClient, type BaseplateClient } from '../sdk/src/index.js'
import { cliEnvironment, runCli } from './cli-harness.js'
import { forEachDialect, freshTarget, testSecretKey, type TestTarget } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'

forEachDialect('sandbox to refunded payment through the SDK', (dialect) => {
  let target: TestTarget
  let platform: Platform
  let sandbox: any
  let client: BaseplateClient

  beforeAll(async () => {
    target = await freshTarget(dialect)
    const config = parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', PORT: '0', BASEPLATE_SECRET_KEY: testSecretKey })
    platform = await openPlatform(config, { target: target.target })
    const endpoint = await platform.app.listen({ port: 0, host: '127.0.0.1' })
    const first = await runCli(['sandbox', '--json'], {
      ...cliEnvironment(target.target),
      BASEPLATE_PUBLIC_URL: endpoint,
    })
    expect(first.err).toBe('')
    const again = await runCli(['sandbox', '--json'], {
      ...cliEnvironment(target.target),
      BASEPLATE_PUBLIC_URL: endpoint,
    })
    sandbox = JSON.parse(again.out)
    // Running it twice reuses the organisations, app and buyer, with a fresh key.
    expect(sandbox.appId).toBe(JSON.parse(first.out).appId)
    expect(sandbox.buyer.id).toBe(JSON.parse(first.out).buyer.id)
    client = createClient({
      endpoint: sandbox.endpoint,
      appId: sandbox.appId,
      privateKey: sandbox.appPrivateKey,
      platformPublicKey: sandbox.platformPublicKey,
      appAuthToken: sandbox.appAuthToken,
    })
  })
  afterAll(async () => {
    await platform?.close()
    await target?.dispose()
  })

  it('prints everything a newcomer needs', () => {
    expect(sandbox).toMatchObject({
      endpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      appId: expect.stringMatching(/^app_/),
      appAuthToken: expect.any(String),
      merchant: { id: expect.stringMatching(/^org_/) },
      buyer: {
        id: expect.stringMatching(/^cons_/),
        paymentCode: expect.stringMatching(/^28\d{16}$/),
        balance: 100_000,
      },
    })
    expect(crypto.createPrivateKey(sandbox.appPrivateKey).asymmetricKeyType).toBe('rsa')
  })

  it('pays, queries, refunds in parts and settles', async () => {
    const paid = await client.post('/v1/trades/pay', {
      body: {
        out_trade_no: 'E2E-1',
        total_amount: 8_800,
        subject: '咖啡 Coffee',
        auth_code: sandbox.buyer.paymentCode,
      },
    })
    expect(paid).toMatchObject({ status: 'paid', merchant_id: sandbox.merchant.id, fee_amount: 53 })
    const precreated = await client.post('/v1/trades/precreate', {
      body: { out_trade_no: 'E2E-2', total_amount: 1_500, subject: '停车 Parking' },
    })
    // The server was started on port 0, so its configured public URL has no real port.
    const page = await fetch(new URL(new URL(precreated.qr_code!).pathname, sandbox.endpoint), {
      method: 'POST',
      body: new URLSearchParams({ code: sandbox.buyer.paymentCode }),
    })
    expect(page.status).toBe(200)
    const queried = await client.get('/v1/trades/{trade_id}', { params: { trade_id: precreated.id } })
    expect(queried.status).toBe('paid')
    await client.post('/v1/trades/{trade_id}/refunds', {
      params: { trade_id: paid.id },
      body: { out_request_no: 'E2E-R1', amount: 800 },
    })
    const second = await client.post('/v1/trades/{trade_id}/refunds', {
      params: { trade_id: paid.id },
      body: { out_request_no: 'E2E-R2', amount: 1_000 },
    })
    expect(second.trade_refunded_amount).toBe(1_800)
    const balances = await client.get('/v1/balances')
    expect(balances).toBeTruthy()
    const settlement = await client.post('/v1/settlements')
    // The default delay is a day: nothing is due yet, and that is the right answer.
    expect(settlement.settled_trades).toBe(0)
    await expectLedgerConsistent(platform.storage.db)
  })
})
