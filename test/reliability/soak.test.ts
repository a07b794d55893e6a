/**
 * Soak (reference figure 12): the compiled server takes half its measured peak of signed
 * payments, open loop, for a long stretch (30 minutes in `npm run test:soak`), on SQLite as
 * `npm start` runs it. What must hold: the server's resident memory grows at most 10 % and
 * its p99 drifts at most 20 % from the first stretch after the warm-up to the last; nothing is
 * refused or times out at half the peak; every acknowledged payment is there once, and the
 * ledger balances.
 *
 * Memory and latency are compared between two windows of equal length (a fifth of the run
 * each, after a warm-up of a tenth): the first after the warm-up, and the last. RSS is sampled
 * from /proc every few seconds, and each window's median is compared, so one sample taken
 * mid-collection decides nothing. Latency is measured from each request's intended send time
 * (coordinated omission corrected); the client's own send lag is reported beside it.
 *
 * Not part of `npm test` or `npm run test:reliability`: it runs only when
 * BASEPLATE_TEST_RELIABILITY=soak (`npm run test:soak`), and is skipped otherwise.
 */
import http from 'node:http'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildServer, type BuiltServer } from './support/build.js'
import { checkPayments, type Acknowledged } from './support/check.js'
import { keepAliveAgent, send, signedPay } from './support/http.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { percentile } from './support/stats.js'
import { mode, settings } from './support/settings.js'
import {
  databaseEnv,
  freshDatabase,
  openDatabase,
  prepareWorld,
  withEd25519Key,
  type World,
  type WorldDatabase,
} from './support/world.js'

const { minutes, rssGrowthMax, p99DriftMax } = settings.soak
const timeoutMs = 30_000
const closedClients = 64
const rssSampleMs = 5_000
/** Unanswered payments looked up and logged one by one; the rest are only counted. */
const unansweredShownMax = 200

describe.runIf(mode === 'soak')(`soak [sqlite] (${minutes} min at half the peak)`, () => {
  let built: BuiltServer
  let database: WorldDatabase
  let world: World
  let server: ServerProcess

  beforeAll(async () => {
    built = await buildServer()
    expect(built.main, built.problem ?? '').not.toBeNull()
    const port = await freePort()
    database = await freshDatabase('sqlite')
    world = await withEd25519Key(
      database,
      await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` }),
    )
    // One app sends the whole load: the per-app limit is off, as in the overload test.
    server = await startServer({
      env: { ...databaseEnv(database), BASEPLATE_APP_RATE_LIMIT_PER_S: '0' },
      port,
      builtMain: built.main!,
    })
  }, 300_000)
  afterAll(async () => {
    await server?.stop()
    await database?.dispose()
    built?.dispose()
  })

  it(
    `memory grows at most ${rssGrowthMax * 100} % and p99 drifts at most ${p99DriftMax * 100} %`,
    async () => {
      const acknowledged = new Map<string, Acknowledged>()
      /** Payments that failed without an answer: what failed, and when. */
      const unanswered: Array<{ outTradeNo: string; error: string; atMs: number }> = []
      let sequence = 0
      const pay = async (agent: http.Agent) => {
        const outTradeNo = `SOAK-${(sequence += 1)}`
        const response = await send(agent, server.url, signedPay(world, outTradeNo, 1), timeoutMs).catch(
          (error: unknown) => {
            unanswered.push({ outTradeNo, error: networkError(error), atMs: performance.now() })
            throw error
          },
        )
        if (response.status === 200)
          acknowledged.set(outTradeNo, { amountFen: 1, tradeId: JSON.parse(response.body).id })
        return response.status
      }

      // The peak: a closed loop for 5 s after 2 s of warm-up.
      const closedAgent = keepAliveAgent(closedClients)
      const closed = async (seconds: number) => {
        const deadline = performance.now() + seconds * 1000
        let served = 0
        await Promise.all(
          Array.from({ length: closedClients }, async () => {
            while (performance.now() < deadline) if ((await pay(closedAgent)) === 200) served += 1
          }),
        )
        return served / seconds
      }
      await closed(2)
      const peak = await closed(5)
      closedAgent.destroy()
      const rate = peak / 2

      // Open loop at half the peak; RSS sampled on the side.
      const rss: Array<{ atMs: number; bytes: number }> = []
      const started = performance.now()
      const sampler = setInterval(() => {
        const bytes = server.rssBytes()
        if (bytes !== null) rss.push({ atMs: performance.now() - started, bytes })
      }, rssSampleMs)
      const agent = keepAliveAgent(Math.ceil(rate) + 64)
      const latencies: Array<{ atMs: number; latencyMs: number; sendLagMs: number }> = []
      const statuses = new Map<string, number>()
      const durationMs = minutes * 60_000
      const total = Math.floor((rate * durationMs) / 1000)
      let inFlight = 0
      let drained: (() => void) | null = null
      for (let index = 0; index < total; index += 1) {
        const intended = started + (index * 1000) / rate
        const wait = intended - performance.now()
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
        // Behind schedule, still let answers and the RSS sampler in now and then.
        else if (index % 64 === 0) await new Promise((resolve) => setImmediate(resolve))
        const sendLagMs = performance.now() - intended
        inFlight += 1
        void pay(agent)
          .then(
            (status) => String(status),
            (error: unknown) => (/no answer within/.test(String(error)) ? 'timeout' : `error ${networkError(error)}`),
          )
          .then((status) => {
            statuses.set(status, (statuses.get(status) ?? 0) + 1)
            latencies.push({ atMs: intended - started, latencyMs: performance.now() - intended, sendLagMs })
            inFlight -= 1
            if (inFlight === 0) drained?.()
          })
      }
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve))
      clearInterval(sampler)
      agent.destroy()

      // Windows: a tenth of warm-up, then the first and the last fifth.
      const windowMs = durationMs / 5
      const firstFrom = durationMs / 10
      const lastFrom = durationMs - windowMs
      const within = <T extends { atMs: number }>(list: readonly T[], from: number) =>
        list.filter((entry) => entry.atMs >= from && entry.atMs < from + windowMs)
      const median = (values: readonly number[]) => percentile(values, 50)
      const rssFirst = median(within(rss, firstFrom).map((sample) => sample.bytes))
      const rssLast = median(within(rss, lastFrom).map((sample) => sample.bytes))
      const p99First = percentile(
        within(latencies, firstFrom).map((entry) => entry.latencyMs),
        99,
      )
      const p99Last = percentile(
        within(latencies, lastFrom).map((entry) => entry.latencyMs),
        99,
      )
      const mib = (bytes: number) => Math.round(bytes / 2 ** 20)
      const summary = {
        minutes,
        peakPerSecond: Math.round(peak),
        ratePerSecond: Math.round(rate),
        sent: total,
        statuses: Object.fromEntries(statuses),
        rssFirstMiB: mib(rssFirst),
        rssLastMiB: mib(rssLast),
        rssPeakMiB: mib(server.peakRssBytes() ?? 0),
        rssGrowth: Number((rssLast / rssFirst - 1).toFixed(3)),
        p50FirstMs: Number(
          percentile(
            within(latencies, firstFrom).map((entry) => entry.latencyMs),
            50,
          ).toFixed(1),
        ),
        p50LastMs: Number(
          percentile(
            within(latencies, lastFrom).map((entry) => entry.latencyMs),
            50,
          ).toFixed(1),
        ),
        p99FirstMs: Number(p99First.toFixed(1)),
        p99LastMs: Number(p99Last.toFixed(1)),
        p99Drift: Number((p99Last / p99First - 1).toFixed(3)),
        p999Ms: Number(
          percentile(
            latencies.map((entry) => entry.latencyMs),
            99.9,
          ).toFixed(1),
        ),
        sendLagP99Ms: Number(
          percentile(
            latencies.map((entry) => entry.sendLagMs),
            99,
          ).toFixed(1),
        ),
        rssMiBPerMinute: Array.from({ length: minutes }, (_, minute) =>
          mib(median(rss.filter((sample) => Math.floor(sample.atMs / 60_000) === minute).map((s) => s.bytes))),
        ),
        p99MsPerMinute: Array.from({ length: minutes }, (_, minute) =>
          Math.round(
            percentile(
              latencies.filter((entry) => Math.floor(entry.atMs / 60_000) === minute).map((entry) => entry.latencyMs),
              99,
            ),
          ),
        ),
      }
      console.info(`soak: ${JSON.stringify(summary)}`)
      if (unanswered.length > 0) await reportUnanswered(database, unanswered, started)

      // Both windows measured what they claim: their RSS samples and their share of requests.
      for (const from of [firstFrom, lastFrom]) {
        expect(within(rss, from).length, 'RSS samples in the window').toBeGreaterThanOrEqual(windowMs / rssSampleMs - 2)
        expect(within(latencies, from).length, 'requests in the window').toBeGreaterThanOrEqual(
          Math.floor((rate * windowMs) / 1000) - 1,
        )
      }
      expect(summary.statuses, 'at half the peak every payment is served').toEqual({ '200': total })
      const storage = await openDatabase(database)
      try {
        const report = await checkPayments(storage.db, world, acknowledged)
        expect(report).toMatchObject({ lost: [], duplicated: [], walletDriftFen: 0, ledgerDrift: 0 })
      } finally {
        await storage.close()
      }
      expect(summary.rssGrowth, 'resident memory growth, last window against first').toBeLessThanOrEqual(rssGrowthMax)
      expect(summary.p99Drift, 'p99 drift, last window against first').toBeLessThanOrEqual(p99DriftMax)
    },
    (minutes + 10) * 60_000,
  )
})

/** A network error's code, and whether its request went out on a reused kept-alive socket. */
function networkError(error: unknown): string {
  const { code, message, reusedSocket } = error as { code?: string; message?: string; reusedSocket?: boolean }
  return `${code ?? message ?? String(error)}${reusedSocket === true ? ' (reused socket)' : ''}`
}

/**
 * What failed without an answer, for the log: counts by error, and for the first few whether
 * their trade exists (a timed-out request may still have been committing). A diagnostic: it
 * never fails the run itself, so the assertions after it report what went wrong.
 */
async function reportUnanswered(
  database: WorldDatabase,
  unanswered: ReadonlyArray<{ outTradeNo: string; error: string; atMs: number }>,
  startedMs: number,
): Promise<void> {
  const byError: Record<string, number> = {}
  for (const entry of unanswered) byError[entry.error] = (byError[entry.error] ?? 0) + 1
  const shown = unanswered.slice(0, unansweredShownMax)
  try {
    const storage = await openDatabase(database)
    try {
      const found: Array<{ out_trade_no: string }> = await (storage.db as Kysely<any>)
        .selectFrom('payment_trades')
        .select('out_trade_no')
        .where(
          'out_trade_no',
          'in',
          shown.map((entry) => entry.outTradeNo),
        )
        .execute()
      const exists = new Set(found.map((row) => row.out_trade_no))
      const first = shown.map((entry) => ({
        ...entry,
        minute: Number(((entry.atMs - startedMs) / 60_000).toFixed(2)),
        tradeExists: exists.has(entry.outTradeNo),
      }))
      console.info(`soak: unanswered ${JSON.stringify({ count: unanswered.length, byError, first })}`)
    } finally {
      await storage.close()
    }
  } catch (error) {
    console.info(`soak: unanswered ${JSON.stringify({ count: unanswered.length, byError })}; lookup failed: ${error}`)
  }
}
