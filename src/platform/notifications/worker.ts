/**
 * The notification worker: loops that fan out new outbox events into deliveries, and claim
 * due deliveries and POST them, signed; one loop per stage (fan-out, webhooks, each further
 * format), so that no stage waits on another's slow receiver. Within a delivery stage, up to
 * `deliveriesInFlightMax` attempts run at once, a slot that frees is claimed again at once, no
 * receiver holds more than `receiverInFlightMax` of them and no app more than `appInFlightMax`
 * (slots.ts, ADR 0021). Several workers
 * (in one process or many, on PostgreSQL) share the work safely; on SQLite run one process.
 *
 * Retries follow {@link retryDelaysMsDefault}: 1 min, 5 min, 30 min, 2 h, 5 h, five times
 * 10 h, then 14 h, each plus up to 10 % jitter, so a delivery is tried 12 times over about
 * three days (71.6 h to 78.8 h) before it is `dead`. Any 2xx is success; anything else, a
 * timeout or a network error is a failed attempt.
 *
 * @example
 * const worker = startNotificationWorker({ storage, platformKeys })
 * // … on shutdown; it waits for attempts in flight (at most deliveryTimeoutMs):
 * await worker.stop()
 *
 * // In a test: no background loop, a manual clock, and one step at a time.
 * const stepper = startNotificationWorker({ storage, platformKeys, clock, background: false })
 * while ((await stepper.runOnce()) > 0) {}
 */
import { assert } from '../../assert.js'
import type { Storage } from '../../storage/database.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { systemClock, type Clock } from '../ids.js'
import type { PlatformKey } from '../signing/platform-keys.js'
import { deliverDue } from './deliverer.js'
import { dispatchEvents, type FanOut } from './dispatcher.js'
import { DeliverySlots } from './slots.js'

const minuteMs = 60_000
const hourMs = 60 * minuteMs

/** Wait after failed attempt n (index n - 1). Sums to 71 h 36 min before jitter. */
export const retryDelaysMsDefault: readonly number[] = Object.freeze([
  minuteMs,
  5 * minuteMs,
  30 * minuteMs,
  2 * hourMs,
  5 * hourMs,
  10 * hourMs,
  10 * hourMs,
  10 * hourMs,
  10 * hourMs,
  10 * hourMs,
  14 * hourMs,
])
/** The first attempt plus one per delay of the schedule. */
export const attemptsMaxDefault = retryDelaysMsDefault.length + 1
export const deliveryTimeoutMsDefault = 10_000
export const batchSizeMaxDefault = 20
export const deliveriesInFlightMaxDefault = 128
/**
 * Unless set, an app's cap is a quarter of its stage's slots (32 of the default 128), so it takes
 * four tenants whose receivers all hang to fill a stage; and a receiver's cap is half its app's
 * (16), so one of an app's receivers that hangs (a merchant's server, behind an ISV that acts for
 * many) leaves the app's other receivers half its share. One busy receiver answering in 100 ms
 * still gets 160 deliveries a second from one worker.
 */
export const appShareOfSlots = 1 / 4
export const receiverShareOfAppShare = 1 / 2
export const pollIntervalMsDefault = 1_000
/** Added to the timeout to form the lease: room for signing and recording the outcome. */
export const leaseMarginMsDefault = 30_000
/** Each delay is stretched by up to this fraction, so failed receivers are not hit in lockstep. */
export const jitterRatioMax = 0.1

/** What a deployment may tune; the platform passes these through from its options. */
export interface NotificationWorkerSettings {
  /** Run the stages' loops in the background (default); false leaves stepping to `runOnce()`. */
  readonly background?: boolean
  /** Sleep between polls when there was nothing to do. */
  readonly pollIntervalMs?: number
  /** Events fanned out per step. */
  readonly batchSizeMax?: number
  /** Attempts in flight at once per delivery stage, all receivers together. */
  readonly deliveriesInFlightMax?: number
  /** Attempts in flight at once to one receiver (a webhook endpoint, a notify URL's origin), per stage. */
  readonly receiverInFlightMax?: number
  /** Attempts in flight at once to one app's receivers together, per stage. */
  readonly appInFlightMax?: number
  /** One POST, response included. */
  readonly deliveryTimeoutMs?: number
  readonly attemptsMax?: number
  readonly retryDelaysMs?: readonly number[]
  readonly leaseMarginMs?: number
}

/**
 * A second delivery format beside native webhooks (the Alipay-compatible notifications): it
 * queues its deliveries when events are fanned out, and attempts them in a loop of its own.
 */
export interface NotificationFormat {
  readonly name: string
  readonly fanOut: FanOut
  /**
   * Claims this format's due deliveries for the free `slots` and starts their attempts there
   * (`slots.pick` applies the receivers' caps; `slots.start` runs one attempt); returns how
   * many it started or retired, without waiting for the attempts.
   */
  deliverDue(context: {
    readonly now: number
    readonly clock: Clock
    readonly fetch: typeof fetch
    readonly slots: DeliverySlots
  }): Promise<number>
}

export interface NotificationWorkerOptions extends NotificationWorkerSettings {
  readonly storage: Pick<Storage, 'db' | 'dialect'>
  readonly platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>
  readonly clock?: Clock
  readonly fetch?: typeof fetch
  /** Uniform in [0, 1): the jitter's source; tests pin it. */
  readonly random?: () => number
  /** Called with any error a background step throws (default: stderr); the loop carries on after a pause. */
  readonly onError?: (error: unknown) => void
  /** Delivery formats beside native webhooks. */
  readonly formats?: readonly NotificationFormat[]
}

export interface NotificationWorker {
  /** One step of each stage in turn: fan out a batch of events, then attempt the due
   * deliveries of each format that fit its slots, waiting for those attempts. Returns how many
   * events and attempts it handled; 0 means there was nothing to do. Only on a worker made with
   * `background: false` (it rejects otherwise). */
  runOnce(): Promise<number>
  /** Stops the loops and waits for the steps in flight. */
  stop(): Promise<void>
}

/** The wait after failed attempt `attempt` (1-based), jitter included. */
export function retryDelayMs(attempt: number, delaysMs: readonly number[], random: () => number): number {
  assert(attempt >= 1 && delaysMs.length > 0, 'a retry follows at least one attempt')
  const base = delaysMs[Math.min(attempt, delaysMs.length) - 1]!
  return Math.round(base * (1 + jitterRatioMax * random()))
}

/**
 * Starts a worker. In the background (unless `background: false`) each stage's loop steps
 * without pause while it finds work and sleeps `pollIntervalMs` when it finds none.
 *
 * @example
 * const worker = startNotificationWorker({ storage, platformKeys, clock, fetch: myFetch, batchSizeMax: 50 })
 */
export function startNotificationWorker(options: NotificationWorkerOptions): NotificationWorker {
  const clock = options.clock ?? systemClock
  const fetchImpl = options.fetch ?? fetch
  const random = options.random ?? Math.random
  const batchSizeMax = options.batchSizeMax ?? batchSizeMaxDefault
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? deliveryTimeoutMsDefault
  const retryDelaysMs = options.retryDelaysMs ?? retryDelaysMsDefault
  const attemptsMax = options.attemptsMax ?? retryDelaysMs.length + 1
  const pollIntervalMs = options.pollIntervalMs ?? pollIntervalMsDefault
  const leaseMs = deliveryTimeoutMs + (options.leaseMarginMs ?? leaseMarginMsDefault)
  const onError = options.onError ?? ((error: unknown) => console.error('notification worker step failed', error))
  const deliveriesInFlightMax = options.deliveriesInFlightMax ?? deliveriesInFlightMaxDefault
  // An app's share never falls below a receiver cap set on its own.
  const appInFlightMax =
    options.appInFlightMax ??
    Math.min(
      deliveriesInFlightMax,
      Math.max(options.receiverInFlightMax ?? 1, Math.floor(deliveriesInFlightMax * appShareOfSlots)),
    )
  const receiverInFlightMax =
    options.receiverInFlightMax ?? Math.max(1, Math.floor(appInFlightMax * receiverShareOfAppShare))
  assert(Number.isInteger(batchSizeMax) && batchSizeMax >= 1 && batchSizeMax <= 1000, 'batchSizeMax is 1..1000')
  assert(Number.isInteger(attemptsMax) && attemptsMax >= 1 && attemptsMax <= 100, 'attemptsMax is 1..100')
  assert(deliveryTimeoutMs >= 100 && deliveryTimeoutMs <= 120_000, 'deliveryTimeoutMs is 100..120000')
  assert(pollIntervalMs >= 10, 'pollIntervalMs is at least 10')
  assert(
    Number.isInteger(deliveriesInFlightMax) && deliveriesInFlightMax >= 1 && deliveriesInFlightMax <= 1000,
    'deliveriesInFlightMax is 1..1000',
  )
  // DeliverySlots checks appInFlightMax and receiverInFlightMax when the stages are made, below.
  assert(retryDelaysMs.length > 0 && retryDelaysMs.every((delay) => delay > 0), 'retry delays are positive')

  const formats = options.formats ?? []
  const report = (error: unknown) => {
    try {
      onError(error)
    } catch {
      // The reporter failed too; the stage carries on regardless.
    }
  }
  const slotsFor = () =>
    new DeliverySlots({ inFlightMax: deliveriesInFlightMax, receiverInFlightMax, appInFlightMax, onError: report })
  /**
   * The worker's stages: fanning events out, attempting native webhooks, attempting each
   * further format. A step handles what it can start now and returns how much; a delivery
   * step leaves its attempts running in the stage's slots. In the background each stage loops
   * on its own, so that an attempt waiting on a slow receiver (up to deliveryTimeoutMs) holds
   * up neither the fan-out of new events nor the other format: a merchant's Alipay
   * notification never waits behind another ISV's hanging webhook endpoint.
   */
  interface Stage {
    readonly step: () => Promise<number>
    /** A delivery stage's attempts in flight; none for the fan-out. */
    readonly slots: DeliverySlots | null
  }
  const fanOut: Stage = {
    step: () =>
      dispatchEvents(options.storage, {
        now: clock.now(),
        batchSizeMax,
        fanOuts: formats.map((format) => format.fanOut),
      }),
    slots: null,
  }
  const webhookSlots = slotsFor()
  const stages: readonly Stage[] = [
    fanOut,
    {
      step: () =>
        deliverDue(options.storage, {
          now: clock.now(),
          clock,
          fetch: fetchImpl,
          platformKeys: options.platformKeys,
          slots: webhookSlots,
          deliveryTimeoutMs,
          leaseMs,
          attemptsMax,
          retryDelayMs: (attempt) => retryDelayMs(attempt, retryDelaysMs, random),
        }),
      slots: webhookSlots,
    },
    ...formats.map((format): Stage => {
      const slots = slotsFor()
      return { step: () => format.deliverDue({ now: clock.now(), clock, fetch: fetchImpl, slots }), slots }
    }),
  ]
  /**
   * Each stage once, in order, each delivery stage's attempts settled: what a test steps
   * through. Calls made at once run one after another, as a stage's step must never overlap
   * itself (its claim counts the free slots before it fills them).
   */
  let runOnceQueue: Promise<unknown> = Promise.resolve()
  const runOnce = (): Promise<number> => {
    const run = runOnceQueue.then(async () => {
      // The loops' steps would overlap these on the same slots, and a claim could then outgrow them.
      assert(options.background === false, 'runOnce() steps a worker made with background: false')
      let handled = 0
      for (const stage of stages) {
        handled += await stage.step()
        await stage.slots?.drain()
      }
      return handled
    })
    runOnceQueue = run.catch(() => undefined)
    return run
  }

  let stopped = false
  // The pending sleeps' early exits, so that stop() does not wait out a poll interval.
  const wakes = new Set<() => void>()
  // Fan-outs that found work so far: a delivery loop whose step began before the latest one may
  // have looked before its rows committed, so it steps again rather than sleep.
  let fanOutsWithWork = 0
  /**
   * A stage steps without pause while it finds work and has room for it, and otherwise sleeps:
   * a poll, cut short by a fan-out that found work, or, when the stage is full or may have left
   * rows for a receiver's or an app's cap, by an attempt settling. On stop it waits for its
   * attempts.
   */
  const loop = async ({ step, slots }: Stage): Promise<void> => {
    while (!stopped) {
      const fanOutsBefore = fanOutsWithWork
      const settledBefore = slots?.settled ?? 0
      let handled = 0
      if (slots === null || slots.free > 0) {
        try {
          handled = await step()
        } catch (error) {
          report(error)
        }
      }
      // Fanned-out events are deliveries due now: the delivery stages need not finish their poll.
      if (handled > 0 && slots === null) {
        fanOutsWithWork += 1
        for (const wake of [...wakes]) wake()
      }
      const full = slots !== null && slots.free === 0
      if (stopped) break
      if (!full && (handled > 0 || (slots !== null && fanOutsWithWork !== fanOutsBefore))) continue
      const wakeOnSettle = slots !== null && (full || slots.heldBackByCap)
      // A slot that freed during the step, after its claim had looked, has no one left to wake.
      if (slots !== null && slots.settled !== settledBefore) continue
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer)
          wakes.delete(wake)
          stopListening()
          resolve()
        }
        const timer = setTimeout(wake, pollIntervalMs)
        timer.unref()
        wakes.add(wake)
        const stopListening = wakeOnSettle ? slots.onSettle(wake) : () => undefined
      })
    }
    await slots?.drain()
  }
  const running = options.background === false ? Promise.resolve() : Promise.all(stages.map(loop)).then(() => {})
  return {
    runOnce,
    async stop() {
      stopped = true
      for (const wake of [...wakes]) wake()
      await running
    },
  }
}
