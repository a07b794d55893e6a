/**
 * The attempts one delivery stage has in flight, and who may take the next free one.
 *
 * A stage used to claim a batch and wait for all of it, so one receiver that hung (up to the
 * delivery timeout) held every other receiver claimed with it, and the next claim waited too.
 * Now a stage keeps up to {@link DeliverySlots.inFlightMax} attempts going and claims again as
 * soon as one settles. Two caps share the slots out (ADR 0021): no receiver (a webhook
 * endpoint, a notify URL) holds more than {@link DeliverySlots.receiverInFlightMax} of them, and
 * no app, all its receivers together, more than {@link DeliverySlots.appInFlightMax}. A receiver
 * that hangs slows its own deliveries, and a tenant whose receivers all hang slows its own.
 *
 * @example
 * const slots = new DeliverySlots({ inFlightMax: 64, receiverInFlightMax: 8, appInFlightMax: 16, onError })
 * const owner = (row) => ({ receiver: row.endpoint_id, app: row.app_id })
 * const rows = slots.pick(dueRows, owner)   // in queue order, within the caps
 * for (const row of rows) slots.start({ id: row.id, ...owner(row) }, () => attemptAndRecord(row))
 * await slots.drain()
 */
import { assert } from '../../assert.js'

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

/** Whose share of the slots a delivery's attempt takes. */
export interface DeliveryOwner {
  /** The webhook endpoint's id, or the notify URL. */
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

  saturated(): string[] {
    return [...this.#counts].filter(([, count]) => count >= this.max).map(([key]) => key)
  }
}

export class DeliverySlots {
  readonly inFlightMax: number
  readonly receiverInFlightMax: number
  readonly appInFlightMax: number
  readonly #onError: (error: unknown) => void
  readonly #byReceiver: Counts
  readonly #byApp: Counts
  readonly #ids = new Set<string>()
  readonly #inFlight = new Set<Promise<void>>()
  readonly #onSettle = new Set<() => void>()
  /** The last pick may have left due rows behind only because their receiver was at its cap. */
  #heldBackByCap = false
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

  /** Attempts settled so far: a loop compares it across a step to see a settle it could not hear. */
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

  /** Receivers and apps at their cap: a claim need not even read their rows. */
  saturated(): { readonly receivers: string[]; readonly apps: string[] } {
    return { receivers: this.#byReceiver.saturated(), apps: this.#byApp.saturated() }
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
    this.#heldBackByCap = saturated.receivers.length > 0 || saturated.apps.length > 0
    for (const row of rows) {
      if (chosen.length >= this.free) break
      const { receiver, app } = ownerOf(row)
      if (
        this.#byReceiver.of(receiver) + receivers.of(receiver) >= this.receiverInFlightMax ||
        this.#byApp.of(app) + apps.of(app) >= this.appInFlightMax
      ) {
        this.#heldBackByCap = true
        continue
      }
      receivers.add(receiver, 1)
      apps.add(app, 1)
      chosen.push(row)
    }
    return chosen
  }

  /** Runs one attempt of a delivery in a slot; its failure goes to `onError`, never to the caller. */
  start(delivery: DeliveryOwner & { readonly id: string }, attempt: () => Promise<void>): void {
    const { id, receiver, app } = delivery
    assert(this.free > 0, 'an attempt starts only in a free slot')
    assert(!this.#ids.has(id), 'a delivery is attempted once at a time')
    this.#ids.add(id)
    this.#byReceiver.add(receiver, 1)
    this.#byApp.add(app, 1)
    // Begun on a later tick, so even an attempt that throws at once settles like any other.
    const running: Promise<void> = Promise.resolve()
      .then(attempt)
      .catch((error: unknown) => {
        try {
          this.#onError(error)
        } catch {
          // The reporter failed too; the slot is freed regardless.
        }
      })
      .finally(() => {
        this.#byReceiver.add(receiver, -1)
        this.#byApp.add(app, -1)
        this.#ids.delete(id)
        this.#inFlight.delete(running)
        this.#settled += 1
        for (const listener of [...this.#onSettle]) listener()
      })
    this.#inFlight.add(running)
  }

  /** Calls `listener` each time an attempt settles, until the returned function is called. */
  onSettle(listener: () => void): () => void {
    this.#onSettle.add(listener)
    return () => this.#onSettle.delete(listener)
  }

  /** Resolves once nothing is in flight, attempts started meanwhile included. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }
}
