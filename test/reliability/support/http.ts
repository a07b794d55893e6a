/**
 * Loopback HTTP for the reliability suite and the benchmarks: node:http over a keep-alive
 * agent (so connection setup is not what is measured), and native API calls signed with the
 * world's app key through the SDK's own `signRequest`.
 *
 * @example
 * const agent = keepAliveAgent(32)
 * const call = signedCall(world, { method: 'POST', path: '/v1/trades/pay', body, idempotencyKey: 'k1' })
 * const { status, body } = await send(agent, server.url, call)
 */
import http from 'node:http'
import { signRequest } from '../../../sdk/src/index.js'
import type { World } from './world.js'

export interface PreparedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
}

export interface HttpResult {
  readonly status: number
  readonly body: string
  readonly headers: http.IncomingHttpHeaders
}

/**
 * How long the suites' clients keep an idle connection: less than the server's keep-alive
 * timeout (Fastify's 72 s, announced as `Keep-Alive: timeout=72`), so the client closes it first.
 * Node's agent keeps idle sockets for ever unless told, and ignores the announced timeout then:
 * a socket the server closed just as a request went out on it failed with ECONNRESET, unread.
 * The soak met it, 23 requests in one burst, the sockets a latency spike had opened 72 s before.
 */
export const idleSocketTimeoutMs = 60_000

export function keepAliveAgent(sockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, timeout: idleSocketTimeoutMs })
}

/** Sends one request; rejects on a network error or after `timeoutMs` without an answer. */
export function send(
  agent: http.Agent,
  baseUrl: string,
  request: PreparedRequest,
  timeoutMs = 30_000,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const url = new URL(request.path, baseUrl)
    const headers: Record<string, string | number> = { ...request.headers }
    if (request.body !== '') headers['content-length'] = Buffer.byteLength(request.body)
    const outgoing = http.request(
      { agent, host: url.hostname, port: url.port, method: request.method, path: request.path, headers },
      (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: response.headers,
          }),
        )
        response.on('error', reject)
      },
    )
    outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    // Whether the request went out on a kept-alive socket: a server closing an idle one as the
    // client reuses it fails the request before the server read it (the client may resend).
    outgoing.on('error', (error: Error) => reject(Object.assign(error, { reusedSocket: outgoing.reusedSocket })))
    outgoing.end(request.body === '' ? undefined : request.body)
  })
}

export interface SignedCallInput {
  readonly method: string
  readonly path: string
  readonly body?: unknown
  readonly idempotencyKey?: string
  /** Defaults to the world's token: act for the sandbox merchant. */
  readonly appAuthToken?: string | null
  readonly nowMs?: number
  readonly nonce?: string
}

/** A native API request signed with the world's app key, ready to send (or to tamper with). */
export function signedCall(world: World, input: SignedCallInput): PreparedRequest {
  const body = input.body === undefined ? '' : typeof input.body === 'string' ? input.body : JSON.stringify(input.body)
  const appAuthToken = input.appAuthToken === null ? undefined : (input.appAuthToken ?? world.appAuthToken)
  const headers = signRequest({
    appId: world.appId,
    privateKey: world.privateKey,
    method: input.method,
    pathWithQuery: input.path,
    body,
    appAuthToken,
    idempotencyKey: input.idempotencyKey,
    timestampS: Math.floor((input.nowMs ?? Date.now()) / 1000),
    ...(input.nonce === undefined ? {} : { nonce: input.nonce }),
  })
  return { method: input.method, path: input.path, headers, body }
}

/** The barcode payment the load uses: create + pay in one call, idempotent on its key. */
export function payBody(world: World, outTradeNo: string, amountFen: number) {
  return { out_trade_no: outTradeNo, total_amount: amountFen, subject: 'reliability', auth_code: world.paymentCode }
}

export function signedPay(world: World, outTradeNo: string, amountFen: number, nowMs?: number): PreparedRequest {
  return signedCall(world, {
    method: 'POST',
    path: '/v1/trades/pay',
    body: payBody(world, outTradeNo, amountFen),
    idempotencyKey: outTradeNo,
    ...(nowMs === undefined ? {} : { nowMs }),
  })
}
