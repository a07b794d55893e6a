import crypto from 'node:crypto'
import { beforeAll, expect, it } from 'vitest'
import { sha256Hex } from '../src/platform/ids.js'
import { responseSigningString, verifyText } from '../sdk/src/protocol.js'
import { createAppWithKey, ed25519KeyPair, json, rsaKeyPair, signed, signUp, type TestApp } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'

const storeBody = { out_store_no: 'S-1', name: '五道口店', address: '北京市海淀区成府路 1 号' }

forEachDialect('signed requests', (dialect) => {
  const bp = useTestPlatform(dialect)
  let rsaApp: TestApp
  let edApp: TestApp

  beforeAll(async () => {
    const tenant = await signUp(bp().app, 'merchant')
    rsaApp = await createAppWithKey(bp().app, tenant, rsaKeyPair())
    edApp = await createAppWithKey(bp().app, tenant, ed25519KeyPair())
  })

  it('accepts RSA and Ed25519 signatures and signs the response', async () => {
    for (const testApp of [rsaApp, edApp]) {
      const nonce = crypto.randomBytes(16).toString('hex')
      const response = await signed(bp().app, testApp, { method: 'GET', url: '/v1/stores?limit=5', nonce })
      expect(response.statusCode, response.body).toBe(200)
      const key = json(await bp().app.inject({ method: 'GET', url: '/v1/platform-keys/sandbox' }))
      const text = responseSigningString({
        appId: testApp.appId,
        timestamp: String(response.headers['baseplate-timestamp']),
        nonce,
        status: 200,
        body: response.body,
      })
      expect(response.headers['baseplate-nonce']).toBe(nonce)
      expect(
        verifyText(text, String(response.headers['baseplate-signature']), crypto.createPublicKey(key.public_key_pem)),
      ).toBe(true)
      // The same bytes with another status do not verify: the status is covered.
      expect(
        verifyText(
          text.replace('\n200\n', '\n201\n'),
          String(response.headers['baseplate-signature']),
          crypto.createPublicKey(key.public_key_pem),
        ),
      ).toBe(false)
    }
  })

  const tamperings: Array<[string, Parameters<typeof signed>[2]['tamper']]> = [
    [
      'body',
      (r) => {
        r.body = r.body.replace('S-1', 'S-2')
      },
    ],
    [
      'path',
      (r) => {
        r.url = '/v1/stores/store_00000000000000000000/close'
      },
    ],
    [
      'query',
      (r) => {
        r.url = `${r.url}?limit=3`
      },
    ],
    [
      'idempotency header',
      (r) => {
        r.headers['idempotency-key'] = 'another-key'
      },
    ],
    [
      'app auth token header',
      (r) => {
        r.headers['baseplate-app-auth-token'] = 'token-added-later'
      },
    ],
    [
      'timestamp header',
      (r) => {
        r.headers['baseplate-timestamp'] = String(Number(r.headers['baseplate-timestamp']) - 1)
      },
    ],
    [
      'nonce header',
      (r) => {
        r.headers['baseplate-nonce'] = crypto.randomBytes(16).toString('hex')
      },
    ],
    [
      'signature',
      (r) => {
        r.headers['baseplate-signature'] = Buffer.alloc(256, 7).toString('base64')
      },
    ],
  ]
  for (const [what, tamper] of tamperings) {
    it(`refuses a tampered ${what}, answering with the string it verified`, async () => {
      const response = await signed(bp().app, rsaApp, {
        method: 'POST',
        url: '/v1/stores',
        body: storeBody,
        idempotencyKey: `tamper-${what}`,
        tamper,
      })
      expect(response.statusCode, response.body).toBe(401)
      const body = json(response)
      expect(body.code).toBe('AUTH_SIGNATURE_INVALID')
      expect(body.signedString).toMatch(/^BASEPLATE-REQUEST-V1\napp_/)
      expect(body.requestId).toMatch(/^req_/)
    })
  }

  it('shows a signed app auth token in signedString as its fingerprint, never the token itself', async () => {
    const token = `bpat_${'t'.repeat(43)}`
    const response = await signed(bp().app, rsaApp, {
      method: 'GET',
      url: '/v1/stores',
      appAuthToken: token,
      tamper: (r) => {
        r.headers['baseplate-signature'] = Buffer.alloc(256, 7).toString('base64')
      },
    })
    expect(json(response).code).toBe('AUTH_SIGNATURE_INVALID')
    expect(response.body).not.toContain(token)
    const lines = (json(response).signedString as string).split('\n')
    expect(lines[5]).toBe(`<secret sha256:${sha256Hex(token).slice(0, 16)}>`)
    expect(lines[4]).toBe('GET /v1/stores')
  })

  it('shows a refresh token or code in a signed body as its fingerprint too', async () => {
    const refreshToken = `bprt_${'r'.repeat(43)}`
    const response = await signed(bp().app, rsaApp, {
      method: 'POST',
      url: '/v1/oauth/token',
      body: { grant_type: 'refresh_token', refresh_token: refreshToken },
      tamper: (r) => {
        r.headers['baseplate-signature'] = Buffer.alloc(256, 7).toString('base64')
      },
    })
    expect(json(response).code).toBe('AUTH_SIGNATURE_INVALID')
    expect(response.body).not.toContain(refreshToken)
    expect(json(response).signedString).toContain(
      `"refresh_token":"<secret sha256:${sha256Hex(refreshToken).slice(0, 16)}>"`,
    )
  })

  it('refuses a signature made with a key of the wrong type', async () => {
    // The app registered an RSA key; an Ed25519 signature over the same string must fail.
    const impostor: TestApp = { ...rsaApp, keyPair: ed25519KeyPair() }
    const response = await signed(bp().app, impostor, { method: 'GET', url: '/v1/stores' })
    expect(json(response).code).toBe('AUTH_SIGNATURE_INVALID')
  })

  it('refuses a stale or future timestamp', async () => {
    // Each timestamp is taken just before its request, a few seconds past the 300 s window, so
    // that the time the previous request took (seconds, on a loaded machine) cannot bring it back in.
    for (const offsetS of [-305, 305]) {
      const timestampS = Math.round(Date.now() / 1000) + offsetS
      const response = await signed(bp().app, rsaApp, { method: 'GET', url: '/v1/stores', timestampS })
      expect(response.statusCode).toBe(401)
      expect(json(response).code).toBe('AUTH_TIMESTAMP_OUT_OF_WINDOW')
    }
    const edge = await signed(bp().app, rsaApp, {
      method: 'GET',
      url: '/v1/stores',
      timestampS: Math.round(Date.now() / 1000) - 290,
    })
    expect(edge.statusCode, edge.body).toBe(200)
  })

  it('refuses a replayed nonce, even when the first call failed', async () => {
    const nonce = crypto.randomBytes(16).toString('hex')
    const first = await signed(bp().app, rsaApp, { method: 'GET', url: '/v1/stores/store_00000000000000000000', nonce })
    expect(json(first).code).toBe('STORES_NOT_FOUND')
    const replay = await signed(bp().app, rsaApp, {
      method: 'GET',
      url: '/v1/stores/store_00000000000000000000',
      nonce,
    })
    expect(replay.statusCode).toBe(401)
    expect(json(replay).code).toBe('AUTH_NONCE_REPLAYED')
  })

  it('names the missing header', async () => {
    const response = await bp().app.inject({ method: 'GET', url: '/v1/stores' })
    expect(response.statusCode).toBe(401)
    expect(json(response)).toMatchObject({ code: 'AUTH_SIGNATURE_MISSING', field: 'headers.baseplate-app-id' })
  })

  it('refuses an app auth token no authorisation module recognises', async () => {
    const response = await signed(bp().app, rsaApp, { method: 'GET', url: '/v1/stores', appAuthToken: 'nope' })
    expect(json(response).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
  })
})
