/**
 * Idempotency under a storm: for each of many keys, 50 identical signed pay requests (same
 * Idempotency-Key, same body, each with its own nonce and signature, as a retrying client
 * sends them) arrive at a real server process at once, over real connections, several keys at
 * a time. Each key must execute exactly once: one trade, one ledger posting, one debit of the
 * wallet; every other copy gets the first answer byte for byte (Idempotent-Replayed) or 409
 * IDEMPOTENCY_REQUEST_IN_PROGRESS, and a later retry gets the stored answer. The same key with
 * another body is refused. The payment model's own races (test/payment-concurrency.test.ts)
 * run in-process; this is the same promise across processes and sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { headerNames } from '../../sdk/src/index.js'
import { checkPayments, type Acknowledged } from './support/check.js'
import { keepAliveAgent, payBody, send, signedCall } from './support/http.js'
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

const { keys, copies } = settings.storm
const keysAtOnce = 10

describe(`idempotency storm [sqlite] (${mode})`, () => {
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
    `${keys} keys × ${copies} concurrent identical requests: each executes exactly once`,
    async () => {
      const agent = keepAliveAgent(keysAtOnce * copies)
      const acknowledged = new Map<string, Acknowledged>()
      const outcomes = { first: 0, replayed: 0, inProgress: 0, other: [] as string[] }
      const bodiesDiffer: string[] = []
      const storm = async (key: string, amountFen: number) => {
        const responses = await Promise.all(
          Array.from({ length: copies }, () =>
            send(
              agent,
              server.url,
              signedCall(world, {
                method: 'POST',
                path: '/v1/trades/pay',
                body: payBody(world, key, amountFen),
                idempotencyKey: key,
              }),
            ),
          ),
        )
        const ok = responses.filter((response) => response.status === 200)
        for (const response of responses) {
          if (response.status === 200) {
            if (response.headers[headerNames.idempotentReplayed] === 'true') outcomes.replayed += 1
            else outcomes.first += 1
          } else if (response.status === 409 && JSON.parse(response.body).code === 'IDEMPOTENCY_REQUEST_IN_PROGRESS') {
            outcomes.inProgress += 1
          } else outcomes.other.push(`${key}: ${response.status} ${response.body}`)
        }
        if (new Set(ok.map((response) => response.body)).size > 1) bodiesDiffer.push(key)
        // A retry after the storm finds the stored answer.
        const retry = await send(
          agent,
          server.url,
          signedCall(world, {
            method: 'POST',
            path: '/v1/trades/pay',
            body: payBody(world, key, amountFen),
            idempotencyKey: key,
          }),
        )
        expect(retry.status, retry.body).toBe(200)
        if (ok.length > 0 && retry.body !== ok[0]!.body) bodiesDiffer.push(`${key} (retry)`)
        acknowledged.set(key, { amountFen, tradeId: JSON.parse(retry.body).id })
      }
      for (let start = 0; start < keys; start += keysAtOnce) {
        await Promise.all(
          Array.from({ length: Math.min(keysAtOnce, keys - start) }, (_, offset) => {
            const index = start + offset
            return storm(`STORM-${index}`, 1 + (index % 97))
          }),
        )
      }
      // The same key with another body is a different request: refused, and nothing runs.
      const reused = await send(
        agent,
        server.url,
        signedCall(world, {
          method: 'POST',
          path: '/v1/trades/pay',
          body: payBody(world, 'STORM-0', 999),
          idempotencyKey: 'STORM-0',
        }),
      )
      expect(JSON.parse(reused.body).code).toBe('IDEMPOTENCY_KEY_REUSED')
      agent.destroy()

      console.info(`idempotency storm: ${JSON.stringify({ keys, copies, ...outcomes, other: outcomes.other.length })}`)
      expect(outcomes.other).toEqual([])
      expect(bodiesDiffer, 'replayed answers are byte-identical to the first').toEqual([])
      expect(outcomes.first, 'exactly one first execution per key').toBe(keys)
      const storage = await openDatabase(database)
      try {
        const report = await checkPayments(storage.db, world, acknowledged)
        expect(report).toMatchObject({ lost: [], duplicated: [], walletDriftFen: 0, ledgerDrift: 0, paid: keys })
      } finally {
        await storage.close()
      }
    },
    budgetMs(120_000, 900_000),
  )
})
