/**
 * Crash safety: a real server process (`baseplate serve` on SQLite, WAL, synchronous=FULL)
 * takes signed barcode payments from 32 keep-alive clients and is killed with SIGKILL at a
 * random moment; the suite checks the database, restarts the server and resends every request
 * that was sent but not acknowledged, with the same Idempotency-Key (and a fresh signature).
 *
 * After every kill: acknowledged-but-lost payments 0. At the end: every request acknowledged,
 * no trade charged twice, the buyer's wallet moved by exactly the paid amounts, and the
 * ledger recomputes without drift. The same harness must catch a build that answers before
 * it commits (BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT), or it proves nothing.
 *
 * A process kill cannot lose what the kernel already holds, so this shows crash safety, not
 * power-loss durability; that rests on synchronous=FULL, which the storage layer asserts at
 * start and the last test here checks (docs/reliability.md).
 */
import type http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.js'
import { type Acknowledged, checkPayments, type PaymentReport } from './support/check.js'
import { keepAliveAgent, send, signedPay } from './support/http.js'
import { between, seeded } from './support/random.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { budgetMs, mode, settings } from './support/settings.js'
import {
  databaseEnv,
  freshDatabase,
  openDatabase,
  prepareWorld,
  type World,
  type WorldDatabase,
} from './support/world.js'

interface RoundStats {
  readonly round: number
  readonly killAfterMs: number
  readonly acknowledged: number
  readonly inFlightAtKill: number
  readonly lost: number
  readonly restartToListeningMs: number
  readonly restartToFirst200Ms: number
}

interface CrashRun {
  readonly rounds: RoundStats[]
  readonly final: PaymentReport | null
  readonly acknowledged: Map<string, Acknowledged>
  readonly pending: Map<string, number>
  readonly unexpected: string[]
}

const { crash } = settings

/** Runs kill rounds against one database; stops early on a loss when asked (the mutant). */
async function crashRounds(options: {
  database: WorldDatabase
  world: World
  port: number
  rounds: number
  seed: number
  env: Record<string, string>
  stopOnLoss: boolean
  label: string
}): Promise<CrashRun> {
  const { database, world, port } = options
  const random = seeded(options.seed)
  const acknowledged = new Map<string, Acknowledged>()
  const pending = new Map<string, number>()
  const unexpected: string[] = []
  const rounds: RoundStats[] = []
  let sequence = 0
  const env = {
    ...databaseEnv(database),
    // A reservation whose work died with the process may be taken over after a second.
    BASEPLATE_IDEMPOTENCY_LOCK_S: '1',
    ...options.env,
  }

  const accept = (outTradeNo: string, amountFen: number, status: number, body: string): boolean => {
    if (status === 200) {
      const trade = JSON.parse(body) as { id: string; status: string }
      if (trade.status !== 'paid') unexpected.push(`${outTradeNo}: 200 with status ${trade.status}`)
      acknowledged.set(outTradeNo, { amountFen, tradeId: trade.id })
      pending.delete(outTradeNo)
      return true
    }
    return false
  }

  /** Resends every unacknowledged request with its key until it is acknowledged. */
  const resendPending = async (server: ServerProcess, agent: http.Agent) => {
    const queue = [...pending.entries()]
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const [outTradeNo, amountFen] = next
        for (let attempt = 0; ; attempt += 1) {
          const response = await send(agent, server.url, signedPay(world, outTradeNo, amountFen), 10_000)
          if (accept(outTradeNo, amountFen, response.status, response.body)) break
          const code = (JSON.parse(response.body) as { code?: string }).code
          // The first attempt's reservation survived the crash without its work: wait out its lock.
          if (code === 'IDEMPOTENCY_REQUEST_IN_PROGRESS' && attempt < 50) {
            await new Promise((resolve) => setTimeout(resolve, 200))
            continue
          }
          unexpected.push(`${outTradeNo}: resend answered ${response.status} ${response.body}`)
          break
        }
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
  }

  const start = async () => {
    const spawnedAt = performance.now()
    const server = await startServer({ env, port })
    const agent = keepAliveAgent(crash.connections)
    // The first acknowledged payment after the restart times the recovery.
    const probe = `${options.label}-probe-${(sequence += 1)}`
    pending.set(probe, 1)
    await resendPending(server, agent)
    return { server, agent, restartToListeningMs: server.startMs, restartToFirst200Ms: performance.now() - spawnedAt }
  }

  for (let round = 1; round <= options.rounds; round += 1) {
    const { server, agent, restartToListeningMs, restartToFirst200Ms } = await start()
    const killAfterMs = between(random, crash.killAfterMsMin, crash.killAfterMsMax)
    const before = acknowledged.size
    let stopped = false
    let inFlight = 0
    const worker = async () => {
      while (!stopped) {
        sequence += 1
        const outTradeNo = `${options.label}-${round}-${sequence}`
        const amountFen = between(random, 1, 500)
        pending.set(outTradeNo, amountFen)
        inFlight += 1
        try {
          const response = await send(agent, server.url, signedPay(world, outTradeNo, amountFen), 10_000)
          if (!accept(outTradeNo, amountFen, response.status, response.body)) {
            unexpected.push(`${outTradeNo}: answered ${response.status} ${response.body}`)
          }
        } catch {
          return // the server is gone: this request stays pending
        } finally {
          inFlight -= 1
        }
      }
    }
    const killer = new Promise<number>((resolve) =>
      setTimeout(() => {
        stopped = true
        const atKill = inFlight
        void server.kill('SIGKILL').then(() => resolve(atKill))
      }, killAfterMs),
    )
    const workers = Array.from({ length: crash.connections }, worker)
    const inFlightAtKill = await killer
    await Promise.all(workers)
    agent.destroy()

    const storage = await openDatabase(database)
    const report = await checkPayments(storage.db, world, acknowledged).finally(() => storage.close())
    rounds.push({
      round,
      killAfterMs,
      acknowledged: acknowledged.size - before,
      inFlightAtKill,
      lost: report.lost.length,
      restartToListeningMs,
      restartToFirst200Ms,
    })
    if (options.stopOnLoss && report.lost.length > 0) return { rounds, final: null, acknowledged, pending, unexpected }
  }
  const { server, agent } = await start()
  agent.destroy()
  await server.stop()
  const storage = await openDatabase(database)
  const final = await checkPayments(storage.db, world, acknowledged).finally(() => storage.close())
  return { rounds, final, acknowledged, pending, unexpected }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0
}

describe(`crash safety [sqlite] (${mode}, seed ${settings.seed})`, () => {
  let database: WorldDatabase
  let world: World
  let port: number

  beforeAll(async () => {
    port = await freePort()
    database = await freshDatabase('sqlite')
    world = await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` })
  })
  afterAll(async () => database?.dispose())

  it(
    `kill -9 under load, ${crash.rounds} rounds: 0 acknowledged payments lost, 0 charged twice, 0 drift`,
    async () => {
      const run = await crashRounds({
        database,
        world,
        port,
        rounds: crash.rounds,
        seed: settings.seed,
        env: {},
        stopOnLoss: false,
        label: 'CRASH',
      })
      const summary = {
        seed: settings.seed,
        rounds: run.rounds,
        acknowledged: run.acknowledged.size,
        restartToFirst200MsP99: percentile(
          run.rounds.map((round) => round.restartToFirst200Ms),
          99,
        ),
        final: run.final,
      }
      console.info(`crash suite: ${JSON.stringify(summary)}`)
      expect(run.unexpected, `seed ${settings.seed}`).toEqual([])
      expect(
        run.rounds.map((round) => round.lost),
        `acknowledged-but-lost per round, seed ${settings.seed}`,
      ).toEqual(run.rounds.map(() => 0))
      expect(run.pending.size, 'every request acknowledged in the end').toBe(0)
      expect(run.final).toMatchObject({ lost: [], duplicated: [], walletDriftFen: 0, ledgerDrift: 0 })
      expect(run.final!.paid).toBeGreaterThanOrEqual(run.acknowledged.size)
      // Each round must have had work in flight when it was killed, or it tested nothing.
      expect(run.rounds.filter((round) => round.acknowledged > 0).length).toBeGreaterThanOrEqual(crash.rounds - 1)
    },
    budgetMs(150_000, 600_000),
  )

  it(
    'fails the deliberately broken build that acknowledges before it commits',
    async () => {
      const mutantDatabase = await freshDatabase('sqlite')
      try {
        const mutantWorld = await prepareWorld(mutantDatabase, {
          balanceFen: 1_000_000_000,
          publicUrl: `http://127.0.0.1:${port}`,
        })
        const run = await crashRounds({
          database: mutantDatabase,
          world: mutantWorld,
          port,
          rounds: crash.mutantRoundsMax,
          seed: settings.seed + 1,
          env: { BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1' },
          stopOnLoss: true,
          label: 'MUTANT',
        })
        console.info(`crash suite, mutant: ${JSON.stringify(run.rounds)}`)
        const lost = run.rounds.reduce((sum, round) => sum + round.lost, 0)
        expect(lost, `the harness must see the mutant lose acknowledged payments (seed ${settings.seed + 1})`).toBe(
          run.rounds.at(-1)!.lost,
        )
        expect(lost).toBeGreaterThan(0)
      } finally {
        await mutantDatabase.dispose()
      }
    },
    budgetMs(90_000, 240_000),
  )

  it('refuses the mutant switch outside tests, and the server runs with synchronous=FULL', async () => {
    expect(() => parseConfig({ BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1' })).toThrow(/refused unless NODE_ENV=test/)
    expect(() => parseConfig({ BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1', NODE_ENV: 'production' })).toThrow(
      /refused unless NODE_ENV=test/,
    )
    expect(
      parseConfig({ BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1', NODE_ENV: 'test' }).testMutantAckBeforeCommit,
    ).toBe(true)
    expect(parseConfig({}).testMutantAckBeforeCommit).toBe(false)
    const storage = await openDatabase(database)
    try {
      const { sql } = await import('kysely')
      const row = await sql<{ synchronous: number }>`pragma synchronous`.execute(storage.db)
      const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(storage.db)
      expect(row.rows[0]?.synchronous, 'synchronous=FULL is 2').toBe(2)
      expect(journal.rows[0]?.journal_mode).toBe('wal')
    } finally {
      await storage.close()
    }
  })
})
