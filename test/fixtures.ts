/**
 * Builders for tests: users and organisations through the real signup route, apps and keys
 * through the real console routes, and signed native calls through `inject`.
 */
import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { expect } from 'vitest'
import { signRequest } from '../sdk/src/index.js'

export type Injected = Awaited<ReturnType<FastifyInstance['inject']>>

export interface KeyPair {
  readonly privateKey: crypto.KeyObject
  readonly publicKeyPem: string
  readonly privateKeyPem: string
}

const rsaPairs: KeyPair[] = []

function toPair(pair: crypto.KeyPairKeyObjectResult): KeyPair {
  return {
    privateKey: pair.privateKey,
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  }
}

/** RSA-2048 pairs are slow to make, so tests share a few per process. */
export function rsaKeyPair(index = 0): KeyPair {
  while (rsaPairs.length <= index) rsaPairs.push(toPair(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })))
  return rsaPairs[index]!
}

export function ed25519KeyPair(): KeyPair {
  return toPair(crypto.generateKeyPairSync('ed25519'))
}

let counter = 0
export function uniqueEmail(prefix = 'user'): string {
  counter += 1
  return `${prefix}-${counter}-${crypto.randomBytes(4).toString('hex')}@example.com`
}

export const testPassword = 'correct horse battery staple'

const httpMethods = ['get', 'post', 'put', 'patch', 'delete'] as const

/**
 * Every operation of an OpenAPI document with its method and path template: the one walk the
 * suites that enumerate routes share, so none can skip a method the others see.
 */
export function eachOperation<O>(document: {
  paths: Record<string, Partial<Record<string, O>>>
}): Array<{ method: string; template: string; operation: O }> {
  return Object.entries(document.paths).flatMap(([template, item]) =>
    httpMethods.flatMap((method) => {
      const operation = item[method]
      return operation === undefined ? [] : [{ method: method.toUpperCase(), template, operation }]
    }),
  )
}

export function json<T = any>(response: Injected): T {
  return JSON.parse(response.body) as T
}

export async function session(
  app: FastifyInstance,
  method: string,
  url: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Injected> {
  return app.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${token}`, ...headers },
    ...(body === undefined ? {} : { payload: body as object }),
  })
}

export interface Tenant {
  readonly email: string
  readonly userId: string
  readonly organizationId: string
  readonly token: string
}

export async function signUp(
  app: FastifyInstance,
  kind: 'isv' | 'merchant' = 'isv',
  industry?: string,
): Promise<Tenant> {
  const email = uniqueEmail(kind)
  const created = await app.inject({
    method: 'POST',
    url: '/v1/signup',
    payload: {
      email,
      password: testPassword,
      organization: { name: `${kind} ${email}`, kind, ...(industry ? { industry } : {}) },
    },
  })
  expect(created.statusCode, created.body).toBe(201)
  const login = await app.inject({ method: 'POST', url: '/v1/sessions', payload: { email, password: testPassword } })
  expect(login.statusCode, login.body).toBe(201)
  const body = json(created)
  return { email, userId: body.user.id, organizationId: body.organization.id, token: json(login).token }
}

export interface TestApp {
  readonly appId: string
  readonly keyPair: KeyPair
  readonly tenant: Tenant
}

export async function createAppWithKey(
  app: FastifyInstance,
  tenant: Tenant,
  keyPair: KeyPair = rsaKeyPair(),
  environment: 'sandbox' | 'live' = 'sandbox',
): Promise<TestApp> {
  const created = await session(app, 'POST', `/v1/organizations/${tenant.organizationId}/apps`, tenant.token, {
    name: 'test app',
    environment,
  })
  expect(created.statusCode, created.body).toBe(201)
  const appId = json(created).id as string
  const key = await session(
    app,
    'POST',
    `/v1/organizations/${tenant.organizationId}/apps/${appId}/keys`,
    tenant.token,
    { public_key_pem: keyPair.publicKeyPem },
  )
  expect(key.statusCode, key.body).toBe(201)
  return { appId, keyPair, tenant }
}

export interface SignedCall {
  readonly method: string
  readonly url: string
  readonly body?: unknown
  readonly idempotencyKey?: string
  readonly appAuthToken?: string
  readonly timestampS?: number
  readonly nonce?: string
  /** Changes the request after signing, to test tampering. */
  readonly tamper?: (request: { url: string; body: string; headers: Record<string, string> }) => void
}

/** A native API call signed with the app's key, sent through `inject`. */
export async function signed(
  app: FastifyInstance,
  testApp: TestApp,
  call: SignedCall,
  clockMs = Date.now(),
): Promise<Injected> {
  const body = call.body === undefined ? '' : JSON.stringify(call.body)
  const headers = signRequest({
    appId: testApp.appId,
    privateKey: testApp.keyPair.privateKey,
    method: call.method,
    pathWithQuery: call.url,
    body,
    appAuthToken: call.appAuthToken,
    idempotencyKey: call.idempotencyKey,
    timestampS: call.timestampS ?? Math.floor(clockMs / 1000),
    ...(call.nonce ? { nonce: call.nonce } : {}),
  })
  const request = { url: call.url, body, headers }
  call.tamper?.(request)
  return app.inject({
    method: call.method as 'GET',
    url: request.url,
    headers: request.headers,
    ...(request.body === '' ? {} : { payload: request.body }),
  })
}

/** Polls until `probe` returns a value, for work done by a background worker. */
export async function eventually<T>(probe: () => Promise<T | null>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== null) return value
    if (Date.now() > deadline) throw new Error(`not settled within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
