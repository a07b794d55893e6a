/**
 * A webhook receiver on loopback for the notifications suite: node:http on a fixed port, so
 * that it can go down (the port closed: connection refused) and come back at the same URL.
 * It records every request it reads (a hit) and asks `respond` what to answer: a status, a
 * dropped connection, or `hold` to keep the request open until the test releases it (a
 * delivery in flight when the platform is killed).
 *
 * @example
 * const receiver = await startReceiver({ port: await freePort(), respond: () => ({ status: 204 }) })
 * await receiver.down() // connection refused from now on
 * await receiver.up()
 */
import http from 'node:http'

/** What the receiver does with a request: answer it, cut the connection, or keep it open. */
export type Answer = { readonly status: number } | 'drop' | 'hold'

export interface Hit {
  readonly sequence: number
  /** Real time (Date.now) when the body was read. */
  readonly receivedAtMs: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  readonly eventId: string
  readonly deliveryId: string
  readonly attempt: number
  /** What the receiver answered; for a held request, set when it is released. */
  answer: Answer | 'killed' | null
  /** Real time just before the answer was written or the connection cut. */
  answeredAtMs: number | null
  /** A 2xx was written to the platform. */
  acknowledged: boolean
}

export interface Held {
  readonly hit: Hit
  /** Writes the status and ends the response (the platform may or may not read it). */
  answer(status: number): void
  /** Cuts the connection without an answer. */
  destroy(): void
}

export interface Receiver {
  readonly url: string
  readonly hits: Hit[]
  /** Requests held open, in arrival order; `release` empties it. */
  readonly held: Held[]
  /** Resolves when the next request is held. */
  nextHeld(): Promise<Held>
  down(): Promise<void>
  up(): Promise<void>
  readonly isUp: () => boolean
  close(): Promise<void>
}

export async function startReceiver(options: {
  readonly port: number
  readonly path: string
  readonly respond: (hit: Hit) => Answer
}): Promise<Receiver> {
  const hits: Hit[] = []
  const held: Held[] = []
  let waiters: ((held: Held) => void)[] = []
  let server: http.Server | null = null

  const handle = (request: http.IncomingMessage, response: http.ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const hit: Hit = {
        sequence: hits.length,
        receivedAtMs: Date.now(),
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        eventId: String(request.headers['webhook-id']),
        deliveryId: String(request.headers['baseplate-delivery-id']),
        attempt: Number(request.headers['baseplate-delivery-attempt']),
        answer: null,
        answeredAtMs: null,
        acknowledged: false,
      }
      hits.push(hit)
      const answer = options.respond(hit)
      const write = (status: number) => {
        hit.answeredAtMs = Date.now()
        hit.answer = { status }
        hit.acknowledged = status >= 200 && status < 300
        response.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 300 ? 'receiver says no' : '')
      }
      if (answer === 'hold') {
        const entry: Held = {
          hit,
          answer: write,
          destroy: () => {
            hit.answeredAtMs = Date.now()
            hit.answer = 'killed'
            request.socket.destroy()
          },
        }
        held.push(entry)
        const ready = waiters
        waiters = []
        for (const resolve of ready) resolve(entry)
      } else if (answer === 'drop') {
        hit.answeredAtMs = Date.now()
        hit.answer = 'drop'
        request.socket.destroy()
      } else write(answer.status)
    })
  }

  const up = async () => {
    if (server !== null) return
    const next = http.createServer(handle)
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject)
      next.listen(options.port, '127.0.0.1', () => resolve())
    })
    server = next
  }
  const down = async () => {
    const current = server
    if (current === null) return
    server = null
    current.closeAllConnections()
    await new Promise<void>((resolve) => current.close(() => resolve()))
  }
  await up()
  return {
    url: `http://127.0.0.1:${options.port}${options.path}`,
    hits,
    held,
    nextHeld: () => new Promise<Held>((resolve) => waiters.push(resolve)),
    down,
    up,
    isUp: () => server !== null,
    close: down,
  }
}
