/**
 * The world the two acceptance suites (tenant isolation, bad input) run in: one tenant with
 * data behind every route of the API, built through the real routes and the real
 * authorisation module (no stand-in token resolver).
 *
 * A tenant is a user who owns an ISV organisation and a merchant organisation. The ISV's
 * sandbox app has a key and registered redirect URIs, and the merchant authorised it for
 * every scope (`grantAuthorization`, the sandbox grant); acting for the merchant with that
 * app auth token, the app opened a store, created a sandbox consumer (owned by the ISV, the
 * app's organisation), topped it up, took a barcode payment from it, refunded part of it,
 * bound the ISV as a profit-sharing receiver and shared profit, and made two unpaid trades.
 * The app has a webhook endpoint with one delivery (a test event). The merchant also approved
 * the app on the consent page, and the code it got back is kept unused.
 *
 * @example
 * const a = await tenantWorld(bp(), 'A')
 * await a.act({ method: 'GET', url: `/v1/trades/${a.tradeId}` })
 */
import { expect } from 'vitest'
import { grantAuthorization, type TokenGrantView } from '../src/platform/authorization/index.js'
import type { Platform } from '../src/server/platform.js'
import {
  createAppWithKey,
  ed25519KeyPair,
  json,
  session,
  signed,
  signUp,
  type Injected,
  type SignedCall,
  type Tenant,
  type TestApp,
} from './fixtures.js'

export interface TenantWorld {
  readonly label: string
  /** The user; `organizationId` is the ISV organisation. */
  readonly user: Tenant
  readonly testApp: TestApp
  readonly keyId: string
  /** A merchant organisation the same user owns, which authorised the app. */
  readonly merchantId: string
  /** The sandbox grant: authorization_id, app_auth_token, app_refresh_token. */
  readonly grant: TokenGrantView
  /** An app_auth_code from the consent page, never exchanged. */
  readonly code: string
  readonly redirectUri: string
  readonly storeId: string
  /** A sandbox consumer of the ISV organisation, with money. */
  readonly consumerId: string
  /** A reusable payment code of that consumer. */
  readonly reusableCode: string
  /** A one-time payment code of that consumer, never used. */
  readonly unusedCode: string
  /** A barcode trade, paid, partly refunded, with a profit-sharing request. */
  readonly tradeId: string
  readonly precreatedTradeId: string
  readonly createdTradeId: string
  /** The out_request_no of both the refund and the profit-sharing request on `tradeId`. */
  readonly outRequestNo: string
  /** The bound profit-sharing receiver: the ISV organisation. */
  readonly receiverId: string
  readonly endpointId: string
  readonly endpointUrl: string
  readonly deliveryId: string
  /** The event the delivery carries (a webhook.test event). */
  readonly eventId: string
  /** The bodies the tenant's creates were sent with, by operationId. */
  readonly bodies: Readonly<Record<string, unknown>>
  /** The Idempotency-Key the tenant's create of this operation used. */
  idempotencyKey(operationId: string): string
  /** A signed call as the app, acting for the merchant unless `appAuthToken` says otherwise. */
  act(call: SignedCall): Promise<Injected>
}

/** Every scope the capabilities declare. */
export function allScopes(platform: Platform): string[] {
  return [...platform.registry.scopes.keys()].sort()
}

/** A sandbox grant of these scopes (all by default) to the app, through the real module. */
export function grantScopes(
  platform: Platform,
  appId: string,
  merchantId: string,
  scopes: readonly string[] = allScopes(platform),
): Promise<TokenGrantView> {
  return grantAuthorization(
    platform.storage.db,
    { appId, merchantId, scopes, actor: 'isolation-fixtures', knownScopes: platform.registry.scopes },
    Date.now(),
  )
}

function hiddenField(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)
  expect(match, `hidden field ${name}`).not.toBeNull()
  return match![1]!.replace(/&amp;/g, '&')
}

export interface ConsentRequest {
  readonly appId: string
  readonly merchantId: string
  readonly redirectUri: string
  readonly scopes: readonly string[]
}

/** The user opens the consent page and approves the app for the merchant; returns the form's answer. */
export async function submitConsent(platform: Platform, user: Tenant, request: ConsentRequest): Promise<Injected> {
  const query = { app_id: request.appId, redirect_uri: request.redirectUri, scope: request.scopes.join(',') }
  const page = await platform.app.inject({
    method: 'GET',
    url: '/oauth/authorize',
    query,
    cookies: { bp_session: user.token },
  })
  expect(page.statusCode, page.body).toBe(200)
  return platform.app.inject({
    method: 'POST',
    url: '/oauth/authorize',
    cookies: { bp_session: user.token },
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({
      ...query,
      csrf_token: hiddenField(page.body, 'csrf_token'),
      merchant_id: request.merchantId,
      decision: 'approve',
    }).toString(),
  })
}

/** The merchant's user approves the app on the consent page; returns the app_auth_code. */
export async function approveOnConsentPage(platform: Platform, user: Tenant, request: ConsentRequest): Promise<string> {
  const decided = await submitConsent(platform, user, request)
  expect(decided.statusCode, decided.body).toBe(302)
  const code = new URL(String(decided.headers.location)).searchParams.get('app_auth_code')
  expect(code).toMatch(/^bpac_/)
  return code!
}

/** Builds a tenant; `label` (A, B, …) names its data, so that two worlds never collide. */
export async function tenantWorld(platform: Platform, label: string): Promise<TenantWorld> {
  const app = platform.app
  const lower = label.toLowerCase()
  const user = await signUp(app, 'isv')
  const expectStatus = (response: Injected, status: number) => {
    expect(response.statusCode, `${label}: ${response.body}`).toBe(status)
    return json(response)
  }

  const merchantId = expectStatus(
    await session(app, 'POST', '/v1/organizations', user.token, {
      name: `tenant ${label} merchant`,
      kind: 'merchant',
      industry: 'education',
    }),
    201,
  ).id as string
  const testApp = await createAppWithKey(app, user, ed25519KeyPair())
  const appUrl = `/v1/organizations/${user.organizationId}/apps/${testApp.appId}`
  const keyId = expectStatus(await session(app, 'GET', `${appUrl}/keys`, user.token), 200).data[0].id as string
  const redirectUri = `https://tenant-${lower}.example.com/oauth/callback`
  expectStatus(await session(app, 'PUT', `${appUrl}/redirect-uris`, user.token, { redirect_uris: [redirectUri] }), 200)
  const grant = await grantScopes(platform, testApp.appId, merchantId)
  const code = await approveOnConsentPage(platform, user, {
    appId: testApp.appId,
    merchantId,
    redirectUri,
    scopes: allScopes(platform),
  })

  const act = (call: SignedCall) => signed(app, testApp, { appAuthToken: grant.app_auth_token, ...call })
  const idempotencyKey = (operationId: string) => `tenant-${lower}-${operationId}`
  const bodies: Record<string, unknown> = {}
  const create = async (operationId: string, url: string, body: unknown, status: number) => {
    bodies[operationId] = body
    return expectStatus(await act({ method: 'POST', url, body, idempotencyKey: idempotencyKey(operationId) }), status)
  }

  const storeId = (
    await create(
      'createStore',
      '/v1/stores',
      { out_store_no: `${label}-1`, name: `${label} 五道口店`, address: '北京市海淀区成府路 1 号' },
      201,
    )
  ).id as string
  const consumerId = (await create('createSandboxConsumer', '/v1/sandbox/consumers', { display_name: '小明' }, 201))
    .id as string
  const consumerUrl = `/v1/sandbox/consumers/${consumerId}`
  await create('topUpSandboxConsumer', `${consumerUrl}/top-ups`, { amount: 100_000 }, 201)
  const mint = async (reusable: boolean) =>
    expectStatus(await act({ method: 'POST', url: `${consumerUrl}/payment-codes`, body: { reusable } }), 201)
      .code as string
  const reusableCode = await mint(true)

  const paid = await create(
    'payTrade',
    '/v1/trades/pay',
    { out_trade_no: `${label}-PAY-1`, total_amount: 10_000, subject: '咖啡 Coffee', auth_code: await mint(false) },
    200,
  )
  expect(paid.status, `${label}: the barcode payment`).toBe('paid')
  const tradeId = paid.id as string
  const outRequestNo = `req-${lower}-1`
  const receiverId = user.organizationId
  await create('refundTrade', `/v1/trades/${tradeId}/refunds`, { out_request_no: outRequestNo, amount: 1000 }, 201)
  await create(
    'bindRoyaltyReceiver',
    '/v1/royalty-receivers',
    { receiver_id: receiverId, name: `tenant ${label} ISV`, memo: 'commission' },
    201,
  )
  await create(
    'settleRoyalty',
    `/v1/trades/${tradeId}/royalties`,
    { out_request_no: outRequestNo, royalties: [{ receiver_id: receiverId, amount: 500 }] },
    201,
  )
  // Unpaid trades outlive the suite: an expired one would close when read.
  const unpaid = { total_amount: 2500, subject: '停车费 Parking', timeout_seconds: 86_400 }
  const precreatedTradeId = (
    await create('precreateTrade', '/v1/trades/precreate', { ...unpaid, out_trade_no: `${label}-QR-1` }, 201)
  ).id as string
  const createdTradeId = (
    await create(
      'createTrade',
      '/v1/trades',
      { ...unpaid, out_trade_no: `${label}-BUY-1`, buyer_id: consumerId, store_id: storeId },
      201,
    )
  ).id as string
  const unusedCode = await mint(false)

  const endpointUrl = `https://tenant-${lower}.example.com/webhooks`
  const endpointId = expectStatus(
    await session(app, 'POST', `${appUrl}/webhook-endpoints`, user.token, { url: endpointUrl }),
    201,
  ).id as string
  const delivery = expectStatus(
    await session(app, 'POST', `${appUrl}/webhook-endpoints/${endpointId}/test`, user.token),
    202,
  )

  return {
    label,
    user,
    testApp,
    keyId,
    merchantId,
    grant,
    code,
    redirectUri,
    storeId,
    consumerId,
    reusableCode,
    unusedCode,
    tradeId,
    precreatedTradeId,
    createdTradeId,
    outRequestNo,
    receiverId,
    endpointId,
    endpointUrl,
    deliveryId: delivery.id as string,
    eventId: delivery.event_id as string,
    bodies,
    idempotencyKey,
    act,
  }
}
