/**
 * What the notifications suite concludes from what its receiver saw and what the database
 * holds once the server is down: every committed event delivered, ids stable, signatures
 * valid, retries spaced as documented (native webhooks or Alipay-format notifications), and
 * how long an event waits for its first attempt. Times: `clock` is the server's fast clock (ms), `real` the
 * wall clock (ms); the suite converts between them.
 *
 * @example
 * const report = checkDeliveries({ hits, verdicts, events, deliveries, schedule: webhookSchedule, ... })
 * expect(report.undelivered).toEqual([])
 */
import type { Hit } from './webhook-receiver.js'
import { assert } from '../../../src/assert.js'
import { percentile } from './stats.js'

const minuteS = 60
const hourS = 3600

/** A retry schedule as a guide publishes it, and how a hit shows the platform's time. */
export interface DocumentedSchedule {
  /** The wait after failed attempt n (index n - 1), before jitter, in seconds. */
  readonly delaysS: readonly number[]
  /** The most a wait is stretched at random, as a fraction of it. */
  readonly jitter: number
  /** The platform's clock at the attempt, in whole seconds, as the request states it. */
  timestampS(hit: Hit): number
  /** What must be byte for byte the same on every attempt of one event. */
  stableBytes(hit: Hit): string
}

/**
 * Native webhooks, as docs/guides/webhooks.md §5 publishes the schedule: written out here
 * rather than imported from the worker, so that a change to the code that the documentation
 * does not follow fails the suite. "Each wait is stretched by up to 10 % at random."
 */
export const webhookSchedule: DocumentedSchedule = {
  delaysS: [
    minuteS,
    5 * minuteS,
    30 * minuteS,
    2 * hourS,
    5 * hourS,
    10 * hourS,
    10 * hourS,
    10 * hourS,
    10 * hourS,
    10 * hourS,
    14 * hourS,
  ],
  jitter: 0.1,
  timestampS: (hit) => Number(hit.headers['webhook-timestamp']),
  stableBytes: (hit) => hit.body,
}

/**
 * Alipay-format notifications, as docs/guides/alipay-compatibility.md §5 publishes them: at
 * once, then after 4 m, 10 m, 10 m, 1 h, 2 h, 6 h and 15 h, no jitter. `notify_time` (the
 * attempt's time, UTC+8 by default) and `sign` change on every attempt; the rest may not.
 */
export const alipaySchedule: DocumentedSchedule = {
  delaysS: [4 * minuteS, 10 * minuteS, 10 * minuteS, hourS, 2 * hourS, 6 * hourS, 15 * hourS],
  jitter: 0,
  timestampS: (hit) => {
    const text = new URLSearchParams(hit.body).get('notify_time') ?? ''
    assert(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(text), `notify_time ${text}`)
    return Date.parse(`${text.replace(' ', 'T')}+08:00`) / 1000
  },
  stableBytes: (hit) => {
    const fields = new URLSearchParams(hit.body)
    fields.delete('notify_time')
    fields.delete('sign')
    return fields.toString()
  },
}

/** Attempts in all: the first and one after each wait. */
export const attemptsOf = (schedule: DocumentedSchedule) => schedule.delaysS.length + 1

/** The documented wait after failed attempt `attempt` (1-based), before jitter, in seconds. */
export function documentedDelayS(schedule: DocumentedSchedule, attempt: number): number {
  return schedule.delaysS[Math.min(attempt, schedule.delaysS.length) - 1]!
}

/** The receiver's verdict on one hit: the SDK's verifyWebhook, at the hit's clock time. */
export interface Verdict {
  readonly verified: boolean
  readonly code: string | null
  /** Receipt time minus webhook-timestamp, in real milliseconds. */
  readonly skewRealMs: number
}

export interface CommittedEvent {
  readonly id: string
  readonly type: string
  /** Clock ms: when the transaction that committed it started. */
  readonly createdAt: number
}

export interface DeliveryRow {
  readonly id: string
  readonly eventId: string
  readonly status: string
  readonly attempts: number
}

export interface ScheduleCheck {
  /** Consecutive hits of a delivery with no platform restart between them. */
  readonly pairsChecked: number
  /** Pairs across a kill: only the order is checked (the attempt in flight is retried after its lease). */
  readonly pairsAcrossRestarts: number
  /** Retries earlier than the documented delay: must be none. */
  readonly early: string[]
  /** Retries later than the documented delay + its jitter + the allowed worker lag (real ms, per retry). */
  readonly late: string[]
  /** Lateness beyond delay + jitter, in real ms (the worker's lag, amplified by the speedup in clock time). */
  readonly latenessRealMs: { readonly p50: number; readonly p99: number; readonly max: number }
  /** Hits per attempt number, from 1. */
  readonly hitsByAttempt: Record<number, number>
}

export interface DeliveryReport {
  readonly committed: number
  readonly committedByType: Record<string, number>
  readonly undelivered: string[]
  /** Events the receiver got that are not among the committed ones (or came after the end). */
  readonly uncommitted: string[]
  readonly deliveriesNotDelivered: string[]
  readonly hits: number
  readonly attemptsMade: number
  readonly acknowledged: number
  readonly signaturesVerified: number
  readonly signatureFailures: string[]
  readonly idsUnstable: string[]
  /** Events acknowledged more than once, and those of them that no kill explains. */
  readonly duplicates: number
  readonly duplicatesUnexplained: string[]
  readonly schedule: ScheduleCheck
  /**
   * From the event's created_at to the receiver reading attempt 1, real ms, for events committed
   * by API requests (their transaction starts at created_at and commits within milliseconds).
   */
  readonly commitToFirstAttempt: {
    readonly measured: number
    readonly p50RealMs: number
    readonly p99RealMs: number
    readonly maxRealMs: number
    /**
     * The same for events committed by jobs (settlement): each trade settles in its own
     * transaction, all stamped with the job run's start, so this includes the job's run time.
     * Events written before the first server started (the prepared world's) are not timed.
     */
    readonly jobEvents: { readonly measured: number; readonly p50RealMs: number; readonly p99RealMs: number }
    /** A kill came between the commit and the first attempt: the wait includes the restart. */
    readonly acrossRestart: number
    readonly acrossRestartMaxRealMs: number
    /** The first attempt never reached the receiver (refused while it was down, or lost in a kill). */
    readonly firstAttemptUnseen: number
  }
  readonly skewRealMs: { readonly p99: number; readonly max: number }
}

const tenths = (value: number) => Math.round(value * 10) / 10

export function checkDeliveries(input: {
  readonly hits: readonly Hit[]
  readonly verdicts: ReadonlyMap<number, Verdict>
  readonly events: readonly CommittedEvent[]
  readonly deliveries: readonly DeliveryRow[]
  /** Real ms of each kill -9. */
  readonly killsAtRealMs: readonly number[]
  /** Sequences of the hits answered 2xx just before a kill (their record may have died with it). */
  readonly acknowledgedAtKill: ReadonlySet<number>
  readonly schedule: DocumentedSchedule
  readonly speedup: number
  readonly realOf: (clockMs: number) => number
  readonly clockOf: (realMs: number) => number
  /** Events written before this (clock ms), when no server ran yet, are not timed. */
  readonly measureFromClockMs: number
  /** Worker lag allowed per retry, real ms. */
  readonly lagRealMsMax: number
  /** Event types that the suite's API requests commit; the others come from jobs. */
  readonly apiEventTypes: ReadonlySet<string>
}): DeliveryReport {
  const { hits, verdicts, speedup, schedule } = input
  const timestampOf = schedule.timestampS
  const hitsByEvent = new Map<string, Hit[]>()
  const hitsByDelivery = new Map<string, Hit[]>()
  for (const hit of hits) {
    hitsByEvent.set(hit.eventId, [...(hitsByEvent.get(hit.eventId) ?? []), hit])
    hitsByDelivery.set(hit.deliveryId, [...(hitsByDelivery.get(hit.deliveryId) ?? []), hit])
  }
  const acrossKill = (fromRealMs: number, toRealMs: number) =>
    input.killsAtRealMs.some((kill) => fromRealMs < kill && toRealMs > kill)

  const committedByType: Record<string, number> = {}
  for (const event of input.events) committedByType[event.type] = (committedByType[event.type] ?? 0) + 1

  // Every committed event reached the receiver with a valid signature and was acknowledged.
  const undelivered = input.events
    .filter(
      (event) =>
        !(hitsByEvent.get(event.id) ?? []).some((hit) => hit.acknowledged && verdicts.get(hit.sequence)?.verified),
    )
    .map((event) => event.id)
  const committedIds = new Set(input.events.map((event) => event.id))
  const uncommitted = [...hitsByEvent.keys()].filter((eventId) => !committedIds.has(eventId))
  const deliveriesNotDelivered = input.deliveries
    .filter((row) => row.status !== 'delivered')
    .map((row) => `${row.id} ${row.status}`)

  const signatureFailures = hits
    .filter((hit) => verdicts.get(hit.sequence)?.verified !== true)
    .map((hit) => `${hit.eventId} attempt ${hit.attempt}: ${verdicts.get(hit.sequence)?.code ?? 'not checked'}`)

  // One event id per delivery, one delivery per event (a single endpoint), the id in the body
  // as in the header (verifyWebhook checks that), and the same bytes on every attempt.
  const idsUnstable: string[] = []
  const deliveryOfEvent = new Map(input.deliveries.map((row) => [row.eventId, row.id]))
  for (const [eventId, eventHits] of hitsByEvent) {
    if (new Set(eventHits.map((hit) => hit.deliveryId)).size !== 1) idsUnstable.push(`${eventId}: several deliveries`)
    if (new Set(eventHits.map(schedule.stableBytes)).size !== 1) idsUnstable.push(`${eventId}: the body changed`)
    if (deliveryOfEvent.get(eventId) !== eventHits[0]!.deliveryId) idsUnstable.push(`${eventId}: not its delivery`)
  }
  for (const [deliveryId, deliveryHits] of hitsByDelivery) {
    const attempts = deliveryHits.map((hit) => hit.attempt)
    if (new Set(attempts).size !== attempts.length) idsUnstable.push(`${deliveryId}: an attempt number twice`)
  }

  // At least once: an event sent again after the receiver acknowledged it is a duplicate. The
  // only legitimate cause here is a kill between the receiver's 2xx and the platform
  // recording it.
  let duplicates = 0
  const duplicatesUnexplained: string[] = []
  for (const [eventId, eventHits] of hitsByEvent) {
    const ordered = [...eventHits].sort((a, b) => a.sequence - b.sequence)
    const resent = ordered.filter((hit, index) => hit.acknowledged && index < ordered.length - 1)
    if (resent.length === 0) continue
    duplicates += 1
    if (!resent.every((hit) => input.acknowledgedAtKill.has(hit.sequence))) duplicatesUnexplained.push(eventId)
  }

  // The schedule, for consecutive hits of a delivery: from the moment the receiver answered
  // attempt n (the platform records the outcome, and schedules the next attempt, only after
  // that) to the platform's own timestamp (clock seconds) on attempt m. Attempts refused
  // while the receiver was down never reach it, so the pair must be spaced by the sum of the
  // documented waits n .. m-1: at least that (exactly, at the header's one-second resolution),
  // at most the jitter more plus the worker's lag. Pairs across a kill are only checked for order.
  let pairsChecked = 0
  let pairsAcrossRestarts = 0
  const early: string[] = []
  const late: string[] = []
  const lateness: number[] = []
  const hitsByAttempt: Record<number, number> = {}
  for (const hit of hits) hitsByAttempt[hit.attempt] = (hitsByAttempt[hit.attempt] ?? 0) + 1
  for (const deliveryHits of hitsByDelivery.values()) {
    const ordered = [...deliveryHits].sort((a, b) => a.attempt - b.attempt)
    for (let index = 1; index < ordered.length; index += 1) {
      const previous = ordered[index - 1]!
      const next = ordered[index]!
      const baseS =
        previous.answeredAtMs === null ? timestampOf(previous) : Math.floor(input.clockOf(previous.answeredAtMs) / 1000)
      const spacingS = timestampOf(next) - baseS
      const label = `${next.deliveryId} attempts ${previous.attempt}→${next.attempt}: ${spacingS} s`
      if (acrossKill(previous.receivedAtMs, next.receivedAtMs)) {
        pairsAcrossRestarts += 1
        if (timestampOf(next) < timestampOf(previous) || next.receivedAtMs < previous.receivedAtMs) {
          early.push(`${label}, out of order`)
        }
        continue
      }
      pairsChecked += 1
      let lowerS = 0
      for (let attempt = previous.attempt; attempt < next.attempt; attempt += 1)
        lowerS += documentedDelayS(schedule, attempt)
      const upperS = lowerS * (1 + schedule.jitter)
      if (spacingS < lowerS) early.push(`${label} < ${lowerS} s`)
      const latenessRealMs = (Math.max(0, spacingS - upperS) * 1000) / speedup
      lateness.push(latenessRealMs)
      if (latenessRealMs > input.lagRealMsMax) {
        late.push(`${label} > ${Math.round(upperS)} s by ${Math.round(latenessRealMs)} ms real`)
      }
    }
  }

  // Commit to first attempt, in real time: from the start of the committing transaction (the
  // event's created_at, converted back from the clock) to the receiver reading attempt 1.
  const measured: number[] = []
  const jobMeasured: number[] = []
  const acrossRestart: number[] = []
  let firstAttemptUnseen = 0
  for (const event of input.events) {
    if (event.createdAt < input.measureFromClockMs) continue
    const first = (hitsByEvent.get(event.id) ?? []).find((hit) => hit.attempt === 1)
    if (first === undefined) {
      firstAttemptUnseen += 1
      continue
    }
    const committedRealMs = input.realOf(event.createdAt)
    const waitedMs = first.receivedAtMs - committedRealMs
    if (acrossKill(committedRealMs, first.receivedAtMs)) acrossRestart.push(waitedMs)
    else if (input.apiEventTypes.has(event.type)) measured.push(waitedMs)
    else jobMeasured.push(waitedMs)
  }

  const skews = [...verdicts.values()].map((verdict) => verdict.skewRealMs)
  return {
    committed: input.events.length,
    committedByType,
    undelivered,
    uncommitted,
    deliveriesNotDelivered,
    hits: hits.length,
    attemptsMade: input.deliveries.reduce((sum, row) => sum + row.attempts, 0),
    acknowledged: hits.filter((hit) => hit.acknowledged).length,
    signaturesVerified: hits.length - signatureFailures.length,
    signatureFailures,
    idsUnstable,
    duplicates,
    duplicatesUnexplained,
    schedule: {
      pairsChecked,
      pairsAcrossRestarts,
      early,
      late,
      latenessRealMs: {
        p50: tenths(percentile(lateness, 50)),
        p99: tenths(percentile(lateness, 99)),
        max: tenths(Math.max(0, ...lateness)),
      },
      hitsByAttempt,
    },
    commitToFirstAttempt: {
      measured: measured.length,
      p50RealMs: percentile(measured, 50),
      p99RealMs: percentile(measured, 99),
      maxRealMs: Math.max(0, ...measured),
      jobEvents: {
        measured: jobMeasured.length,
        p50RealMs: percentile(jobMeasured, 50),
        p99RealMs: percentile(jobMeasured, 99),
      },
      acrossRestart: acrossRestart.length,
      acrossRestartMaxRealMs: Math.max(0, ...acrossRestart),
      firstAttemptUnseen,
    },
    skewRealMs: { p99: tenths(percentile(skews, 99)), max: tenths(Math.max(0, ...skews)) },
  }
}
