import crypto from 'node:crypto'
import { beforeAll, expect, it } from 'vitest'
import {
  createAppWithKey,
  ed25519KeyPair,
  json,
  rsaKeyPair,
  session,
  signed,
  signUp,
  testPassword,
  type Tenant,
} from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

const clock = manualClock(Date.now())

function publicPem(key: crypto.KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString()
}

forEachDialect('identity and apps', (dialect) => {
  let operatorLogin: { email: string; password: string } | undefined
  const bp = useTestPlatform(dialect, {
    clock,
    onOperatorCreated: (login) => {
      operatorLogin = login
    },
  })
  let tenant: Tenant
  let appId: string

  beforeAll(async () => {
    tenant = await signUp(bp().app, 'isv')
    const created = await session(bp().app, 'POST', `/v1/organizations/${tenant.organizationId}/apps`, tenant.token, {
      name: 'Parking app',
      environment: 'sandbox',
    })
    appId = json(created).id
  })

  it('creates the operator once, with a working one-time login', async () => {
    expect(operatorLogin?.email).toBe('operator@baseplate.local')
    const login = await bp().app.inject({ method: 'POST', url: '/v1/sessions', payload: operatorLogin })
    expect(login.statusCode).toBe(201)
    expect(json(login).user.is_operator).toBe(true)
    const stored = await bp()
      .storage.db.selectFrom('users')
      .select('password_hash')
      .where('email', '=', 'operator@baseplate.local')
      .executeTakeFirstOrThrow()
    expect(stored.password_hash).toMatch(/^scrypt\$/)
    expect(stored.password_hash).not.toContain(operatorLogin!.password)
  })

  it('logs in with a session cookie and refuses a wrong password', async () => {
    const wrong = await bp().app.inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: tenant.email, password: 'not the password' },
    })
    expect(wrong.statusCode).toBe(401)
    expect(json(wrong).code).toBe('AUTH_INVALID_CREDENTIALS')
    const login = await bp().app.inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: tenant.email, password: testPassword },
    })
    const cookie = login.cookies.find((c) => c.name === 'bp_session')
    expect(cookie?.httpOnly).toBe(true)
    const me = await bp().app.inject({ method: 'GET', url: '/v1/me', cookies: { bp_session: cookie!.value } })
    expect(json(me).memberships[0].organization.id).toBe(tenant.organizationId)
    const anonymous = await bp().app.inject({ method: 'GET', url: '/v1/me' })
    expect(json(anonymous).code).toBe('AUTH_SESSION_REQUIRED')
  })

  it('refuses a duplicate email', async () => {
    const response = await bp().app.inject({
      method: 'POST',
      url: '/v1/signup',
      payload: {
        email: tenant.email.toUpperCase(),
        password: testPassword,
        organization: { name: 'x', kind: 'isv' },
      },
    })
    expect(response.statusCode).toBe(409)
    expect(json(response).code).toBe('IDENTITY_EMAIL_TAKEN')
  })

  const keyUrl = () => `/v1/organizations/${tenant.organizationId}/apps/${appId}/keys`

  it('names what is wrong with a key', async () => {
    const cases: Array<[string, string]> = [
      ['not a pem', 'APP_KEY_PEM_MALFORMED'],
      ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', 'APP_KEY_PEM_MALFORMED'],
      [publicPem(crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), 'APP_KEY_TOO_SHORT'],
      [publicPem(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey), 'APP_KEY_TYPE_UNSUPPORTED'],
      [publicPem(crypto.generateKeyPairSync('x25519').publicKey), 'APP_KEY_TYPE_UNSUPPORTED'],
      [rsaKeyPair().privateKeyPem, 'APP_KEY_PRIVATE_KEY_SENT'],
    ]
    for (const [pem, code] of cases) {
      const response = await session(bp().app, 'POST', keyUrl(), tenant.token, { public_key_pem: pem })
      expect(response.statusCode, pem.slice(0, 40)).toBe(400)
      const body = json(response)
      expect(body.code).toBe(code)
      expect(body.field).toBe('body.public_key_pem')
      // A private key sent by mistake is never echoed back.
      expect(response.body).not.toContain('PRIVATE KEY')
    }
    expect(json(await session(bp().app, 'GET', keyUrl(), tenant.token)).data).toHaveLength(0)
  })

  it('accepts a PKCS#1 RSA public key and stores it as SPKI', async () => {
    const pkcs1 = rsaKeyPair(2).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()
    const publicPkcs1 = crypto
      .createPublicKey(crypto.createPrivateKey(pkcs1))
      .export({ type: 'pkcs1', format: 'pem' })
      .toString()
    const response = await session(bp().app, 'POST', keyUrl(), tenant.token, { public_key_pem: publicPkcs1 })
    expect(response.statusCode, response.body).toBe(201)
    expect(json(response)).toMatchObject({ algorithm: 'RSA', bits: 2048, not_after: null })
    expect(json(response).public_key_pem).toContain('BEGIN PUBLIC KEY')
  })

  it('rotates keys with an overlap: the old key verifies until the overlap ends', async () => {
    const merchant = await signUp(bp().app, 'merchant')
    const first = await createAppWithKey(bp().app, merchant, rsaKeyPair(0))
    const next = ed25519KeyPair()
    const rotate = await session(
      bp().app,
      'POST',
      `/v1/organizations/${merchant.organizationId}/apps/${first.appId}/keys`,
      merchant.token,
      { public_key_pem: next.publicKeyPem, overlap_seconds: 3600 },
    )
    expect(rotate.statusCode, rotate.body).toBe(201)
    const withOld = () => signed(bp().app, first, { method: 'GET', url: '/v1/stores' }, clock.now())
    const withNew = () =>
      signed(bp().app, { ...first, keyPair: next }, { method: 'GET', url: '/v1/stores' }, clock.now())
    expect((await withOld()).statusCode).toBe(200)
    expect((await withNew()).statusCode).toBe(200)
    clock.advance(3601 * 1000)
    expect(json(await withOld()).code).toBe('AUTH_SIGNATURE_INVALID')
    expect((await withNew()).statusCode).toBe(200)
    const again = await session(
      bp().app,
      'POST',
      `/v1/organizations/${merchant.organizationId}/apps/${first.appId}/keys`,
      merchant.token,
      { public_key_pem: next.publicKeyPem },
    )
    expect(json(again).code).toBe('APP_KEY_ALREADY_REGISTERED')
  })

  it('revokes a key at once', async () => {
    const merchant = await signUp(bp().app, 'merchant')
    const testApp = await createAppWithKey(bp().app, merchant, ed25519KeyPair())
    const keys = json(
      await session(
        bp().app,
        'GET',
        `/v1/organizations/${merchant.organizationId}/apps/${testApp.appId}/keys`,
        merchant.token,
      ),
    ).data
    const revoked = await session(
      bp().app,
      'POST',
      `/v1/organizations/${merchant.organizationId}/apps/${testApp.appId}/keys/${keys[0].id}/revoke`,
      merchant.token,
    )
    expect(revoked.statusCode, revoked.body).toBe(200)
    const call = await signed(bp().app, testApp, { method: 'GET', url: '/v1/stores' }, clock.now())
    expect(json(call).code).toBe('AUTH_APP_NO_ACTIVE_KEY')
  })

  it('serves the platform key of each environment, and refuses an unknown one', async () => {
    const sandbox = json(await bp().app.inject({ method: 'GET', url: '/v1/platform-keys/sandbox' }))
    const live = json(await bp().app.inject({ method: 'GET', url: '/v1/platform-keys/live' }))
    expect(sandbox.public_key_pem).not.toBe(live.public_key_pem)
    expect(crypto.createPublicKey(sandbox.public_key_pem).asymmetricKeyType).toBe('ed25519')
    const unknown = await bp().app.inject({ method: 'GET', url: '/v1/platform-keys/staging' })
    expect(json(unknown).code).toBe('PLATFORM_ENVIRONMENT_UNKNOWN')
  })

  it('lets only developers and above create apps; a viewer reads', async () => {
    const viewer = await signUp(bp().app, 'isv')
    const added = await session(bp().app, 'POST', `/v1/organizations/${tenant.organizationId}/members`, tenant.token, {
      email: viewer.email,
      role: 'viewer',
    })
    expect(added.statusCode, added.body).toBe(201)
    const create = await session(bp().app, 'POST', `/v1/organizations/${tenant.organizationId}/apps`, viewer.token, {
      name: 'nope',
      environment: 'live',
    })
    expect(create.statusCode).toBe(403)
    expect(json(create).code).toBe('AUTH_FORBIDDEN')
    const list = await session(bp().app, 'GET', `/v1/organizations/${tenant.organizationId}/apps`, viewer.token)
    expect(json(list).data.map((app: { id: string }) => app.id)).toContain(appId)
  })

  it('ends every session when the password changes', async () => {
    const user = await signUp(bp().app, 'isv')
    const changed = await session(bp().app, 'POST', '/v1/me/password', user.token, {
      current_password: testPassword,
      new_password: 'another long passphrase',
    })
    expect(changed.statusCode, changed.body).toBe(200)
    expect(json(await session(bp().app, 'GET', '/v1/me', user.token)).code).toBe('AUTH_SESSION_REQUIRED')
  })

  it('records security-relevant actions in the audit log', async () => {
    const actions = (await bp().storage.db.selectFrom('audit_log').select('action').execute()).map((row) => row.action)
    for (const action of [
      'user.created',
      'organization.created',
      'session.login',
      'session.login_failed',
      'app.created',
      'app.key_registered',
      'app.key_revoked',
      'membership.added',
      'user.password_changed',
    ]) {
      expect(actions).toContain(action)
    }
  })
})
