/**
 * The capability contract: the Lego stud every brick shares. A capability is one folder
 * whose `index.ts` default-exports `defineCapability({...})`: its id and version, the
 * scopes an app needs, the events it emits, the parameters a council may govern, its
 * migrations, its dependencies and its routes. The registry (`registry.ts`) checks every
 * declaration at boot; nothing outside the folder touches its tables.
 *
 * @example
 * export default defineCapability({
 *   id: 'stores', version: '1.0.0', dependsOn: [],
 *   title: { en: 'Stores', zh: '门店' },
 *   scopes: { 'stores:read': 'Read stores', 'stores:write': 'Create and close stores' },
 *   events: { 'stores.created': StoreEvent },
 *   parameters: { 'stores.open_stores_max': { schema: Type.Integer({ minimum: 1 }), default: 200,
 *     scope: 'merchant', description: { en: '…', zh: '…' } } },
 *   errors: storeErrors, migrations, createService, routes,
 * })
 */
import type { TSchema } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import type { Config } from '../config.js'
import type { ErrorSpec } from '../errors.js'
import type { RouteSpec } from '../server/route-kit.js'
import type { EventInput, EventPublisher } from '../platform/events/outbox.js'
import type { PolicyService } from '../platform/policy/policy-service.js'

/** An event a capability writes to the outbox with its change. */
export type { EventInput }

export type ParameterScope = 'global' | 'industry' | 'merchant'

export interface Text {
  readonly en: string
  readonly zh: string
}

export interface ParameterDeclaration {
  readonly schema: TSchema
  readonly default: unknown
  /** The finest scope a council may set it for; resolution falls back to coarser ones. */
  readonly scope: ParameterScope
  readonly description: Text
}

export interface Migration {
  up(db: Kysely<any>): Promise<void>
  down?(db: Kysely<any>): Promise<void>
}

/** What a capability may know about an organisation, without reading identity's tables. */
export interface OrganizationProfile {
  readonly id: string
  readonly kind: 'isv' | 'merchant'
  readonly name: string
  readonly industry: string | null
}

/** Read-only lookups into the platform's own records, for capabilities. */
export interface Directory {
  organization(db: Kysely<any>, organizationId: string): Promise<OrganizationProfile | null>
}

/** What a capability receives at boot. */
export interface CapabilityContext {
  readonly config: Config
  readonly policy: PolicyService
  readonly events: EventPublisher
  readonly directory: Directory
  /** The service of a capability this one declared in `dependsOn`. */
  resolve<T>(capabilityId: string): T
}

export interface CapabilityModule<S = unknown> {
  readonly id: string
  readonly version: string
  readonly title: Text
  readonly dependsOn: readonly string[]
  readonly scopes: Readonly<Record<string, string>>
  readonly events: Readonly<Record<string, TSchema>>
  readonly parameters: Readonly<Record<string, ParameterDeclaration>>
  readonly errors: Readonly<Record<string, ErrorSpec>>
  /** Keyed by name; names start with an ISO time (`2026-11-25T00-00_create_stores`). */
  readonly migrations: Readonly<Record<string, Migration>>
  createService(context: CapabilityContext): S
  routes(service: S, context: CapabilityContext): readonly RouteSpec[]
  /**
   * Server-rendered pages for people rather than programs (a consumer's pay page). They are
   * outside the JSON API and the OpenAPI document; they get the database and the clock.
   */
  pages?(service: S, context: CapabilityContext): readonly PageSpec[]
  /** Background work the platform runs on a timer (expiring trades, settling). */
  jobs?(service: S, context: CapabilityContext): readonly JobSpec[]
}

/**
 * A recurring job. It must be safe to run in several processes at once (take row locks or
 * compare-and-set), bounded per run, and return how many items it handled.
 */
export interface JobSpec {
  readonly name: string
  readonly intervalMs: number
  /**
   * `now` is when the run began: what it selects. `clock` reads the time again, never earlier
   * than `now` (the runner sees to it): a run that works item by item stamps each item with the
   * time after taking its lock, so the item's events never sort before a change another
   * transaction committed on it meanwhile.
   */
  run(db: Kysely<any>, now: number, clock: () => number): Promise<number>
}

export interface PageRequest {
  readonly params: Readonly<Record<string, string>>
  readonly query: Readonly<Record<string, string>>
  /** Parsed application/x-www-form-urlencoded body of a POST. */
  readonly form: Readonly<Record<string, string>>
  readonly db: Kysely<any>
  readonly now: number
}

export type PageResult =
  | { readonly kind: 'html'; readonly status: number; readonly html: string }
  | { readonly kind: 'redirect'; readonly location: string }

export interface PageSpec {
  readonly method: 'GET' | 'POST'
  readonly url: string
  readonly handler: (request: PageRequest) => Promise<PageResult>
}

export function defineCapability<S>(module: CapabilityModule<S>): CapabilityModule<S> {
  return Object.freeze(module)
}
