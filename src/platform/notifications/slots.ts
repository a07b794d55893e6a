/**
 * The attempts one delivery stage has in flight, and who may take the next free one.
 *
 * A stage used to claim a batch and wait for all of it, so one receiver that hung (up to the
 * delivery timeout) held every other receiver claimed with it, and the next claim waited too.
 * Now a stage keeps up to {@link DeliverySlots.inFlightMax} attempts going and claims again as
 * soon as one settles; and no receiver (a webhook endpoint, a notify URL) holds more than
 * {@link DeliverySlots.receiverInFlightMax} of them, so a receiver that hangs slows its own
 * deliveries and leaves the rest of the slots to everyone else (ADR 0021).
 *
 * @example
 * const slots = new DeliverySlots({ inFlightMax: 20, receiverInFlightMax: 5, onError })
 * const rows = slots.pick(dueRows, (row) => row.endpoint_id)   // in queue order, within the caps
 * for (const row of rows) slots.start({ id: row.id, receiver: row.endpoint_id }, () => attemptAndRecord(row))
 * await slots.drain()
 */
import { assert } from '../../assert.js'

export interface DeliverySlotsOptions {
  /** Attempts in flight at once, all receivers together. */
  readonly inFlightMax: number
  /** Attempts in flight at once for one receiver. */
  readonly receiverInFlightMax: number
  /** Called with the error of an attempt that failed to run or record (not a failed delivery). */
  readonly onError: (error: unknown) => void
}

export class DeliverySlots {
  readonly inFlightMax: number
  readonly receiverInFlightMax: number
  readonly #onError: (error: unknown) => void
  readonly #byReceiver = new Map<string, number>()
  readonly #ids = new Set<string>()
  readonly #inFlight = new Set<Promise<void>>()
  readonly #onSettle = new Set<() => void>()
  /** The last pick may have left due rows behind only because their receiver was at its cap. */
  #heldBackByCap = false
  #settled = 0

  constructor(options: DeliverySlotsOptions) {
    const { inFlightMax, receiverInFlightMax } = options
    assert(Number.isInteger(inFlightMax) && inFlightMax >= 1, 'inFlightMax is a whole number ≥ 1')
    assert(
      Number.isInteger(receiverInFlightMax) && receiverInFlightMax >= 1 && receiverInFlightMax <= inFlightMax,
      'receiverInFlightMax is a whole number from 1 to inFlightMax',
    )
    this.inFlightMax = inFlightMax
    this.receiverInFlightMax = receiverInFlightMax
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

  /** Receivers at their cap: a claim need not even read their rows. */
  saturated(): string[] {
    return [...this.#byReceiver].filter(([, count]) => count >= this.receiverInFlightMax).map(([key]) => key)
  }

  /**
   * From due rows in the queue's order, those to attempt now: at most {@link free} of them,
   * and no receiver past its cap counting what it has in flight. The order is kept, so the
   * oldest due row of each receiver goes first.
   */
  pick<T>(rows: readonly T[], receiverOf: (row: T) => string): T[] {
    const taken = new Map<string, number>()
    const chosen: T[] = []
    // A claim reads no rows of a receiver at its cap (saturated()), so any it has are held back.
    this.#heldBackByCap = this.saturated().length > 0
    for (const row of rows) {
      if (chosen.length >= this.free) break
      const receiver = receiverOf(row)
      const count = (this.#byReceiver.get(receiver) ?? 0) + (taken.get(receiver) ?? 0)
      if (count >= this.receiverInFlightMax) {
        this.#heldBackByCap = true
        continue
      }
      taken.set(receiver, (taken.get(receiver) ?? 0) + 1)
      chosen.push(row)
    }
    return chosen
  }

  /** Runs one attempt of a delivery in a slot; its failure goes to `onError`, never to the caller. */
  start(delivery: { readonly id: string; readonly receiver: string }, attempt: () => Promise<void>): void {
    const { id, receiver } = delivery
    assert(this.free > 0, 'an attempt starts only in a free slot')
    assert(!this.#ids.has(id), 'a delivery is attempted once at a time')
    this.#ids.add(id)
    this.#byReceiver.set(receiver, (this.#byReceiver.get(receiver) ?? 0) + 1)
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
        const left = this.#byReceiver.get(receiver)! - 1
        if (left === 0) this.#byReceiver.delete(receiver)
        else this.#byReceiver.set(receiver, left)
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
