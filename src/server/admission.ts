/**
 * Admission control and per-app rate limits ([ADR 0012](../../docs/decisions/0012-admission-control.md)).
 *
 * Two gates, both answering at once rather than letting work queue without bound:
 *
 * - **Concurrency** (`onRequest`, before the body is read, the signature checked or the
 *   database touched). At most `maxInFlight` requests run at once; more wait in a FIFO queue
 *   of at most `maxQueued`. A burst of up to `queueBurst` waiting requests is always taken;
 *   beyond it, a newcomer whose expected wait — the requests ahead of it times the average
 *   time a slot is held, over the number of slots (Little's law) — is longer than
 *   `queueWaitMs` is refused at the door with 503 `SERVICE_UNAVAILABLE` and `Retry-After`, and
 *   so is one that finds the queue full. A request that has waited `queueTimeoutFactor` times
 *   longer than the target or than it was expected to, while no slot came free for
 *   `queueWaitMs` (a stall), is refused then. Nothing is ever refused once it has passed the
 *   gate, so no write is cut short. While requests wait past the burst, a request granted a
 *   slot starts on a later turn of the event loop, so that newcomers are read and refused
 *   before it runs rather than after the work of every request granted in the same turn.
 * - **Per-app rate** (after the app's signature is verified, before validation, idempotency
 *   and the handler): a token bucket per app id, in this process's memory, refilled at
 *   `appRatePerS` up to `appBurstRequests`. An empty bucket answers 429 `REQUEST_RATE_LIMITED`
 *   with `Retry-After`. Several server processes each keep their own buckets.
 *
 * `/healthz`, `/openapi.json` and `/docs` pass the concurrency gate uncounted: a liveness
 * probe must not fail because the server is busy, and the documentation is static.
 *
 * @example
 * const admission = createAdmission(config.admission)
 * app.addHook('onRequest', admission.onRequest)
 * // after authenticateApp: admission.throttle(principal, reply)
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AdmissionConfig } from '../config.js'
import { AppError } from '../errors.js'
import { errorResponse } from './http-errors.js'
import type { Principal } from './route-kit.js'

/** Monotonic milliseconds (`performance.now()`); never the wall clock, which may jump. */
export type Ticks = () => number

/** Runs `run` after `ms` unless cancelled; injectable so tests need no real timers. */
export type Schedule = (ms: number, run: () => void) => () => void

const realSchedule: Schedule = (ms, run) => {
  const timer = setTimeout(run, ms)
  return () => clearTimeout(timer)
}

/** Runs `run` on a later turn of the event loop, after pending I/O is read; injectable for tests. */
export type Defer = (run: () => void) => void

const realDefer: Defer = (run) => {
  setImmediate(run)
}

/**
 * A queued request that has waited this many times the longer of `queueWaitMs` and the wait
 * expected when it arrived is refused, if no slot came free meanwhile for `queueWaitMs`: the
 * server is stalled, not merely busy.
 */
export const queueTimeoutFactor = 3

/** Weight of the newest sample in the running average of how long a slot is held. */
const serviceTimeWeight = 0.1

export type ShedReason = 'queue-full' | 'wait-too-long' | 'timed-out'

export interface AdmissionStats {
  readonly inFlight: number
  readonly queued: number
  readonly admitted: number
  readonly shed: Readonly<Record<ShedReason, number>>
  readonly rateLimited: number
  /** Running average of how long an admitted request held its slot, in milliseconds. */
  readonly serviceMs: number
}

/** One request's passage through the concurrency gate. */
export interface Ticket {
  /** `admitted` at once, `queued` (await `admission`), or `shed` with a reason. */
  readonly state: 'admitted' | 'queued' | 'shed'
  readonly reason: ShedReason | null
  /** Resolves true once a slot is held, false if the request was refused or left while queued. */
  readonly admission: Promise<boolean>
  /** Gives the slot back, or leaves the queue. Safe to call more than once. */
  leave(): void
}

interface Waiter {
  grant: () => void
  refuse: () => void
  /** In the queue; a waiter that left is skipped when its turn comes. */
  queued: boolean
}

/** FIFO of waiters with O(1) removal: a removed waiter is only marked, and skipped later. */
class WaitQueue {
  #items: Array<Waiter | undefined> = []
  #head = 0
  #size = 0

  get size(): number {
    return this.#size
  }

  add(waiter: Waiter): void {
    waiter.queued = true
    this.#items.push(waiter)
    this.#size += 1
  }

  delete(waiter: Waiter): void {
    if (!waiter.queued) return
    waiter.queued = false
    this.#size -= 1
  }

  shift(): Waiter | undefined {
    while (this.#head < this.#items.length) {
      const waiter = this.#items[this.#head]
      this.#items[this.#head] = undefined
      this.#head += 1
      if (waiter?.queued === true) {
        this.delete(waiter)
        this.#compact()
        return waiter
      }
    }
    this.#compact()
    return undefined
  }

  #compact(): void {
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head > 1024 && 2 * this.#head > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }
}

export interface LimiterSettings {
  readonly maxInFlight: number
  readonly maxQueued: number
  /** Waiting requests taken whatever their expected wait, so that a short burst is queued. */
  readonly queueBurst: number
  readonly queueWaitMs: number
}

/**
 * At most `maxInFlight` holders; a bounded FIFO queue behind them, with admission decided
 * from the expected wait. Pure bookkeeping: it knows nothing of HTTP.
 */
export class ConcurrencyLimiter {
  #inFlight = 0
  readonly #queue = new WaitQueue()
  #serviceMs = 0
  /** When a slot was last given back: the queue is moving while this is recent. */
  #releasedAt = Number.NEGATIVE_INFINITY
  #admitted = 0
  readonly #shed: Record<ShedReason, number> = { 'queue-full': 0, 'wait-too-long': 0, 'timed-out': 0 }

  constructor(
    readonly settings: LimiterSettings,
    private readonly ticks: Ticks = () => performance.now(),
    private readonly schedule: Schedule = realSchedule,
    private readonly defer: Defer = realDefer,
  ) {}

  /** How long a request arriving now would wait for a slot, by Little's law; 0 with a free slot. */
  expectedWaitMs(): number {
    if (this.#inFlight < this.settings.maxInFlight) return 0
    return ((this.#queue.size + 1) * this.#serviceMs) / this.settings.maxInFlight
  }

  enter(): Ticket {
    const { maxInFlight, maxQueued, queueBurst, queueWaitMs } = this.settings
    if (this.#inFlight < maxInFlight && this.#queue.size === 0) return this.#hold()
    const expectedMs = this.expectedWaitMs()
    const reason: ShedReason | null =
      this.#queue.size >= maxQueued
        ? 'queue-full'
        : this.#queue.size >= queueBurst && expectedMs > queueWaitMs
          ? 'wait-too-long'
          : null
    if (reason !== null) {
      this.#shed[reason] += 1
      return { state: 'shed', reason, admission: Promise.resolve(false), leave: () => undefined }
    }
    return this.#wait(Math.max(queueWaitMs, expectedMs) * queueTimeoutFactor)
  }

  stats(): Omit<AdmissionStats, 'rateLimited'> {
    return {
      inFlight: this.#inFlight,
      queued: this.#queue.size,
      admitted: this.#admitted,
      shed: { ...this.#shed },
      serviceMs: this.#serviceMs,
    }
  }

  #hold(): Ticket {
    this.#inFlight += 1
    this.#admitted += 1
    const since = this.ticks()
    let held = true
    return {
      state: 'admitted',
      reason: null,
      admission: Promise.resolve(true),
      leave: () => {
        if (!held) return
        held = false
        this.#release(this.ticks() - since)
      },
    }
  }

  #wait(timeoutMs: number): Ticket {
    let settle: (admitted: boolean) => void = () => undefined
    const admission = new Promise<boolean>((resolve) => {
      settle = resolve
    })
    let state: 'queued' | 'holding' | 'gone' = 'queued'
    let since = 0
    let reason: ShedReason | null = null
    const waiter: Waiter = {
      queued: false,
      grant: () => {
        cancelTimer()
        state = 'holding'
        this.#inFlight += 1
        this.#admitted += 1
        since = this.ticks()
        // While newcomers may be refused (requests still wait past the burst), the granted
        // request starts on a later turn of the event loop: the requests that arrived meanwhile
        // are read, and refused, first, rather than after the work of every request granted
        // in this turn. Below the burst nobody is refused, and starting at once keeps the
        // commit groups full. A client that left meanwhile gave its slot back: it must not start.
        if (this.#queue.size > 0 && this.#queue.size >= this.settings.queueBurst) {
          this.defer(() => settle(state === 'holding'))
        } else settle(true)
      },
      refuse: () => {
        state = 'gone'
        reason = 'timed-out'
        this.#shed['timed-out'] += 1
        settle(false)
      },
    }
    // The backstop: refused after `timeoutMs`, unless the queue is still moving (a slot came
    // free within the last `queueWaitMs`), in which case it waits another `timeoutMs`.
    let cancelTimer: () => void = () => undefined
    const arm = () => {
      cancelTimer = this.schedule(timeoutMs, () => {
        if (state !== 'queued') return
        if (this.ticks() - this.#releasedAt < this.settings.queueWaitMs) return arm()
        this.#queue.delete(waiter)
        waiter.refuse()
      })
    }
    arm()
    this.#queue.add(waiter)
    return {
      state: 'queued',
      get reason() {
        return reason
      },
      admission,
      leave: () => {
        if (state === 'queued') {
          cancelTimer()
          this.#queue.delete(waiter)
          state = 'gone'
          settle(false)
        } else if (state === 'holding') {
          state = 'gone'
          this.#release(this.ticks() - since)
        }
      },
    }
  }

  #release(heldMs: number): void {
    this.#inFlight -= 1
    this.#releasedAt = this.ticks()
    this.#serviceMs += serviceTimeWeight * (heldMs - this.#serviceMs)
    while (this.#inFlight < this.settings.maxInFlight) {
      const next = this.#queue.shift()
      if (next === undefined) return
      next.grant()
    }
  }
}

export type TakeResult = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number }

/**
 * Token buckets keyed by a string (an app id): each holds up to `burst` tokens and gains
 * `ratePerS` a second; a request takes one. A full bucket is the same as no bucket, so full
 * ones are dropped when the map grows past `keysMax`; if that is not enough, the oldest keys go
 * too (a tenth of the map), so the map never holds more than `keysMax`.
 */
export class TokenBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    readonly ratePerS: number,
    readonly burst: number,
    private readonly ticks: Ticks = () => performance.now(),
    private readonly keysMax = 10_000,
  ) {}

  take(key: string): TakeResult {
    const now = this.ticks()
    let bucket = this.#buckets.get(key)
    if (bucket === undefined) {
      if (this.#buckets.size >= this.keysMax) this.#prune(now)
      if (this.#buckets.size >= this.keysMax) this.#evictOldest()
      bucket = { tokens: this.burst, at: now }
      this.#buckets.set(key, bucket)
    } else {
      bucket.tokens = this.#refilled(bucket, now)
      bucket.at = now
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return { allowed: true }
    }
    return { allowed: false, retryAfterMs: ((1 - bucket.tokens) * 1000) / this.ratePerS }
  }

  /** Returns a token taken from `key` (an attempt that turned out not to count). */
  giveBack(key: string): void {
    const bucket = this.#buckets.get(key)
    if (bucket !== undefined) bucket.tokens = Math.min(this.burst, bucket.tokens + 1)
  }

  get size(): number {
    return this.#buckets.size
  }

  #refilled(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.ratePerS) / 1000)
  }

  #evictOldest(): void {
    let evict = Math.max(1, Math.floor(this.keysMax / 10))
    for (const key of this.#buckets.keys()) {
      if (evict-- <= 0) break
      this.#buckets.delete(key)
    }
  }

  #prune(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (this.#refilled(bucket, now) >= this.burst) this.#buckets.delete(key)
    }
  }
}

export interface Admission {
  /** The concurrency gate, as a Fastify `onRequest` hook; null when admission control is off. */
  readonly onRequest: ((request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>) | null
  /** The per-app rate limit: throws REQUEST_RATE_LIMITED (and sets Retry-After) for an app over it. */
  throttle(principal: Principal, reply: FastifyReply): void
  stats(): AdmissionStats
}

/** Paths that pass the concurrency gate uncounted (route patterns, as Fastify matched them). */
export function isExempt(routeUrl: string | undefined): boolean {
  if (routeUrl === undefined) return false
  return (
    routeUrl === '/healthz' || routeUrl === '/openapi.json' || routeUrl === '/docs' || routeUrl.startsWith('/docs/')
  )
}

/** Retry-After for a shed request: the queue's expected wait, at least one second. */
function retryAfterS(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)))
}

export interface AdmissionOptions {
  readonly ticks?: Ticks
  readonly schedule?: Schedule
  readonly defer?: Defer
  /**
   * Told, at most once a second and only while requests are being refused, how many were
   * refused since the last report: the server logs it, so that shedding is never silent.
   */
  readonly report?: (refused: { shed: number; rateLimited: number; inFlight: number; queued: number }) => void
}

/** How often, at most, `report` hears about refused requests. */
const reportIntervalMs = 1000

export function createAdmission(config: AdmissionConfig, options: AdmissionOptions = {}): Admission {
  const ticks = options.ticks ?? (() => performance.now())
  const limiter =
    config.maxInFlight === 0 ? null : new ConcurrencyLimiter(config, ticks, options.schedule, options.defer)
  const buckets = config.appRatePerS === 0 ? null : new TokenBuckets(config.appRatePerS, config.appBurstRequests, ticks)
  let rateLimited = 0
  const unreported = { shed: 0, rateLimited: 0, since: Number.NEGATIVE_INFINITY }
  const refused = (kind: 'shed' | 'rateLimited'): void => {
    unreported[kind] += 1
    const now = ticks()
    if (options.report === undefined || now - unreported.since < reportIntervalMs) return
    const { inFlight, queued } = limiter?.stats() ?? { inFlight: 0, queued: 0 }
    options.report({ shed: unreported.shed, rateLimited: unreported.rateLimited, inFlight, queued })
    Object.assign(unreported, { shed: 0, rateLimited: 0, since: now })
  }

  const shed = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    refused('shed')
    // Sent from here rather than thrown, so that no plugin's error handler (the Alipay
    // gateway answers in its own shapes) turns an overload into something else.
    const response = errorResponse(
      new AppError('SERVICE_UNAVAILABLE', { message: 'The server is overloaded; retry after Retry-After seconds' }),
      request.id,
    )
    return reply
      .code(response.status)
      .header('retry-after', retryAfterS(limiter?.expectedWaitMs() ?? 0))
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(response.body))
  }

  const onRequest =
    limiter === null
      ? null
      : async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
          if (isExempt(request.routeOptions.url)) return undefined
          const ticket = limiter.enter()
          if (ticket.state === 'shed') return shed(request, reply)
          // 'close' fires once the answer is out or the client went away, whichever is first.
          reply.raw.once('close', ticket.leave)
          if (ticket.state === 'queued' && !(await ticket.admission)) {
            // Refused after waiting, or the client left: either way nothing has started.
            return reply.raw.destroyed || request.raw.destroyed ? reply : shed(request, reply)
          }
          return undefined
        }

  return {
    onRequest,
    throttle(principal, reply) {
      if (buckets === null || principal.kind !== 'app') return
      const taken = buckets.take(principal.appId)
      if (taken.allowed) return
      rateLimited += 1
      refused('rateLimited')
      reply.header('retry-after', retryAfterS(taken.retryAfterMs))
      throw new AppError('REQUEST_RATE_LIMITED', {
        message:
          `This app may make ${config.appRatePerS} requests a second, ${config.appBurstRequests} at once; ` +
          'retry after Retry-After seconds',
      })
    },
    stats() {
      const base = limiter?.stats() ?? {
        inFlight: 0,
        queued: 0,
        admitted: 0,
        shed: { 'queue-full': 0, 'wait-too-long': 0, 'timed-out': 0 },
        serviceMs: 0,
      }
      return { ...base, rateLimited }
    },
  }
}
