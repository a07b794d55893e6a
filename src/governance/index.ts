/**
 * Partners and co-governance: industry councils decide on proposals whose actions change
 * the parameters capabilities declare, and an enacted proposal changes how the platform
 * behaves through the policy source below. Governance is a platform service, not a
 * capability: `app.ts` adds its routes, `platform.ts` makes its policy source the default
 * and runs its job.
 *
 * - {@link createGovernancePolicySource}: enacted values, by scope and instant, for the policy service.
 * - {@link governanceRoutes}: the public view, partner actions and operator actions.
 * - {@link governanceJobs}: reminders, tallies, enactment and expiry as time passes.
 * - {@link governanceEvents}: the event types it publishes through the outbox.
 *
 * @example
 * const source = createGovernancePolicySource()
 * const registry = loadRegistry(capabilities, config, source)
 * const routes = governanceRoutes(registry)
 */
import type { PaymentServices } from '../capabilities/payment/index.js'
import type { CoreTables } from '../storage/tables.js'
import type { Kysely } from 'kysely'
import type { JobSpec } from '../capabilities/contract.js'
import type { Registry } from '../capabilities/registry.js'
import type { RouteSpec } from '../server/route-kit.js'
import type { ContentEnvironment } from './actions.js'
import { advanceDueProposals } from './lifecycle.js'
import { createGovernancePolicySource } from './policy-store.js'
import { platformMetrics, type PartnerMetrics } from './recruitment.js'
import { operatorRoutes } from './routes-operator.js'
import { partnerRoutes } from './routes-partner.js'
import { publicRoutes } from './routes-public.js'

export { createGovernancePolicySource, type GovernancePolicySource } from './policy-store.js'
export { governanceEvents, type GovernanceEventType } from './events.js'
export { platformMetrics, type PartnerMetrics } from './recruitment.js'

/** What governance routes and jobs need from the platform. */
export interface GovernanceDependencies {
  readonly env: ContentEnvironment
  readonly metrics: PartnerMetrics
  /** Capability ids, for improvement requests. */
  readonly capabilities: readonly string[]
}

export interface GovernanceOptions {
  /** Measures for recruitment criteria; the platform's own by default. */
  readonly metrics?: PartnerMetrics
}

/**
 * Payment volume comes from the payment capability, through its service, when it is loaded;
 * governance never reads its tables. Open risk incidents wait for the risk capability.
 */
function withPaymentVolume(metrics: PartnerMetrics, registry: Registry): PartnerMetrics {
  if (!registry.modules.some((module) => module.id === 'payment')) return metrics
  const payment = registry.service<PaymentServices>('payment')
  return {
    ...metrics,
    async paymentVolume(db, organizationId, industry) {
      const merchants = await (db as Kysely<CoreTables>)
        .selectFrom('organizations')
        .select('id')
        .where('kind', '=', 'merchant')
        .where('industry', '=', industry)
        .execute()
      return payment.trades.isvVolume(
        db,
        organizationId,
        merchants.map((merchant) => merchant.id),
      )
    },
  }
}

function dependencies(registry: Registry, options: GovernanceOptions): GovernanceDependencies {
  return {
    // Its own source instance: diffs and council views need to know which scope a value
    // comes from, and a second cache costs nothing but one head read per lookup.
    env: { declarations: registry.policy.declarations(), source: createGovernancePolicySource() },
    metrics: options.metrics ?? withPaymentVolume(platformMetrics, registry),
    capabilities: registry.modules.map((module) => module.id),
  }
}

export function governanceRoutes(registry: Registry, options: GovernanceOptions = {}): RouteSpec[] {
  const deps = dependencies(registry, options)
  return [...publicRoutes(deps), ...partnerRoutes(deps), ...operatorRoutes(deps)]
}

/** How often time-driven transitions are checked; proposals' windows are minutes to days. */
const advanceIntervalMs = 10_000

export function governanceJobs(registry: Registry, options: GovernanceOptions = {}): JobSpec[] {
  const deps = dependencies(registry, options)
  return [
    {
      name: 'governance.advance',
      intervalMs: advanceIntervalMs,
      run: (db, now, clock) => advanceDueProposals(db, deps.env, now, clock),
    },
  ]
}
