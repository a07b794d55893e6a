/**
 * Overload: a real server process takes twice its measured peak of signed payments for a
 * bounded time, open loop (requests leave on schedule whether or not earlier ones were
 * answered), then a light load to see it recover. What must hold whatever the load: no 5xx
 * but 503, nothing partially posted (every trade is paid with exactly one balanced posting, or
 * does not exist), every 2xx paid, no client timeout; requests shed with 429 or 503 are shed
 * fast (≤ 50 ms); afterwards latency returns to normal. docs/reliability.md publishes how much
 * was shed and the goodput (the server sheds nothing today: it queues).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkPayments, type Acknowledged } from './support/check.js'
import { keepAliveAgent, send, signedPay, type HttpResult } from './support/http.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { budgetMs, mode, settings } from './support/settings.js'
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

interface Outcome {
  readonly status: number | 'timeout' | 'error'
  readonly latencyMs: number
  readonly phase: 'overload' | 'recovery'
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0
}

describe(`overload [sqlite] (${mode})`, () => {
  let database: WorldDatabase
  let world: World
  let server: ServerProcess

  beforeAll(async () => {
    const port = await freePort()
    database = await freshDatabase('sqlite')
    world = await withEd25519Key(
      database,
      await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` }),
    )
    server = await startServer({ env: databaseEnv(database), port })
  })
  afterAll(async () => {
    await server?.stop()
    await database?.dispose()
  })

  it(
    `2× peak for ${overloadS} s: no partial postings, no 5xx but 503, shed fast, then recovery`,
    async () => {
      const acknowledged = new Map<string, Acknowledged>()
      let sequence = 0
      const payOnce = async (agent: ReturnType<typeof keepAliveAgent>): Promise<HttpResult> => {
        const outTradeNo = `LOAD-${(sequence += 1)}`
        const response = await send(agent, server.url, signedPay(world, outTradeNo, 1), timeoutMs)
        if (response.status === 200)
          acknowledged.set(outTradeNo, { amountFen: 1, tradeId: JSON.parse(response.body).id })
        return response
      }
      // Peak: 32 clients in a closed loop for two seconds (after one of warm-up).
      const closedAgent = keepAliveAgent(32)
      const closed = async (seconds: number) => {
        const deadline = performance.now() + seconds * 1000
        let done = 0
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (performance.now() < deadline) {
              await payOnce(closedAgent)
              done += 1
            }
          }),
        )
        return done / seconds
      }
      await closed(1)
      const peak = await closed(2)
      closedAgent.destroy()

      const outcomes: Outcome[] = []
      const openPhase = async (rate: number, seconds: number, phase: Outcome['phase']) => {
        const agent = keepAliveAgent(4096)
        const total = Math.round(rate * seconds)
        const started = performance.now()
        const inFlight: Promise<void>[] = []
        for (let index = 0; index < total; index += 1) {
          const intended = started + (index * 1000) / rate
          const wait = intended - performance.now()
          if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
          inFlight.push(
            payOnce(agent).then(
              (response) => {
                outcomes.push({ status: response.status, latencyMs: performance.now() - intended, phase })
              },
              (error: unknown) => {
                const status = /no answer within/.test(String(error)) ? 'timeout' : 'error'
                outcomes.push({ status, latencyMs: performance.now() - intended, phase })
              },
            ),
          )
        }
        await Promise.all(inFlight)
        agent.destroy()
      }
      await openPhase(2 * peak, overloadS, 'overload')
      await openPhase(Math.max(10, peak / 4), 3, 'recovery')

      const overload = outcomes.filter((outcome) => outcome.phase === 'overload')
      const recovery = outcomes.filter((outcome) => outcome.phase === 'recovery')
      const shed = overload.filter((outcome) => outcome.status === 429 || outcome.status === 503)
      const served = overload.filter((outcome) => outcome.status === 200)
      const summary = {
        peakPerSecond: Math.round(peak),
        offeredPerSecond: Math.round(2 * peak),
        seconds: overloadS,
        sent: overload.length,
        served: served.length,
        shed: shed.length,
        shedWithin50Ms: shed.filter((outcome) => outcome.latencyMs <= 50).length,
        timeouts: overload.filter((outcome) => outcome.status === 'timeout').length,
        overloadP99Ms: Math.round(
          percentile(
            served.map((outcome) => outcome.latencyMs),
            99,
          ),
        ),
        recoveryP99Ms: Math.round(
          percentile(
            recovery.map((outcome) => outcome.latencyMs),
            99,
          ),
        ),
        rssMiB: Math.round((server.peakRssBytes() ?? 0) / 2 ** 20),
      }
      console.info(`overload: ${JSON.stringify(summary)}`)
      const unexpected = outcomes.filter(
        (outcome) => outcome.status !== 200 && outcome.status !== 429 && outcome.status !== 503,
      )
      expect(unexpected.map((outcome) => outcome.status)).toEqual([])
      expect(summary.shedWithin50Ms).toBe(summary.shed)
      expect(recovery.every((outcome) => outcome.status === 200)).toBe(true)
      expect(summary.recoveryP99Ms, 'back to normal after the overload').toBeLessThan(2_000)
      const storage = await openDatabase(database)
      try {
        const report = await checkPayments(storage.db, world, acknowledged)
        expect(report).toMatchObject({ lost: [], duplicated: [], walletDriftFen: 0, ledgerDrift: 0 })
        // Nothing half-done: every trade of the run is paid, with exactly one posting.
        const unpaid = await storage.db
          .selectFrom('payment_trades' as never)
          .select(['out_trade_no' as never])
          .where('status' as never, '!=', 'paid' as never)
          .execute()
        expect(unpaid).toEqual([])
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
