import { describe, expect, it } from 'vitest'
import { DeliverySlots, limitedReceiversMax, type DeliveryOwner } from './slots.js'

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

/** Rows written `app/receiver#n`. */
const ownerOf = (row: string): DeliveryOwner => {
  const [app, rest] = row.split('/') as [string, string]
  return { app, receiver: rest.split('#')[0]! }
}
const noErrors = () => undefined

describe('delivery slots', () => {
  it('picks in queue order, no more than is free, no receiver past its cap and no app past its own', () => {
    const slots = new DeliverySlots({ inFlightMax: 6, receiverInFlightMax: 2, appInFlightMax: 3, onError: noErrors })
    const rows = ['x/a#1', 'x/a#2', 'x/a#3', 'x/b#1', 'x/b#2', 'y/c#1', 'x/c#1', 'y/c#2', 'z/d#1', 'z/d#2']
    // x takes a#1, a#2 (a's cap), then b#1 (x's cap of 3); y and z fill the rest.
    expect(slots.pick(rows, ownerOf)).toEqual(['x/a#1', 'x/a#2', 'x/b#1', 'y/c#1', 'y/c#2', 'z/d#1'])
    expect(slots.heldBackByCap).toBe(true)
    expect(slots.pick(['x/a#1', 'y/b#1'], ownerOf)).toEqual(['x/a#1', 'y/b#1'])
    expect(slots.heldBackByCap).toBe(false)
  })

  it('counts what is in flight against the caps and the free slots, and frees them as attempts settle', async () => {
    const slots = new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 2, appInFlightMax: 3, onError: noErrors })
    const attempts = [held(), held(), held(), held()]
    slots.start({ id: 'd1', receiver: 'a', app: 'x' }, () => attempts[0]!.promise)
    slots.start({ id: 'd2', receiver: 'a', app: 'x' }, () => attempts[1]!.promise)
    slots.start({ id: 'd3', receiver: 'b', app: 'x' }, () => attempts[2]!.promise)
    expect(slots.saturated()).toEqual({ receivers: ['a'], apps: ['x'] })
    expect(slots.inFlightIds()).toEqual(['d1', 'd2', 'd3'])
    // x is at its cap though b is not at its own.
    expect(slots.pick(['x/b#2', 'y/c#1'], ownerOf)).toEqual(['y/c#1'])
    slots.start({ id: 'd4', receiver: 'c', app: 'y' }, () => attempts[3]!.promise)
    expect(slots.free).toBe(0)
    expect(() => slots.start({ id: 'd5', receiver: 'e', app: 'z' }, async () => undefined)).toThrow(/free slot/)
    expect(slots.pick(['z/e#1'], ownerOf)).toEqual([])
    // A claim reads no rows of a receiver or app at its cap, so any pick while one is may have left rows behind.
    expect(slots.heldBackByCap).toBe(true)
    expect(slots.settled).toBe(0)

    const settled: number[] = []
    const unsubscribe = slots.onSettle(() => settled.push(slots.inFlight))
    attempts[0]!.settle()
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toEqual([3])
    expect(slots.settled).toBe(1)
    expect(slots.saturated()).toEqual({ receivers: [], apps: [] })
    expect(slots.inFlightIds()).toEqual(['d2', 'd3', 'd4'])
    expect(() => slots.start({ id: 'd2', receiver: 'a', app: 'x' }, async () => undefined)).toThrow(/once at a time/)
    // The one free slot goes to x/a#3; z/e#1 is left for want of a slot, not for a cap.
    expect(slots.pick(['x/a#3', 'z/e#1'], ownerOf)).toEqual(['x/a#3'])
    expect(slots.heldBackByCap).toBe(false)
    unsubscribe()
    for (const attempt of attempts.slice(1)) attempt.settle()
    await slots.drain()
    expect(slots.free).toBe(4)
    expect(settled).toEqual([3])
    // Those three freed nothing the last pick wanted: the stage was not full, nobody held back.
    expect(slots.settled).toBe(1)
  })

  it('wakes only for settles that free what a claim could use', async () => {
    const slots = new DeliverySlots({ inFlightMax: 8, receiverInFlightMax: 2, appInFlightMax: 8, onError: noErrors })
    const hung = held()
    const other = held()
    slots.start({ id: 'h1', receiver: 'hung', app: 'x' }, () => hung.promise)
    slots.start({ id: 'h2', receiver: 'hung', app: 'x' }, () => new Promise<void>(() => undefined))
    slots.start({ id: 'o1', receiver: 'other', app: 'y' }, () => other.promise)
    // A claim after this: `hung` is at its cap and its rows are held back; `other` is not.
    expect(slots.pick(['x/hung#2', 'z/new#1'], ownerOf)).toEqual(['z/new#1'])
    const woken: string[] = []
    slots.onSettle(() => woken.push('settle'))
    other.settle()
    await new Promise((resolve) => setImmediate(resolve))
    expect([woken, slots.settled]).toEqual([[], 0])
    hung.settle()
    await new Promise((resolve) => setImmediate(resolve))
    expect([woken, slots.settled]).toEqual([['settle'], 1])
  })

  it('reports an attempt that fails to run and frees its slot; drain waits for attempts started after it', async () => {
    const errors: unknown[] = []
    const onError = (error: unknown) => errors.push(error)
    const slots = new DeliverySlots({ inFlightMax: 2, receiverInFlightMax: 1, appInFlightMax: 1, onError })
    const first = held()
    let secondRan = false
    slots.start({ id: 'd1', receiver: 'a', app: 'x' }, () => first.promise)
    slots.start({ id: 'd2', receiver: 'b', app: 'y' }, () => {
      throw new Error('synchronous failure')
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(slots.free).toBe(1)
    const drained = slots.drain()
    slots.start({ id: 'd3', receiver: 'c', app: 'z' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      secondRan = true
    })
    first.fail(new Error('record failed'))
    await drained
    expect(secondRan).toBe(true)
    expect(errors.map((error) => (error as Error).message).sort()).toEqual(['record failed', 'synchronous failure'])
    expect(slots.free).toBe(2)
    expect(slots.saturated()).toEqual({ receivers: [], apps: [] })
  })

  it('after a timeout, tries a receiver one attempt at a time, doubling back to its cap as it answers', async () => {
    const slots = new DeliverySlots({ inFlightMax: 8, receiverInFlightMax: 4, appInFlightMax: 8, onError: noErrors })
    const run = async (report: { answered: boolean; timedOut: boolean } | undefined, receiver = 'a') => {
      slots.start({ id: `d${slots.settled}-${receiver}`, receiver, app: 'x' }, async (learnt) => {
        if (report !== undefined) learnt(report)
      })
      await slots.drain()
    }
    const rows = ['x/a#1', 'x/a#2', 'x/a#3', 'x/a#4', 'x/a#5']
    expect(slots.pick(rows, ownerOf)).toHaveLength(4)
    await run({ answered: false, timedOut: true })
    expect(slots.receiverLimit('a')).toBe(1)
    expect(slots.pick(rows, ownerOf)).toEqual(['x/a#1'])
    expect(slots.heldBackByCap).toBe(true)
    // A quick failure without an answer (a refused connection) and a record that failed change nothing.
    await run({ answered: false, timedOut: false })
    await run(undefined)
    expect(slots.receiverLimit('a')).toBe(1)
    // Another receiver keeps its own limit.
    await run({ answered: false, timedOut: true }, 'b')
    expect(slots.pick(['x/c#1', 'x/c#2', 'x/c#3', 'x/c#4'], ownerOf)).toHaveLength(4)
    // Any answer, a failing status included, shows the receiver alive: 1, 2, then back at the cap of 4.
    await run({ answered: true, timedOut: false })
    expect(slots.receiverLimit('a')).toBe(2)
    await run({ answered: true, timedOut: false })
    expect(slots.receiverLimit('a')).toBe(4)
    expect(slots.pick(rows, ownerOf)).toHaveLength(4)
    // While one attempt of a limited receiver is in flight, it is saturated.
    const hold = held()
    slots.start({ id: 'b-held', receiver: 'b', app: 'x' }, () => hold.promise)
    expect(slots.saturated().receivers).toEqual(['b'])
    hold.settle()
    await slots.drain()
  })

  it('counts only the answers of attempts started after the latest timeout', async () => {
    const slots = new DeliverySlots({ inFlightMax: 8, receiverInFlightMax: 8, appInFlightMax: 8, onError: noErrors })
    // Four attempts in flight; one times out, then the three started before it answer late.
    const reports: ((learnt: { answered: boolean; timedOut: boolean }) => void)[] = []
    const holds = [held(), held(), held(), held()]
    holds.forEach((hold, index) =>
      slots.start({ id: `d${index}`, receiver: 'a', app: 'x' }, async (learnt) => {
        reports.push(learnt)
        await hold.promise
      }),
    )
    await new Promise((resolve) => setImmediate(resolve))
    reports[0]!({ answered: false, timedOut: true })
    for (const late of reports.slice(1)) late({ answered: true, timedOut: false })
    expect(slots.receiverLimit('a')).toBe(1)
    for (const hold of holds) hold.settle()
    await slots.drain()
    // An attempt started after the timeout that answers counts.
    slots.start({ id: 'after', receiver: 'a', app: 'x' }, async (learnt) => learnt({ answered: true, timedOut: false }))
    await slots.drain()
    expect(slots.receiverLimit('a')).toBe(2)
  })

  it(`remembers at most ${limitedReceiversMax} lowered receivers, forgetting the one lowered longest ago`, async () => {
    const slots = new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 4, appInFlightMax: 4, onError: noErrors })
    const timeOut = async (receiver: string) => {
      slots.start({ id: receiver, receiver, app: 'x' }, async (learnt) => learnt({ answered: false, timedOut: true }))
      await slots.drain()
    }
    for (let index = 0; index < limitedReceiversMax; index += 1) await timeOut(`r${index}`)
    // r0 times out again: it moves to the back, so r1 is the one forgotten next.
    slots.start({ id: 'r0-again', receiver: 'r0', app: 'x' }, async (learnt) =>
      learnt({ answered: false, timedOut: true }),
    )
    await slots.drain()
    await timeOut('one-more')
    expect(slots.receiverLimit('r0')).toBe(1)
    expect(slots.receiverLimit('r1')).toBe(4)
    expect(slots.receiverLimit('r2')).toBe(1)
    expect(slots.receiverLimit('one-more')).toBe(1)
  })

  it('refuses limits that cannot hold', () => {
    const onError = noErrors
    expect(() => new DeliverySlots({ inFlightMax: 0, receiverInFlightMax: 1, appInFlightMax: 1, onError })).toThrow()
    expect(() => new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 1, appInFlightMax: 5, onError })).toThrow()
    expect(() => new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 3, appInFlightMax: 2, onError })).toThrow()
    expect(() => new DeliverySlots({ inFlightMax: 4, receiverInFlightMax: 1.5, appInFlightMax: 2, onError })).toThrow()
  })
})
