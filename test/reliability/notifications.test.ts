/**
 * Notification delivery under failure: a real `baseplate serve` on a compressed clock
 * (BASEPLATE_TEST_CLOCK_SPEEDUP, src/platform/clock.ts) commits payment events through the
 * signed API and delivers them in both of its formats, each to a loopback receiver of its own:
 * native webhooks, and Alipay-format notifications (`trade_status_sync`, the app's notify URL).
 * Both receivers fail 30 % of calls at random (500, 503, a cut connection; for Alipay a 200
 * whose text is not `success`), go down together for 6 clock hours (connection refused), and
 * hold requests open while the platform is killed with SIGKILL mid-delivery, then restarted.
 * A few events of each format ("marathons") are refused until their last attempt (the twelfth
 * of a webhook, the eighth of an Alipay notification), so the whole documented schedules
 * (about three days, and about 25 hours) run in seconds.
 *
 * Afterwards, from the receivers' logs and the database, for each format: every committed
 * event delivered, its signature verified (the SDK's verifyWebhook; alipay-sdk's
 * checkNotifySignV2), its id and bytes the same on every attempt (but an Alipay notification's
 * `notify_time` and `sign`), the spacing of retries as documented (docs/guides/webhooks.md §5,
 * docs/guides/alipay-compatibility.md §5), duplicates counted (and explained by a kill), and
 * commit to first attempt measured. Each acknowledged payment's Alipay notification must say
 * TRADE_SUCCESS with its order number and amount. docs/reliability.md publishes the figures.
 *
 * A receiver never fails a last attempt: at 30 % a delivery would otherwise die with
 * probability 0.3^12 (0.3^8 for Alipay), and the test is about the platform, not the dice.
 */
import type http from 'node:http'
import { AlipaySdk } from 'alipay-sdk'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyWebhook, WebhookVerificationError } from '../../sdk/src/webhooks.js'
import { parseConfig } from '../../src/config.js'
import { setAlipaySettings } from '../../src/gateway/alipay/settings.js'
import { acceleratedClock, acceleratedPollIntervalMs } from '../../src/platform/clock.js'
import { createEndpoint } from '../../src/platform/notifications/service.js'
import type { DialectName } from '../../src/storage/database.js'
import { forEachDialect } from '../harness.js'
import {
  alipaySchedule,
  attemptsOf,
  checkDeliveries,
  webhookSchedule,
  type CommittedEvent,
  type DeliveryRow,
  type DocumentedSchedule,
  type Verdict,
} from './support/deliveries.js'
import { keepAliveAgent, send, signedPay } from './support/http.js'
import { between, seeded } from './support/random.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { budgetMs, full, mode, postgresUrl, settings } from './support/settings.js'
import {
  alipayProtocol,
  startReceiver,
  webhookProtocol,
  type Answer,
  type Hit,
  type Receiver,
  type ReceiverProtocol,
} from './support/webhook-receiver.js'
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

/** One notification format, its receiver and what the run saw of it. */
interface Lane {
  readonly name: 'webhook' | 'alipay'
  readonly schedule: DocumentedSchedule
  readonly protocol: ReceiverProtocol
  /** What a receiver that accepts answers. */
  readonly ok: Answer
  /** What a failing receiver answers, one at random. */
  readonly failures: readonly Answer[]
  receiver: Receiver
  /** The receiver's verdict on each hit's signature, by hit sequence. */
  readonly verdicts: Map<number, Verdict>
  /** Event ids (webhooks) or notify ids (Alipay) refused until their last attempt. */
  readonly marathons: Set<string>
  readonly seen: Set<string>
  /** Requests on the wire at each kill. */
  readonly inFlightAtKill: number[]
  readonly acknowledgedAtKill: Set<number>
}

interface Run {
  readonly lanes: readonly [Lane, Lane]
  readonly killsAtRealMs: number[]
  readonly incarnations: { startMs: number; spawnClockMs: number }[]
  readonly unexpected: string[]
  acknowledgedPayments: number
  /** Amount in fen of each acknowledged payment, by out_trade_no. */
  readonly paid: Map<string, number>
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
    `receivers failing ${failureRatio * 100} %, down ${downClockMs / hourMs} h, ${kills} kill(s) mid-delivery: ` +
      'every committed event delivered once or more as a webhook and as an Alipay notification, signatures verify, ' +
      'retries on schedule',
    async () => {
      const wallStarted = performance.now()
      const random = seeded(seed)
      originMs = Date.now()
      const run = await deliveryRun(random, clockAt)
      const reports = await analyse(run, realOf)
      const context = `seed ${seed}, ${dialect}`
      const summary = {
        dialect,
        seed,
        speedup,
        payments: run.acknowledgedPayments,
        windowRetries: run.windowRetries,
        kills: run.killsAtRealMs.length,
        restartMs: run.incarnations.map((incarnation) => Math.round(incarnation.startMs)),
        phasesMs: run.phasesMs.map(([name, ms]) => `${name} ${ms}`).join(', '),
        downClockH:
          run.downClock === null ? null : Math.round(((run.downClock.to - run.downClock.from) / hourMs) * 10) / 10,
        wallS: Math.round((performance.now() - wallStarted) / 100) / 10,
      }
      console.info(`notifications suite [${dialect}]: ${JSON.stringify(summary)}`)
      expect(run.unexpected, context).toEqual([])
      expect(run.killsAtRealMs).toHaveLength(kills)
      for (const [index, lane] of run.lanes.entries()) {
        const report = reports[index]!
        const laneContext = `${lane.name}, ${context}`
        console.info(
          `notifications suite [${dialect}, ${lane.name}]: ${JSON.stringify({
            inFlightAtKill: lane.inFlightAtKill,
            acknowledgedAtKill: lane.acknowledgedAtKill.size,
            ...report,
          })}`,
        )
        expect(report.delivery.undelivered, `committed events never delivered (${laneContext})`).toEqual([])
        expect(report.delivery.uncommitted, `events received but never committed (${laneContext})`).toEqual([])
        expect(report.delivery.deliveriesNotDelivered, laneContext).toEqual([])
        expect(report.delivery.signatureFailures, laneContext).toEqual([])
        expect(report.delivery.idsUnstable, laneContext).toEqual([])
        expect(report.delivery.duplicatesUnexplained, laneContext).toEqual([])
        expect(report.delivery.schedule.early, `retries earlier than documented (${laneContext})`).toEqual([])
        expect(report.delivery.schedule.late, `retries later than documented + lag (${laneContext})`).toEqual([])
        expect(report.marathons.problems, laneContext).toEqual([])
        expect(report.contents, `what the notifications say (${laneContext})`).toEqual([])
        expect(lane.marathons.size, `marathons chosen (${laneContext})`).toBe(marathonsWanted)
        expect(report.delivery.committed, laneContext).toBeGreaterThanOrEqual(payments)
        // Every kill must have caught deliveries of both formats on the wire, or it tested nothing.
        expect(lane.inFlightAtKill, `deliveries in flight at each kill (${laneContext})`).toHaveLength(kills)
        expect(
          lane.inFlightAtKill.every((count) => count > 0),
          `deliveries in flight at each kill (${laneContext})`,
        ).toBe(true)
        expect(
          report.delivery.commitToFirstAttempt.p99RealMs,
          `commit to first attempt, p99 (${laneContext})`,
        ).toBeLessThanOrEqual(1000)
      }
    },
    budgetMs(120_000, 600_000),
  )

  /** The whole run: kill rounds, then the last incarnation until every delivery is settled. */
  async function deliveryRun(random: () => number, clockAt: (realMs: number) => number): Promise<Run> {
    const lane = (
      name: Lane['name'],
      schedule: DocumentedSchedule,
      protocol: ReceiverProtocol,
      ok: Answer,
      failures: readonly Answer[],
    ): Lane => ({
      name,
      schedule,
      protocol,
      ok,
      failures,
      receiver: null as unknown as Receiver,
      verdicts: new Map(),
      marathons: new Set(),
      seen: new Set(),
      inFlightAtKill: [],
      acknowledgedAtKill: new Set(),
    })
    const run: Run = {
      lanes: [
        lane('webhook', webhookSchedule, webhookProtocol, { status: 204 }, [{ status: 500 }, { status: 503 }, 'drop']),
        // Alipay's rule: anything but the text `success` fails, a 200 included.
        lane('alipay', alipaySchedule, alipayProtocol, { status: 200 }, [
          { status: 500 },
          { status: 200, body: 'fail' },
          'drop',
        ]),
      ],
      killsAtRealMs: [],
      incarnations: [],
      unexpected: [],
      acknowledgedPayments: 0,
      paid: new Map(),
      windowRetries: 0,
      downClock: null,
      quietAtClockMs: 0,
      dispatchedBefore: new Set(),
      phasesMs: [],
    }
    const [webhooks, alipay] = run.lanes
    let phaseStarted = performance.now()
    const phase = (name: string) => {
      const now = performance.now()
      run.phasesMs.push([name, Math.round(now - phaseStarted)])
      phaseStarted = now
    }
    const toleranceS = Math.ceil((toleranceRealMs * speedup) / 1000)
    const alipaySdk = new AlipaySdk({
      appId: world.appId,
      privateKey: world.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      keyType: 'PKCS8',
      alipayPublicKey: world.alipayPublicKeyPem,
    })
    /** The receiver's signature check of one hit, at the hit's clock time. */
    const verify = (subject: Lane, hit: Hit, receivedClockMs: number): Verdict => {
      let timestampS: number
      try {
        timestampS = subject.schedule.timestampS(hit)
      } catch (error) {
        return { verified: false, code: `unreadable timestamp: ${String(error)}`, skewRealMs: 0 }
      }
      const skewRealMs = (receivedClockMs - timestampS * 1000) / speedup
      if (subject.name === 'alipay') {
        const fields = Object.fromEntries(new URLSearchParams(hit.body))
        const verified = alipaySdk.checkNotifySignV2(fields)
        return { verified, code: verified ? null : 'checkNotifySignV2 false', skewRealMs }
      }
      try {
        verifyWebhook({
          headers: hit.headers,
          body: hit.body,
          publicKey: world.platformPublicKey,
          toleranceS,
          now: () => receivedClockMs,
        })
        return { verified: true, code: null, skewRealMs }
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error
        return { verified: false, code: error.code, skewRealMs }
      }
    }
    let holding = false
    let final = false
    const respond =
      (subject: Lane) =>
      (hit: Hit): Answer => {
        const verdict = verify(subject, hit, clockAt(hit.receivedAtMs))
        subject.verdicts.set(hit.sequence, verdict)
        const firstSight = !subject.seen.has(hit.eventId)
        subject.seen.add(hit.eventId)
        if (!verdict.verified) return { status: 400 }
        if (holding) return 'hold'
        if (hit.attempt >= attemptsOf(subject.schedule)) return subject.ok
        if (subject.marathons.has(hit.eventId)) return { status: 503 }
        // Marathons: the first events the last incarnation sends (attempt 1), refused until the last attempt.
        if (final && firstSight && hit.attempt === 1 && subject.marathons.size < marathonsWanted) {
          subject.marathons.add(hit.eventId)
          return { status: 503 }
        }
        if (random() < failureRatio) return subject.failures[between(random, 0, subject.failures.length - 1)]!
        return subject.ok
      }
    for (const subject of run.lanes) {
      subject.receiver = await startReceiver({
        port: await freePort(),
        path: subject.name === 'alipay' ? '/alipay/notify' : '/hooks',
        respond: respond(subject),
        protocol: subject.protocol,
      })
    }
    run.dispatchedBefore = await registerEndpoints(
      database,
      world,
      { webhook: webhooks.receiver.url, alipay: alipay.receiver.url },
      clockAt(Date.now()),
    )

    const env = {
      ...databaseEnv(database),
      BASEPLATE_TEST_CLOCK_SPEEDUP: String(speedup),
      BASEPLATE_TEST_CLOCK_ORIGIN_MS: String(originMs),
      // The window is in clock seconds: 3,600 s is 180 ms real at ×20,000. Requests refused for
      // their timestamp are signed again and resent (counted as windowRetries).
      BASEPLATE_SIGNATURE_WINDOW_S: String(signatureWindowS),
      // alipaySchedule reads notify_time at UTC+8 (the default, pinned here).
      BASEPLATE_ALIPAY_TIMEZONE_OFFSET_MINUTES: '480',
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
          run.paid.set(outTradeNo, amountFen)
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
        // The last incarnation: payments while both receivers go down for 6 clock hours.
        const downRealMs = downClockMs / speedup
        const spreadMs = Math.max(commitRealMsMin, 2 * downRealMs)
        const outage = (async () => {
          await sleep(spreadMs / 4)
          await Promise.all(run.lanes.map((subject) => subject.receiver.down()))
          const from = clockAt(Date.now())
          await sleep(downRealMs)
          await Promise.all(run.lanes.map((subject) => subject.receiver.up()))
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
    await Promise.all(run.lanes.map((subject) => subject.receiver.close()))
    return run

    /**
     * Holds the requests the worker sends next, answers some of them 2xx, kills the server,
     * then cuts the rest. The kill's time, which splits hits between incarnations, is taken
     * once the process is gone and whatever it sent has been read: any hit before it came
     * from the dead process, any after it from the next.
     */
    async function killMidDelivery(server: ServerProcess, agent: http.Agent): Promise<void> {
      holding = true
      const firsts = run.lanes.map((subject) => subject.receiver.nextHeld())
      // A fresh payment gives the worker something to deliver right away, in both formats.
      const provoke = pay(server, agent, 'PROVOKE').catch(() => undefined)
      const held = await Promise.race([Promise.all(firsts), sleep(5_000).then(() => null)])
      if (held !== null) await sleep(between(random, 0, 20)) // let the rest of the batches arrive
      // Some held requests are answered 2xx just before the kill: the platform may die before
      // recording them, and must then deliver them again (a duplicate, at least once).
      const answered = run.lanes.map((subject) => {
        const chosen = subject.receiver.held.filter(() => random() < 0.5)
        for (const entry of chosen) {
          entry.answer((subject.ok as { status: number }).status)
          subject.acknowledgedAtKill.add(entry.hit.sequence)
        }
        return chosen
      })
      // 0: kill in the same tick as the answer, before the platform can have recorded it.
      const gapMs = between(random, 0, 3)
      if (gapMs > 0) await sleep(gapMs)
      await server.kill('SIGKILL')
      await provoke
      await sleep(50)
      run.killsAtRealMs.push(Date.now())
      holding = false
      run.lanes.forEach((subject, index) => {
        const inFlight = subject.receiver.held.splice(0)
        subject.inFlightAtKill.push(inFlight.length)
        for (const entry of inFlight) if (!answered[index]!.includes(entry)) entry.destroy()
      })
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
        const marathonsDone = run.lanes.every(
          (subject) =>
            subject.marathons.size === marathonsWanted &&
            [...subject.marathons].every((id) =>
              subject.receiver.hits.some((hit) => hit.eventId === id && hit.acknowledged),
            ),
        )
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
      const committed = (row: (typeof rows)[number]) => Number(row.created_at) <= run.quietAtClockMs
      const asEvent = (row: (typeof rows)[number]): CommittedEvent => ({
        id: row.id,
        type: row.type,
        createdAt: Number(row.created_at),
      })
      /** The delivery rows of one format, for one endpoint or app. */
      const deliveryRows = async (table: string, column: string, value: string): Promise<DeliveryRow[]> =>
        (
          await db
            .selectFrom(table)
            .select(['id', 'event_id', 'status', 'attempts'])
            .where(column, '=', value)
            .execute()
        ).map((row) => ({ id: row.id, eventId: row.event_id, status: row.status, attempts: Number(row.attempts) }))
      const webhookDeliveries = await deliveryRows('webhook_deliveries', 'endpoint_id', endpoint.id)
      // Alipay notifies the app's trade events (docs/guides/alipay-compatibility.md §5): here,
      // every payment's `payment.trade.paid`. The wire names the notification (notify_id), the
      // database its event.
      const notifications = await deliveryRows('alipay_notifications', 'app_id', world.appId)
      const eventOfNotification = new Map(notifications.map((row) => [row.id, row.eventId]))
      const [webhooks, alipay] = run.lanes
      const inputs = [
        {
          lane: webhooks,
          events: targeted.filter(committed).map(asEvent),
          deliveries: webhookDeliveries,
          hits: webhooks.receiver.hits,
          apiEventTypes: new Set(['payment.trade.created', 'payment.trade.paid']),
        },
        {
          lane: alipay,
          events: targeted
            .filter((row) => committed(row) && row.app_id === world.appId && row.type === 'payment.trade.paid')
            .map(asEvent),
          deliveries: notifications,
          hits: alipay.receiver.hits.map((hit) => ({
            ...hit,
            eventId: eventOfNotification.get(hit.deliveryId) ?? hit.eventId,
          })),
          apiEventTypes: new Set(['payment.trade.paid']),
        },
      ]
      return inputs.map((input) => ({
        delivery: checkDeliveries({
          hits: input.hits,
          verdicts: input.lane.verdicts,
          events: input.events,
          deliveries: input.deliveries,
          schedule: input.lane.schedule,
          killsAtRealMs: run.killsAtRealMs,
          acknowledgedAtKill: input.lane.acknowledgedAtKill,
          speedup,
          realOf,
          clockOf: clockAt,
          measureFromClockMs: run.incarnations[0]!.spawnClockMs,
          lagRealMsMax,
          apiEventTypes: input.apiEventTypes,
        }),
        lateEvents: targeted.filter((row) => !committed(row)).length,
        marathons: checkMarathons(input.lane, input.deliveries),
        contents: input.lane.name === 'alipay' ? checkAlipayContents(run) : [],
      }))
    } finally {
      await storage.close()
    }
  }

  /**
   * Each marathon: attempt 1 seen, the last attempt acknowledged, spanning the documented
   * schedule (the sum of its waits, plus its jitter and the lag allowed per retry).
   */
  function checkMarathons(lane: Lane, deliveries: readonly DeliveryRow[]) {
    const problems: string[] = []
    const spansH: number[] = []
    const attemptsMax = attemptsOf(lane.schedule)
    const lowerS = lane.schedule.delaysS.reduce((sum, delay) => sum + delay, 0)
    const upperS = lowerS * (1 + lane.schedule.jitter)
    // The lag allowance per retry: each retry is scheduled from the end of the one before, so
    // lateness adds up over the span (webhooks' jitter hides it; Alipay's schedule has none).
    const slackS = ((lagRealMsMax * speedup) / 1000) * (attemptsMax - 1)
    for (const marathon of lane.marathons) {
      const hits = lane.receiver.hits.filter((hit) => hit.eventId === marathon).sort((a, b) => a.attempt - b.attempt)
      const attempts = hits.map((hit) => hit.attempt)
      const last = hits.at(-1)
      const row = deliveries.find((delivery) => delivery.id === last?.deliveryId)
      if (last === undefined || hits[0]!.attempt !== 1 || last.attempt !== attemptsMax || !last.acknowledged) {
        problems.push(`${marathon}: attempts ${attempts.join(',')}`)
        continue
      }
      const spanS = lane.schedule.timestampS(last) - lane.schedule.timestampS(hits[0]!)
      spansH.push(Math.round((spanS / 3600) * 10) / 10)
      if (spanS < lowerS || spanS > upperS + slackS) problems.push(`${marathon}: first to last ${spanS} s`)
      if (row?.status !== 'delivered' || row.attempts !== attemptsMax) {
        problems.push(`${marathon}: ${row?.status} after ${row?.attempts} attempts`)
      }
    }
    return { problems, spansH, seenAttempts: lane.marathons.size }
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

/**
 * What the Alipay notifications say: each acknowledged payment's acknowledged notification
 * names its order (`out_trade_no`), TRADE_SUCCESS, and its amount in yuan; and no notification
 * speaks of an order the suite never sent.
 */
function checkAlipayContents(run: Run): string[] {
  const problems: string[] = []
  const [, alipay] = run.lanes
  const notified = new Map<string, URLSearchParams>()
  for (const hit of alipay.receiver.hits) {
    if (!hit.acknowledged) continue
    const fields = new URLSearchParams(hit.body)
    notified.set(fields.get('out_trade_no') ?? '', fields)
  }
  for (const [outTradeNo, amountFen] of run.paid) {
    const fields = notified.get(outTradeNo)
    const said =
      fields === undefined ? 'no notification' : `${fields.get('trade_status')} ${fields.get('total_amount')}`
    const expected = `TRADE_SUCCESS ${(amountFen / 100).toFixed(2)}`
    if (said !== expected) problems.push(`${outTradeNo}: ${said}, expected ${expected}`)
  }
  for (const outTradeNo of notified.keys()) {
    if (!/^NOTIFY-/.test(outTradeNo)) problems.push(`${outTradeNo}: not an order of this run`)
  }
  return problems
}

/** Outbox events not yet fanned out, plus deliveries and Alipay notifications pending or under way. */
async function openWork(db: Kysely<any>): Promise<number> {
  const undispatched = await db
    .selectFrom('outbox_events')
    .select((eb) => eb.fn.countAll().as('count'))
    .where('dispatched_at', 'is', null)
    .executeTakeFirstOrThrow()
  let open = Number(undispatched.count)
  for (const table of ['webhook_deliveries', 'alipay_notifications']) {
    const row = await db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('count'))
      .where('status', 'in', ['pending', 'delivering'])
      .executeTakeFirstOrThrow()
    open += Number(row.count)
  }
  return open
}

/**
 * Registers the app's webhook endpoint and sets its Alipay notify URL as its owner would (the
 * console calls' own service functions); returns the events already fanned out by then, which
 * neither will get.
 */
async function registerEndpoints(
  database: WorldDatabase,
  world: World,
  urls: { readonly webhook: string; readonly alipay: string },
  now: number,
): Promise<Set<string>> {
  const storage = await openDatabase(database)
  try {
    const principal = await isvOwner(storage.db, world)
    return await storage.db.transaction().execute(async (tx) => {
      await createEndpoint(tx, principal, world.isvId, world.appId, { url: urls.webhook }, now)
      await setAlipaySettings(tx, principal, world.isvId, world.appId, { notify_url: urls.alipay }, now)
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
