import type { Kysely } from 'kysely'
import fs from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import { BaseplateError, createClient, type BaseplateClient } from '../sdk/src/index.js'
import { sdkSources } from '../scripts/sdk-sources.js'
import { createAppWithKey, ed25519KeyPair, json, rsaKeyPair, signUp, type TestApp } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'

forEachDialect('SDK against the running app', (dialect) => {
  const bp = useTestPlatform(dialect)
  let endpoint: string
  let testApp: TestApp
  let platformPublicKey: string

  beforeAll(async () => {
    endpoint = await bp().app.listen({ port: 0, host: '127.0.0.1' })
    testApp = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant'), rsaKeyPair())
    platformPublicKey = json(await bp().app.inject({ method: 'GET', url: '/v1/platform-keys/sandbox' })).public_key_pem
  })

  const client = (options: { fetch?: typeof fetch; privateKey?: string } = {}): BaseplateClient =>
    createClient({
      endpoint,
      appId: testApp.appId,
      privateKey: options.privateKey ?? testApp.keyPair.privateKeyPem,
      platformPublicKey,
      retryDelayMsMin: 1,
      retryDelayMsMax: 5,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    })

  it('creates, reads and lists with typed calls', async () => {
    const store = await client().post('/v1/stores', {
      body: { out_store_no: 'SDK-1', name: '中关村店', address: '北京市海淀区' },
      idempotencyKey: 'sdk-1',
    })
    expect(store.status).toBe('open')
    const read = await client().get('/v1/stores/{store_id}', { params: { store_id: store.id } })
    expect(read.name).toBe('中关村店')
    const page = await client().get('/v1/stores', { query: { limit: 10, status: 'open' } })
    expect(page.data.map((item) => item.id)).toContain(store.id)
  })

  it('resends the same idempotency key when a response is lost, so the write happens once', async () => {
    const seen: string[] = []
    let dropped = false
    const lossy: typeof fetch = async (input, init) => {
      seen.push(String(new Headers(init?.headers).get('idempotency-key')))
      const response = await fetch(input, init)
      if (!dropped) {
        dropped = true
        await response.text()
        throw new TypeError('socket hang up (simulated after the server committed)')
      }
      return response
    }
    const store = await client({ fetch: lossy }).post('/v1/stores', {
      body: { out_store_no: 'SDK-LOST', name: 'Lost response', address: 'x' },
    })
    expect(seen).toHaveLength(2)
    // Made by the SDK: a UUIDv7, so keys made later sort later in the platform's index.
    expect(seen[0]).toMatch(/^sdk-retry-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(seen[1]).toBe(seen[0])
    const rows = await (bp().storage.db as Kysely<any>)
      .selectFrom('stores')
      .select('id')
      .where('out_store_no', '=', 'SDK-LOST')
      .execute()
    expect(rows).toEqual([{ id: store.id }])
  })

  it('waits as long as Retry-After asks before retrying a 503, and gives up if that is too long', async () => {
    const attempts: number[] = []
    const shedOnce: typeof fetch = async (input, init) => {
      attempts.push(performance.now())
      if (attempts.length > 1) return fetch(input, init)
      const body = JSON.stringify({ code: 'SERVICE_UNAVAILABLE', message: 'Try again shortly', requestId: 'req_x' })
      return new Response(body, { status: 503, headers: { 'retry-after': '1', 'content-type': 'application/json' } })
    }
    const impatient = await client({ fetch: shedOnce })
      .post('/v1/stores', { body: { out_store_no: 'SDK-SHED-1', name: 'Shed', address: 'x' } })
      .catch((caught: unknown) => caught)
    expect(error503(impatient)).toMatchObject({ code: 'SERVICE_UNAVAILABLE', retryAfterMs: 1000 })
    expect(attempts).toHaveLength(1)

    attempts.length = 0
    const patient = createClient({
      endpoint,
      appId: testApp.appId,
      privateKey: testApp.keyPair.privateKeyPem,
      platformPublicKey,
      retryDelayMsMin: 1,
      retryDelayMsMax: 2_000,
      fetch: shedOnce,
    })
    const store = await patient.post('/v1/stores', { body: { out_store_no: 'SDK-SHED-2', name: 'Shed', address: 'x' } })
    expect(store.status).toBe('open')
    expect(attempts).toHaveLength(2)
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(990)
  })

  it('raises typed errors with the request id', async () => {
    const error = await client()
      .get('/v1/stores/{store_id}', { params: { store_id: 'store_00000000000000000000' } })
      .catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(BaseplateError)
    expect(error).toMatchObject({ code: 'STORES_NOT_FOUND', status: 404, requestId: expect.stringMatching(/^req_/) })
  })

  it('shows the signed string when the key is wrong', async () => {
    const error = (await client({ privateKey: ed25519KeyPair().privateKeyPem })
      .get('/v1/stores')
      .catch((caught: unknown) => caught)) as BaseplateError
    expect(error.code).toBe('AUTH_SIGNATURE_INVALID')
    expect(error.signedString).toContain(`GET /v1/stores`)
  })

  it('reports an error the platform could not sign, marked unverified', async () => {
    const stranger = createClient({
      endpoint,
      appId: 'app_00000000000000000000',
      privateKey: testApp.keyPair.privateKeyPem,
      platformPublicKey,
    })
    const error = await stranger.get('/v1/stores').catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'AUTH_APP_NOT_FOUND', verified: false })
  })

  it('refuses a response altered on the way', async () => {
    const tampering: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      const body = (await response.text()).replace('"open"', '"closed"')
      return new Response(body, { status: response.status, headers: response.headers })
    }
    const error = await client({ fetch: tampering })
      .get('/v1/stores')
      .catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'SDK_RESPONSE_SIGNATURE_INVALID' })
  })
})

describe('generated SDK sources', () => {
  it('match the OpenAPI document and error table (run npm run sdk:generate after changing routes)', async () => {
    for (const [file, text] of Object.entries(await sdkSources())) {
      expect(fs.readFileSync(file, 'utf8'), `${file} is stale`).toBe(text)
    }
  })
})

function error503(value: unknown): BaseplateError {
  expect(value).toBeInstanceOf(BaseplateError)
  return value as BaseplateError
}
