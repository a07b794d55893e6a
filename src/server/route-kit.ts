/**
 * How every route is declared, platform and capability alike. A route names who may call it
 * (`auth`), the scope an app needs, whether it takes an `Idempotency-Key`, and one TypeBox
 * schema per part; the same schemas validate requests, serialise responses and produce the
 * OpenAPI document. Handlers stay thin: they receive a typed input and a database handle
 * (inside a transaction for writes) and call a service.
 *
 * @example
 * defineRoute({
 *   method: 'GET', url: '/v1/stores/:store_id', operationId: 'getStore', auth: 'app',
 *   scope: 'stores:read', summary: 'Read a store', tags: ['stores'],
 *   schema: { params: Type.Object({ store_id: Id }), response: Store },
 *   handler: ({ params, principal, db }) => stores.get(db, principal, params.store_id),
 * })
 */
import type { Static, TSchema } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import type { AppEnvironment } from '../storage/tables.js'

export type AuthMode = 'public' | 'session' | 'app'
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
export type IdempotencyMode = 'none' | 'optional' | 'required'

/** What an app acts for when it presents an app auth token. */
export interface ActingFor {
  readonly merchantId: string
  readonly authorizationId: string
  readonly scopes: readonly string[]
}

export type Principal =
  | { readonly kind: 'anonymous' }
  | {
      readonly kind: 'user'
      readonly userId: string
      readonly isOperator: boolean
      /** The session token the request presented; needed only to end that session. */
      readonly sessionToken: string
    }
  | {
      readonly kind: 'app'
      readonly appId: string
      /** The organisation that owns the app. */
      readonly organizationId: string
      readonly environment: AppEnvironment
      readonly actingFor: ActingFor | null
      /** The organisation whose data this call reads and writes. */
      readonly tenantId: string
    }

export type AppPrincipal = Extract<Principal, { kind: 'app' }>
export type UserPrincipal = Extract<Principal, { kind: 'user' }>

export interface RouteSchemas {
  readonly params?: TSchema
  readonly querystring?: TSchema
  readonly body?: TSchema
  readonly response: TSchema
}

type StaticOr<T, Fallback> = T extends TSchema ? Static<T> : Fallback

export interface RouteInput<S extends RouteSchemas, A extends AuthMode> {
  readonly params: StaticOr<S['params'], Record<string, never>>
  readonly query: StaticOr<S['querystring'], Record<string, never>>
  readonly body: StaticOr<S['body'], undefined>
  readonly principal: A extends 'app' ? AppPrincipal : A extends 'session' ? UserPrincipal : Principal
  /** The database, inside a transaction for writes. Use it and nothing else. */
  readonly db: Kysely<any>
  readonly requestId: string
  /** Milliseconds since the epoch, read once per request from the platform clock. */
  readonly now: number
  /** Lets a handler set a cookie (the console session); ignored elsewhere. */
  readonly setCookie: (name: string, value: string, options: CookieOptions) => void
  /** Lets a handler set a response header, kept on an error answer too (`Retry-After`). */
  readonly setHeader: (name: string, value: string) => void
  /** The client's address as the server sees it (Fastify's `request.ip`). */
  readonly clientAddress: string
}

export interface CookieOptions {
  readonly maxAgeS: number
  readonly httpOnly: boolean
}

export interface RouteSpec<S extends RouteSchemas = RouteSchemas, A extends AuthMode = AuthMode> {
  readonly method: HttpMethod
  /** Fastify path syntax (`/v1/stores/:store_id`); wire names stay snake_case. */
  readonly url: string
  readonly operationId: string
  readonly summary: string
  readonly description?: string
  readonly tags: readonly string[]
  readonly auth: A
  /** For app routes: the scope a merchant must have granted when the app acts for it. */
  readonly scope?: string
  /** Writes default to `optional`; reads are always `none`. */
  readonly idempotency?: IdempotencyMode
  /**
   * Writes run inside one transaction unless this is set; then the handler receives the
   * root database and opens its own, e.g. to record a failure that must outlive a rollback.
   */
  readonly ownTransactions?: boolean
  /** Success status; 200 unless set. */
  readonly status?: 200 | 201 | 202 | 204
  readonly schema: S
  readonly handler: (input: RouteInput<S, A>) => Promise<StaticOr<S['response'], unknown>>
}

/** Identity function that gives a route literal its precise types. */
export function defineRoute<S extends RouteSchemas, A extends AuthMode>(spec: RouteSpec<S, A>): RouteSpec {
  return spec as unknown as RouteSpec
}

export function isWrite(method: HttpMethod): boolean {
  return method !== 'GET'
}
