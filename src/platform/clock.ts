/**
 * A clock that runs faster than real time, for tests that must cover days of schedule (the
 * webhook retries span about three days) in seconds, against a real `baseplate serve`.
 * Tests only: the configuration refuses BASEPLATE_TEST_CLOCK_SPEEDUP and
 * BASEPLATE_TEST_CLOCK_ORIGIN_MS unless NODE_ENV=test (src/config.ts).
 *
 * `now = origin + (real now - origin) × speedup`: the clock agrees with the real one at
 * `origin` and runs `speedup` times faster from there. With a fixed origin a process that is
 * killed and started again reads on along the same timeline instead of jumping back.
 *
 * Only what reads the clock is compressed: timeouts and timers stay in real time. So `serve`
 * also shortens the notification worker's idle poll (see {@link acceleratedPollIntervalMs});
 * the capabilities' jobs and housekeeping keep their real intervals and so run less often in
 * clock time.
 *
 * @example
 * const clock = acceleratedClock({ speedup: 20_000, originMs: Date.now() })
 * // one real second later, clock.now() is 20,000 s (5 h 33 min) past the origin
 */
import type { Clock } from './ids.js'

export interface AcceleratedClockOptions {
  /** How many clock milliseconds pass per real millisecond; 1 is the real clock. */
  readonly speedup: number
  /** The real instant (Unix ms) from which the clock runs fast. */
  readonly originMs: number
}

export function acceleratedClock(options: AcceleratedClockOptions, realNow: () => number = Date.now): Clock {
  const { speedup, originMs } = options
  if (!Number.isInteger(speedup) || speedup < 1) throw new RangeError('speedup is a whole number from 1')
  return { now: () => originMs + (realNow() - originMs) * speedup }
}

/** The notification worker's idle poll under a fast clock: 1 s of clock time, at least 10 ms real. */
export function acceleratedPollIntervalMs(speedup: number, pollIntervalMs = 1_000): number {
  return Math.max(10, Math.round(pollIntervalMs / speedup))
}
