/**
 * Fuzz from the OpenAPI document, over real HTTP against a real server process: for a seeded
 * random sequence of operations read from /openapi.json, a body built from the operation's
 * schema and then broken in exactly one way that is certainly invalid (wrong type, a required
 * property removed, one past a length or range bound, a value outside an enum, an undeclared
 * property, not an object at all), random path parameters, and values right on the bounds.
 * App routes are signed (the signature covers the broken bytes) and act for the sandbox
 * merchant; console routes carry a live session. Never a 5xx; never a 2xx for invalid input.
 *
 * test/bad-input.test.ts walks every property of every operation in-process and checks that
 * nothing changed; this suite adds volume, randomness and the network path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keepAliveAgent, send, signedCall, type PreparedRequest } from './support/http.js'
import { between, seeded } from './support/random.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { budgetMs, mode, settings } from './support/settings.js'
import {
  databaseEnv,
  oneAppDrivesTheLoad,
  freshDatabase,
  prepareWorld,
  withEd25519Key,
  type World,
  type WorldDatabase,
} from './support/world.js'

interface Schema {
  readonly type?: string | readonly string[]
  readonly properties?: Readonly<Record<string, Schema>>
  readonly required?: readonly string[]
  readonly additionalProperties?: boolean | Schema
  readonly anyOf?: readonly Schema[]
  readonly oneOf?: readonly Schema[]
  readonly enum?: readonly unknown[]
  readonly const?: unknown
  readonly items?: Schema
  readonly minLength?: number
  readonly maxLength?: number
  readonly minimum?: number
  readonly maximum?: number
  readonly minItems?: number
  readonly format?: string
  readonly pattern?: string
}

interface Operation {
  readonly method: string
  readonly path: string
  readonly operationId: string
  readonly auth: string
  readonly body: Schema | null
  readonly params: readonly string[]
  readonly idempotency: string
}

const { requests } = settings.fuzz
const seed = settings.seed + 7

/** A value the schema accepts, as far as this sampler can tell (formats and patterns aside). */
function sample(schema: Schema): unknown {
  if (schema.const !== undefined) return schema.const
  if (schema.enum !== undefined) return schema.enum[0]
  const variants = schema.anyOf ?? schema.oneOf
  if (variants !== undefined) return sample(variants.find((variant) => variant.type !== 'null') ?? variants[0]!)
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {}
      for (const name of schema.required ?? []) out[name] = sample(schema.properties?.[name] ?? {})
      return out
    }
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => sample(schema.items ?? {}))
    case 'integer':
    case 'number':
      return schema.minimum ?? 1
    case 'boolean':
      return true
    case 'string':
      if (schema.format === 'email') return 'fuzz@example.com'
      if (schema.format === 'date-time') return new Date().toISOString()
      return 'a'.repeat(Math.max(1, schema.minLength ?? 1))
    default:
      return null
  }
}

const single = (schema: Schema): string | null =>
  schema.anyOf === undefined && schema.oneOf === undefined && typeof schema.type === 'string' ? schema.type : null

/** Ways to make one property certainly invalid. */
function invalidValues(schema: Schema): unknown[] {
  const type = single(schema)
  const out: unknown[] = []
  if (schema.enum !== undefined) out.push('not-in-enum-🤷')
  if (type === 'string') {
    out.push(12, { a: 1 }, ['x'], true)
    if (schema.maxLength !== undefined) out.push('a'.repeat(schema.maxLength + 1))
    if ((schema.minLength ?? 0) > 0) out.push('a'.repeat(schema.minLength! - 1))
  }
  if (type === 'integer') {
    out.push('12', 1.5, true, [1])
    if (schema.minimum !== undefined) out.push(schema.minimum - 1)
    if (schema.maximum !== undefined) out.push(schema.maximum + 1)
  }
  if (type === 'boolean') out.push('true', 1)
  if (type === 'object') out.push('x', [1])
  if (type === 'array') out.push('x', { a: 1 })
  return out
}

/** Values right on the bounds: valid or not, they must never cause a 5xx. */
function boundaryValues(schema: Schema): unknown[] {
  const out: unknown[] = []
  if (schema.maxLength !== undefined) out.push('字'.repeat(schema.maxLength), 'a'.repeat(schema.maxLength))
  if (schema.minimum !== undefined) out.push(schema.minimum)
  if (schema.maximum !== undefined) out.push(schema.maximum)
  if (single(schema) === 'integer') out.push(Number.MAX_SAFE_INTEGER, 2 ** 63, -0)
  if (single(schema) === 'string') out.push('', '\u0000', '\ud800', ' '.repeat(10_000))
  return out
}

const alphabet = ['a', 'Z', '0', '_', '-', '.', '/', '%', '?', '#', ' ', '\u0000', '字', '😀', '..', "'", '"']

/** A path segment of 1 to 300 characters, hostile ones included. */
function randomText(random: () => number): string {
  const length = between(random, 1, 300)
  let text = ''
  while (text.length < length) text += alphabet[Math.floor(random() * alphabet.length)]
  return text
}

interface Case {
  readonly operation: Operation
  readonly body: unknown
  readonly invalid: boolean
  readonly what: string
  readonly pathValues: readonly string[] | null
}

function casesFor(operation: Operation): Array<(random: () => number) => Case> {
  const out: Array<(random: () => number) => Case> = []
  const body = operation.body
  if (body !== null) {
    const base = sample(body) as Record<string, unknown>
    out.push(() => ({ operation, body: [base], invalid: true, what: 'array body', pathValues: null }))
    out.push(() => ({ operation, body: 'just a string', invalid: true, what: 'string body', pathValues: null }))
    if (body.additionalProperties === false) {
      out.push(() => ({
        operation,
        body: { ...base, __fuzz: 1 },
        invalid: true,
        what: 'extra property',
        pathValues: null,
      }))
    }
    for (const name of body.required ?? []) {
      out.push(() => {
        const broken = { ...base }
        delete broken[name]
        return { operation, body: broken, invalid: true, what: `without ${name}`, pathValues: null }
      })
    }
    for (const [name, property] of Object.entries(body.properties ?? {})) {
      for (const value of invalidValues(property)) {
        out.push(() => ({
          operation,
          body: { ...base, [name]: value },
          invalid: true,
          what: `${name}=${JSON.stringify(value)?.slice(0, 40)}`,
          pathValues: null,
        }))
      }
      for (const value of boundaryValues(property)) {
        out.push(() => ({
          operation,
          body: { ...base, [name]: value },
          invalid: false,
          what: `${name} on a bound`,
          pathValues: null,
        }))
      }
    }
  }
  if (operation.params.length > 0) {
    out.push((random) => ({
      operation,
      body: body === null ? undefined : sample(body),
      invalid: false,
      what: 'random path parameters',
      pathValues: operation.params.map(() => randomText(random)),
    }))
  }
  return out
}

describe(`OpenAPI fuzz [sqlite] (${mode}, seed ${seed})`, () => {
  let database: WorldDatabase
  let world: World
  let server: ServerProcess
  let sessionToken: string

  beforeAll(async () => {
    const port = await freePort()
    database = await freshDatabase('sqlite')
    world = await withEd25519Key(
      database,
      await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` }),
    )
    server = await startServer({ env: { ...databaseEnv(database), ...oneAppDrivesTheLoad }, port })
    const agent = keepAliveAgent(1)
    const credentials = { email: `fuzz-${Date.now()}@example.com`, password: 'correct horse battery staple' }
    const json = { 'content-type': 'application/json' }
    const signup = await send(agent, server.url, {
      method: 'POST',
      path: '/v1/signup',
      headers: json,
      body: JSON.stringify({ ...credentials, organization: { name: 'Fuzz ISV', kind: 'isv' } }),
    })
    expect(signup.status, signup.body).toBe(201)
    const login = await send(agent, server.url, {
      method: 'POST',
      path: '/v1/sessions',
      headers: json,
      body: JSON.stringify(credentials),
    })
    sessionToken = JSON.parse(login.body).token
    agent.destroy()
  })
  afterAll(async () => {
    await server?.stop()
    await database?.dispose()
  })

  it(
    `${requests} generated requests: 0 5xx, 0 2xx for invalid input`,
    async () => {
      const agent = keepAliveAgent(16)
      const document = JSON.parse(
        (await send(agent, server.url, { method: 'GET', path: '/openapi.json', headers: {}, body: '' })).body,
      )
      const operations: Operation[] = []
      for (const [path, methods] of Object.entries<Record<string, any>>(document.paths)) {
        for (const [method, spec] of Object.entries<any>(methods)) {
          const body = spec.requestBody?.content?.['application/json']?.schema ?? null
          operations.push({
            method: method.toUpperCase(),
            path,
            operationId: spec.operationId,
            auth: spec['x-baseplate-auth'] ?? 'public',
            body,
            params: [...path.matchAll(/\{([a-z_]+)\}/g)].map((match) => match[1]!),
            idempotency: spec['x-baseplate-idempotency'] ?? 'none',
          })
        }
      }
      const generators = operations.flatMap(casesFor)
      expect(generators.length).toBeGreaterThan(100)
      const random = seeded(seed)
      const serverErrors: string[] = []
      const acceptedInvalid: string[] = []
      const statuses: Record<string, number> = {}
      let index = 0
      const build = (testCase: Case): PreparedRequest => {
        const { operation } = testCase
        let valueIndex = 0
        const path = operation.path.replace(/\{([a-z_]+)\}/g, () =>
          encodeURIComponent(testCase.pathValues?.[valueIndex++] ?? 'x'),
        )
        const body = testCase.body === undefined || operation.method === 'GET' ? '' : JSON.stringify(testCase.body)
        const idempotencyKey = operation.idempotency === 'none' ? undefined : `FUZZ-${(index += 1)}`
        if (operation.auth === 'app') {
          return signedCall(world, {
            method: operation.method,
            path,
            body,
            ...(idempotencyKey ? { idempotencyKey } : {}),
          })
        }
        const headers: Record<string, string> = body === '' ? {} : { 'content-type': 'application/json' }
        if (operation.auth === 'session') headers.authorization = `Bearer ${sessionToken}`
        if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
        return { method: operation.method, path, headers, body }
      }
      const queue = Array.from({ length: requests }, (_, n) => n)
      const worker = async () => {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
          const testCase = generators[Math.floor(random() * generators.length)]!(random)
          // Signing up and logging in are public and rate-free; the suite leaves them to bad-input.
          if (testCase.operation.operationId === 'logIn' && !testCase.invalid) continue
          const response = await send(agent, server.url, build(testCase))
          const answer = `${response.status} ${response.body.slice(0, 160)}`
          const label = `${testCase.operation.operationId} ${testCase.what}: ${answer}`
          statuses[String(response.status)] = (statuses[String(response.status)] ?? 0) + 1
          if (response.status >= 500) serverErrors.push(label)
          if (testCase.invalid && response.status < 300) acceptedInvalid.push(label)
        }
      }
      await Promise.all(Array.from({ length: 8 }, worker))
      agent.destroy()
      console.info(
        `fuzz: ${JSON.stringify({ requests, operations: operations.length, cases: generators.length, statuses })}`,
      )
      expect(serverErrors, `seed ${seed}`).toEqual([])
      expect(acceptedInvalid, `seed ${seed}`).toEqual([])
    },
    budgetMs(120_000, 600_000),
  )
})
