/**
 * Secrets at rest, in logs and in error bodies (reference item 12): a real server, logging
 * everything (`trace`), is driven through sign-up, logins right and wrong, console calls, signed
 * payments, and requests that fail on purpose with a secret in them. Then every canary is
 * looked for in the database's bytes (SQLite's files, or every row of the PostgreSQL schema as
 * text), in everything the server printed, and in every error body:
 *
 * - the console password, the session token and the app auth token (what the platform keeps of
 *   them is a hash); error bodies must not echo them back, not even a wrong one;
 * - the app's private key, which the platform never receives;
 * - the platform's own private keys, Ed25519 and RSA, for both environments, which the
 *   database holds only sealed (ADR 0018), and the secret key that seals them.
 *
 * A private key counts as found in any of the forms it could be written in: a line of its
 * PKCS#8 PEM, or a private component (JWK `d`, `p`, `q`) in base64url, base64 or hex.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { expect, it } from 'vitest'
import { parseConfig } from '../../src/config.js'
import { loadPlatformKeys } from '../../src/platform/signing/platform-keys.js'
import { resolveSealingKey } from '../../src/platform/signing/sealing.js'
import { forEachDialect } from '../harness.js'
import { keepAliveAgent, send, signedCall, signedPay, type HttpResult, type PreparedRequest } from './support/http.js'
import { freePort, startServer } from './support/server.js'
import { budgetMs, mode, postgresUrl } from './support/settings.js'
import { databaseEnv, freshDatabase, openDatabase, prepareWorld, type WorldDatabase } from './support/world.js'

interface Canary {
  readonly name: string
  readonly forms: readonly string[]
  /** Tokens legitimately come back in some successful answers; private keys never do. */
  readonly inEveryBody: boolean
}

function textCanary(name: string, value: string): Canary {
  return { name, forms: [value], inEveryBody: false }
}

function bytesForms(bytes: Buffer): string[] {
  return [bytes.toString('base64url'), bytes.toString('base64'), bytes.toString('hex')].map((form) => form.slice(0, 40))
}

function keyCanary(name: string, key: crypto.KeyObject): Canary {
  const pem = key.export({ type: 'pkcs8', format: 'pem' }).toString()
  const lines = pem.split('\n').filter((line) => line.length >= 40 && !line.startsWith('-----'))
  const jwk = key.export({ format: 'jwk' })
  const components = [jwk.d, jwk.p, jwk.q].filter((part): part is string => typeof part === 'string')
  return {
    name,
    forms: [...lines, ...components.flatMap((part) => bytesForms(Buffer.from(part, 'base64url')))],
    inEveryBody: true,
  }
}

/** The database as text: SQLite's files byte for byte, or every row of every table in the schema. */
async function databaseText(database: WorldDatabase, keyFile: string): Promise<string> {
  if (database.kind === 'sqlite') {
    return fs
      .readdirSync(database.dir)
      .map((name) => path.join(database.dir, name))
      .filter((file) => file !== keyFile && fs.statSync(file).isFile())
      .map((file) => fs.readFileSync(file).toString('latin1'))
      .join('\n')
  }
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  try {
    const tables = await client.query<{ table_name: string }>(
      'select table_name from information_schema.tables where table_schema = $1',
      [database.schema],
    )
    const texts: string[] = []
    for (const { table_name: table } of tables.rows) {
      const rows = await client.query<{ row: string }>(`select t::text as row from "${database.schema}"."${table}" t`)
      for (const row of rows.rows) texts.push(row.row)
    }
    return texts.join('\n')
  } finally {
    await client.end()
  }
}

forEachDialect(`secrets (${mode})`, (dialect) => {
  it(
    'no canary secret is in the database, the logs or an error body',
    async () => {
      const database = await freshDatabase(dialect, postgresUrl)
      try {
        const port = await freePort()
        const publicUrl = `http://127.0.0.1:${port}`
        const world = await prepareWorld(database, { balanceFen: 1_000_000, publicUrl })
        const server = await startServer({
          env: { ...databaseEnv(database), BASEPLATE_LOG_LEVEL: 'trace' },
          port,
          outputMaxBytes: 64 * 1024 * 1024,
        })
        const agent = keepAliveAgent(4)
        const answers: HttpResult[] = []
        const call = async (request: PreparedRequest) => {
          const answer = await send(agent, server.url, request)
          answers.push(answer)
          return answer
        }
        const plain = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) =>
          call({
            method,
            path: url,
            headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
            body: body === undefined ? '' : JSON.stringify(body),
          })

        // The console: a canary password, its session, and wrong guesses at both.
        const email = `canary-${crypto.randomBytes(4).toString('hex')}@example.com`
        const password = `Canary-${crypto.randomBytes(12).toString('base64url')}`
        const organization = { name: 'Canary ISV', kind: 'isv' }
        expect((await plain('POST', '/v1/signup', { email, password, organization })).status).toBe(201)
        const login = await plain('POST', '/v1/sessions', { email, password })
        expect(login.status).toBe(201)
        const sessionToken = JSON.parse(login.body).token as string
        expect((await plain('POST', '/v1/sessions', { email, password: `${password}x` })).status).toBe(401)
        expect((await plain('POST', '/v1/signup', { email, password, organization })).status).toBe(409)
        const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
        expect((await plain('GET', '/v1/me', undefined, bearer(sessionToken))).status).toBe(200)
        expect((await plain('GET', '/v1/me', undefined, bearer(`${sessionToken}x`))).status).toBe(401)

        // Signed calls: payments, and failures carrying the app auth token.
        for (let n = 0; n < 20; n += 1) expect((await call(signedPay(world, `CANARY-${n}`, 1))).status).toBe(200)
        const wrongToken = `${world.appAuthToken}x`
        const refused = [
          signedCall(world, { method: 'GET', path: '/v1/trades/none', appAuthToken: wrongToken }),
          { ...signedPay(world, 'CANARY-TAMPERED', 1), body: JSON.stringify({ total_amount: 2 }) },
          signedCall(world, { method: 'POST', path: '/v1/trades/pay', body: '{"out_trade_no":', idempotencyKey: 'K' }),
          signedCall(world, { method: 'POST', path: '/v1/trades/pay', body: { auth_code: wrongToken } }),
        ]
        for (const request of refused) expect((await call(request)).status).toBeGreaterThanOrEqual(400)
        const replayed = signedPay(world, 'CANARY-REPLAY', 1)
        expect((await call(replayed)).status).toBe(200)
        expect((await call(replayed)).status).toBeGreaterThanOrEqual(400)
        // A token refresh whose signature fails, carrying a refresh token in its body.
        const refreshToken = `bprt_canary_${crypto.randomBytes(24).toString('base64url')}`
        const refresh = signedCall(world, {
          method: 'POST',
          path: '/v1/oauth/token',
          body: { grant_type: 'refresh_token', refresh_token: refreshToken },
          appAuthToken: null,
        })
        expect(
          (await call({ ...refresh, headers: { ...refresh.headers, 'baseplate-signature': 'AAAA' } })).status,
        ).toBe(401)
        // The Alipay gateway, as alipay-sdk calls it: the app auth token in the URL's query (so
        // in the request log), and a signature that fails (so echoed in sub_msg, in an HTTP 200).
        const gatewayQuery = new URLSearchParams({
          app_id: world.appId,
          method: 'alipay.trade.query',
          format: 'JSON',
          charset: 'utf-8',
          sign_type: 'RSA2',
          timestamp: new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 19).replace('T', ' '),
          version: '1.0',
          app_auth_token: world.appAuthToken,
          sign: Buffer.alloc(256, 9).toString('base64'),
        })
        const gateway = await call({
          method: 'POST',
          path: `/gateway.do?${gatewayQuery}`,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ biz_content: JSON.stringify({ out_trade_no: 'CANARY-0' }) }).toString(),
        })
        expect(gateway.body).toContain('isv.invalid-signature')
        agent.destroy()
        await server.stop()

        // What the platform holds that must never show: its keys, and the key that seals them.
        const config = parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', ...databaseEnv(database) })
        assert(config.secretKey.kind === 'file', 'the suite keeps the secret key in a file')
        const keyFile = config.secretKey.path
        const sealing = resolveSealingKey(config.secretKey, { mayMake: false })
        const storage = await openDatabase(database)
        const platformKeys = await loadPlatformKeys(storage.db, sealing).finally(() => storage.close())
        const canaries: Canary[] = [
          textCanary('console password', password),
          textCanary('session token', sessionToken),
          textCanary('app auth token', world.appAuthToken),
          textCanary('refresh token', refreshToken),
          keyCanary('app private key', world.privateKey),
          {
            name: 'secret key',
            forms: bytesForms(Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'base64')),
            inEveryBody: true,
          },
        ]
        for (const [environment, key] of platformKeys) {
          canaries.push(keyCanary(`platform Ed25519 key (${environment})`, key.privateKey))
          canaries.push(keyCanary(`platform RSA key (${environment})`, key.rsa.privateKey))
        }

        const places = {
          database: await databaseText(database, keyFile),
          logs: server.output(),
          'error bodies': answers
            .filter((answer) => answer.status >= 400 || answer === gateway)
            .map((answer) => answer.body)
            .join('\n'),
          'any body': answers.map((answer) => answer.body).join('\n'),
        }
        // The scan must see what it scans: the logs did log requests, the database holds rows.
        expect(places.logs).toContain('/v1/trades/pay')
        expect(places.database).toContain(world.appId)
        // …and the key tables: a public key is there in the clear, as a private one would be.
        const publicLine = platformKeys.get('live')!.rsa.publicKeyPem.split('\n')[2]!
        expect(publicLine.length).toBe(64)
        expect(places.database).toContain(publicLine)
        expect(answers.filter((answer) => answer.status >= 400).length).toBeGreaterThanOrEqual(9)
        expect(places.logs).toContain('/gateway.do?app_id=')
        const found: string[] = []
        for (const canary of canaries) {
          for (const [place, text] of Object.entries(places)) {
            if (place === 'any body' && !canary.inEveryBody) continue
            if (canary.forms.some((form) => text.includes(form))) found.push(`${canary.name} in ${place}`)
          }
        }
        console.info(
          `[${dialect}] secrets: ${canaries.length} canaries, ${answers.length} answers, ` +
            `${Math.round(places.logs.length / 1024)} KiB of logs, ${Math.round(places.database.length / 1024)} KiB ` +
            `of database; found: ${found.length === 0 ? 'none' : found.join(', ')}`,
        )
        expect(found).toEqual([])
        // A negative control: the scan does find a secret that is there.
        expect(places['any body'].includes(sessionToken)).toBe(true)
      } finally {
        await database.dispose()
      }
    },
    budgetMs(120_000, 180_000),
  )
})

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message)
}
