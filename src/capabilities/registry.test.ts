import { Type } from '@sinclair/typebox'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../config.js'
import { defineCapability, type CapabilityModule } from './contract.js'
import { loadRegistry, orderModules } from './registry.js'

const config = parseConfig({})

function module(id: string, overrides: Partial<CapabilityModule<unknown>> = {}): CapabilityModule<unknown> {
  return defineCapability({
    id,
    version: '1.0.0',
    title: { en: id, zh: id },
    dependsOn: [],
    scopes: {},
    events: {},
    parameters: {},
    errors: {},
    migrations: {},
    createService: () => ({}),
    routes: () => [],
    ...overrides,
  })
}

describe('capability registry', () => {
  it('fails at boot with a clear message when a dependency is missing', () => {
    expect(() => loadRegistry([module('credit', { dependsOn: ['ledger'] })], config)).toThrow(
      'CAP_DEPENDENCY_MISSING: capability "credit" depends on "ledger", which is not registered',
    )
  })

  it('orders modules after their dependencies and refuses cycles', () => {
    const ordered = orderModules([module('credit', { dependsOn: ['ledger'] }), module('ledger')])
    expect(ordered.map((m) => m.id)).toEqual(['ledger', 'credit'])
    expect(() => orderModules([module('aa', { dependsOn: ['bb'] }), module('bb', { dependsOn: ['aa'] })])).toThrow(
      'CAP_DEPENDENCY_CYCLE: dependency cycle: aa -> bb -> aa',
    )
  })

  it('refuses declarations outside the module namespace or with a bad default', () => {
    expect(() => loadRegistry([module('loyalty', { scopes: { 'payment:write': 'x' } })], config)).toThrow(
      /scope payment:write must start with "loyalty:"/,
    )
    expect(() =>
      loadRegistry(
        [
          module('loyalty', {
            parameters: {
              'loyalty.points_rate': {
                schema: Type.Integer({ minimum: 1 }),
                default: 0,
                scope: 'industry',
                description: { en: 'x', zh: 'x' },
              },
            },
          }),
        ],
        config,
      ),
    ).toThrow(/default of loyalty.points_rate fails its schema/)
    expect(() =>
      loadRegistry([module('loyalty', { migrations: { create: { up: async () => undefined } } })], config),
    ).toThrow(/migration create must be named/)
  })

  it('lets a module resolve only the services it declared', () => {
    let resolved: unknown
    loadRegistry(
      [
        module('ledger', { createService: () => ({ name: 'ledger service' }) }),
        module('credit', {
          dependsOn: ['ledger'],
          createService: (context) => {
            resolved = context.resolve('ledger')
          },
        }),
      ],
      config,
    )
    expect(resolved).toEqual({ name: 'ledger service' })
    expect(() =>
      loadRegistry(
        [
          module('ledger'),
          module('credit', {
            createService: (context) => context.resolve('ledger'),
          }),
        ],
        config,
      ),
    ).toThrow(/resolves "ledger" without declaring it/)
  })

  it('resolves a parameter to its declared default at version 0 until governance enacts one', async () => {
    const registry = loadRegistry(
      [
        module('fees', {
          parameters: {
            'fees.rate_bps': {
              schema: Type.Integer({ minimum: 0, maximum: 10_000 }),
              default: 60,
              scope: 'industry',
              description: { en: 'fee', zh: '费率' },
            },
          },
        }),
      ],
      config,
    )
    const value = await registry.policy.get<number>(null as never, 'fees.rate_bps', {
      industry: 'education',
      at: Date.now(),
    })
    expect(value).toEqual({ key: 'fees.rate_bps', value: 60, version: 0 })
    await expect(registry.policy.get(null as never, 'fees.unknown', { at: Date.now() })).rejects.toThrow(/not declared/)
  })

  it('resolves enacted values from a policy source, checked against the schema', async () => {
    const declaration = {
      schema: Type.Integer({ minimum: 0 }),
      default: 60,
      scope: 'industry' as const,
      description: { en: 'fee', zh: '费率' },
    }
    const registry = loadRegistry([module('fees', { parameters: { 'fees.rate_bps': declaration } })], config, {
      resolve: async (_db, _key, scope) => (scope.industry === 'education' ? { value: 38, version: 3 } : null),
    })
    expect(await registry.policy.get(null as never, 'fees.rate_bps', { industry: 'education', at: 1 })).toMatchObject({
      value: 38,
      version: 3,
    })
    expect(await registry.policy.get(null as never, 'fees.rate_bps', { industry: 'retail', at: 1 })).toMatchObject({
      value: 60,
      version: 0,
    })
  })
})
