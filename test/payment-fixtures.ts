/**
 * A ready payment world for tests: a merchant in an industry, an ISV app acting for it with
 * an app auth token, and a funded sandbox consumer. Until a suite wires the real
 * authorisation module, a token resolver grants the token below; the authorisation suite
 * covers the real grant flow.
 */
import { expect } from 'vitest'
import type { LedgerService } from '../src/capabilities/ledger/index.js'
import type { AppAuthTokenResolver } from '../src/server/authenticate.js'
import type { Platform } from '../src/server/platform.js'
import { createAppWithKey, json, rsaKeyPair, signed, signUp, type Injected, type TestApp } from './fixtures.js'

export const paymentScopes = ['payment:trade', 'payment:refund', 'payment:settlement', 'payment:sandbox', 'ledger:read']

/** Grants `token:<merchant id>` to any app, for the scopes listed; a test stand-in for consent. */
export function testTokenResolver(scopes: readonly string[] = paymentScopes): AppAuthTokenResolver {
  return {
    resolve: async (_db, _appId, token) =>
      token.startsWith('token:')
        ? { merchantId: token.slice('token:'.length), authorizationId: 'authz_test', scopes }
        : null,
  }
}

export interface PaymentWorld {
  readonly isvApp: TestApp
  readonly merchantId: string
  readonly token: string
  readonly consumerId: string
  call(
    request: { method: string; url: string; body?: unknown; idempotencyKey?: string },
    now?: number,
  ): Promise<Injected>
}

export async function paymentWorld(
  platform: Platform,
  options: { industry?: string; balance?: number; now?: () => number } = {},
): Promise<PaymentWorld> {
  const app = platform.app
  const now = options.now ?? (() => Date.now())
  const merchant = await signUp(app, 'merchant', options.industry ?? 'education')
  const isvApp = await createAppWithKey(app, await signUp(app, 'isv'), rsaKeyPair())
  const token = `token:${merchant.organizationId}`
  const call: PaymentWorld['call'] = (request, at) =>
    signed(app, isvApp, { ...request, appAuthToken: token }, at ?? now())
  const consumer = json(await call({ method: 'POST', url: '/v1/sandbox/consumers', body: { display_name: '小明' } }))
  expect(consumer.id, JSON.stringify(consumer)).toMatch(/^cons_/)
  const balance = options.balance ?? 100_000
  if (balance > 0) {
    const topUp = await call({
      method: 'POST',
      url: `/v1/sandbox/consumers/${consumer.id}/top-ups`,
      body: { amount: balance },
      idempotencyKey: `topup-${consumer.id}`,
    })
    expect(topUp.statusCode, topUp.body).toBe(201)
  }
  return { isvApp, merchantId: merchant.organizationId, token, consumerId: consumer.id, call }
}

export async function paymentCode(world: PaymentWorld, reusable = false, now?: number): Promise<string> {
  const response = await world.call(
    { method: 'POST', url: `/v1/sandbox/consumers/${world.consumerId}/payment-codes`, body: { reusable } },
    now,
  )
  expect(response.statusCode, response.body).toBe(201)
  return json(response).code
}

export function ledgerService(platform: Platform): LedgerService {
  return platform.registry.service<LedgerService>('ledger')
}

export async function balanceOf(
  platform: Platform,
  kind: Parameters<LedgerService['balance']>[1]['kind'],
  ownerId: string,
): Promise<number> {
  return (await ledgerService(platform).balance(platform.storage.db, { kind, ownerId, environment: 'sandbox' })).balance
}
