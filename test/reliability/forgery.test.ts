/**
 * Forgery and replay against a real server process: thousands of signed pay requests, each
 * changed after signing in one of many ways (body bytes, JSON spacing and key order, unicode
 * escapes, amounts, path and query, method, every signed header, the signature itself, a key
 * of another app, canonicalisation tricks), plus timestamps outside the window and exact
 * replays. None may be accepted; none may leave a trade behind. A valid signature respelled
 * (base64url, no padding, whitespace, stray bits) is refused too: a signature has one spelling.
 * Signatures are checked before nonces are recorded, so after the storm every original request
 * still goes through once — and a replay of it is refused. test/signing.test.ts covers each rule once; this is volume.
 */
import crypto from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { headerNames, signText } from '../../sdk/src/index.js'
import { keepAliveAgent, payBody, send, signedCall, type PreparedRequest } from './support/http.js'
import { between, seeded } from './support/random.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { budgetMs, mode, settings } from './support/settings.js'
import {
  databaseEnv,
  oneAppDrivesTheLoad,
  freshDatabase,
  openDatabase,
  prepareWorld,
  withEd25519Key,
  type World,
  type WorldDatabase,
} from './support/world.js'

const { mutations } = settings.forgery
const seed = settings.seed + 6
type Mutation = (request: PreparedRequest, random: () => number) => PreparedRequest | null

const withHeader = (request: PreparedRequest, name: string, value: string | null): PreparedRequest => {
  const headers = { ...request.headers }
  if (value === null) delete headers[name]
  else headers[name] = value
  return { ...request, headers }
}
const flipByte = (text: string, random: () => number): string => {
  if (text.length === 0) return 'x'
  const index = Math.floor(random() * text.length)
  const code = text.charCodeAt(index)
  const replacement = String.fromCharCode(code === 0x7e ? 0x21 : code < 0x21 ? 0x41 : code + 1)
  return text.slice(0, index) + replacement + text.slice(index + 1)
}
const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const otherEd25519 = crypto.generateKeyPairSync('ed25519').privateKey

/** Every way the suite changes a signed request; each must make the server refuse it. */
const mutationsByName: Record<string, Mutation> = {
  bodyByte: (r, random) => ({ ...r, body: flipByte(r.body, random) }),
  bodySpacing: (r) => ({ ...r, body: JSON.stringify(JSON.parse(r.body), null, 1) }),
  bodyKeyOrder: (r) => {
    const parsed = JSON.parse(r.body) as Record<string, unknown>
    return { ...r, body: JSON.stringify(Object.fromEntries(Object.entries(parsed).reverse())) }
  },
  bodyUnicodeEscape: (r) => ({ ...r, body: r.body.replace('"out_trade_no"', '"out_trade_\\u006eo"') }),
  bodyAmount: (r, random) => {
    const parsed = JSON.parse(r.body) as { total_amount: number }
    return { ...r, body: JSON.stringify({ ...parsed, total_amount: parsed.total_amount + between(random, 1, 9) }) }
  },
  bodyTrailingNewline: (r) => ({ ...r, body: `${r.body}\n` }),
  bodyBom: (r) => ({ ...r, body: `\ufeff${r.body}` }),
  bodyExtraField: (r) => ({ ...r, body: r.body.replace(/}$/, ',"store_id":"S1"}') }),
  pathQuery: (r) => ({ ...r, path: `${r.path}?x=1` }),
  pathSlash: (r) => ({ ...r, path: `${r.path}/` }),
  pathCase: (r) => ({ ...r, path: r.path.toUpperCase() }),
  pathEncoded: (r) => ({ ...r, path: r.path.replace('pay', 'p%61y') }),
  pathOther: (r) => ({ ...r, path: '/v1/trades/precreate' }),
  method: (r) => ({ ...r, method: 'PUT' }),
  timestamp: (r) => withHeader(r, headerNames.timestamp, String(Number(r.headers[headerNames.timestamp]) - 1)),
  nonce: (r, random) => withHeader(r, headerNames.nonce, flipByte(r.headers[headerNames.nonce]!, random)),
  appId: () => withHeader(r0(), headerNames.appId, `app_${'0'.repeat(20)}`),
  idempotencyChanged: (r) => withHeader(r, headerNames.idempotencyKey, `${r.headers[headerNames.idempotencyKey]}x`),
  idempotencyRemoved: (r) => withHeader(r, headerNames.idempotencyKey, null),
  tokenRemoved: (r) => withHeader(r, headerNames.appAuthToken, null),
  tokenChanged: (r, random) =>
    withHeader(r, headerNames.appAuthToken, flipByte(r.headers[headerNames.appAuthToken]!, random)),
  signatureBit: (r, random) => {
    const bytes = Buffer.from(r.headers[headerNames.signature]!, 'base64')
    bytes[Math.floor(random() * bytes.length)]! ^= 1 << Math.floor(random() * 8)
    return withHeader(r, headerNames.signature, bytes.toString('base64'))
  },
  signatureBase64Url: (r) =>
    withHeader(
      r,
      headerNames.signature,
      Buffer.from(r.headers[headerNames.signature]!, 'base64').toString('base64url'),
    ),
  signatureWhitespace: (r) =>
    withHeader(r, headerNames.signature, r.headers[headerNames.signature]!.replace(/^(.{8})/, '$1\t')),
  signatureUnpadded: (r) => withHeader(r, headerNames.signature, r.headers[headerNames.signature]!.replace(/=+$/, '')),
  signatureTruncated: (r) => withHeader(r, headerNames.signature, r.headers[headerNames.signature]!.slice(0, 40)),
  signatureEmpty: (r) => withHeader(r, headerNames.signature, ''),
  signatureGarbage: (r, random) =>
    withHeader(r, headerNames.signature, crypto.randomBytes(between(random, 1, 300)).toString('base64')),
  signedByOtherRsaKey: (r) => withHeader(r, headerNames.signature, signText('anything', otherKey)),
  signedByOtherEd25519Key: (r) => withHeader(r, headerNames.signature, signText('anything', otherEd25519)),
  contentType: (r) => withHeader(r, 'content-type', 'text/plain'),
  headerCaseDuplicate: (r) => ({ ...r, headers: { ...r.headers, 'Baseplate-Nonce': 'AAAAAAAAAAAAAAAAAAAAAA' } }),
}
// Replaced per call below: the request the current mutation works on.
let current: PreparedRequest | null = null
const r0 = () => current!

describe(`forgery and replay [sqlite] (${mode}, seed ${seed})`, () => {
  let database: WorldDatabase
  let world: World
  let server: ServerProcess

  beforeAll(async () => {
    const port = await freePort()
    database = await freshDatabase('sqlite')
    world = await withEd25519Key(
      database,
      await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` }),
    )
    server = await startServer({ env: { ...databaseEnv(database), ...oneAppDrivesTheLoad }, port })
  })
  afterAll(async () => {
    await server?.stop()
    await database?.dispose()
  })

  it(
    `${mutations} mutated signed requests, stale timestamps and replays: 0 accepted`,
    async () => {
      const random = seeded(seed)
      const agent = keepAliveAgent(32)
      const originals = Array.from({ length: 200 }, (_, index) =>
        signedCall(world, {
          method: 'POST',
          path: '/v1/trades/pay',
          body: payBody(world, `FORGE-${index}`, 100 + index),
          idempotencyKey: `FORGE-${index}`,
        }),
      )
      const names = Object.keys(mutationsByName)
      const accepted: string[] = []
      const serverErrors: string[] = []
      const byMutation: Record<string, number> = {}
      let sent = 0
      const queue = Array.from({ length: mutations }, (_, index) => index)
      const worker = async () => {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
          const name = names[next % names.length]!
          current = originals[Math.floor(random() * originals.length)]!
          const mutated = mutationsByName[name]!(current, random)
          if (mutated === null) continue
          let response
          try {
            response = await send(agent, server.url, mutated)
          } catch (error) {
            // Node's client refuses some header values outright; nothing reached the server.
            if (/Invalid character|ERR_INVALID/.test(String(error))) continue
            throw error
          }
          sent += 1
          byMutation[name] = (byMutation[name] ?? 0) + 1
          if (response.status < 400) accepted.push(`${name}: ${response.status} ${response.body.slice(0, 200)}`)
          if (response.status >= 500) serverErrors.push(`${name}: ${response.status} ${response.body.slice(0, 200)}`)
        }
      }
      await Promise.all(Array.from({ length: 16 }, worker))

      // Outside the window, either way, by 1 s to an hour: refused, every one.
      const window = 300
      let staleRefused = 0
      const staleCount = 200
      for (let index = 0; index < staleCount; index += 1) {
        const skewS = (window + between(random, 1, 3600)) * (index % 2 === 0 ? -1 : 1)
        const stale = signedCall(world, {
          method: 'POST',
          path: '/v1/trades/pay',
          body: payBody(world, `STALE-${index}`, 1),
          idempotencyKey: `STALE-${index}`,
          nowMs: Date.now() + skewS * 1000,
        })
        const response = await send(agent, server.url, stale)
        if (JSON.parse(response.body).code === 'AUTH_TIMESTAMP_OUT_OF_WINDOW') staleRefused += 1
      }

      // The originals were never burnt by their forgeries: each goes through once, then replays fail.
      let originalsOk = 0
      let replaysRefused = 0
      for (const original of originals) {
        if ((await send(agent, server.url, original)).status === 200) originalsOk += 1
        const replay = await send(agent, server.url, original)
        if (JSON.parse(replay.body).code === 'AUTH_NONCE_REPLAYED') replaysRefused += 1
      }
      agent.destroy()

      const storage = await openDatabase(database)
      const trades = await storage.db
        .selectFrom('payment_trades' as never)
        .select(['out_trade_no' as never])
        .execute()
        .finally(() => storage.close())
      const orders = (trades as Array<{ out_trade_no: string }>).map((trade) => trade.out_trade_no)
      console.info(
        `forgery: ${JSON.stringify({ sent, accepted: accepted.length, staleRefused, originalsOk, replaysRefused })} ` +
          JSON.stringify(byMutation),
      )
      expect(accepted, `seed ${seed}`).toEqual([])
      expect(serverErrors).toEqual([])
      expect(sent).toBeGreaterThanOrEqual(mutations * 0.9)
      expect(staleRefused).toBe(staleCount)
      expect(originalsOk).toBe(originals.length)
      expect(replaysRefused).toBe(originals.length)
      expect(orders.filter((order) => order.startsWith('STALE-'))).toEqual([])
      expect(orders.filter((order) => order.startsWith('FORGE-')).length).toBe(originals.length)
    },
    budgetMs(120_000, 600_000),
  )
})
