/**
 * Notification delivery under failure: a real `baseplate serve` on a compressed clock
 * (BASEPLATE_TEST_CLOCK_SPEEDUP, src/platform/clock.ts) commits payment events through the
 * signed API and delivers them as webhooks to a loopback receiver that fails 30 % of calls at
 * random (500, 503 or a cut connection), is down for 6 clock hours (connection refused), and
 * holds requests open while the platform is killed with SIGKILL mid-delivery, then restarted.
 * A few events ("marathons") are refused until their twelfth and last attempt, so the whole
 * documented schedule (about three days) runs in seconds.
 *
 * Afterwards, from the receiver's log and the database: every committed event delivered, its
 * signature verified with the SDK's verifyWebhook, its id and bytes the same on every attempt,
 * the spacing of retries as documented (docs/guides/webhooks.md §5), duplicates counted (and
 * explained by a kill), and commit to first attempt measured. docs/reliability.md publishes
 * the figures.
 *
 * The receiver never fails a last attempt (attempt 12): at 30 % a delivery would otherwise die
 * with probability 0.3^12, and the test is about the platform, not the dice.
 */
import type http from 'node:http'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyWebhook, WebhookVerificationError } from '../../sdk/src/webhooks.js'
import { parseConfig } from '../../src/config.js'
import { acceleratedClock, acceleratedPollIntervalMs } from '../../src/platform/clock.js'
import { createEndpoint } from '../../src/platform/notifications/service.js'
import type { DialectName } from '../../src/storage/database.js'
import { forEachDialect } from '../harness.js'
import {
  checkDeliveries,
  documentedAttempts,
  documentedDelaysS,
  documentedJitter,
  type CommittedEvent,
  type Verdict,
} from './support/deliveries.js'
import { keepAliveAgent, send, signedPay } from './support/http.js'
import { between, seeded } from './support/random.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { budgetMs, full, mode, postgresUrl, settings } from './support/settings.js'
import { startReceiver, type Answer, type Hit, type Receiver } from './support/webhook-receiver.js'
import {
  databaseEnv,
  freshDatabase,
  isvOwner,
  openDatabase,
  prepareWorld,
  type World,
  type WorldDatabase,
} from './support/world.js'

const seed = settings.seed + 8
/** Payments committed through the API (each commits payment.trade.created and .paid), and kills. */
const { events: payments, kills } = settings.notifications
/** Clock ms per real ms: 78.8 h (the longest schedule) take 14 s short, 71 s full. */
const speedup = full ? 4_000 : 20_000
const failureRatio = 0.3
const hourMs = 3_600_000
const downClockMs = 6 * hourMs
const marathonsWanted = full ? 8 : 3
/**
 * Lag the platform may add to a retry, real ms (recording the outcome, the poll, the claim, a
 * busy database, a process starved of CPU on a shared machine): 1 s is 5.6 clock hours at
 * ×20,000 and 67 clock minutes at ×4,000. Earliness is checked exactly.
 */
const lagRealMsMax = 1_000
/** The receiver's timestamp tolerance, in real ms (verifyWebhook's 300 s would be 15 ms real). */
const toleranceRealMs = 2_000
const signatureWindowS = 3_600
const commitRealMsMin = 1_500

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Run {
  receiver: Receiver
  readonly verdicts: Map<number, Verdict>
  readonly marathons: Set<string>
  readonly killsAtRealMs: number[]
  readonly inFlightAtKill: number[]
  readonly acknowledgedAtKill: Set<number>
  readonly incarnations: { startMs: number; spawnClockMs: number }[]
  readonly unexpected: string[]
  acknowledgedPayments: number
  windowRetries: number
  downClock: { from: number; to: number } | null
  quietAtClockMs: number
  /** Outbox events already fanned out when the endpoint was registered: not for it. */
  dispatchedBefore: ReadonlySet<string>
  /** Real ms spent in each phase, in order: start, commit, kill (or settle, stop). */
  readonly phasesMs: [string, number][]
}

forEachDialect(`notification delivery (${mode}, seed ${seed}, clock ×${speedup})`, (dialect: DialectName) => {
  // PostgreSQL doubles the time; `npm test` runs SQLite only.
  const runs = dialect === 'sqlite' || full
  let database: WorldDatabase
  let world: World
  let port: number
  let originMs: number
  const clockAt = (realMs: number) => originMs + (realMs - originMs) * speedup
  const realOf = (clockMs: number) => originMs + (clockMs - originMs) / speedup

  beforeAll(async () => {
    if (!runs) return
    port = await freePort()
    database = await freshDatabase(dialect, postgresUrl)
    world = await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` })
  })
  afterAll(async () => database?.dispose())

  it.runIf(runs)(
    `receiver failing ${failureRatio * 100} %, down ${downClockMs / hourMs} h, ${kills} kill(s) mid-delivery: ` +
      'every committed event delivered once or more, signatures verify, retries on schedule',
    async () => {
      const wallStarted = performance.now()
      const random = seeded(seed)
      originMs = Date.now()
      const run = await deliveryRun(random, clockAt)
      const report = await analyse(run, realOf)
      const summary = {
        dialect,
        seed,
        speedup,
        payments: run.acknowledgedPayments,
        windowRetries: run.windowRetries,
        kills: run.killsAtRealMs.length,
        inFlightAtKill: run.inFlightAtKill,
        acknowledgedAtKill: run.acknowledgedAtKill.size,
        restartMs: run.incarnations.map((incarnation) => Math.round(incarnation.startMs)),
        phasesMs: run.phasesMs.map(([name, ms]) => `${name} ${ms}`).join(', '),
        ...report,
        wallS: Math.round((performance.now() - wallStarted) / 100) / 10,
      }
      console.info(`notifications suite [${dialect}]: ${JSON.stringify(summary)}`)
      const context = `seed ${seed}, ${dialect}`
      expect(run.unexpected, context).toEqual([])
      expect(report.delivery.undelivered, `committed events never delivered (${context})`).toEqual([])
      expect(report.delivery.uncommitted, `events received but never committed (${context})`).toEqual([])
      expect(report.delivery.deliveriesNotDelivered, context).toEqual([])
      expect(report.delivery.signatureFailures, context).toEqual([])
      expect(report.delivery.idsUnstable, context).toEqual([])
      expect(report.delivery.duplicatesUnexplained, context).toEqual([])
      expect(report.delivery.schedule.early, `retries earlier than documented (${context})`).toEqual([])
      expect(report.delivery.schedule.late, `retries later than documented + lag (${context})`).toEqual([])
      expect(report.marathons.problems, context).toEqual([])
      expect(run.marathons.size, 'marathons chosen').toBe(marathonsWanted)
      expect(report.delivery.committed).toBeGreaterThanOrEqual(payments)
      // Every kill must have caught a delivery on the wire, or it tested nothing.
      expect(
        run.inFlightAtKill.every((count) => count > 0),
        `deliveries in flight at each kill (${context})`,
      ).toBe(true)
      expect(run.killsAtRealMs).toHaveLength(kills)
      expect(report.delivery.commitToFirstAttempt.p99RealMs, 'commit to first attempt, p99').toBeLessThanOrEqual(1000)
    },
    budgetMs(120_000, 600_000),
  )

  /** The whole run: kill rounds, then the last incarnation until every delivery is settled. */
  async function deliveryRun(random: () => number, clockAt: (realMs: number) => number): Promise<Run> {
    const run: Run = {
      receiver: null as unknown as Receiver,
      verdicts: new Map(),
      marathons: new Set(),
      killsAtRealMs: [],
      inFlightAtKill: [],
      acknowledgedAtKill: new Set(),
      incarnations: [],
      unexpected: [],
      acknowledgedPayments: 0,
      windowRetries: 0,
      downClock: null,
      quietAtClockMs: 0,
      dispatchedBefore: new Set(),
      phasesMs: [],
    }
    let phaseStarted = performance.now()
    const phase = (name: string) => {
      const now = performance.now()
      run.phasesMs.push([name, Math.round(now - phaseStarted)])
      phaseStarted = now
    }
    const toleranceS = Math.ceil((toleranceRealMs * speedup) / 1000)
    let holding = false
    let final = false
    const seen = new Set<string>()
    const respond = (hit: Hit): Answer => {
      const receivedClockMs = clockAt(hit.receivedAtMs)
      let verdict: Verdict
      try {
        verifyWebhook({
          headers: hit.headers,
          body: hit.body,
          publicKey: world.platformPublicKey,
          toleranceS,
          now: () => receivedClockMs,
        })
        verdict = { verified: true, code: null, skewRealMs: skewOf(hit, receivedClockMs) }
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error
        verdict = { verified: false, code: error.code, skewRealMs: skewOf(hit, receivedClockMs) }
      }
      run.verdicts.set(hit.sequence, verdict)
      const firstSight = !seen.has(hit.eventId)
      seen.add(hit.eventId)
      if (!verdict.verified) return { status: 400 }
      if (holding) return 'hold'
      if (hit.attempt >= documentedAttempts) return { status: 204 }
      if (run.marathons.has(hit.eventId)) return { status: 503 }
      // Marathons: the first events the last incarnation sends (attempt 1), refused until attempt 12.
      if (final && firstSight && hit.attempt === 1 && run.marathons.size < marathonsWanted) {
        run.marathons.add(hit.eventId)
        return { status: 503 }
      }
      if (random() < failureRatio) {
        const kind = between(random, 0, 2)
        return kind === 0 ? { status: 500 } : kind === 1 ? { status: 503 } : 'drop'
      }
      return { status: 204 }
    }
    const receiverPort = await freePort()
    const receiver = await startReceiver({ port: receiverPort, path: '/hooks', respond })
    run.receiver = receiver
    run.dispatchedBefore = await registerEndpoint(database, world, receiver.url, clockAt(Date.now()))

    const env = {
      ...databaseEnv(database),
      BASEPLATE_TEST_CLOCK_SPEEDUP: String(speedup),
      BASEPLATE_TEST_CLOCK_ORIGIN_MS: String(originMs),
      // The window is in clock seconds: 3,600 s is 180 ms real at ×20,000. Requests refused for
      // their timestamp are signed again and resent (counted as windowRetries).
      BASEPLATE_SIGNATURE_WINDOW_S: String(signatureWindowS),
    }
    let sequence = 0
    const pay = async (server: ServerProcess, agent: http.Agent, label: string) => {
      sequence += 1
      const outTradeNo = `NOTIFY-${label}-${sequence}`
      const amountFen = between(random, 1, 500)
      for (let attempt = 0; attempt < 50; attempt += 1) {
        const request = signedPay(world, outTradeNo, amountFen, clockAt(Date.now()))
        const response = await send(agent, server.url, request, 10_000)
        if (response.status === 200) {
          run.acknowledgedPayments += 1
          return
        }
        const code = (JSON.parse(response.body) as { code?: string }).code
        if (code === 'AUTH_TIMESTAMP_OUT_OF_WINDOW') {
          run.windowRetries += 1
          continue
        }
        if (code === 'IDEMPOTENCY_REQUEST_IN_PROGRESS') {
          await sleep(20)
          continue
        }
        run.unexpected.push(`${outTradeNo}: ${response.status} ${response.body}`)
        return
      }
      run.unexpected.push(`${outTradeNo}: never accepted`)
    }
    /** `count` payments spread evenly over `spreadMs` real, each sent at its time (open loop). */
    const commit = async (server: ServerProcess, agent: http.Agent, count: number, spreadMs: number, label: string) => {
      const started = Date.now()
      await Promise.all(
        Array.from({ length: count }, async (_, index) => {
          await sleep(started + (index * spreadMs) / count - Date.now())
          await pay(server, agent, label)
        }),
      )
    }
    const perIncarnation = Math.ceil(payments / (kills + 1))

    for (let incarnation = 0; incarnation <= kills; incarnation += 1) {
      final = incarnation === kills
      const spawnClockMs = clockAt(Date.now())
      const server = await startServer({ env, port })
      phase('start')
      run.incarnations.push({ startMs: server.startMs, spawnClockMs: spawnClockMs })
      const agent = keepAliveAgent(8)
      try {
        if (!final) {
          await commit(server, agent, perIncarnation, commitRealMsMin, `K${incarnation}`)
          phase('commit')
          await killMidDelivery(server, agent)
          phase('kill')
          continue
        }
        // The last incarnation: payments while the receiver goes down for 6 clock hours.
        const downRealMs = downClockMs / speedup
        const spreadMs = Math.max(commitRealMsMin, 2 * downRealMs)
        const outage = (async () => {
          await sleep(spreadMs / 4)
          await receiver.down()
          const from = clockAt(Date.now())
          await sleep(downRealMs)
          await receiver.up()
          run.downClock = { from, to: clockAt(Date.now()) }
        })()
        await Promise.all([commit(server, agent, perIncarnation, spreadMs, 'FINAL'), outage])
        phase('commit')
        await settle(server, run)
        phase('settle')
        await server.stop()
        phase('stop')
      } finally {
        agent.destroy()
        if (!final) await server.kill('SIGKILL')
      }
    }
    await receiver.close()
    return run

    /**
     * Holds the requests the worker sends next, answers some of them 2xx, kills the server,
     * then cuts the rest. The kill's time, which splits hits between incarnations, is taken
     * once the process is gone and whatever it sent has been read: any hit before it came
     * from the dead process, any after it from the next.
     */
    async function killMidDelivery(server: ServerProcess, agent: http.Agent): Promise<void> {
      holding = true
      const first = receiver.nextHeld()
      // A fresh payment gives the worker something to deliver right away.
      const provoke = pay(server, agent, 'PROVOKE').catch(() => undefined)
      const held = await Promise.race([first, sleep(5_000).then(() => null)])
      if (held !== null) await sleep(between(random, 0, 20)) // let the rest of the batch arrive
      // Some held requests are answered 2xx just before the kill: the platform may die before
      // recording them, and must then deliver them again (a duplicate, at least once).
      const answered = receiver.held.filter(() => random() < 0.5)
      for (const entry of answered) {
        entry.answer(204)
        run.acknowledgedAtKill.add(entry.hit.sequence)
      }
      // 0: kill in the same tick as the answer, before the platform can have recorded it.
      const gapMs = between(random, 0, 3)
      if (gapMs > 0) await sleep(gapMs)
      await server.kill('SIGKILL')
      await provoke
      await sleep(50)
      run.killsAtRealMs.push(Date.now())
      holding = false
      const inFlight = receiver.held.splice(0)
      run.inFlightAtKill.push(inFlight.length)
      for (const entry of inFlight) if (!answered.includes(entry)) entry.destroy()
    }
  }

  /** Waits until every marathon is acknowledged and nothing is left to dispatch or deliver. */
  async function settle(server: ServerProcess, run: Run): Promise<void> {
    const storage = await openDatabase(database)
    const deadline = Date.now() + budgetMs(90_000, 400_000)
    try {
      let quietSince: number | null = null
      for (;;) {
        const polledAt = clockAt(Date.now())
        const marathonsDone =
          run.marathons.size === marathonsWanted &&
          [...run.marathons].every((id) => run.receiver.hits.some((hit) => hit.eventId === id && hit.acknowledged))
        const open = marathonsDone ? await openWork(storage.db) : 1
        if (open === 0) {
          // Quiet twice in a row: an event whose transaction began before the first look but
          // committed after it would show up in the second.
          if (quietSince !== null) break
          quietSince = polledAt
        } else quietSince = null
        if (Date.now() > deadline) {
          run.unexpected.push(`not settled in time: ${open} open, marathons done ${marathonsDone}`)
          break
        }
        await sleep(200)
      }
      run.quietAtClockMs = quietSince ?? clockAt(Date.now())
    } finally {
      await storage.close()
    }
    if (/step failed/.test(server.output())) run.unexpected.push(`worker errors:\n${server.output().slice(-2000)}`)
  }

  async function analyse(run: Run, realOf: (clockMs: number) => number) {
    const storage = await openDatabase(database)
    try {
      const db = storage.db as Kysely<any>
      const endpoint = await db
        .selectFrom('webhook_endpoints')
        .select(['id', 'created_at'])
        .where('app_id', '=', world.appId)
        .executeTakeFirstOrThrow()
      const rows = await db
        .selectFrom('outbox_events')
        .select(['id', 'type', 'created_at', 'app_id', 'organization_id'])
        .execute()
      // The events the endpoint must get (docs/guides/webhooks.md §2): the app's own, and those
      // of its organisation that name no app, fanned out after it was registered (the world's
      // own events, written before any server ran, included); committed before the run settled.
      const targeted = rows.filter(
        (row) =>
          !run.dispatchedBefore.has(row.id) &&
          (row.app_id === world.appId || (row.app_id === null && row.organization_id === world.isvId)),
      )
      const events: CommittedEvent[] = targeted
        .filter((row) => Number(row.created_at) <= run.quietAtClockMs)
        .map((row) => ({ id: row.id, type: row.type, createdAt: Number(row.created_at) }))
      const deliveries = (
        await db
          .selectFrom('webhook_deliveries')
          .select(['id', 'event_id', 'status', 'attempts'])
          .where('endpoint_id', '=', endpoint.id)
          .execute()
      ).map((row) => ({ id: row.id, eventId: row.event_id, status: row.status, attempts: Number(row.attempts) }))
      const delivery = checkDeliveries({
        hits: run.receiver.hits,
        verdicts: run.verdicts,
        events,
        deliveries,
        killsAtRealMs: run.killsAtRealMs,
        acknowledgedAtKill: run.acknowledgedAtKill,
        speedup,
        realOf,
        clockOf: clockAt,
        measureFromClockMs: run.incarnations[0]!.spawnClockMs,
        lagRealMsMax,
        apiEventTypes: new Set(['payment.trade.created', 'payment.trade.paid']),
      })
      return {
        delivery,
        lateEvents: targeted.length - events.length,
        marathons: checkMarathons(run, deliveries),
        downClockH:
          run.downClock === null ? null : Math.round(((run.downClock.to - run.downClock.from) / hourMs) * 10) / 10,
      }
    } finally {
      await storage.close()
    }
  }

  /** Each marathon: attempts 1 to 12, the last acknowledged, spanning the documented 71.6 h to 78.8 h. */
  function checkMarathons(run: Run, deliveries: readonly { eventId: string; status: string; attempts: number }[]) {
    const problems: string[] = []
    const spansH: number[] = []
    const lowerS = documentedDelaysS.reduce((sum, delay) => sum + delay, 0)
    const upperS = lowerS * (1 + documentedJitter)
    // The lag allowance once for the whole span: lateness does not pile up retry after retry.
    const slackS = (lagRealMsMax * speedup) / 1000
    for (const eventId of run.marathons) {
      const hits = run.receiver.hits.filter((hit) => hit.eventId === eventId).sort((a, b) => a.attempt - b.attempt)
      const attempts = hits.map((hit) => hit.attempt)
      const last = hits.at(-1)
      const row = deliveries.find((delivery) => delivery.eventId === eventId)
      if (last === undefined || hits[0]!.attempt !== 1 || last.attempt !== documentedAttempts || !last.acknowledged) {
        problems.push(`${eventId}: attempts ${attempts.join(',')}`)
        continue
      }
      const spanS = Number(last.headers['webhook-timestamp']) - Number(hits[0]!.headers['webhook-timestamp'])
      spansH.push(Math.round((spanS / 3600) * 10) / 10)
      if (spanS < lowerS || spanS > upperS + slackS) problems.push(`${eventId}: first to last ${spanS} s`)
      if (row?.status !== 'delivered' || row.attempts !== documentedAttempts) {
        problems.push(`${eventId}: ${row?.status} after ${row?.attempts} attempts`)
      }
    }
    return { problems, spansH, seenAttempts: run.marathons.size }
  }
})

describe('the compressed clock (BASEPLATE_TEST_CLOCK_SPEEDUP)', () => {
  it('is refused outside tests, and reads on from a fixed origin across restarts', () => {
    expect(() => parseConfig({ BASEPLATE_TEST_CLOCK_SPEEDUP: '1000' })).toThrow(/refused unless NODE_ENV=test/)
    expect(() => parseConfig({ BASEPLATE_TEST_CLOCK_ORIGIN_MS: '1', NODE_ENV: 'production' })).toThrow(
      /refused unless NODE_ENV=test/,
    )
    expect(() => parseConfig({ BASEPLATE_TEST_CLOCK_SPEEDUP: '0', NODE_ENV: 'test' })).toThrow(/between 1 and/)
    expect(parseConfig({}).testClock).toEqual({ speedup: 1, originMs: null })
    const env = { BASEPLATE_TEST_CLOCK_SPEEDUP: '100', BASEPLATE_TEST_CLOCK_ORIGIN_MS: '1000', NODE_ENV: 'test' }
    const { speedup, originMs } = parseConfig(env).testClock
    expect({ speedup, originMs }).toEqual({ speedup: 100, originMs: 1000 })
    let real = 1_000
    const before = acceleratedClock({ speedup, originMs: originMs! }, () => real)
    real = 1_010
    expect(before.now()).toBe(2_000)
    // A process started again with the same origin carries on where the dead one was.
    const after = acceleratedClock({ speedup, originMs: originMs! }, () => real)
    expect(after.now()).toBe(before.now())
    // The worker's idle poll: 1 s of clock time, but never below 10 ms of real time.
    expect([1, 100, 20_000].map((factor) => acceleratedPollIntervalMs(factor))).toEqual([1000, 10, 10])
  })
})

function skewOf(hit: Hit, receivedClockMs: number): number {
  return (receivedClockMs - Number(hit.headers['webhook-timestamp']) * 1000) / speedup
}

/** Outbox events not yet fanned out, plus deliveries still pending or under way. */
async function openWork(db: Kysely<any>): Promise<number> {
  const undispatched = await db
    .selectFrom('outbox_events')
    .select((eb) => eb.fn.countAll().as('count'))
    .where('dispatched_at', 'is', null)
    .executeTakeFirstOrThrow()
  const open = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.countAll().as('count'))
    .where('status', 'in', ['pending', 'delivering'])
    .executeTakeFirstOrThrow()
  return Number(undispatched.count) + Number(open.count)
}

/**
 * Registers the app's endpoint as its owner would (the console call's own service function);
 * returns the events already fanned out by then, which it will not get.
 */
async function registerEndpoint(database: WorldDatabase, world: World, url: string, now: number): Promise<Set<string>> {
  const storage = await openDatabase(database)
  try {
    const principal = await isvOwner(storage.db, world)
    return await storage.db.transaction().execute(async (tx) => {
      await createEndpoint(tx, principal, world.isvId, world.appId, { url }, now)
      const dispatched = await (tx as Kysely<any>)
        .selectFrom('outbox_events')
        .select('id')
        .where('dispatched_at', 'is not', null)
        .execute()
      return new Set(dispatched.map((row) => row.id as string))
    })
  } finally {
    await storage.close()
  }
}
