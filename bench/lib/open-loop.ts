/**
 * Open-loop latency: requests leave on a fixed schedule (`rate` per second) whether or not
 * earlier ones were answered, and each latency is measured from the request's *intended* send
 * time, so a stall shows up in every request it delayed (no coordinated omission). A 1 ms
 * scheduler, a keep-alive agent with room for every outstanding request, and an
 * HdrHistogram in microseconds; the first `warmupS` are sent but not recorded.
 *
 * @example
 * const result = await openLoop({ url, rate: 1000, durationS: 10, warmupS: 2, next: () => request })
 */
import * as hdr from 'hdr-histogram-js'
import { keepAliveAgent, send, type PreparedRequest } from '../../test/reliability/support/http.js'

export interface OpenLoopResult {
  readonly rate: number
  readonly sent: number
  readonly recorded: number
  readonly failed: number
  readonly achievedPerSecond: number
  readonly latencyMs: {
    readonly p50: number
    readonly p90: number
    readonly p99: number
    readonly p999: number
    readonly max: number
  }
  /** The recorded histogram (µs), HdrHistogram's compressed base64 form. */
  readonly histogram: string
}

export async function openLoop(options: {
  url: string
  rate: number
  durationS: number
  warmupS: number
  next: (index: number) => PreparedRequest
  /** Counts as a failure (recorded all the same); default: not 2xx. */
  failed?: (status: number) => boolean
  sockets?: number
}): Promise<OpenLoopResult> {
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  })
  const agent = keepAliveAgent(options.sockets ?? 512)
  const isFailure = options.failed ?? ((status: number) => status < 200 || status >= 300)
  const total = Math.round(options.rate * (options.durationS + options.warmupS))
  const warmup = Math.round(options.rate * options.warmupS)
  const intervalMs = 1000 / options.rate
  let sent = 0
  let recorded = 0
  let failed = 0
  let completed = 0
  const outstanding: Promise<void>[] = []
  const started = performance.now()
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      while (sent < total && started + sent * intervalMs <= now) {
        const index = sent
        const intended = started + index * intervalMs
        sent += 1
        const request = options.next(index)
        outstanding.push(
          send(agent, options.url, request, 60_000)
            .then(
              (response) => isFailure(response.status),
              () => true,
            )
            .then((bad) => {
              completed += 1
              if (index < warmup) return
              const micros = Math.max(1, Math.round((performance.now() - intended) * 1000))
              histogram.recordValue(micros)
              recorded += 1
              if (bad) failed += 1
            }),
        )
      }
      if (sent < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  await Promise.all(outstanding)
  const elapsedS = (performance.now() - started) / 1000
  agent.destroy()
  const ms = (micros: number) => Math.round(micros / 10) / 100
  const result: OpenLoopResult = {
    rate: options.rate,
    sent,
    recorded,
    failed,
    achievedPerSecond: completed / elapsedS,
    latencyMs: {
      p50: ms(histogram.getValueAtPercentile(50)),
      p90: ms(histogram.getValueAtPercentile(90)),
      p99: ms(histogram.getValueAtPercentile(99)),
      p999: ms(histogram.getValueAtPercentile(99.9)),
      max: ms(histogram.maxValue),
    },
    histogram: hdr.encodeIntoCompressedBase64(histogram),
  }
  histogram.destroy()
  return result
}
