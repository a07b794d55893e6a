import { describe, expect, it } from 'vitest'
import { DeliverySlots } from './slots.js'

/** An attempt the test settles by hand. */
function held(): { promise: Promise<void>; settle: () => void; fail: (error: Error) => void } {
  let settle!: () => void
  let fail!: (error: Error) => void
  const promise = new Promise<void>((resolve, reject) => {
    settle = resolve
    fail = reject
  })
  return { promise, settle, fail }
}

const receiverOf = (row: string) => row.split('#')[0]!

describe('delivery slots', () => {
  it('picks in queue order, no more than is free and no receiver past its cap', () => {
    const slots = new DeliverySlots({ inFlightMax: 5, receiverInFlightMax: 2, onError: () => undefined })
    const rows = ['a#1', 'a#2', 'a#3', 'b#1', 'a#4', 'c#1', 'b#2', 'c#2', 'd#1']
    expect(slots.pick(rows, receiverOf)).toEqual(['a#1', 'a#2', 'b#1', 'c#1', 'b#2'])
    expect(slots.heldBackByCap).toBe(true)
    expect(slots.pick(['a#1', 'b#1'], receiverOf)).toEqual(['a#1', 'b#1'])
    expect(slots.heldBackByCap).toBe(false)
  })

  it('counts what is in flight against the cap and the free slots, and frees them as attempts settle', async () => {
    const slots = new DeliverySlots({ inFlightMax: 3, receiverInFlightMax: 2, onError: () => undefined })
    const attempts = [held(), held(), held()]
    slots.start({ id: 'd1', receiver: 'a' }, () => attempts[0]!.promise)
    slots.start({ id: 'd2', receiver: 'a' }, () => attempts[1]!.promise)
    slots.start({ id: 'd3', receiver: 'b' }, () => attempts[2]!.promise)
    expect(slots.free).toBe(0)
    expect(() => slots.start({ id: 'd4', receiver: 'c' }, async () => undefined)).toThrow(/free slot/)
    expect(slots.saturated()).toEqual(['a'])
    expect(slots.inFlightIds()).toEqual(['d1', 'd2', 'd3'])
    expect(slots.pick(['c#1'], receiverOf)).toEqual([])
    // A claim reads no rows of a receiver at its cap, so any pick while one is may have left rows behind.
    expect(slots.heldBackByCap).toBe(true)
    expect(slots.settled).toBe(0)

    const settled: number[] = []
    const unsubscribe = slots.onSettle(() => settled.push(slots.inFlight))
    attempts[0]!.settle()
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toEqual([2])
    expect(slots.settled).toBe(1)
    expect(slots.saturated()).toEqual([])
    expect(slots.inFlightIds()).toEqual(['d2', 'd3'])
    expect(() => slots.start({ id: 'd2', receiver: 'a' }, async () => undefined)).toThrow(/once at a time/)
    // The one free slot goes to a#3; c#1 is left for want of a slot, not for a cap.
    expect(slots.pick(['a#3', 'c#1', 'a#4'], receiverOf)).toEqual(['a#3'])
    expect(slots.heldBackByCap).toBe(false)
    unsubscribe()
    attempts[1]!.settle()
    attempts[2]!.settle()
    await slots.drain()
    expect(slots.free).toBe(3)
    expect(settled).toEqual([2])
  })

  it('reports an attempt that fails to run and frees its slot; drain waits for attempts started meanwhile', async () => {
    const errors: unknown[] = []
    const slots = new DeliverySlots({ inFlightMax: 2, receiverInFlightMax: 1, onError: (error) => errors.push(error) })
    const first = held()
    let secondRan = false
    slots.start({ id: 'd5', receiver: 'a' }, () => first.promise)
    slots.start({ id: 'd6', receiver: 'b' }, () => {
      throw new Error('synchronous failure')
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(slots.free).toBe(1)
    const drained = slots.drain()
    slots.start({ id: 'd7', receiver: 'c' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      secondRan = true
    })
    first.fail(new Error('record failed'))
    await drained
    expect(secondRan).toBe(true)
    expect(errors.map((error) => (error as Error).message).sort()).toEqual(['record failed', 'synchronous failure'])
    expect(slots.free).toBe(2)
    expect(slots.saturated()).toEqual([])
  })

  it('refuses limits that cannot hold', () => {
    const onError = () => undefined
    expect(() => new DeliverySlots({ inFlightMax: 0, receiverInFlightMax: 1, onError })).toThrow()
    expect(() => new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 5, onError })).toThrow()
    expect(() => new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 1.5, onError })).toThrow()
  })
})
