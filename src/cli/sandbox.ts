/**
 * `baseplate sandbox`: a ready sandbox in one command, against the same database a running
 * server uses. It creates, or reuses, an ISV with a sandbox app, a merchant that authorised
 * the app for the payment scopes, and a funded test consumer with a reusable payment code;
 * it registers a fresh key pair each time (private keys are never stored, so the previous
 * one cannot be printed again) and replaces the app's earlier keys at once.
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Registry } from '../capabilities/registry.js'
import type { PaymentServices } from '../capabilities/payment/index.js'
import type { Config } from '../config.js'
import { registerKey } from '../platform/apps/service.js'
import { grantAuthorization } from '../platform/authorization/index.js'
import { createOrganization, createUser } from '../platform/identity/service.js'
import { fen } from '../platform/money/money.js'
import { rsaPublicKeyPem } from '../platform/signing/platform-keys.js'
import type { AppPrincipal, UserPrincipal } from '../server/route-kit.js'
import type { CoreTables } from '../storage/tables.js'

export const sandboxScopes = [
  'payment:trade',
  'payment:refund',
  'payment:settlement',
  'payment:sandbox',
  'ledger:read',
  'stores:read',
  'stores:write',
]
/** The buyer is topped up to at least this much on every run: ¥1,000.00. */
export const sandboxBalanceFen = 100_000

const isvEmail = 'sandbox-isv@baseplate.local'
const merchantEmail = 'sandbox-merchant@baseplate.local'

/** The organisation of the user with `email`, created with its user if there is none yet. */
export async function ensureOrganization(
  db: Kysely<any>,
  email: string,
  organization: { name: string; kind: 'isv' | 'merchant'; industry?: string },
  now: number,
): Promise<{ userId: string; organizationId: string }> {
  const core = db as Kysely<CoreTables>
  const existing = await core
    .selectFrom('users')
    .innerJoin('memberships', 'memberships.user_id', 'users.id')
    .innerJoin('organizations', 'organizations.id', 'memberships.organization_id')
    .select(['users.id as userId', 'organizations.id as organizationId'])
    .where('users.email', '=', email)
    .where('organizations.kind', '=', organization.kind)
    .executeTakeFirst()
  if (existing !== undefined) return existing
  return db.transaction().execute(async (tx) => {
    // Nobody logs in as these users; the password is random and discarded.
    const user = await createUser(tx, { email, password: crypto.randomBytes(24).toString('base64url') }, now, 'sandbox')
    const org = await createOrganization(tx, organization, user.id, now)
    return { userId: user.id, organizationId: org.id }
  })
}

export async function createSandbox(db: Kysely<any>, registry: Registry, config: Config, now: number) {
  const isv = await ensureOrganization(db, isvEmail, { name: 'Sandbox ISV 沙箱服务商', kind: 'isv' }, now)
  const merchant = await ensureOrganization(
    db,
    merchantEmail,
    { name: 'Sandbox Merchant 沙箱商家', kind: 'merchant', industry: 'retail' },
    now,
  )
  const core = db as Kysely<CoreTables>
  let app = await core
    .selectFrom('apps')
    .select(['id'])
    .where('organization_id', '=', isv.organizationId)
    .where('environment', '=', 'sandbox')
    .orderBy('created_at')
    .executeTakeFirst()
  const owner: UserPrincipal = { kind: 'user', userId: isv.userId, isOperator: false, sessionToken: '' }
  if (app === undefined) {
    const { createApp } = await import('../platform/apps/service.js')
    app = await db
      .transaction()
      .execute((tx) => createApp(tx, owner, isv.organizationId, { name: 'Sandbox app', environment: 'sandbox' }, now))
  }
  const appId = app.id
  const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
  await db.transaction().execute((tx) =>
    registerKey(
      tx,
      owner,
      isv.organizationId,
      appId,
      {
        publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        overlapS: 0,
      },
      now,
    ),
  )
  const grant = await grantAuthorization(
    db,
    {
      appId,
      merchantId: merchant.organizationId,
      scopes: sandboxScopes,
      actor: 'sandbox',
      knownScopes: registry.scopes,
    },
    now,
  )

  const payment = registry.service<PaymentServices>('payment')
  const principal: AppPrincipal = {
    kind: 'app',
    appId,
    organizationId: isv.organizationId,
    environment: 'sandbox',
    actingFor: null,
    tenantId: isv.organizationId,
  }
  const buyer = await db.transaction().execute(async (tx) => {
    const consumer = await payment.consumers.findOrCreate(tx, principal, 'Sandbox Buyer 沙箱买家', now)
    if (consumer.balance < sandboxBalanceFen) {
      await payment.consumers.topUp(tx, principal, consumer.id, fen(sandboxBalanceFen - consumer.balance), now)
    }
    const code = await payment.consumers.mintCode(tx, principal, consumer.id, true, now)
    return { ...(await payment.consumers.get(tx, principal, consumer.id)), paymentCode: code.code }
  })
  const platformKey = await core
    .selectFrom('platform_keys')
    .select('public_key_pem')
    .where('environment', '=', 'sandbox')
    .executeTakeFirstOrThrow()
  return {
    endpoint: config.publicUrl,
    environment: 'sandbox' as const,
    appId,
    appPrivateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    platformPublicKey: platformKey.public_key_pem,
    // For alipay-sdk: `new AlipaySdk({ appId, privateKey: appPrivateKey, keyType: 'PKCS8', alipayPublicKey,
    // gateway: `${endpoint}/gateway.do`, endpoint })` (docs/guides/alipay-compatibility.md).
    alipayPublicKey: await rsaPublicKeyPem(db, 'sandbox'),
    appAuthToken: grant.app_auth_token,
    appRefreshToken: grant.app_refresh_token,
    scopes: grant.scopes,
    isv: { id: isv.organizationId },
    merchant: { id: merchant.organizationId },
    buyer: { id: buyer.id, paymentCode: buyer.paymentCode, balance: buyer.balance },
  }
}
