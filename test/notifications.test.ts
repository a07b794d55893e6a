/**
 * Webhooks end to end: stores.created events leave through the outbox, are fanned out to
 * the endpoints of the organisation's apps and POSTed to a real local receiver, signed;
 * the receiver verifies every body with the SDK's verifyWebhook and the key served at
 * /v1/platform-keys/{environment}. A manual clock walks the retry schedule (about three
 * days) in milliseconds.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { signWebhook, verifyWebhook, WebhookVerificationError, type WebhookEvent } from '../sdk/src/webhooks.js'
import { parseConfig } from '../src/config.js'
import { deliverDue } from '../src/platform/notifications/deliverer.js'
import { dispatchEvents } from '../src/platform/notifications/dispatcher.js'
import { DeliverySlots } from '../src/platform/notifications/slots.js'
import { leaseMarginMsDefault } from '../src/platform/notifications/worker.js'
import {
  attemptsMaxDefault,
  deliveryTimeoutMsDefault,
  retryDelaysMsDefault,
  startNotificationWorker,
  type NotificationFormat,
  type NotificationTables,
  type NotificationWorker,
  type NotificationWorkerSettings,
} from '../src/platform/notifications/index.js'
import { openPlatform, type Platform } from '../src/server/platform.js'
import { openStorage, type DialectName, type Storage } from '../src/storage/database.js'
import {
  createAppWithKey,
  ed25519KeyPair,
  eventually,
  json,
  session,
  signed,
  signUp,
  testPassword,
  type Tenant,
  type TestApp,
} from './fixtures.js'
import { forEachDialect, freshTarget, manualClock, testSecretKey, useTestPlatform, type TestTarget } from './harness.js'

// ---------------------------------------------------------------------------------------------
// A local receiver: node:http on 127.0.0.1, port 0. `respond` decides each answer: a status,
// or 'drop' to cut the connection without a response (the receiver is down).

interface Hit {
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  readonly deliveryId: string
  readonly attempt: number
  status: number | 'drop'
}

type Respond = (hit: Hit) => number | 'drop' | Promise<number | 'drop'>

interface Receiver {
  readonly hits: Hit[]
  url(path: string): string
  respond: Respond
  close(): Promise<void>
}

async function startReceiver(respond: Respond = () => 204): Promise<Receiver> {
  const hits: Hit[] = []
  const receiver: Receiver = { hits, respond, url: () => '', close: async () => undefined }
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const hit: Hit = {
        path: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        deliveryId: String(request.headers['baseplate-delivery-id']),
        attempt: Number(request.headers['baseplate-delivery-attempt']),
        status: 0,
      }
      hits.push(hit)
      void Promise.resolve(receiver.respond(hit)).then((status) => {
        hit.status = status
        if (status === 'drop') request.socket.destroy()
        else response.writeHead(status).end(status >= 300 ? 'receiver says no' : '')
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  receiver.url = (path) => `http://127.0.0.1:${port}${path}`
  receiver.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return receiver
}

/** A seeded generator, so a failing run can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Clock = ReturnType<typeof manualClock>

const notificationDb = (storage: Storage) => storage.db as unknown as Kysely<NotificationTables>

/**
 * Steps the workers until nothing is left to do: while a step finds work it steps again;
 * when none does, the clock jumps to the next due attempt. Returns how many jumps it made.
 */
async function drain(
  storage: Storage,
  workers: readonly NotificationWorker[],
  clock: Clock,
  stepsMax = 2000,
): Promise<number> {
  let jumps = 0
  for (let step = 0; step < stepsMax; step += 1) {
    const handled = await Promise.all(workers.map((worker) => worker.runOnce()))
    if (handled.some((count) => count > 0)) continue
    const next = await notificationDb(storage)
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.min('next_attempt_at').as('next'))
      .where('status', 'in', ['pending', 'delivering'])
      .executeTakeFirst()
    if (next?.next === null || next?.next === undefined) return jumps
    clock.set(Math.max(clock.now(), Number(next.next)))
    jumps += 1
  }
  throw new Error(`not drained after ${stepsMax} steps`)
}

// ---------------------------------------------------------------------------------------------
// Console and API helpers.

const appBase = (testApp: TestApp) => `/v1/organizations/${testApp.tenant.organizationId}/apps/${testApp.appId}`

async function createEndpoint(platform: Platform, testApp: TestApp, url: string): Promise<string> {
  const response = await session(platform.app, 'POST', `${appBase(testApp)}/webhook-endpoints`, testApp.tenant.token, {
    url,
  })
  expect(response.statusCode, response.body).toBe(201)
  return json(response).id as string
}

async function createStore(platform: Platform, testApp: TestApp, outStoreNo: string, now: number) {
  const response = await signed(
    platform.app,
    testApp,
    {
      method: 'POST',
      url: '/v1/stores',
      idempotencyKey: `store-${outStoreNo}`,
      body: { out_store_no: outStoreNo, name: `店 ${outStoreNo}`, address: '上海市静安区' },
    },
    now,
  )
  expect(response.statusCode, response.body).toBe(201)
  return json(response) as { id: string }
}

async function deliveryLog(platform: Platform, testApp: TestApp, query = '') {
  const response = await session(
    platform.app,
    'GET',
    `${appBase(testApp)}/webhook-deliveries?limit=100${query}`,
    testApp.tenant.token,
  )
  expect(response.statusCode, response.body).toBe(200)
  return json(response).data as Array<Record<string, any>>
}

async function platformKeyPem(platform: Platform, environment: 'sandbox' | 'live'): Promise<string> {
  return json(await platform.app.inject({ method: 'GET', url: `/v1/platform-keys/${environment}` })).public_key_pem
}

/** Verifies a received webhook as a receiver would, at the clock's time. */
function verified(hit: Hit, publicKey: string, now: () => number = Date.now): WebhookEvent<any> {
  return verifyWebhook({ headers: hit.headers, body: hit.body, publicKey, toleranceS: 300, now })
}

async function merchantApp(
  platform: Platform,
  environment: 'sandbox' | 'live' = 'sandbox',
  tenant?: Tenant,
): Promise<TestApp> {
  return createAppWithKey(
    platform.app,
    tenant ?? (await signUp(platform.app, 'merchant')),
    ed25519KeyPair(),
    environment,
  )
}

// ---------------------------------------------------------------------------------------------

describe('verifyWebhook', () => {
  const pair = crypto.generateKeyPairSync('ed25519')
  const publicKey = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const nowMs = Date.UTC(2026, 10, 25, 12, 0, 0)
  const body =
    '{"id":"evt_1","type":"webhook.test","created_at":"2026-11-25T12:00:00.000Z","environment":"sandbox",' +
    '"data":{"n":1}}'
  const sign = (id = 'evt_1', timestampS = nowMs / 1000, privateKey = pair.privateKey) => ({
    'webhook-id': id,
    'webhook-timestamp': String(timestampS),
    'webhook-signature': signWebhook({ id, timestampS, body, privateKey }),
  })
  const verify = (headers: Record<string, string> | Headers, text: string | Uint8Array = body, key = publicKey) =>
    verifyWebhook({ headers, body: text, publicKey: key, toleranceS: 300, now: () => nowMs })
  const refusal = (run: () => unknown): string => {
    try {
      run()
    } catch (error) {
      if (error instanceof WebhookVerificationError) return error.code
      throw error
    }
    return 'accepted'
  }

  it('accepts node headers, fetch Headers, raw bytes and a list of signatures', () => {
    expect(verify(sign())).toMatchObject({ id: 'evt_1', type: 'webhook.test', data: { n: 1 } })
    expect(verify(new Headers(sign()), new TextEncoder().encode(body)).id).toBe('evt_1')
    // During a key rotation the header may carry several signatures, and other schemes.
    const byOtherKey = sign('evt_1', nowMs / 1000, crypto.generateKeyPairSync('ed25519').privateKey)
    const headers = sign()
    const several = {
      ...headers,
      'webhook-signature': `v1,c2VjcmV0 ${byOtherKey['webhook-signature']} ${headers['webhook-signature']}`,
    }
    expect(verify(several).id).toBe('evt_1')
  })

  it('refuses what it cannot trust, with a code that says why', () => {
    const headers = sign()
    const nowS = nowMs / 1000
    expect(refusal(() => verify(headers, body.replace('"n":1', '"n":2')))).toBe('SDK_WEBHOOK_SIGNATURE_INVALID')
    expect(refusal(() => verify({ ...headers, 'webhook-id': 'evt_2' }))).toBe('SDK_WEBHOOK_SIGNATURE_INVALID')
    const otherKey = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' })
    expect(refusal(() => verify(headers, body, otherKey.toString()))).toBe('SDK_WEBHOOK_SIGNATURE_INVALID')
    const hmacOnly = { ...headers, 'webhook-signature': 'v1,c2VjcmV0' }
    expect(refusal(() => verify(hmacOnly))).toBe('SDK_WEBHOOK_SIGNATURE_INVALID')
    expect(refusal(() => verify(sign('evt_1', nowS - 301)))).toBe('SDK_WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE')
    expect(refusal(() => verify(sign('evt_1', nowS + 301)))).toBe('SDK_WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE')
    expect(refusal(() => verify(sign('evt_1', nowS - 300)))).toBe('accepted')
    const { 'webhook-signature': _signature, ...unsigned } = headers
    expect(refusal(() => verify(unsigned))).toBe('SDK_WEBHOOK_HEADERS_MISSING')
    // Validly signed, but the body names another event: never act on it.
    expect(refusal(() => verify(sign('evt_2')))).toBe('SDK_WEBHOOK_BODY_MALFORMED')
  })
})

forEachDialect("webhooks: delivery by the platform's own worker", (dialect) => {
  const bp = useTestPlatform(dialect, { workers: { notifications: { pollIntervalMs: 20 } } })
  let receiver: Receiver
  beforeAll(async () => {
    receiver = await startReceiver()
  })
  afterAll(async () => receiver.close())

  it("POSTs stores.created to the app that made the store only, signed with its environment's key", async () => {
    const sandboxApp = await merchantApp(bp())
    const liveApp = await merchantApp(bp(), 'live', sandboxApp.tenant)
    const otherApp = await merchantApp(bp())
    await createEndpoint(bp(), sandboxApp, receiver.url('/sandbox'))
    // A live endpoint needs https and a DNS name; .invalid never resolves, so its attempt fails.
    const liveEndpoint = await createEndpoint(bp(), liveApp, 'https://receiver.invalid/live')
    await createEndpoint(bp(), otherApp, receiver.url('/other'))

    const store = await createStore(bp(), sandboxApp, 'W-1', Date.now())
    // The worker runs on its own: wait until it has recorded both outcomes.
    const settled = await eventually(async () => {
      const [sandbox] = await deliveryLog(bp(), sandboxApp)
      return sandbox?.status === 'delivered' ? { sandbox } : null
    })
    const hit = receiver.hits.find((candidate) => candidate.path === '/sandbox')
    expect(hit, 'the sandbox endpoint received the event').toBeDefined()
    const event = verified(hit!, await platformKeyPem(bp(), 'sandbox'))
    expect(event).toMatchObject({ type: 'stores.created', environment: 'sandbox', data: { id: store.id } })
    expect(Object.keys(event)).toEqual(['id', 'type', 'created_at', 'environment', 'data'])
    expect(hit!.headers['webhook-id']).toBe(event.id)
    expect(hit!.headers['webhook-signature']).toMatch(/^v1a,[A-Za-z0-9+/]+={0,2}$/)
    expect(hit!.headers['content-type']).toBe('application/json')
    // The live key does not verify a sandbox webhook: the environments' keys differ.
    const liveKey = await platformKeyPem(bp(), 'live')
    expect(() => verified(hit!, liveKey)).toThrow(WebhookVerificationError)
    // The outbox row names the same id, and another merchant's endpoint got nothing.
    const outbox = await notificationDb(bp().storage)
      .selectFrom('outbox_events')
      .selectAll()
      .where('id', '=', event.id)
      .executeTakeFirstOrThrow()
    expect(JSON.parse(outbox.payload).id).toBe(store.id)
    expect(outbox.dispatched_at).not.toBeNull()
    expect(receiver.hits.filter((candidate) => candidate.path === '/other')).toHaveLength(0)

    expect(settled.sandbox).toMatchObject({
      event_id: event.id,
      event_type: 'stores.created',
      status: 'delivered',
      attempts: 1,
      last_status_code: 204,
      next_attempt_at: null,
      last_error: null,
    })
    // Sandbox and live never mix: the merchant's live app hears nothing of a sandbox store.
    expect(await deliveryLog(bp(), liveApp)).toEqual([])
    expect(liveEndpoint).toMatch(/^we_/)
  })
})

forEachDialect('webhooks: retries on a manual clock', (dialect) => {
  const clock = manualClock()
  // Sessions must outlive the days the clock is moved through.
  const bp = useTestPlatform(dialect, { clock, config: { BASEPLATE_SESSION_TTL_S: String(30 * 24 * 3600) } })
  let receiver: Receiver
  let worker: NotificationWorker
  let sandboxKey: string
  beforeAll(async () => {
    receiver = await startReceiver()
    worker = startNotificationWorker({
      storage: bp().storage,
      platformKeys: bp().platformKeys,
      clock,
      background: false,
      random: seeded(7),
    })
    sandboxKey = await platformKeyPem(bp(), 'sandbox')
  })
  afterAll(async () => receiver.close())
  const hitsOf = (path: string) => receiver.hits.filter((hit) => hit.path === path)

  it('delivers every event through a flaky receiver that is also down for hours', async () => {
    const testApp = await merchantApp(bp())
    await createEndpoint(bp(), testApp, receiver.url('/flaky'))
    const start = clock.now()
    const random = seeded(42)
    receiver.respond = (hit) => {
      if (hit.path !== '/flaky') return 204
      const elapsed = clock.now() - start
      if (elapsed >= 2 * 60_000 && elapsed < 3 * 3600_000) return 'drop' // down from 2 min to 3 h
      return random() < 0.3 ? 503 : 204
    }
    const stores: string[] = []
    for (let n = 0; n < 12; n += 1) stores.push((await createStore(bp(), testApp, `F-${n}`, clock.now())).id)
    // Verify each body at the moment it arrives, as a receiver with a synchronised clock does.
    const verifiedAtArrival = new Map<Hit, WebhookEvent<any> | Error>()
    const respond = receiver.respond
    receiver.respond = (hit) => {
      try {
        verifiedAtArrival.set(hit, verified(hit, sandboxKey, clock.now))
      } catch (error) {
        verifiedAtArrival.set(hit, error as Error)
        return 400
      }
      return respond(hit)
    }
    const jumps = await drain(bp().storage, [worker], clock)
    expect(jumps).toBeGreaterThan(0)

    const log = await deliveryLog(bp(), testApp)
    expect(log).toHaveLength(stores.length)
    expect(log.every((delivery) => delivery.status === 'delivered')).toBe(true)
    const hits = hitsOf('/flaky')
    expect(verifiedAtArrival.size).toBe(hits.length)
    expect([...verifiedAtArrival.values()].filter((result) => result instanceof Error)).toEqual([])
    for (const delivery of log) {
      const mine = hits.filter((hit) => hit.deliveryId === delivery.id)
      // Attempts are numbered 1..n, each made once; only the last one was acknowledged.
      expect(mine.map((hit) => hit.attempt)).toEqual(Array.from({ length: delivery.attempts }, (_, i) => i + 1))
      expect(mine.filter((hit) => hit.status === 204)).toHaveLength(1)
      expect(mine.at(-1)!.status).toBe(204)
      // Every attempt carries the same event id and the same bytes; only the timestamp moves.
      expect(new Set(mine.map((hit) => hit.headers['webhook-id']))).toEqual(new Set([delivery.event_id]))
      expect(new Set(mine.map((hit) => hit.body)).size).toBe(1)
    }
    const acknowledged = hits
      .filter((hit) => hit.status === 204)
      .map((hit) => (verifiedAtArrival.get(hit) as WebhookEvent<{ id: string }>).data.id)
    expect(new Set(acknowledged)).toEqual(new Set(stores))
    expect(hits.some((hit) => hit.status === 'drop')).toBe(true)
    expect(hits.some((hit) => hit.status === 503)).toBe(true)
    expect(log.some((delivery) => delivery.attempts >= 4)).toBe(true) // waited out the 3 h outage
  })

  it('gives up after the whole schedule, about three days, then redelivers on request', async () => {
    const testApp = await merchantApp(bp())
    await createEndpoint(bp(), testApp, receiver.url('/down'))
    receiver.respond = (hit) => (hit.path === '/down' ? 500 : 204)
    await createStore(bp(), testApp, 'D-1', clock.now())
    await drain(bp().storage, [worker], clock)

    const hits = hitsOf('/down')
    expect(hits).toHaveLength(attemptsMaxDefault)
    const [dead] = await deliveryLog(bp(), testApp)
    expect(dead).toMatchObject({
      status: 'dead',
      attempts: attemptsMaxDefault,
      last_status_code: 500,
      next_attempt_at: null,
      delivered_at: null,
      last_error: 'HTTP 500: receiver says no',
    })
    const spanMs = Date.parse(dead!.last_attempt_at) - Date.parse(dead!.created_at)
    const scheduleMs = retryDelaysMsDefault.reduce((sum, delay) => sum + delay, 0)
    expect(spanMs).toBeGreaterThanOrEqual(scheduleMs)
    expect(spanMs).toBeLessThanOrEqual(scheduleMs * 1.1 + 1000)
    expect(spanMs / 3600_000).toBeGreaterThan(70) // about three days
    const gaps = hits
      .slice(1)
      .map((hit, i) => Number(hit.headers['webhook-timestamp']) - Number(hits[i]!.headers['webhook-timestamp']))
    gaps.forEach((gapS, i) => {
      expect(gapS * 1000).toBeGreaterThanOrEqual(retryDelaysMsDefault[i]! - 1000)
      expect(gapS * 1000).toBeLessThanOrEqual(retryDelaysMsDefault[i]! * 1.1 + 1000)
    })

    // The receiver is fixed; a redelivery starts over and arrives with the same event id.
    receiver.respond = () => 200
    const redelivered = await session(
      bp().app,
      'POST',
      `${appBase(testApp)}/webhook-deliveries/${dead!.id}/redeliver`,
      testApp.tenant.token,
    )
    expect(redelivered.statusCode, redelivered.body).toBe(202)
    expect(json(redelivered)).toMatchObject({
      status: 'pending',
      attempts: 0,
      next_attempt_at: new Date(clock.now()).toISOString(),
    })
    await drain(bp().storage, [worker], clock)
    expect(hitsOf('/down')).toHaveLength(attemptsMaxDefault + 1)
    const last = hitsOf('/down').at(-1)!
    expect(verified(last, sandboxKey, clock.now).id).toBe(dead!.event_id)
    expect(last.attempt).toBe(1)
    const [delivered] = await deliveryLog(bp(), testApp)
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: 200 })

    // A delivered delivery can be sent again too.
    const again = await session(
      bp().app,
      'POST',
      `${appBase(testApp)}/webhook-deliveries/${dead!.id}/redeliver`,
      testApp.tenant.token,
    )
    expect(again.statusCode, again.body).toBe(202)
    await drain(bp().storage, [worker], clock)
    expect(hitsOf('/down')).toHaveLength(attemptsMaxDefault + 2)
    expect((await deliveryLog(bp(), testApp))[0]).toMatchObject({ status: 'delivered', attempts: 1 })
  })

  it('sends a webhook.test event to the one endpoint asked for', async () => {
    const testApp = await merchantApp(bp())
    const target = await createEndpoint(bp(), testApp, receiver.url('/test-target'))
    await createEndpoint(bp(), testApp, receiver.url('/test-bystander'))
    receiver.respond = () => 204
    const sent = await session(
      bp().app,
      'POST',
      `${appBase(testApp)}/webhook-endpoints/${target}/test`,
      testApp.tenant.token,
    )
    expect(sent.statusCode, sent.body).toBe(202)
    expect(json(sent)).toMatchObject({ endpoint_id: target, event_type: 'webhook.test', status: 'pending' })
    await drain(bp().storage, [worker], clock)
    expect(hitsOf('/test-bystander')).toHaveLength(0)
    const [hit] = hitsOf('/test-target')
    const event = verified(hit!, sandboxKey, clock.now)
    expect(event).toMatchObject({
      id: json(sent).event_id,
      type: 'webhook.test',
      environment: 'sandbox',
      data: { endpoint_id: target },
    })
    expect((await deliveryLog(bp(), testApp, `&endpoint_id=${target}`))[0]).toMatchObject({ status: 'delivered' })
  })

  it('claims again a delivery whose worker died, and the late worker cannot overwrite the outcome', async () => {
    const testApp = await merchantApp(bp())
    await createEndpoint(bp(), testApp, receiver.url('/lease'))
    receiver.respond = () => 204
    // A worker whose POST never returns, until the test lets it: a process stalled or gone.
    const stall = { release: (_response: Response) => undefined as void, called: () => undefined as void }
    const fetchCalled = new Promise<void>((resolve) => {
      stall.called = resolve
    })
    const platformKeys = bp().platformKeys
    const stalledFetch = () => {
      stall.called()
      return new Promise<Response>((resolve) => {
        stall.release = resolve
      })
    }
    const stuck = startNotificationWorker({
      storage: bp().storage,
      platformKeys,
      clock,
      background: false,
      fetch: stalledFetch,
    })
    await createStore(bp(), testApp, 'L-1', clock.now())
    const stuckStep = stuck.runOnce()
    await fetchCalled
    const [claimed] = await deliveryLog(bp(), testApp)
    expect(claimed).toMatchObject({ status: 'delivering', attempts: 1 })
    // Before the lease ends nobody else takes it; after it, the next worker does.
    expect(await worker.runOnce()).toBe(0)
    clock.set(Date.parse(claimed!.next_attempt_at))
    expect(await worker.runOnce()).toBe(1)
    const [delivered] = await deliveryLog(bp(), testApp)
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 2, last_status_code: 204 })
    stall.release(new Response(null, { status: 202 }))
    await stuckStep
    expect((await deliveryLog(bp(), testApp))[0]).toMatchObject({
      status: 'delivered',
      attempts: 2,
      last_status_code: 204,
    })
    expect(hitsOf('/lease').map((hit) => hit.attempt)).toEqual([2])
  })

  it('keeps fanning out, and delivering another format, while a webhook receiver hangs', async () => {
    while ((await worker.runOnce()) > 0) {}
    const testApp = await merchantApp(bp())
    await createEndpoint(bp(), testApp, receiver.url('/hang'))
    // Every POST hangs until the test lets it go: a receiver that accepts and never answers.
    const hanging: ((response: Response) => void)[] = []
    let posted = () => undefined as void
    const firstPost = new Promise<void>((resolve) => {
      posted = resolve
    })
    let releasing = false
    const hangingFetch = () =>
      releasing
        ? Promise.resolve(new Response(null, { status: 204 }))
        : new Promise<Response>((resolve) => {
            hanging.push(resolve)
            posted()
          })
    // Another delivery format that only counts: what it is given to fan out, and its steps.
    const fannedOut: string[] = []
    let formatSteps = 0
    const format: NotificationFormat = {
      name: 'counting',
      fanOut: async (_tx, events) => {
        fannedOut.push(...events.map((event) => event.payload))
      },
      deliverDue: async () => {
        formatSteps += 1
        return 0
      },
    }
    const background = startNotificationWorker({
      storage: bp().storage,
      platformKeys: bp().platformKeys,
      clock,
      fetch: hangingFetch,
      formats: [format],
      pollIntervalMs: 10,
    })
    try {
      await createStore(bp(), testApp, 'H-1', clock.now())
      await firstPost
      const stepsWhenHung = formatSteps
      await createStore(bp(), testApp, 'H-2', clock.now())
      // Before each stage had its own loop, the webhook POST held the fan-out and the other format.
      await eventually(async () =>
        fannedOut.some((payload) => payload.includes('"H-2"')) && formatSteps > stepsWhenHung + 2 ? true : null,
      )
    } finally {
      // Attempts that start from now on (a claim already under way) answer at once, so stop() can end.
      releasing = true
      for (const release of hanging) release(new Response(null, { status: 204 }))
      await background.stop()
    }
    while ((await worker.runOnce()) > 0) {}
  })

  /**
   * A background worker whose polls never come in time (60 s): what fills a slot that frees
   * must be the wake of an attempt settling.
   */
  const startSlowPolling = (
    fetchImpl: (url: string | URL | Request, init?: RequestInit) => Promise<Response>,
    settings: NotificationWorkerSettings & { onError?: (error: unknown) => void },
  ) =>
    startNotificationWorker({
      storage: bp().storage,
      platformKeys: bp().platformKeys,
      clock,
      fetch: fetchImpl as typeof fetch,
      pollIntervalMs: 60_000,
      ...settings,
    })

  it('delivers to other apps while one hangs, within the caps of each receiver and of each app', async () => {
    while ((await worker.runOnce()) > 0) {}
    const slow = await merchantApp(bp())
    const quick = await merchantApp(bp())
    // The slow app's two endpoints accept and never answer until the test lets them go (or the
    // worker gives up); the quick app's endpoint answers at once.
    await createEndpoint(bp(), slow, receiver.url('/slow-1'))
    await createEndpoint(bp(), quick, receiver.url('/quick'))
    const hanging = new Map<string, { path: string; release: (response: Response) => void }>()
    let releasing = false
    const slowAttempted: string[] = []
    const attemptedTwiceAtOnce: string[] = []
    const quickDelivered: string[] = []
    const inFlightMax = { all: 0, '/slow-1': 0, '/slow-2': 0 }
    const inFlightOf = (path: string) => [...hanging.values()].filter((entry) => entry.path === path).length
    const fetchByUrl = (url: string | URL | Request, init?: RequestInit) => {
      const deliveryId = new Headers(init?.headers).get('baseplate-delivery-id')!
      const path = new URL(String(url)).pathname as '/quick' | '/slow-1' | '/slow-2'
      if (path === '/quick') {
        quickDelivered.push(deliveryId)
        return Promise.resolve(new Response(null, { status: 204 }))
      }
      slowAttempted.push(deliveryId)
      if (releasing) return Promise.resolve(new Response(null, { status: 204 }))
      if (hanging.has(deliveryId)) attemptedTwiceAtOnce.push(deliveryId)
      return new Promise<Response>((resolve, reject) => {
        hanging.set(deliveryId, {
          path,
          release: (response) => {
            hanging.delete(deliveryId)
            resolve(response)
          },
        })
        inFlightMax.all = Math.max(inFlightMax.all, hanging.size)
        inFlightMax[path] = Math.max(inFlightMax[path], inFlightOf(path))
        init?.signal?.addEventListener('abort', () => {
          hanging.delete(deliveryId)
          reject(init.signal!.reason)
        })
      })
    }
    const releaseOne = () => [...hanging.values()][0]!.release(new Response(null, { status: 204 }))
    const receiverInFlightMax = 2
    const appInFlightMax = 4
    // Due first, more of /slow-1's deliveries than a claim reads (twice the free slots, rounded
    // up: 16); then /slow-1's and /slow-2's; then the quick app's. Without skipping /slow-1 once at
    // its cap the claims would read only its rows; without skipping the slow app once at its cap,
    // only /slow-2's next; either way the quick deliveries would wait.
    for (let n = 0; n < 20; n += 1) await createStore(bp(), slow, `S-${n}`, clock.now())
    await dispatchEvents(bp().storage, { now: clock.now(), batchSizeMax: 100 })
    clock.advance(500)
    await createEndpoint(bp(), slow, receiver.url('/slow-2'))
    for (let n = 20; n < 40; n += 1) await createStore(bp(), slow, `S-${n}`, clock.now())
    await dispatchEvents(bp().storage, { now: clock.now(), batchSizeMax: 100 })
    clock.advance(500)
    for (const n of [1, 2]) await createStore(bp(), quick, `Q-${n}`, clock.now())
    await dispatchEvents(bp().storage, { now: clock.now(), batchSizeMax: 100 })
    clock.advance(1_000)
    const errors: unknown[] = []
    const background = startSlowPolling(fetchByUrl, {
      deliveriesInFlightMax: 8,
      receiverInFlightMax,
      appInFlightMax,
      // No attempt may time out while the test looks (it would lower /slow-1's limit).
      deliveryTimeoutMs: 120_000,
      onError: (error) => errors.push(error),
    })
    try {
      await eventually(async () => (quickDelivered.length === 2 && hanging.size === appInFlightMax ? true : null))
      // A slot of the slow app that frees is refilled with its next delivery, still within the caps.
      releaseOne()
      await eventually(async () => (slowAttempted.length === appInFlightMax + 1 ? true : null))
      await eventually(async () => (hanging.size === appInFlightMax ? true : null))
      expect(new Set(slowAttempted).size, 'each slow attempt a different delivery').toBe(slowAttempted.length)
      expect((await deliveryLog(bp(), quick)).map((delivery) => delivery.status)).toEqual(['delivered', 'delivered'])
    } finally {
      releasing = true
      for (const entry of [...hanging.values()]) entry.release(new Response(null, { status: 204 }))
      await background.stop()
    }
    expect(errors).toEqual([])
    expect(attemptedTwiceAtOnce).toEqual([])
    expect(inFlightMax).toEqual({ all: appInFlightMax, '/slow-1': receiverInFlightMax, '/slow-2': receiverInFlightMax })
    while ((await worker.runOnce()) > 0) {}
  })

  it('tries an endpoint whose attempts time out one attempt at a time', async () => {
    while ((await worker.runOnce()) > 0) {}
    const testApp = await merchantApp(bp())
    const endpoint = await createEndpoint(bp(), testApp, receiver.url('/timeout'))
    // Accepts and never answers: every attempt ends at the worker's timeout.
    let inFlight = 0
    let timedOut = 0
    const inFlightAtLaterStarts: number[] = []
    const neverAnswers = (_url: string | URL | Request, init?: RequestInit) => {
      if (timedOut > 0) inFlightAtLaterStarts.push(inFlight)
      inFlight += 1
      return new Promise<Response>((_resolve, reject) => {
        init!.signal!.addEventListener('abort', () => {
          inFlight -= 1
          timedOut += 1
          reject(init!.signal!.reason)
        })
      })
    }
    const events = 10
    const receiverInFlightMax = 4
    for (let n = 0; n < events; n += 1) await createStore(bp(), testApp, `T-${n}`, clock.now())
    await dispatchEvents(bp().storage, { now: clock.now(), batchSizeMax: 100 })
    const background = startSlowPolling(neverAnswers, {
      deliveryTimeoutMs: 200,
      deliveriesInFlightMax: 8,
      receiverInFlightMax,
      appInFlightMax: receiverInFlightMax,
    })
    try {
      // The first attempts go out together, up to the cap; once they time out, one at a time.
      await eventually(async () => (timedOut === events ? true : null))
    } finally {
      await background.stop()
    }
    expect(inFlightAtLaterStarts).toEqual(new Array(events - receiverInFlightMax).fill(0))
    const log = await deliveryLog(bp(), testApp)
    expect(log).toHaveLength(events)
    expect(
      log.every((delivery) => delivery.status === 'pending' && delivery.last_error === 'No response within 200 ms'),
    ).toBe(true)
    // Their retries are not for the tests after this one.
    const disabled = await session(
      bp().app,
      'POST',
      `${appBase(testApp)}/webhook-endpoints/${endpoint}/disable`,
      testApp.tenant.token,
    )
    expect(disabled.statusCode).toBe(200)
  })

  it('never claims again a delivery it is attempting, even once its lease has run out', async () => {
    while ((await worker.runOnce()) > 0) {}
    const testApp = await merchantApp(bp())
    await createEndpoint(bp(), testApp, receiver.url('/lapse'))
    for (const n of [1, 2]) await createStore(bp(), testApp, `L-${n}`, clock.now())
    await dispatchEvents(bp().storage, { now: clock.now(), batchSizeMax: 100 })
    const hanging: (() => void)[] = []
    const hangingFetch = () =>
      new Promise<Response>((resolve) => hanging.push(() => resolve(new Response(null, { status: 204 }))))
    const errors: unknown[] = []
    const onError = (error: unknown) => errors.push(error)
    const slots = new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 4, appInFlightMax: 4, onError })
    const leaseMs = deliveryTimeoutMsDefault + leaseMarginMsDefault
    const step = () =>
      deliverDue(bp().storage, {
        now: clock.now(),
        clock,
        fetch: hangingFetch as typeof fetch,
        platformKeys: bp().platformKeys,
        slots,
        deliveryTimeoutMs: deliveryTimeoutMsDefault,
        leaseMs,
        attemptsMax: attemptsMaxDefault,
        retryDelayMs: () => 60_000,
      })
    try {
      expect(await step()).toBe(2)
      await eventually(async () => (hanging.length === 2 ? true : null))
      // Their record stalls past the lease: the rows are due again for any other worker, but
      // this one is still attempting them.
      clock.advance(leaseMs + 1_000)
      expect(await step()).toBe(0)
      expect(slots.inFlight).toBe(2)
    } finally {
      for (const release of hanging) release()
      await slots.drain()
    }
    expect(errors).toEqual([])
    const log = await deliveryLog(bp(), testApp)
    expect(log.map((delivery) => [delivery.status, delivery.attempts])).toEqual([
      ['delivered', 1],
      ['delivered', 1],
    ])
  })

  it('opens no transaction in a step that finds nothing to do, and one in a step that does', async () => {
    while ((await worker.runOnce()) > 0) {}
    const transactions = vi.spyOn(bp().storage.db, 'transaction')
    try {
      expect(await worker.runOnce()).toBe(0)
      expect(transactions).not.toHaveBeenCalled()
      const testApp = await merchantApp(bp())
      await createEndpoint(bp(), testApp, receiver.url('/probe'))
      receiver.respond = () => 204
      await createStore(bp(), testApp, 'P-1', clock.now())
      transactions.mockClear()
      expect(await worker.runOnce()).toBeGreaterThan(0)
      expect(transactions).toHaveBeenCalled()
      expect(hitsOf('/probe')).toHaveLength(1)
    } finally {
      transactions.mockRestore()
    }
  })

  it('stops sending to a disabled endpoint; what waited for it is dead', async () => {
    const testApp = await merchantApp(bp())
    const endpoint = await createEndpoint(bp(), testApp, receiver.url('/disabled'))
    receiver.respond = () => 500
    await createStore(bp(), testApp, 'X-1', clock.now())
    await worker.runOnce()
    const [failed] = await deliveryLog(bp(), testApp)
    expect(failed).toMatchObject({ status: 'pending', attempts: 1 })
    const disabled = await session(
      bp().app,
      'POST',
      `${appBase(testApp)}/webhook-endpoints/${endpoint}/disable`,
      testApp.tenant.token,
    )
    expect(json(disabled)).toMatchObject({ id: endpoint, enabled: false })
    expect((await deliveryLog(bp(), testApp))[0]).toMatchObject({
      status: 'dead',
      last_error: 'The endpoint was disabled',
    })
    await createStore(bp(), testApp, 'X-2', clock.now())
    await drain(bp().storage, [worker], clock)
    expect(await deliveryLog(bp(), testApp)).toHaveLength(1)
    expect(hitsOf('/disabled')).toHaveLength(1)
    for (const url of [`webhook-deliveries/${failed!.id}/redeliver`, `webhook-endpoints/${endpoint}/test`]) {
      const refused = await session(bp().app, 'POST', `${appBase(testApp)}/${url}`, testApp.tenant.token)
      expect(refused.statusCode, url).toBe(409)
      expect(json(refused).code).toBe('WEBHOOK_ENDPOINT_DISABLED')
    }
  })
})

forEachDialect('webhooks: endpoints are tenant-scoped and checked', (dialect) => {
  const bp = useTestPlatform(dialect)
  let owner: TestApp
  let endpoint: string
  let delivery: string
  let intruder: TestApp
  beforeAll(async () => {
    owner = await merchantApp(bp())
    endpoint = await createEndpoint(bp(), owner, 'https://example.com/hooks')
    delivery = json(
      await session(bp().app, 'POST', `${appBase(owner)}/webhook-endpoints/${endpoint}/test`, owner.tenant.token),
    ).id
    intruder = await merchantApp(bp())
  })

  it('answers 404 to another tenant, whatever ids it combines', async () => {
    const mine = appBase(intruder)
    const attempts: Array<[string, string, string]> = [
      ['GET', `${appBase(owner)}/webhook-endpoints`, 'IDENTITY_ORGANIZATION_NOT_FOUND'],
      ['GET', `${appBase(owner)}/webhook-deliveries`, 'IDENTITY_ORGANIZATION_NOT_FOUND'],
      ['POST', `${appBase(owner)}/webhook-endpoints/${endpoint}/disable`, 'IDENTITY_ORGANIZATION_NOT_FOUND'],
      [
        'GET',
        `/v1/organizations/${intruder.tenant.organizationId}/apps/${owner.appId}/webhook-endpoints`,
        'APP_NOT_FOUND',
      ],
      ['POST', `${mine}/webhook-endpoints/${endpoint}/disable`, 'WEBHOOK_ENDPOINT_NOT_FOUND'],
      ['POST', `${mine}/webhook-endpoints/${endpoint}/test`, 'WEBHOOK_ENDPOINT_NOT_FOUND'],
      ['POST', `${mine}/webhook-deliveries/${delivery}/redeliver`, 'WEBHOOK_DELIVERY_NOT_FOUND'],
      ['GET', `${mine}/webhook-deliveries?starting_after=${delivery}`, 'WEBHOOK_DELIVERY_NOT_FOUND'],
    ]
    for (const [method, url, code] of attempts) {
      const response = await session(bp().app, method, url, intruder.tenant.token)
      expect(response.statusCode, `${method} ${url}`).toBe(404)
      expect(json(response).code, `${method} ${url}`).toBe(code)
    }
    expect(await deliveryLog(bp(), intruder)).toEqual([])
    const endpoints = json(await session(bp().app, 'GET', `${appBase(owner)}/webhook-endpoints`, owner.tenant.token))
    expect(endpoints.data).toMatchObject([{ id: endpoint, enabled: true }])
  })

  it('lets viewers do nothing and refuses bad URLs', async () => {
    const viewer = await signUp(bp().app, 'isv')
    const added = await session(
      bp().app,
      'POST',
      `/v1/organizations/${owner.tenant.organizationId}/members`,
      owner.tenant.token,
      { email: viewer.email, role: 'viewer' },
    )
    expect(added.statusCode, added.body).toBe(201)
    const viewerLogin = json(
      await bp().app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: viewer.email, password: testPassword },
      }),
    ).token
    const forbidden = await session(bp().app, 'GET', `${appBase(owner)}/webhook-deliveries`, viewerLogin)
    expect(forbidden.statusCode).toBe(403)

    const live = await merchantApp(bp(), 'live', owner.tenant)
    const cases: Array<[TestApp, string]> = [
      [owner, 'ftp://example.com/hooks'],
      [owner, 'not a url'],
      [owner, 'https://user:secret@example.com/'],
      [owner, 'https://example.com/hooks#section'],
      [live, 'http://example.com/hooks'],
      [live, 'https://127.0.0.1/hooks'],
      [live, 'https://[::1]:8443/hooks'],
      [live, 'https://localhost/hooks'],
    ]
    for (const [testApp, url] of cases) {
      const response = await session(bp().app, 'POST', `${appBase(testApp)}/webhook-endpoints`, owner.tenant.token, {
        url,
      })
      expect(response.statusCode, url).toBe(400)
      expect(json(response), url).toMatchObject({ code: 'WEBHOOK_URL_INVALID', field: 'url' })
    }
    const extra = await session(bp().app, 'POST', `${appBase(owner)}/webhook-endpoints`, owner.tenant.token, {
      url: 'https://example.com/',
      secret: 'x',
    })
    expect(json(extra).code).toBe('REQUEST_VALIDATION_FAILED')
  })

  it('limits the enabled endpoints of an app', async () => {
    const testApp = await merchantApp(bp())
    for (let n = 0; n < 16; n += 1) await createEndpoint(bp(), testApp, `https://example.com/${n}`)
    const refused = await session(bp().app, 'POST', `${appBase(testApp)}/webhook-endpoints`, testApp.tenant.token, {
      url: 'https://example.com/17',
    })
    expect(refused.statusCode).toBe(409)
    expect(json(refused).code).toBe('WEBHOOK_ENDPOINT_LIMIT_REACHED')
  })
})

// ---------------------------------------------------------------------------------------------
// Two workers, each with its own connection pool as two processes would have, share one queue.

forEachDialect('webhooks: concurrent workers', (dialect: DialectName) => {
  const clock = manualClock()
  let target: TestTarget
  let platform: Platform
  let second: Storage
  let receiver: Receiver
  beforeAll(async () => {
    target = await freshTarget(dialect)
    platform = await openPlatform(
      parseConfig({
        BASEPLATE_LOG_LEVEL: 'silent',
        BASEPLATE_SESSION_TTL_S: String(30 * 24 * 3600),
        BASEPLATE_SECRET_KEY: testSecretKey,
      }),
      { target: target.target, clock },
    )
    // SQLite has one writer per file: its workers share the process's connection instead.
    second = dialect === 'postgres' ? await openStorage(target.target) : platform.storage
    receiver = await startReceiver()
  })
  afterAll(async () => {
    await receiver.close()
    if (second !== platform.storage) await second.close()
    await platform.close()
    await target.dispose()
  })

  it('never attempts one delivery twice at once, and delivers each', async () => {
    const testApp = await merchantApp(platform)
    await createEndpoint(platform, testApp, receiver.url('/a'))
    await createEndpoint(platform, testApp, receiver.url('/b'))
    const inFlight = new Map<string, number>()
    let overlapMax = 0
    const random = seeded(3)
    receiver.respond = async (hit) => {
      const now = (inFlight.get(hit.deliveryId) ?? 0) + 1
      inFlight.set(hit.deliveryId, now)
      overlapMax = Math.max(overlapMax, now)
      await new Promise((resolve) => setTimeout(resolve, 2 + Math.floor(random() * 10)))
      inFlight.set(hit.deliveryId, now - 1)
      return random() < 0.3 ? 500 : 204
    }
    const eventsCount = 25
    for (let n = 0; n < eventsCount; n += 1) await createStore(platform, testApp, `C-${n}`, clock.now())
    const keys = platform.platformKeys
    const counted = (storage: Storage) => {
      const worker = startNotificationWorker({
        storage,
        platformKeys: keys,
        clock,
        background: false,
        batchSizeMax: 4,
        deliveriesInFlightMax: 4,
      })
      const tally = { steps: 0, handled: 0 }
      return {
        tally,
        runOnce: async () => {
          const handled = await worker.runOnce()
          tally.steps += 1
          tally.handled += handled
          return handled
        },
        stop: () => worker.stop(),
      }
    }
    const one = counted(platform.storage)
    const two = counted(second)
    await drain(platform.storage, [one, two, one, two], clock)

    const keysSeen = receiver.hits.map((hit) => `${hit.deliveryId}#${hit.attempt}`)
    expect(new Set(keysSeen).size, 'each (delivery, attempt) reached the receiver once').toBe(keysSeen.length)
    expect(overlapMax).toBe(1)
    const log = await deliveryLog(platform, testApp)
    expect(log).toHaveLength(2 * eventsCount)
    expect(log.every((delivery) => delivery.status === 'delivered')).toBe(true)
    for (const delivery of log) {
      expect(receiver.hits.filter((hit) => hit.deliveryId === delivery.id && hit.status === 204)).toHaveLength(1)
    }
    expect(one.tally.handled).toBeGreaterThan(0)
    expect(two.tally.handled).toBeGreaterThan(0)
  })
})
