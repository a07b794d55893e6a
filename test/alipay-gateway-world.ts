/**
 * A running Baseplate for the Alipay gateway suites, reached only the way an ISV reaches it:
 * `baseplate sandbox --json` against the server's database (run twice: the first run's app key
 * is then stale, which is how the suites get a bad signature without making keys by hand), and
 * the unmodified `alipay-sdk` configured from that JSON with nothing but the endpoint changed.
 *
 * The server clock is the real one plus `skew`, so a suite can make every client timestamp
 * stale or move time on for notification retries. alipay-sdk writes v2 timestamps in the
 * local zone of this process, so the server is told that zone
 * (BASEPLATE_ALIPAY_TIMEZONE_OFFSET_MINUTES), as an operator whose ISVs are not in UTC+8 would.
 *
 * @example
 * const world = useAlipayWorld(dialect)
 * const answer = await world().v2('alipay.trade.query', { outTradeNo: 'A-1' })
 */
import http from 'node:http'
import { AlipaySdk, type AlipayCommonResult, type AlipaySdkCommonResult } from 'alipay-sdk'
import { afterAll, beforeAll, expect } from 'vitest'
import type { DialectName } from '../src/storage/database.js'
import { parseConfig } from '../src/config.js'
import { openPlatform, type Platform } from '../src/server/platform.js'
import { cliEnvironment, runCli } from './cli-harness.js'
import { freshTarget, testSecretKey, type TestTarget } from './harness.js'

export interface Sandbox {
  readonly endpoint: string
  readonly appId: string
  readonly appPrivateKey: string
  readonly alipayPublicKey: string
  readonly appAuthToken: string
  readonly appRefreshToken: string
  readonly isv: { readonly id: string }
  readonly merchant: { readonly id: string }
  readonly buyer: { readonly id: string; readonly paymentCode: string; readonly balance: number }
}

export interface ReceivedNotification {
  readonly raw: string
  readonly fields: Record<string, string>
  readonly contentType: string | undefined
  /** The informational headers beside the form: which notification, which attempt. */
  readonly deliveryId: string | undefined
  readonly attempt: string | undefined
}

/** A merchant's notify endpoint: records every POST and answers from a script (then `success`). */
export interface Receiver {
  readonly url: string
  readonly received: ReceivedNotification[]
  /** Answers for the next requests, in order; `success` once they run out. */
  readonly answers: string[]
}

export interface AlipayWorld {
  readonly platform: Platform
  readonly endpoint: string
  readonly sandbox: Sandbox
  /** The first sandbox run, whose app key the second run replaced. */
  readonly staleSandbox: Sandbox
  readonly sdk: AlipaySdk
  readonly receiver: Receiver
  /** Milliseconds added to the server clock. */
  skew: number
  /** The app auth token in use: token exchanges in the suites rotate it. */
  appAuthToken: string
  /** An SDK configured like `sdk`, with other options (a stale key, sign type RSA). */
  sdkWith(overrides: Partial<ConstructorParameters<typeof AlipaySdk>[0]>): AlipaySdk
  /** v2 `exec` acting for the sandbox merchant, the response signature verified. */
  v2(
    method: string,
    bizContent: Record<string, unknown>,
    params?: Record<string, unknown>,
  ): Promise<AlipaySdkCommonResult>
  /** v3 `curl` POST acting for the sandbox merchant (the SDK always verifies v3 responses). */
  v3<T = any>(method: string, body: Record<string, unknown>): Promise<AlipayCommonResult<T>>
  /** The AlipayRequestError a v3 call raises. */
  v3Error(
    method: string,
    body: Record<string, unknown>,
    options?: { appAuthToken?: string; sdk?: AlipaySdk },
  ): Promise<any>
  /** POSTs the payment code on a trade's pay page, as the buyer's wallet would. */
  payOnPage(qrCode: string): Promise<void>
}

export function v3Path(method: string): string {
  return `/v3/${method.replaceAll('.', '/')}`
}

async function startReceiver(): Promise<{ receiver: Receiver; close: () => Promise<void> }> {
  const received: ReceivedNotification[] = []
  const answers: string[] = []
  const server = http.createServer((request, response) => {
    let raw = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => {
      raw += chunk
    })
    request.on('end', () => {
      received.push({
        raw,
        fields: Object.fromEntries(new URLSearchParams(raw)),
        contentType: request.headers['content-type'],
        deliveryId: request.headers['baseplate-delivery-id'] as string | undefined,
        attempt: request.headers['baseplate-delivery-attempt'] as string | undefined,
      })
      response.writeHead(200, { 'content-type': 'text/plain' }).end(answers.shift() ?? 'success')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  return {
    receiver: { url: `http://127.0.0.1:${address.port}/alipay/notify`, received, answers },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

export function useAlipayWorld(dialect: DialectName): () => AlipayWorld {
  let target: TestTarget | undefined
  let platform: Platform | undefined
  let closeReceiver: (() => Promise<void>) | undefined
  let world: AlipayWorld | undefined

  beforeAll(async () => {
    target = await freshTarget(dialect)
    const state = { skew: 0 }
    const config = parseConfig({
      BASEPLATE_LOG_LEVEL: 'silent',
      BASEPLATE_SECRET_KEY: testSecretKey,
      BASEPLATE_ALIPAY_TIMEZONE_OFFSET_MINUTES: String(-new Date().getTimezoneOffset()),
    })
    platform = await openPlatform(config, {
      target: target.target,
      clock: { now: () => Date.now() + state.skew },
      workers: { notifications: { background: false } },
    })
    const endpoint = await platform.app.listen({ port: 0, host: '127.0.0.1' })
    const env = { ...cliEnvironment(target.target), BASEPLATE_PUBLIC_URL: endpoint }
    const first = await runCli(['sandbox', '--json'], env)
    expect(first.err).toBe('')
    const second = await runCli(['sandbox', '--json'], env)
    const sandbox = JSON.parse(second.out) as Sandbox
    const staleSandbox = JSON.parse(first.out) as Sandbox
    const started = await startReceiver()
    closeReceiver = started.close
    const base = {
      appId: sandbox.appId,
      privateKey: sandbox.appPrivateKey,
      // The sandbox prints PKCS#8 keys, as `baseplate keys generate` and Alipay's key tool do.
      keyType: 'PKCS8' as const,
      alipayPublicKey: sandbox.alipayPublicKey,
      gateway: `${sandbox.endpoint}/gateway.do`,
      endpoint: sandbox.endpoint,
    }
    const sdkWith = (overrides: Partial<ConstructorParameters<typeof AlipaySdk>[0]>) =>
      new AlipaySdk({ ...base, ...overrides })
    const sdk = sdkWith({})
    const self: AlipayWorld = {
      platform,
      endpoint,
      sandbox,
      staleSandbox,
      sdk,
      receiver: started.receiver,
      get skew() {
        return state.skew
      },
      set skew(value: number) {
        state.skew = value
      },
      appAuthToken: sandbox.appAuthToken,
      sdkWith,
      v2: (method, bizContent, params = {}) =>
        sdk.exec(method, { appAuthToken: self.appAuthToken, bizContent, ...params }, { validateSign: true }),
      v3: (method, body) => sdk.curl('POST', v3Path(method), { appAuthToken: self.appAuthToken, body }),
      v3Error: async (method, body, options = {}) => {
        const client = options.sdk ?? sdk
        const error = await client
          .curl('POST', v3Path(method), { appAuthToken: options.appAuthToken ?? self.appAuthToken, body })
          .then(
            () => null,
            (failure: unknown) => failure,
          )
        expect(error, `${method} should fail`).not.toBeNull()
        return error
      },
      async payOnPage(qrCode) {
        // The server listens on port 0, so its configured public URL has no real port.
        const page = await fetch(new URL(new URL(qrCode).pathname, endpoint), {
          method: 'POST',
          body: new URLSearchParams({ code: sandbox.buyer.paymentCode }),
        })
        expect(page.status).toBe(200)
      },
    }
    world = self
  })
  afterAll(async () => {
    await closeReceiver?.()
    await platform?.close()
    await target?.dispose()
  })
  return () => {
    if (world === undefined) throw new Error('the Alipay world is not ready')
    return world
  }
}
