/**
 * Admission control and per-app rate limits (src/server/admission.ts, ADR 0012): the
 * concurrency gate and the token buckets on an injected clock, then both through the HTTP
 * app — a shed request is answered at once with 503 and Retry-After and has touched nothing
 * (its nonce and Idempotency-Key still work afterwards), /healthz is never shed, and one app
 * over its rate gets 429 within ±10 % of the configured rate while another app is untouched.
 */
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { headerNames, signRequest } from '../sdk/src/index.js'
import { parseConfig } from '../src/config.js'
import {
  ConcurrencyLimiter,
  createAdmission,
  isExempt,
  queueTimeoutFactor,
  TokenBuckets,
  type LimiterSettings,
  type Schedule,
} from '../src/server/admission.js'
import { createAppWithKey, ed25519KeyPair, json, signUp, type Injected, type TestApp } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'
import { idleSocketTimeoutMs, keepAliveAgent } from './reliability/support/http.js'

function fakeTime(start = 1_000) {
  let now = start
  const timers: Array<{ at: number; run: () => void; cancelled: boolean }> = []
  const schedule: Schedule = (ms, run) => {
    const timer = { at: now + ms, run, cancelled: false }
    timers.push(timer)
    return () => {
      timer.cancelled = true
    }
  }
  return {
    ticks: () => now,
    schedule,
    advance(ms: number) {
      now += ms
      for (const timer of timers.filter((entry) => !entry.cancelled && entry.at <= now)) {
        timer.cancelled = true
        timer.run()
      }
    },
  }
}

describe('token buckets (injected clock)', () => {
  it('allows the burst, then the rate, within ±10 % over a fixed window', () => {
    const time = fakeTime()
    const buckets = new TokenBuckets(20, 5, time.ticks)
    // 200 requests a second for 10 s, ten times the rate.
    let allowed = 0
    for (let n = 0; n < 2000; n += 1) {
      if (buckets.take('app_a').allowed) allowed += 1
      time.advance(5)
    }
    const expected = 5 + 20 * 10
    expect(Math.abs(allowed - expected) / expected).toBeLessThanOrEqual(0.1)
    // The bucket is exact: only the last, partial token is missing.
    expect(allowed).toBeGreaterThanOrEqual(expected - 1)
    expect(allowed).toBeLessThanOrEqual(expected)
  })

  it('never lets more than the rate through when requests come slower than a token', () => {
    const time = fakeTime()
    const buckets = new TokenBuckets(10, 1, time.ticks)
    let allowed = 0
    for (let n = 0; n < 100; n += 1) {
      if (buckets.take('app_a').allowed) allowed += 1
      time.advance(150)
    }
    expect(allowed).toBe(100)
  })

  it('answers how long until the next token, and keeps each key apart', () => {
    const time = fakeTime()
    const buckets = new TokenBuckets(4, 2, time.ticks)
    expect(buckets.take('a').allowed).toBe(true)
    expect(buckets.take('a').allowed).toBe(true)
    const refused = buckets.take('a')
    expect(refused).toEqual({ allowed: false, retryAfterMs: 250 })
    expect(buckets.take('b').allowed).toBe(true)
    time.advance(100)
    expect(buckets.take('a')).toEqual({ allowed: false, retryAfterMs: 150 })
    time.advance(150)
    expect(buckets.take('a').allowed).toBe(true)
  })

  it('forgets full buckets once it holds too many keys', () => {
    const time = fakeTime()
    const buckets = new TokenBuckets(10, 2, time.ticks, 3)
    for (const key of ['a', 'b', 'c']) buckets.take(key)
    time.advance(1000)
    buckets.take('d')
    expect(buckets.size).toBe(1)
  })
})

/** Deferred grants run at once unless a test asks to see them (`deferred`). */
function limiterOf(
  time: ReturnType<typeof fakeTime>,
  settings: Partial<LimiterSettings>,
  deferred?: Array<() => void>,
) {
  const defaults = { maxInFlight: 2, maxQueued: 10, queueBurst: 0, queueWaitMs: 1000 }
  const defer = (run: () => void) => (deferred === undefined ? run() : deferred.push(run))
  return new ConcurrencyLimiter({ ...defaults, ...settings }, time.ticks, time.schedule, defer)
}

describe('concurrency limiter (injected clock)', () => {
  it('admits up to the limit, queues behind it in order, and hands slots on', async () => {
    const time = fakeTime()
    const limiter = limiterOf(time, {})
    const first = limiter.enter()
    const second = limiter.enter()
    const third = limiter.enter()
    const fourth = limiter.enter()
    expect([first.state, second.state, third.state, fourth.state]).toEqual(['admitted', 'admitted', 'queued', 'queued'])
    const order: string[] = []
    void third.admission.then(() => order.push('third'))
    void fourth.admission.then(() => order.push('fourth'))
    first.leave()
    first.leave()
    await Promise.resolve()
    expect(order).toEqual(['third'])
    expect(limiter.stats()).toMatchObject({ inFlight: 2, queued: 1 })
    second.leave()
    await Promise.resolve()
    expect(order).toEqual(['third', 'fourth'])
    third.leave()
    fourth.leave()
    expect(limiter.stats()).toMatchObject({ inFlight: 0, queued: 0, admitted: 4 })
  })

  it('refuses at the door when the queue is full', () => {
    const time = fakeTime()
    const limiter = limiterOf(time, { maxInFlight: 1, maxQueued: 1 })
    expect(limiter.enter().state).toBe('admitted')
    expect(limiter.enter().state).toBe('queued')
    const refused = limiter.enter()
    expect(refused).toMatchObject({ state: 'shed', reason: 'queue-full' })
    expect(limiter.stats().shed['queue-full']).toBe(1)
  })

  it('refuses at the door when the expected wait is too long (Little’s law)', () => {
    const time = fakeTime()
    const limiter = limiterOf(time, { maxQueued: 1000, queueWaitMs: 100 })
    // Teach it that a slot is held for 50 ms.
    for (let n = 0; n < 200; n += 1) {
      const ticket = limiter.enter()
      time.advance(50)
      ticket.leave()
    }
    expect(limiter.stats().serviceMs).toBeCloseTo(50, 3)
    const holders = [limiter.enter(), limiter.enter()]
    expect(holders.map((ticket) => ticket.state)).toEqual(['admitted', 'admitted'])
    // The n-th in the queue expects n × 50 / 2 ms: up to 4 fit within 100 ms.
    const queued = Array.from({ length: 4 }, () => limiter.enter())
    expect(queued.map((ticket) => ticket.state)).toEqual(['queued', 'queued', 'queued', 'queued'])
    expect(limiter.expectedWaitMs()).toBeCloseTo(125, 3)
    expect(limiter.enter()).toMatchObject({ state: 'shed', reason: 'wait-too-long' })
    // As the queue drains, newcomers are taken again.
    holders[0]!.leave()
    expect(limiter.enter().state).toBe('queued')
  })

  it('takes a burst into the queue whatever its expected wait, then judges by the wait', () => {
    const time = fakeTime()
    const limiter = limiterOf(time, { maxQueued: 1000, queueBurst: 6, queueWaitMs: 100 })
    for (let n = 0; n < 200; n += 1) {
      const ticket = limiter.enter()
      time.advance(50)
      ticket.leave()
    }
    limiter.enter()
    limiter.enter()
    // 6 wait although the 5th and 6th expect 125 and 150 ms; the 7th is refused.
    const burst = Array.from({ length: 6 }, () => limiter.enter())
    expect(burst.every((ticket) => ticket.state === 'queued')).toBe(true)
    expect(limiter.enter()).toMatchObject({ state: 'shed', reason: 'wait-too-long' })
  })

  it('starts a request granted past the burst on a later turn, so newcomers are refused first', async () => {
    const time = fakeTime()
    const deferred: Array<() => void> = []
    const limiter = limiterOf(time, { maxInFlight: 1, queueBurst: 2 }, deferred)
    const holder = limiter.enter()
    const queued = Array.from({ length: 4 }, () => limiter.enter())
    const started: number[] = []
    queued.forEach((ticket, n) => void ticket.admission.then(() => started.push(n)))
    // Three still wait after this grant: past the burst of 2, so the start is deferred.
    holder.leave()
    await Promise.resolve()
    expect(started).toEqual([])
    expect(deferred).toHaveLength(1)
    expect(limiter.stats()).toMatchObject({ inFlight: 1, queued: 3 })
    deferred.shift()!()
    await Promise.resolve()
    expect(started).toEqual([0])
    // Two still wait: at the burst, still deferred. Then one: below it, the start is immediate.
    queued[0]!.leave()
    expect(deferred).toHaveLength(1)
    deferred.shift()!()
    queued[1]!.leave()
    await Promise.resolve()
    expect(started).toEqual([0, 1, 2])
    expect(deferred).toHaveLength(0)
    queued[2]!.leave()
    await Promise.resolve()
    expect(started).toEqual([0, 1, 2, 3])
    expect(deferred).toHaveLength(0)
  })

  it('does not start a deferred request whose client left before its turn, and hands its slot on', async () => {
    const time = fakeTime()
    const deferred: Array<() => void> = []
    const limiter = limiterOf(time, { maxInFlight: 1, queueBurst: 1 }, deferred)
    const holder = limiter.enter()
    const leaver = limiter.enter()
    const next = limiter.enter()
    const started: string[] = []
    void leaver.admission.then((admitted) => admitted && started.push('leaver'))
    void next.admission.then((admitted) => admitted && started.push('next'))
    holder.leave()
    expect(deferred).toHaveLength(1)
    // The client goes away between the grant and its start: the slot passes to the next one.
    leaver.leave()
    expect(limiter.stats()).toMatchObject({ inFlight: 1, queued: 0 })
    for (const run of deferred.splice(0)) run()
    await Promise.resolve()
    expect(started).toEqual(['next'])
    expect(await leaver.admission).toBe(false)
    next.leave()
    expect(limiter.stats()).toMatchObject({ inFlight: 0, queued: 0, admitted: 3 })
  })

  it('gives up on a request that waited far longer than expected, and lets a departed one go', async () => {
    const time = fakeTime()
    const limiter = limiterOf(time, { maxInFlight: 1, queueWaitMs: 100 })
    const holder = limiter.enter()
    const stuck = limiter.enter()
    const departed = limiter.enter()
    departed.leave()
    expect(await departed.admission).toBe(false)
    expect(limiter.stats().queued).toBe(1)
    time.advance(100 * queueTimeoutFactor)
    expect(await stuck.admission).toBe(false)
    expect(stuck.reason).toBe('timed-out')
    expect(limiter.stats()).toMatchObject({ inFlight: 1, queued: 0, shed: { 'timed-out': 1 } })
    holder.leave()
    expect(limiter.stats().inFlight).toBe(0)
  })

  it('keeps a long wait going while the queue moves: only a stall refuses', async () => {
    const time = fakeTime()
    const limiter = limiterOf(time, { maxInFlight: 1, queueWaitMs: 100 })
    const first = limiter.enter()
    const second = limiter.enter()
    const third = limiter.enter()
    time.advance(250)
    first.leave()
    expect(await second.admission).toBe(true)
    // The third's backstop (300 ms) comes while a slot came free 50 ms ago: it keeps waiting.
    time.advance(50)
    time.advance(50)
    second.leave()
    expect(await third.admission).toBe(true)
    expect(limiter.stats().shed['timed-out']).toBe(0)
  })

  it('keeps its books under any interleaving: slots bounded, FIFO, nothing lost (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant('enter' as const), fc.nat(40), fc.constant('tick' as const)), {
          maxLength: 300,
        }),
        async (steps) => {
          const time = fakeTime()
          const limiter = limiterOf(time, { maxInFlight: 3, maxQueued: 20, queueBurst: 20, queueWaitMs: 100 })
          const tickets: Array<{ ticket: ReturnType<ConcurrencyLimiter['enter']>; order: number }> = []
          const granted: number[] = []
          let holding = 0
          for (const step of steps) {
            if (step === 'enter') {
              const ticket = limiter.enter()
              const order = tickets.length
              tickets.push({ ticket, order })
              if (ticket.state === 'admitted') granted.push(order)
              if (ticket.state === 'queued') void ticket.admission.then((ok) => ok && granted.push(order))
            } else if (step === 'tick') time.advance(50)
            else tickets[step]?.ticket.leave()
            await Promise.resolve()
            holding = limiter.stats().inFlight
            expect(holding).toBeLessThanOrEqual(3)
            expect(limiter.stats().queued).toBeLessThanOrEqual(20)
          }
          // Slots were handed out in arrival order.
          expect(granted).toEqual([...granted].sort((a, b) => a - b))
          for (const { ticket } of tickets) ticket.leave()
          await Promise.resolve()
          expect(limiter.stats()).toMatchObject({ inFlight: 0, queued: 0 })
        },
      ),
      { seed: 20261125, numRuns: 200 },
    )
  })

  it('is off with a limit of 0, and exempts health and documentation', () => {
    const admission = createAdmission({
      maxInFlight: 0,
      maxQueued: 0,
      queueBurst: 0,
      queueWaitMs: 1,
      appRatePerS: 0,
      appBurstRequests: 1,
    })
    expect(admission.onRequest).toBeNull()
    expect(['/healthz', '/openapi.json', '/docs', '/docs/static/*'].every(isExempt)).toBe(true)
    expect(['/v1/trades/pay', '/docsx', '/pay/:token', undefined].some(isExempt)).toBe(false)
  })

  it('reports refusals at most once a second, never silently', () => {
    const time = fakeTime()
    const reports: unknown[] = []
    const admission = createAdmission(
      { maxInFlight: 1, maxQueued: 0, queueBurst: 0, queueWaitMs: 100, appRatePerS: 1, appBurstRequests: 1 },
      { ticks: time.ticks, schedule: time.schedule, report: (refused) => reports.push(refused) },
    )
    const app = { kind: 'app', appId: 'app_a' } as never
    const reply = { header: () => reply } as never
    admission.throttle(app, reply)
    for (let n = 0; n < 3; n += 1) expect(() => admission.throttle(app, reply)).toThrow(/requests a second/)
    expect(reports).toEqual([{ shed: 0, rateLimited: 1, inFlight: 0, queued: 0 }])
    time.advance(1000)
    admission.throttle(app, reply)
    expect(() => admission.throttle(app, reply)).toThrow()
    expect(reports).toHaveLength(2)
    expect(reports[1]).toMatchObject({ rateLimited: 3 })
    expect(admission.stats().rateLimited).toBe(4)
  })

  it('reads its settings from the environment, with bounds', () => {
    const config = parseConfig({ BASEPLATE_APP_RATE_LIMIT_PER_S: '50' })
    expect(config.admission).toEqual({
      maxInFlight: 16,
      maxQueued: 1024,
      queueBurst: 512,
      queueWaitMs: 1000,
      appRatePerS: 50,
      appBurstRequests: 100,
    })
    expect(() => parseConfig({ BASEPLATE_ADMISSION_QUEUE_WAIT_MS: '0' })).toThrow(/QUEUE_WAIT_MS must be between/)
    expect(() => parseConfig({ BASEPLATE_APP_RATE_BURST_REQUESTS: '0' })).toThrow(/BURST_REQUESTS must be between/)
    expect(parseConfig({ BASEPLATE_ADMISSION_MAX_QUEUED: '10' }).admission.queueBurst).toBe(10)
    expect(() => parseConfig({ BASEPLATE_ADMISSION_MAX_QUEUED: '10', BASEPLATE_ADMISSION_QUEUE_BURST: '11' })).toThrow(
      /QUEUE_BURST must not exceed/,
    )
  })
})

/** A JSON POST whose body arrives only when the test says so: it holds its slot meanwhile. */
function slowPost(app: ReturnType<ReturnType<typeof useTestPlatform>>['app']) {
  const body = new PassThrough()
  const answer = app.inject({
    method: 'POST',
    url: '/v1/signup',
    headers: { 'content-type': 'application/json' },
    payload: body,
  })
  return {
    answer,
    finish: () => body.end('{}'),
  }
}

function expectShed(response: Injected): void {
  expect(response.statusCode, response.body).toBe(503)
  expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1)
  const body = json(response)
  expect(Object.keys(body).sort()).toEqual(['code', 'message', 'requestId'])
  expect(body.code).toBe('SERVICE_UNAVAILABLE')
  expect(body.requestId).toBe(response.headers[headerNames.requestId])
}

forEachDialect('admission control over HTTP', (dialect) => {
  const bp = useTestPlatform(dialect, {
    config: {
      BASEPLATE_ADMISSION_MAX_IN_FLIGHT: '1',
      BASEPLATE_ADMISSION_MAX_QUEUED: '1',
      BASEPLATE_ADMISSION_QUEUE_WAIT_MS: '10000',
    },
  })
  let testApp: TestApp

  beforeAll(async () => {
    testApp = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant', 'parking'), ed25519KeyPair())
  })

  it("announces a 72 s keep-alive, and the suites' clients close idle sockets sooner", async () => {
    const server = bp().app.server
    expect(server.keepAliveTimeout).toBe(72_000)
    await bp().app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = server.address() as AddressInfo
    const health = await fetch(`http://127.0.0.1:${port}/healthz`)
    expect(health.headers.get('keep-alive')).toBe('timeout=72')
    await health.text()
    const agent = keepAliveAgent(1)
    // Node's agent keeps its options, untyped: the idle timeout its free sockets get.
    expect((agent as unknown as { options: { timeout?: number } }).options.timeout).toBe(idleSocketTimeoutMs)
    expect(idleSocketTimeoutMs).toBeLessThan(server.keepAliveTimeout - 1000)
    agent.destroy()
  })

  it('answers 503 at once when full, before the signature, the nonce or the key is touched', async () => {
    const holder = slowPost(bp().app)
    const queued = slowPost(bp().app)
    await new Promise((resolve) => setTimeout(resolve, 20))
    const body = JSON.stringify({ out_store_no: 'SHED-1', name: 'Shed', address: '上海市', city_code: '310106' })
    const headers = signRequest({
      appId: testApp.appId,
      privateKey: testApp.keyPair.privateKey,
      method: 'POST',
      pathWithQuery: '/v1/stores',
      body,
      idempotencyKey: 'shed-1',
      timestampS: Math.floor(Date.now() / 1000),
    })
    const request = { method: 'POST' as const, url: '/v1/stores', headers, payload: body }
    const started = performance.now()
    const shed = await bp().app.inject(request)
    expect(performance.now() - started).toBeLessThan(1000)
    expectShed(shed)
    // Unsigned: the app was never identified.
    expect(shed.headers[headerNames.signature]).toBeUndefined()
    const health = await bp().app.inject({ method: 'GET', url: '/healthz' })
    expect(health.statusCode).toBe(200)

    holder.finish()
    queued.finish()
    expect((await holder.answer).statusCode).toBe(400)
    expect((await queued.answer).statusCode).toBe(400)
    // The very same signed request (same nonce, same key) now runs, for the first time.
    const retried = await bp().app.inject(request)
    expect(retried.statusCode, retried.body).toBe(201)
    expect(retried.headers[headerNames.idempotentReplayed]).toBeUndefined()
  })
})

forEachDialect('per-app rate limit over HTTP', (dialect) => {
  const ratePerS = 20
  const burst = 5
  const bp = useTestPlatform(dialect, {
    config: {
      BASEPLATE_APP_RATE_LIMIT_PER_S: String(ratePerS),
      BASEPLATE_APP_RATE_BURST_REQUESTS: String(burst),
    },
  })
  let busy: TestApp
  let quiet: TestApp

  beforeAll(async () => {
    const merchant = await signUp(bp().app, 'merchant', 'parking')
    busy = await createAppWithKey(bp().app, merchant, ed25519KeyPair())
    quiet = await createAppWithKey(bp().app, merchant, ed25519KeyPair())
  })

  const call = (testApp: TestApp, method: 'GET' | 'POST', url: string, body?: unknown, idempotencyKey?: string) => {
    const text = body === undefined ? '' : JSON.stringify(body)
    const headers = signRequest({
      appId: testApp.appId,
      privateKey: testApp.keyPair.privateKey,
      method,
      pathWithQuery: url,
      body: text,
      idempotencyKey,
      timestampS: Math.floor(Date.now() / 1000),
    })
    return bp().app.inject({ method, url, headers, ...(text === '' ? {} : { payload: text }) })
  }

  it('lets through the burst plus the rate, within ±10 %, and answers the rest 429 signed', async () => {
    const windowMs = 2000
    const counts = { ok: 0, limited: 0, other: [] as string[] }
    let firstAt = 0
    let lastAt = 0
    let sample: Injected | undefined
    const started = performance.now()
    while (performance.now() - started < windowMs) {
      const before = performance.now()
      const response = await call(busy, 'GET', '/v1/stores')
      if (response.statusCode === 200) {
        counts.ok += 1
        if (firstAt === 0) firstAt = before
        lastAt = performance.now()
      } else if (response.statusCode === 429) {
        counts.limited += 1
        sample ??= response
      } else counts.other.push(`${response.statusCode} ${response.body}`)
    }
    expect(counts.other).toEqual([])
    // The load must exceed the limit by far for the count to measure the limiter.
    expect(counts.ok + counts.limited).toBeGreaterThan(3 * (burst + (ratePerS * windowMs) / 1000))
    const expected = burst + (ratePerS * (lastAt - firstAt)) / 1000
    console.info(`rate limit [${dialect}]: ${JSON.stringify({ ...counts, expected: Math.round(expected) })}`)
    expect(Math.abs(counts.ok - expected) / expected).toBeLessThanOrEqual(0.1)

    const limited = sample!
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    const body = json(limited)
    expect(Object.keys(body).sort()).toEqual(['code', 'message', 'requestId'])
    expect(body.code).toBe('REQUEST_RATE_LIMITED')
    // Attributed to the app, so the SDK can verify it.
    expect(limited.headers[headerNames.signature]).toBeDefined()

    // Another app of the same merchant has a bucket of its own.
    const other = await call(quiet, 'GET', '/v1/stores')
    expect(other.statusCode, other.body).toBe(200)
  })

  it('never reserves the Idempotency-Key of a refused write', async () => {
    // Empty the bucket, then write with a key: refused before the key is looked at. On a busy
    // machine a token may come back (one every 1/ratePerS s) before the write arrives; that
    // write then succeeds and proves nothing, so try again with a new key.
    let refusedWrite: { store: Record<string, string>; key: string } | undefined
    for (let attempt = 1; attempt <= 10 && refusedWrite === undefined; attempt += 1) {
      let drained = false
      for (let n = 0; n < 100 && !drained; n += 1) drained = (await call(busy, 'GET', '/v1/stores')).statusCode === 429
      expect(drained).toBe(true)
      const store = { out_store_no: `RL-${attempt}`, name: 'Limited', address: '上海市', city_code: '310106' }
      const key = `rate-limited-${attempt}`
      const write = await call(busy, 'POST', '/v1/stores', store, key)
      expect([201, 429], write.body).toContain(write.statusCode)
      if (write.statusCode === 429) refusedWrite = { store, key }
    }
    expect(refusedWrite, 'a write refused by the rate limit').toBeDefined()
    await new Promise((resolve) => setTimeout(resolve, (1000 * 2) / ratePerS))
    const retried = await call(busy, 'POST', '/v1/stores', refusedWrite!.store, refusedWrite!.key)
    expect(retried.statusCode, retried.body).toBe(201)
    expect(retried.headers[headerNames.idempotentReplayed]).toBeUndefined()
  })
})
