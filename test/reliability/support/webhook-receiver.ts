/**
 * A webhook receiver on loopback for the notifications suite: node:http on a fixed port, so
 * that it can go down (the port closed: connection refused) and come back at the same URL.
 * It records every request it reads (a hit) and asks `respond` what to answer: a status, a
 * dropped connection, or `hold` to keep the request open until the test releases it (a
 * delivery in flight when the platform is killed). Native webhooks by default; Alipay-format
 * notifications with {@link alipayProtocol} (acknowledged only by the plain text `success`).
 *
 * @example
 * const receiver = await startReceiver({ port: await freePort(), respond: () => ({ status: 204 }) })
 * await receiver.down() // connection refused from now on
 * await receiver.up()
 */
import http from 'node:http'

/**
 * What the receiver does with a request: answer it (with the protocol's body for the status
 * unless one is given), cut the connection, or keep it open.
 */
export type Answer = { readonly status: number; readonly body?: string } | 'drop' | 'hold'

/** How a receiver reads one kind of notification and what it answers. */
export interface ReceiverProtocol {
  /** The event (or notification), delivery and attempt number a request carries. */
  identify(headers: http.IncomingHttpHeaders, body: string): Pick<Hit, 'eventId' | 'deliveryId' | 'attempt'>
  /** The body answered with a status when `respond` names none. */
  bodyFor(status: number): string
  /** Whether an answer tells the platform the delivery succeeded. */
  acknowledges(status: number, body: string): boolean
}

const is2xx = (status: number) => status >= 200 && status < 300

/** Native webhooks (docs/guides/webhooks.md): the ids in headers; any 2xx acknowledges. */
export const webhookProtocol: ReceiverProtocol = {
  identify: (headers) => ({
    eventId: String(headers['webhook-id']),
    deliveryId: String(headers['baseplate-delivery-id']),
    attempt: Number(headers['baseplate-delivery-attempt']),
  }),
  bodyFor: (status) => (is2xx(status) ? '' : 'receiver says no'),
  acknowledges: (status) => is2xx(status),
}

/**
 * Alipay-format notifications (docs/guides/alipay-compatibility.md §5): a form POST whose
 * `notify_id` names the notification (its event is known only to the database), the attempt
 * in the informational `baseplate-delivery-attempt` header; only a 2xx with the plain text
 * `success` acknowledges.
 */
export const alipayProtocol: ReceiverProtocol = {
  identify: (headers, body) => {
    const notifyId = String(new URLSearchParams(body).get('notify_id'))
    return { eventId: notifyId, deliveryId: notifyId, attempt: Number(headers['baseplate-delivery-attempt']) }
  },
  bodyFor: (status) => (is2xx(status) ? 'success' : 'fail'),
  acknowledges: (status, body) => is2xx(status) && body === 'success',
}

export interface Hit {
  readonly sequence: number
  /** Real time (Date.now) when the body was read. */
  readonly receivedAtMs: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  /** The event's id (`webhook-id`); for an Alipay notification its `notify_id`. */
  readonly eventId: string
  /** The delivery's id; for an Alipay notification its `notify_id` again. */
  readonly deliveryId: string
  /** 1 for the first attempt, as the platform counts them. */
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
  /** Default {@link webhookProtocol}. */
  readonly protocol?: ReceiverProtocol
}): Promise<Receiver> {
  const protocol = options.protocol ?? webhookProtocol
  const hits: Hit[] = []
  const held: Held[] = []
  let waiters: ((held: Held) => void)[] = []
  let server: http.Server | null = null

  const handle = (request: http.IncomingMessage, response: http.ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const hit: Hit = {
        sequence: hits.length,
        receivedAtMs: Date.now(),
        headers: request.headers,
        body,
        ...protocol.identify(request.headers, body),
        answer: null,
        answeredAtMs: null,
        acknowledged: false,
      }
      hits.push(hit)
      const answer = options.respond(hit)
      const write = (status: number, text = protocol.bodyFor(status)) => {
        hit.answeredAtMs = Date.now()
        hit.answer = { status, body: text }
        hit.acknowledged = protocol.acknowledges(status, text)
        response.writeHead(status, { 'content-type': 'text/plain' }).end(text)
      }
      if (answer === 'hold') {
        const entry: Held = {
          hit,
          answer: (status) => write(status),
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
      } else write(answer.status, answer.body)
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
