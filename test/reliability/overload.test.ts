/**
 * Overload: a real server process takes twice its measured peak of signed payments for a
 * bounded time, open loop (requests leave on schedule whether or not earlier ones were
 * answered), then a light load to see it recover. The server runs with its default admission
 * control (src/server/admission.ts, ADR 0012): what it cannot serve soon it refuses at once
 * with 503 rather than queueing without bound.
 *
 * What must hold whatever the load: only 200, 429 or 503; no client timeout; nothing
 * partially posted (every trade is paid with exactly one balanced posting, or does not exist),
 * every 2xx paid. And, with margins for a shared two-core machine (docs/reliability.md
 * publishes the figures against the targets of reference item 11):
 * - shed requests are answered fast: median ≤ 250 ms (the target is 50 ms for all of them;
 *   inside `npm test` the other worker's suite shares the two cores, and a median of 60 ms has
 *   been seen there) and none after queueing, so all < 1.5 s;
 * - the server sheds whenever it is overloaded (or else served latency stayed low);
 * - goodput (200s a second during the overload) is at least 0.4× the measured peak (the
 *   target is 0.8×; the floor catches over-shedding, with room for a neighbour's load);
 * - from 5 s after the overload, p99 is back near the light-load p99 measured before it.
 *
 * The open-loop client keeps a pool of connections opened before the overload, as any HTTP
 * client pool does: Node accepts one new connection per event-loop turn, so under load a
 * storm of new connections waits in the kernel's accept queue, where no admission control in
 * the process can see it (ADR 0012).
 */
import http from 'node:http'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { forEachDialect } from '../harness.js'
import { checkPayments, type Acknowledged } from './support/check.js'
import { keepAliveAgent, send, signedPay, type HttpResult } from './support/http.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { percentile } from './support/stats.js'
import { budgetMs, mode, postgresUrl, settings } from './support/settings.js'
import {
  databaseEnv,
  freshDatabase,
  openDatabase,
  prepareWorld,
  withEd25519Key,
  type World,
  type WorldDatabase,
} from './support/world.js'

const overloadS = settings.overload.seconds
const timeoutMs = 60_000
/** Enough closed-loop clients to keep the server's admission queue from running dry. */
const closedClients = 128
/**
 * Connections the open-loop client opens before the overload and reuses throughout, so that
 * it never queues requests itself: the offered rate times the wait an admitted request may
 * expect (Little's law), plus the server's whole queue (a burst is taken whatever its wait).
 */
const poolSize = (peak: number) => Math.min(8192, Math.ceil(2 * peak * 1.5) + 1024)
const baselineS = 2
const recoveryS = 7
/** "Back to normal within 5 s after the overload" (reference item 11). */
const recoveredAfterS = 5

interface Outcome {
  readonly status: number | 'timeout' | 'error'
  /** From the moment the request was meant to leave: coordinated omission corrected. */
  readonly latencyMs: number
  readonly phase: 'baseline' | 'overload' | 'recovery'
  /** Intended send time, from the start of its phase. */
  readonly offsetMs: number
  /** How late the client itself sent it (its own event loop busy): part of the latency. */
  readonly sendLagMs: number
}

/**
 * Opens `count` keep-alive connections while the server is idle: as many requests at once
 * (the agent opens a socket for each request that finds none free), on the cheap /healthz.
 */
async function prewarm(agent: http.Agent, url: string, count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, () => send(agent, url, { method: 'GET', path: '/healthz', headers: {}, body: '' })),
  )
}

forEachDialect(`overload (${mode})`, (dialect) => {
  let database: WorldDatabase
  let world: World
  let server: ServerProcess

  beforeAll(async () => {
    const port = await freePort()
    database = await freshDatabase(dialect, postgresUrl)
    world = await withEd25519Key(
      database,
      await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` }),
    )
    // Admission control as shipped; the per-app limit is off here, since one app sends the
    // whole load and this test measures the server-wide gate (test/admission.test.ts has the
    // per-app limit).
    server = await startServer({ env: { ...databaseEnv(database), BASEPLATE_APP_RATE_LIMIT_PER_S: '0' }, port })
  })
  afterAll(async () => {
    await server?.stop()
    await database?.dispose()
  })

  it(
    `2× peak for ${overloadS} s: no partial postings, only 200/429/503, shed fast, goodput, recovery`,
    async () => {
      const acknowledged = new Map<string, Acknowledged>()
      let sequence = 0
      const payOnce = async (agent: http.Agent): Promise<HttpResult> => {
        const outTradeNo = `LOAD-${(sequence += 1)}`
        const response = await send(agent, server.url, signedPay(world, outTradeNo, 1), timeoutMs)
        if (response.status === 200)
          acknowledged.set(outTradeNo, { amountFen: 1, tradeId: JSON.parse(response.body).id })
        return response
      }
      // Peak: many clients in a closed loop for two seconds (after one of warm-up), counting 200s.
      const closedAgent = keepAliveAgent(closedClients)
      await prewarm(closedAgent, server.url, closedClients)
      const closed = async (seconds: number) => {
        const deadline = performance.now() + seconds * 1000
        let served = 0
        await Promise.all(
          Array.from({ length: closedClients }, async () => {
            while (performance.now() < deadline) {
              if ((await payOnce(closedAgent)).status === 200) served += 1
            }
          }),
        )
        return served / seconds
      }
      await closed(1)
      const peak = await closed(2)
      closedAgent.destroy()
      expect(peak, 'the closed loop measured a peak').toBeGreaterThan(0)

      const agent = keepAliveAgent(poolSize(peak))
      await prewarm(agent, server.url, poolSize(peak))
      const outcomes: Outcome[] = []
      const openPhase = async (rate: number, seconds: number, phase: Outcome['phase']) => {
        const total = Math.round(rate * seconds)
        const started = performance.now()
        const inFlight: Promise<void>[] = []
        for (let index = 0; index < total; index += 1) {
          const intended = started + (index * 1000) / rate
          const wait = intended - performance.now()
          if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
          const offsetMs = intended - started
          const sendLagMs = performance.now() - intended
          inFlight.push(
            payOnce(agent).then(
              (response) => {
                const latencyMs = performance.now() - intended
                outcomes.push({ status: response.status, latencyMs, phase, offsetMs, sendLagMs })
              },
              (error: unknown) => {
                const status = /no answer within/.test(String(error)) ? 'timeout' : 'error'
                outcomes.push({ status, latencyMs: performance.now() - intended, phase, offsetMs, sendLagMs })
              },
            ),
          )
        }
        // The next phase starts on schedule; this one's answers are awaited at the end.
        return inFlight
      }
      const light = Math.max(10, peak / 4)
      await Promise.all(await openPhase(light, baselineS, 'baseline'))
      const pending = [...(await openPhase(2 * peak, overloadS, 'overload'))]
      pending.push(...(await openPhase(light, recoveryS, 'recovery')))
      await Promise.all(pending)
      agent.destroy()

      const of = (phase: Outcome['phase']) => outcomes.filter((outcome) => outcome.phase === phase)
      const latencies = (list: readonly Outcome[]) => list.map((outcome) => outcome.latencyMs)
      const overload = of('overload')
      const recovery = of('recovery')
      const shed = overload.filter((outcome) => outcome.status === 429 || outcome.status === 503)
      const served = overload.filter((outcome) => outcome.status === 200)
      const recovered = recovery.filter((outcome) => outcome.offsetMs >= recoveredAfterS * 1000)
      const summary = {
        dialect,
        peakPerSecond: Math.round(peak),
        offeredPerSecond: Math.round(2 * peak),
        seconds: overloadS,
        sent: overload.length,
        served: served.length,
        shed: shed.length,
        shed503: shed.filter((outcome) => outcome.status === 503).length,
        shedWithin50Ms: shed.filter((outcome) => outcome.latencyMs <= 50).length,
        shedP50Ms: Math.round(percentile(latencies(shed), 50)),
        shedP99Ms: Math.round(percentile(latencies(shed), 99)),
        shedMaxMs: Math.round(percentile(latencies(shed), 100)),
        shedSendLagP99Ms: Math.round(
          percentile(
            shed.map((outcome) => outcome.sendLagMs),
            99,
          ),
        ),
        lateShedSentLate: shed.filter((outcome) => outcome.latencyMs > 50 && outcome.sendLagMs > 25).length,
        timeouts: outcomes.filter((outcome) => outcome.status === 'timeout').length,
        goodputPerSecond: Math.round(served.length / overloadS),
        goodputOfPeak: Number((served.length / overloadS / peak).toFixed(2)),
        baselineP99Ms: Math.round(percentile(latencies(of('baseline')), 99)),
        overloadP99Ms: Math.round(percentile(latencies(served), 99)),
        drainingP99Ms: Math.round(
          percentile(latencies(recovery.filter((outcome) => outcome.offsetMs < recoveredAfterS * 1000)), 99),
        ),
        recoveredP99Ms: Math.round(percentile(latencies(recovered), 99)),
        rssMiB: Math.round((server.peakRssBytes() ?? 0) / 2 ** 20),
      }
      console.info(`overload: ${JSON.stringify(summary)}`)

      const unexpected = outcomes.filter(
        (outcome) => outcome.status !== 200 && outcome.status !== 429 && outcome.status !== 503,
      )
      expect(unexpected.map((outcome) => `${outcome.phase} ${outcome.status}`)).toEqual([])
      expect(summary.timeouts).toBe(0)
      // Shed at the door, never after queueing (that would take 3 × the queue wait, 3 s).
      if (shed.length > 0) {
        expect(summary.shedP50Ms, 'shed requests are answered at once').toBeLessThanOrEqual(250)
        expect(summary.shedMaxMs, 'no request was shed after waiting in the queue').toBeLessThan(1500)
      }
      // Overloaded means shedding; a peak measured too low may leave nothing to shed, and
      // then the served latency must have stayed near the queue's wait (1 s by default).
      expect(shed.length > 0 || summary.overloadP99Ms < 2000, 'sheds when overloaded').toBe(true)
      expect(summary.goodputOfPeak, 'goodput during the overload').toBeGreaterThanOrEqual(0.4)
      expect(
        recovered.every((outcome) => outcome.status === 200),
        'nothing shed 5 s after the overload',
      ).toBe(true)
      expect(summary.recoveredP99Ms, 'p99 back to normal 5 s after the overload').toBeLessThanOrEqual(
        Math.max(3 * summary.baselineP99Ms, 1000),
      )
      const storage = await openDatabase(database)
      try {
        const report = await checkPayments(storage.db, world, acknowledged)
        expect(report).toMatchObject({ lost: [], duplicated: [], walletDriftFen: 0, ledgerDrift: 0 })
        // Nothing half-done: every trade of the run is paid, with exactly one posting; a shed
        // request left nothing behind.
        const unpaid = await storage.db
          .selectFrom('payment_trades' as never)
          .select(['out_trade_no' as never])
          .where('status' as never, '!=', 'paid' as never)
          .execute()
        expect(unpaid).toEqual([])
        expect(report.paid, 'one paid trade per acknowledged payment').toBe(acknowledged.size)
        const postings = await storage.db
          .selectFrom('ledger_postings' as never)
          .select((eb) => eb.fn.countAll<number>().as('count'))
          .where('reference_type' as never, '=', 'trade.pay' as never)
          .executeTakeFirstOrThrow()
        expect(Number(postings.count), 'one payment posting per paid trade').toBe(report.paid)
      } finally {
        await storage.close()
      }
    },
    budgetMs(150_000, 600_000),
  )
})
