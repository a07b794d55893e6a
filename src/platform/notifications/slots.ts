/**
 * The attempts one delivery stage has in flight, and who may take the next free one.
 *
 * A stage used to claim a batch and wait for all of it, so one receiver that hung (up to the
 * delivery timeout) held every other receiver claimed with it, and the next claim waited too.
 * Now a stage keeps up to {@link DeliverySlots.inFlightMax} attempts going and claims again as
 * soon as one settles. Two caps share the slots out (ADR 0021): no receiver (a webhook
 * endpoint, a notify URL's origin) holds more than {@link DeliverySlots.receiverInFlightMax} of them, and
 * no app, all its receivers together, more than {@link DeliverySlots.appInFlightMax}. A receiver
 * that hangs slows its own deliveries, and a tenant whose receivers all hang slows its own.
 * And a receiver whose attempt timed out is tried one attempt at a time until it answers
 * again, its limit then doubling back to the cap: so a receiver that hangs soon holds one
 * slot, not its whole share.
 *
 * @example
 * const slots = new DeliverySlots({ inFlightMax: 64, receiverInFlightMax: 8, appInFlightMax: 16, onError })
 * const owner = (row) => ({ receiver: row.endpoint_id, app: row.app_id })
 * const rows = slots.pick(dueRows, owner)   // in queue order, within the caps
 * for (const row of rows) slots.start({ id: row.id, ...owner(row) }, () => attemptAndRecord(row))
 * await slots.drain()
 */
import { assert } from '../../assert.js'

/**
 * Receivers whose lowered limit is remembered, most recently lowered last: beyond this the
 * oldest is forgotten (back at its cap), so receivers that time out once and are never tried
 * again (a server per merchant, say) cannot grow the map without end.
 */
export const limitedReceiversMax = 10_000

export interface DeliverySlotsOptions {
  /** Attempts in flight at once, all receivers together. */
  readonly inFlightMax: number
  /** Attempts in flight at once for one receiver. */
  readonly receiverInFlightMax: number
  /** Attempts in flight at once for one app's receivers together. */
  readonly appInFlightMax: number
  /** Called with the error of an attempt that failed to run or record (not a failed delivery). */
  readonly onError: (error: unknown) => void
}

/** What an attempt tells the slots of its receiver. */
export interface AttemptReport {
  /** The receiver answered (any status): it is alive. */
  readonly answered: boolean
  /** No answer within the timeout: the receiver held the slot all that time. */
  readonly timedOut: boolean
}

/** Whose share of the slots a delivery's attempt takes. */
export interface DeliveryOwner {
  /** The webhook endpoint's id, or the notify URL's origin. */
  readonly receiver: string
  readonly app: string
}

/** Attempts in flight by key, and which keys are at their cap. */
class Counts {
  readonly #counts = new Map<string, number>()
  constructor(readonly max: number) {}

  of(key: string): number {
    return this.#counts.get(key) ?? 0
  }

  add(key: string, delta: 1 | -1): void {
    const count = this.of(key) + delta
    if (count === 0) this.#counts.delete(key)
    else this.#counts.set(key, count)
  }

  /** Keys whose count has reached their cap: `max`, or less where `capOf` says so. */
  saturated(capOf: (key: string) => number = () => this.max): string[] {
    return [...this.#counts].filter(([key, count]) => count >= capOf(key)).map(([key]) => key)
  }
}

export class DeliverySlots {
  readonly inFlightMax: number
  readonly receiverInFlightMax: number
  readonly appInFlightMax: number
  readonly #onError: (error: unknown) => void
  readonly #byReceiver: Counts
  readonly #byApp: Counts
  /**
   * Receivers below their cap since an attempt timed out: 1, doubling with each answer of an
   * attempt started after that timeout (`since`, a count of timeouts).
   */
  readonly #receiverLimits = new Map<string, { limit: number; readonly since: number }>()
  #timeouts = 0
  readonly #ids = new Set<string>()
  readonly #inFlight = new Set<Promise<void>>()
  readonly #onSettle = new Set<() => void>()
  /** The last pick may have left due rows behind because a receiver or an app was at its cap. */
  #heldBackByCap = false
  /** Who the last pick held back (or found at its cap): `r:` receivers and `a:` apps. */
  #heldBack = new Set<string>()
  #settled = 0

  constructor(options: DeliverySlotsOptions) {
    const { inFlightMax, receiverInFlightMax, appInFlightMax } = options
    assert(Number.isInteger(inFlightMax) && inFlightMax >= 1, 'inFlightMax is a whole number ≥ 1')
    assert(
      Number.isInteger(appInFlightMax) && appInFlightMax >= 1 && appInFlightMax <= inFlightMax,
      'appInFlightMax is a whole number from 1 to inFlightMax',
    )
    assert(
      Number.isInteger(receiverInFlightMax) && receiverInFlightMax >= 1 && receiverInFlightMax <= appInFlightMax,
      'receiverInFlightMax is a whole number from 1 to appInFlightMax',
    )
    this.inFlightMax = inFlightMax
    this.receiverInFlightMax = receiverInFlightMax
    this.appInFlightMax = appInFlightMax
    this.#byReceiver = new Counts(receiverInFlightMax)
    this.#byApp = new Counts(appInFlightMax)
    this.#onError = options.onError
  }

  /** Attempts that may start now. */
  get free(): number {
    return this.inFlightMax - this.#inFlight.size
  }

  get inFlight(): number {
    return this.#inFlight.size
  }

  /**
   * Settles so far that may let a claim take more: those of a full stage, or of a receiver or
   * app the last pick held back. A loop compares it across a step to see one it could not hear.
   * The others free nothing a claim could use: waking on them would only make claims read past
   * a saturated receiver's backlog again and again.
   */
  get settled(): number {
    return this.#settled
  }

  /** Whether the last {@link pick} may have left rows for the cap: a slot that frees may take them. */
  get heldBackByCap(): boolean {
    return this.#heldBackByCap
  }

  /**
   * Deliveries in flight here: a claim must skip them even once their lease has run out (a
   * slow record, a test's compressed clock), or this worker would attempt one twice at once.
   */
  inFlightIds(): string[] {
    return [...this.#ids]
  }

  /** What a receiver may have in flight now: its cap, or less since an attempt of it timed out. */
  receiverLimit(receiver: string): number {
    return this.#receiverLimits.get(receiver)?.limit ?? this.receiverInFlightMax
  }

  /** Receivers and apps at their cap: a claim need not even read their rows. */
  saturated(): { readonly receivers: string[]; readonly apps: string[] } {
    return {
      receivers: this.#byReceiver.saturated((receiver) => this.receiverLimit(receiver)),
      apps: this.#byApp.saturated(),
    }
  }

  /**
   * From due rows in the queue's order, those to attempt now: at most {@link free} of them,
   * and no receiver or app past its cap counting what it has in flight. The order is kept, so
   * the oldest due row of each receiver goes first.
   */
  pick<T>(rows: readonly T[], ownerOf: (row: T) => DeliveryOwner): T[] {
    const receivers = new Counts(this.receiverInFlightMax)
    const apps = new Counts(this.appInFlightMax)
    const chosen: T[] = []
    // A claim reads no rows of a receiver or app at its cap, so any they have are held back.
    const saturated = this.saturated()
    const heldBack = new Set([
      ...saturated.receivers.map((key) => `r:${key}`),
      ...saturated.apps.map((key) => `a:${key}`),
    ])
    for (const row of rows) {
      if (chosen.length >= this.free) break
      const { receiver, app } = ownerOf(row)
      const receiverFull = this.#byReceiver.of(receiver) + receivers.of(receiver) >= this.receiverLimit(receiver)
      const appFull = this.#byApp.of(app) + apps.of(app) >= this.appInFlightMax
      if (receiverFull || appFull) {
        if (receiverFull) heldBack.add(`r:${receiver}`)
        if (appFull) heldBack.add(`a:${app}`)
        continue
      }
      receivers.add(receiver, 1)
      apps.add(app, 1)
      chosen.push(row)
    }
    this.#heldBack = heldBack
    this.#heldBackByCap = heldBack.size > 0
    return chosen
  }

  /**
   * Runs one attempt of a delivery in a slot; its failure goes to `onError`, never to the
   * caller. The attempt calls `report` with what it learnt of its receiver as soon as it knows
   * (before recording the outcome, which may fail): that sets the receiver's limit.
   */
  start(
    delivery: DeliveryOwner & { readonly id: string },
    attempt: (report: (learnt: AttemptReport) => void) => Promise<void>,
  ): void {
    const { id, receiver, app } = delivery
    const startedAfter = this.#timeouts
    assert(this.free > 0, 'an attempt starts only in a free slot')
    assert(!this.#ids.has(id), 'a delivery is attempted once at a time')
    this.#ids.add(id)
    this.#byReceiver.add(receiver, 1)
    this.#byApp.add(app, 1)
    // Begun on a later tick, so even an attempt that throws at once settles like any other.
    const running: Promise<void> = Promise.resolve()
      .then(() => attempt((learnt) => this.#learn(receiver, learnt, startedAfter)))
      .catch((error: unknown) => {
        try {
          this.#onError(error)
        } catch {
          // The reporter failed too; the slot is freed regardless.
        }
      })
      .finally(() => {
        const wasFull = this.free === 0
        this.#byReceiver.add(receiver, -1)
        this.#byApp.add(app, -1)
        this.#ids.delete(id)
        this.#inFlight.delete(running)
        if (!wasFull && !this.#heldBack.has(`r:${receiver}`) && !this.#heldBack.has(`a:${app}`)) return
        this.#settled += 1
        for (const listener of [...this.#onSettle]) listener()
      })
    this.#inFlight.add(running)
  }

  /**
   * A timeout drops the receiver to one attempt at a time; each answer doubles it back to the
   * cap, but only the answer of an attempt started after the latest timeout: answers of the
   * attempts that were already in flight say nothing of the receiver since.
   */
  #learn(receiver: string, report: AttemptReport, startedAfter: number): void {
    const limits = this.#receiverLimits
    if (report.timedOut) {
      this.#timeouts += 1
      limits.delete(receiver)
      limits.set(receiver, { limit: 1, since: this.#timeouts })
      if (limits.size > limitedReceiversMax) limits.delete(limits.keys().next().value!)
      return
    }
    const lowered = limits.get(receiver)
    if (!report.answered || lowered === undefined || startedAfter < lowered.since) return
    lowered.limit *= 2
    if (lowered.limit >= this.receiverInFlightMax) limits.delete(receiver)
  }

  /** Calls `listener` on each settle counted in {@link settled}, until the returned function is called. */
  onSettle(listener: () => void): () => void {
    this.#onSettle.add(listener)
    return () => this.#onSettle.delete(listener)
  }

  /** Resolves once nothing is in flight, attempts started meanwhile included. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }
}
