/**
 * Closed-loop throughput with autocannon: `connections` clients each send the next request as
 * soon as the previous one is answered. Requests come from a list signed in advance (or one
 * fixed request); the run ends when the list is used up or `durationS` has passed.
 *
 * @example
 * const result = await closedLoop({ url, connections: 50, durationS: 5, requests })
 */
import autocannon from 'autocannon'
import type { PreparedRequest } from '../../test/reliability/support/http.js'

export interface ClosedLoopResult {
  readonly requests: number
  readonly seconds: number
  readonly perSecond: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
}

export async function closedLoop(options: {
  url: string
  connections: number
  durationS: number
  /** Used once each, in order; absent: GET `path` over and over. */
  requests?: readonly PreparedRequest[]
  path?: string
}): Promise<ClosedLoopResult> {
  const list = options.requests
  let next = 0
  const started = performance.now()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationS,
        ...(list === undefined ? {} : { amount: list.length }),
        timeout: 30,
        requests: [
          list === undefined
            ? { method: 'GET', path: options.path ?? '/' }
            : {
                setupRequest: (request: any) => {
                  const item = list[next++ % list.length]!
                  return { ...request, method: item.method, path: item.path, headers: item.headers, body: item.body }
                },
              },
        ],
      },
      (error, finished) => (error ? reject(error) : resolve(finished)),
    )
    if (list !== undefined) {
      // amount wins over duration in autocannon: stop by hand at the deadline.
      const timer = setTimeout(() => instance.stop(), options.durationS * 1000)
      instance.on('done', () => clearTimeout(timer))
    }
  })
  const seconds = (performance.now() - started) / 1000
  const completed = result.requests.total
  return {
    requests: completed,
    seconds,
    perSecond: completed / seconds,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  }
}
