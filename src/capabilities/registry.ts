/**
 * Loads capability modules and checks their declarations, the way Fastify checks plugin
 * metadata: a missing dependency, a cycle, a duplicate id, a scope or event outside the
 * module's namespace, or a default that fails its own schema stops the boot with a message
 * that names the module.
 */
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import '../platform/typebox-formats.js'
import type { Config } from '../config.js'
import { defineErrors } from '../errors.js'
import { createEventPublisher, type EventPublisher } from '../platform/events/outbox.js'
import { createPolicyService, type PolicyService, type PolicySource } from '../platform/policy/policy-service.js'
import type { RouteSpec } from '../server/route-kit.js'
import { organizationDirectory } from '../platform/identity/directory.js'
import type {
  CapabilityContext,
  CapabilityModule,
  Directory,
  JobSpec,
  Migration,
  PageSpec,
  ParameterDeclaration,
} from './contract.js'

export class CapabilityError extends Error {
  override readonly name = 'CapabilityError'
  constructor(
    readonly code: 'CAP_DEPENDENCY_MISSING' | 'CAP_DEPENDENCY_CYCLE' | 'CAP_DECLARATION_INVALID',
    message: string,
  ) {
    super(`${code}: ${message}`)
  }
}

export interface Registry {
  readonly modules: readonly CapabilityModule<any>[]
  /** The service a module created, for the platform's own wiring (CLI, workers). */
  service<T>(capabilityId: string): T
  readonly pages: readonly PageSpec[]
  readonly jobs: readonly JobSpec[]
  readonly policy: PolicyService
  readonly events: EventPublisher
  readonly routes: readonly RouteSpec[]
  readonly scopes: ReadonlyMap<string, string>
}

const idPattern = /^[a-z][a-z0-9-]{1,39}$/
const versionPattern = /^\d+\.\d+\.\d+$/
export const migrationNamePattern = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}_[a-z0-9_]+$/

function invalid(module: { id: string }, message: string): never {
  throw new CapabilityError('CAP_DECLARATION_INVALID', `capability "${module.id}": ${message}`)
}

/** Orders modules so that each comes after its dependencies; fails on a gap or a cycle. */
export function orderModules(modules: readonly CapabilityModule<any>[]): CapabilityModule<any>[] {
  const byId = new Map<string, CapabilityModule<any>>()
  for (const module of modules) {
    if (!idPattern.test(module.id)) invalid(module, 'id must be lowercase kebab-case')
    if (byId.has(module.id)) invalid(module, 'is registered twice')
    byId.set(module.id, module)
  }
  for (const module of modules) {
    for (const dependency of module.dependsOn) {
      if (!byId.has(dependency)) {
        throw new CapabilityError(
          'CAP_DEPENDENCY_MISSING',
          `capability "${module.id}" depends on "${dependency}", which is not registered ` +
            `(registered: ${[...byId.keys()].join(', ') || 'none'})`,
        )
      }
    }
  }
  const ordered: CapabilityModule<any>[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (module: CapabilityModule<any>, path: readonly string[]): void => {
    if (state.get(module.id) === 'done') return
    if (state.get(module.id) === 'visiting') {
      throw new CapabilityError('CAP_DEPENDENCY_CYCLE', `dependency cycle: ${[...path, module.id].join(' -> ')}`)
    }
    state.set(module.id, 'visiting')
    for (const dependency of module.dependsOn) visit(byId.get(dependency)!, [...path, module.id])
    state.set(module.id, 'done')
    ordered.push(module)
  }
  for (const module of modules) visit(module, [])
  return ordered
}

function checkDeclarations(module: CapabilityModule<any>): void {
  if (!versionPattern.test(module.version)) invalid(module, 'version must be semver x.y.z')
  for (const scope of Object.keys(module.scopes)) {
    if (!scope.startsWith(`${module.id}:`)) invalid(module, `scope ${scope} must start with "${module.id}:"`)
  }
  for (const type of Object.keys(module.events)) {
    if (!type.startsWith(`${module.id}.`)) invalid(module, `event ${type} must start with "${module.id}."`)
  }
  for (const [key, declaration] of Object.entries(module.parameters)) {
    if (!key.startsWith(`${module.id}.`)) invalid(module, `parameter ${key} must start with "${module.id}."`)
    if (!Value.Check(declaration.schema, declaration.default)) invalid(module, `default of ${key} fails its schema`)
  }
  for (const name of Object.keys(module.migrations)) {
    if (!migrationNamePattern.test(name)) invalid(module, `migration ${name} must be named YYYY-MM-DDTHH-MM_name`)
  }
}

/** All migrations: the platform's first, then each module's, keyed by unique name. */
export function collectMigrations(
  core: Readonly<Record<string, Migration>>,
  modules: readonly CapabilityModule<any>[],
): Record<string, Migration> {
  const all: Record<string, Migration> = { ...core }
  for (const module of modules) {
    for (const [name, migration] of Object.entries(module.migrations)) {
      if (name in all) invalid(module, `migration ${name} is declared twice`)
      all[name] = migration
    }
  }
  return all
}

export function loadRegistry(
  modules: readonly CapabilityModule<any>[],
  config: Config,
  policySource: PolicySource | null = null,
  directory: Directory = organizationDirectory,
): Registry {
  const ordered = orderModules(modules)
  const parameters = new Map<string, ParameterDeclaration>()
  const events = new Map<string, TSchema>()
  const scopes = new Map<string, string>()
  for (const module of ordered) {
    checkDeclarations(module)
    defineErrors(module.id.toUpperCase().replace(/-/g, '_'), module.errors)
    for (const [key, declaration] of Object.entries(module.parameters)) parameters.set(key, declaration)
    for (const [type, schema] of Object.entries(module.events)) events.set(type, schema)
    for (const [scope, description] of Object.entries(module.scopes)) scopes.set(scope, description)
  }
  const policy = createPolicyService(parameters, policySource)
  const publisher = createEventPublisher(events)
  const services = new Map<string, unknown>()
  const routes: RouteSpec[] = []
  const pages: PageSpec[] = []
  const jobs: JobSpec[] = []
  for (const module of ordered) {
    const context: CapabilityContext = {
      config,
      policy,
      events: publisher,
      directory,
      resolve: <T>(id: string): T => {
        if (!module.dependsOn.includes(id)) invalid(module, `resolves "${id}" without declaring it in dependsOn`)
        return services.get(id) as T
      },
    }
    const service = module.createService(context)
    services.set(module.id, service)
    for (const route of module.routes(service, context)) {
      if (route.auth === 'app' && (route.scope === undefined || !(route.scope in module.scopes))) {
        invalid(module, `route ${route.method} ${route.url} needs a scope the module declares`)
      }
      routes.push(route)
    }
    pages.push(...(module.pages?.(service, context) ?? []))
    jobs.push(...(module.jobs?.(service, context) ?? []).map((job) => ({ ...job, name: `${module.id}.${job.name}` })))
  }
  return {
    modules: ordered,
    policy,
    events: publisher,
    routes,
    scopes,
    pages,
    jobs,
    service: <T>(id: string): T => {
      if (!services.has(id)) throw new CapabilityError('CAP_DEPENDENCY_MISSING', `no capability "${id}" is loaded`)
      return services.get(id) as T
    },
  }
}
