/**
 * Mounts the Alipay-compatible gateway: `/gateway.do` (v2) and `/v3/*` (v3). The routes live
 * in an encapsulated Fastify plugin with parsers of their own (form bodies and JSON, both kept
 * as raw text for the signatures), so the JSON API outside keeps refusing forms, and with an
 * error handler that answers in Alipay's shapes even for a body Fastify itself refused.
 *
 * @example
 * await registerAlipayGateway(app, { config, storage, payment, platformKeys, clock, resolver })
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { PaymentServices } from '../../capabilities/payment/index.js'
import type { Config } from '../../config.js'
import type { Clock } from '../../platform/ids.js'
import type { PlatformKey } from '../../platform/signing/platform-keys.js'
import type { AppAuthTokenResolver } from '../../server/authenticate.js'
import type { Storage } from '../../storage/database.js'
import type { AppEnvironment } from '../../storage/tables.js'
import type { RefusalOfRequest } from '../../platform/audit/refusals.js'
import { AlipayError, gatewayCodes } from './errors.js'
import type { GatewayDeps } from './gateway-deps.js'
import { createRsaSigner, type RsaSigner } from './signer.js'
import { answerV2 } from './v2.js'
import { answerV3 } from './v3.js'

export interface AlipayGatewayOptions {
  readonly config: Config
  readonly storage: Pick<Storage, 'db' | 'deferDurability'>
  /** Null when the platform runs without the payment capability: only the token methods answer. */
  readonly payment: PaymentServices | null
  readonly platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>
  readonly clock: Clock
  readonly resolver: AppAuthTokenResolver | null
  /** Replaces the signer built from `config.alipay.signingThreads` (the benchmark compares them). */
  readonly signer?: RsaSigner
  /** Audits a refused credential or right (ADR 0020); the platform's error handler uses the same. */
  readonly recordRefusal?: (request: FastifyRequest, refusal: RefusalOfRequest) => Promise<unknown>
}

const jsonType = 'application/json; charset=utf-8'

export async function registerAlipayGateway(app: FastifyInstance, options: AlipayGatewayOptions): Promise<void> {
  const signer =
    options.signer ?? createRsaSigner(options.platformKeys, { threads: options.config.alipay.signingThreads })
  const deps: GatewayDeps = {
    config: options.config,
    db: options.storage.db,
    deferDurability: options.storage.deferDurability,
    payment: options.payment,
    resolver: options.resolver,
    signer,
  }
  const rawBodies = new WeakMap<FastifyRequest, string>()

  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser(
      ['application/x-www-form-urlencoded', 'application/json'],
      { parseAs: 'string' },
      (request, body, done) => {
        rawBodies.set(request, body as string)
        done(null, undefined)
      },
    )
    scope.addHook('onClose', async () => signer.close())

    // Failures before a handler runs (an unsupported content type, a body over the limit).
    scope.setErrorHandler(async (error, request, reply) => {
      const status = (error as { statusCode?: number }).statusCode
      const failure = new AlipayError(
        'isv.invalid-parameter',
        status === 413 ? 'The body is too large' : status === 415 ? 'Unsupported content type' : 'Malformed request',
      )
      if (typeof status !== 'number' || status >= 500) request.log.error({ err: error }, 'alipay gateway failure')
      if (request.url.startsWith('/v3/')) {
        const body = JSON.stringify({ code: failure.subCode, message: failure.message, links: [] })
        return reply.code(failure.status).type(jsonType).send(body)
      }
      const inner = JSON.stringify({
        code: failure.code,
        msg: gatewayCodes[failure.code],
        sub_code: failure.subCode,
        sub_msg: failure.message,
      })
      const signature = await signer.sign('sandbox', inner)
      return reply
        .code(200)
        .type(jsonType)
        .send(`{"error_response":${inner},"sign":${JSON.stringify(signature)}}`)
    })

    const v2 = async (request: FastifyRequest, reply: FastifyReply) => {
      const queryAt = request.url.indexOf('?')
      const answer = await answerV2(deps, {
        rawQuery: queryAt < 0 ? '' : request.url.slice(queryAt + 1),
        rawBody: rawBodies.get(request) ?? '',
        now: options.clock.now(),
      })
      if (answer.unexpected !== null) request.log.error({ err: answer.unexpected }, 'alipay gateway failure')
      if (answer.refusal !== null) await options.recordRefusal?.(request, answer.refusal)
      return reply.code(200).type(jsonType).header('trace_id', request.id).send(answer.body)
    }
    scope.route({ method: ['GET', 'POST'], url: '/gateway.do', schema: { hide: true }, handler: v2 })

    const v3 = async (request: FastifyRequest, reply: FastifyReply) => {
      const answer = await answerV3(deps, {
        method: request.method,
        url: request.url,
        headers: request.headers,
        rawBody: rawBodies.get(request) ?? '',
        now: options.clock.now(),
      })
      if (answer.unexpected !== null) request.log.error({ err: answer.unexpected }, 'alipay gateway failure')
      if (answer.refusal !== null) await options.recordRefusal?.(request, answer.refusal)
      return reply
        .code(answer.status)
        .type(jsonType)
        .headers({ ...answer.headers, 'alipay-trace-id': request.id })
        .send(answer.body)
    }
    scope.route({ method: ['GET', 'POST'], url: '/v3/*', schema: { hide: true }, handler: v3 })
  })
}
