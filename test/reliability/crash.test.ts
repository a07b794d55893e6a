/**
 * Crash safety: a real server process (`baseplate serve`, on SQLite in WAL mode with
 * synchronous=FULL, and on PostgreSQL with synchronous_commit on) takes signed barcode payments
 * from 32 keep-alive clients and is killed with SIGKILL at a random moment; the suite checks
 * the database, restarts the server and resends every request that was sent but not
 * acknowledged, with the same Idempotency-Key (and a fresh signature).
 *
 * After every kill: acknowledged-but-lost payments 0. At the end: every request acknowledged,
 * no trade charged twice, the buyer's wallet moved by exactly the paid amounts, and the
 * ledger recomputes without drift. The same harness must catch a build that answers before
 * it commits (BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT, in the write path of src/server/app.ts,
 * so on both databases), or it proves nothing. Each restart is timed from spawn to the first
 * acknowledged payment: a fresh one, sent alone before the unacknowledged ones are resent.
 *
 * PostgreSQL runs as test/harness.ts decides: skipped when unreachable, unless
 * BASEPLATE_TEST_PG=required, which fails instead.
 *
 * A process kill cannot lose what the kernel already holds, so this shows crash safety, not
 * power-loss durability; that rests on synchronous=FULL (synchronous_commit on PostgreSQL),
 * which the storage layer asserts at start and the last test of each database checks
 * (docs/reliability.md).
 */
import type http from 'node:http'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.js'
import type { DialectName } from '../../src/storage/database.js'
import { forEachDialect } from '../harness.js'
import { type Acknowledged, checkPayments, type PaymentReport } from './support/check.js'
import { keepAliveAgent, send, signedPay } from './support/http.js'
import { buildServer, type BuiltServer } from './support/build.js'
import { between, seeded } from './support/random.js'
import { freePort, startServer, type ServerProcess } from './support/server.js'
import { percentile } from './support/stats.js'
import { budgetMs, full, mode, postgresUrl, settings } from './support/settings.js'
import {
  databaseEnv,
  oneAppDrivesTheLoad,
  freshDatabase,
  openDatabase,
  prepareWorld,
  type World,
  type WorldDatabase,
} from './support/world.js'

/** One start of the server: the first of a run, or a restart after a kill. */
interface StartStats {
  /** Spawn to the "listening" line. */
  readonly listeningMs: number
  /** Spawn to the first acknowledged payment (a fresh one, sent alone). */
  readonly first200Ms: number
  /** Spawn to every request left unacknowledged by the kill acknowledged, same keys. */
  readonly recoveredMs: number
  /** Requests resent with their key after this start. */
  readonly resent: number
}

interface RoundStats {
  readonly round: number
  readonly killAfterMs: number
  readonly acknowledged: number
  readonly inFlightAtKill: number
  readonly lost: number
  /** The start that preceded the load of this round. */
  readonly start: StartStats
}

interface CrashRun {
  readonly rounds: RoundStats[]
  /** The start after the last kill, null if the run stopped at a loss. */
  readonly finalStart: StartStats | null
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
  /** The compiled CLI to run instead of tsx (full runs). */
  builtMain: string | null
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
    ...oneAppDrivesTheLoad,
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

  /** Sends one request with its key until it is acknowledged (or answers something unexpected). */
  const resendOne = async (server: ServerProcess, agent: http.Agent, outTradeNo: string, amountFen: number) => {
    for (let attempt = 0; ; attempt += 1) {
      const response = await send(agent, server.url, signedPay(world, outTradeNo, amountFen), 10_000)
      if (accept(outTradeNo, amountFen, response.status, response.body)) return
      const code = (JSON.parse(response.body) as { code?: string }).code
      // The first attempt's reservation survived the crash without its work: wait out its lock.
      if (code === 'IDEMPOTENCY_REQUEST_IN_PROGRESS' && attempt < 50) {
        await new Promise((resolve) => setTimeout(resolve, 200))
        continue
      }
      unexpected.push(`${outTradeNo}: resend answered ${response.status} ${response.body}`)
      return
    }
  }

  /** Resends every unacknowledged request with its key until it is acknowledged. */
  const resendPending = async (server: ServerProcess, agent: http.Agent) => {
    const queue = [...pending.entries()]
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await resendOne(server, agent, ...next)
    }
    await Promise.all(Array.from({ length: 8 }, worker))
  }

  const start = async () => {
    const spawnedAt = performance.now()
    const server = await startServer({
      env,
      port,
      ...(options.builtMain === null ? {} : { builtMain: options.builtMain }),
    })
    const agent = keepAliveAgent(crash.connections)
    // A fresh payment, alone, times the recovery: nothing it waits for is left from the crash.
    const probe = `${options.label}-probe-${(sequence += 1)}`
    pending.set(probe, 1)
    await resendOne(server, agent, probe, 1)
    const first200Ms = performance.now() - spawnedAt
    const resent = pending.size
    await resendPending(server, agent)
    const stats: StartStats = {
      listeningMs: Math.round(server.startMs),
      first200Ms: Math.round(first200Ms),
      recoveredMs: Math.round(performance.now() - spawnedAt),
      resent,
    }
    return { server, agent, stats }
  }

  for (let round = 1; round <= options.rounds; round += 1) {
    const { server, agent, stats } = await start()
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
      start: stats,
    })
    if (options.stopOnLoss && report.lost.length > 0) {
      return { rounds, finalStart: null, final: null, acknowledged, pending, unexpected }
    }
  }
  const { server, agent, stats } = await start()
  agent.destroy()
  await server.stop()
  const storage = await openDatabase(database)
  const final = await checkPayments(storage.db, world, acknowledged).finally(() => storage.close())
  return { rounds, finalStart: stats, final, acknowledged, pending, unexpected }
}

/** The starts that followed a kill: every round's but the first, and the last one. */
function restartsOf(run: CrashRun): StartStats[] {
  return [...run.rounds.slice(1).map((round) => round.start), ...(run.finalStart === null ? [] : [run.finalStart])]
}

function timing(values: readonly number[]) {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) }
}

const roundsOf = (dialect: DialectName) => (dialect === 'sqlite' ? crash.rounds : crash.postgresRounds)

// Full runs time the restarts of the compiled server, as `npm start` runs it; short runs skip
// the build (about 7 s of tsc) and start through tsx, which compiles at start.
let built: BuiltServer | null = null
const builtMain = () => built?.main ?? null
const serverKind = () => (builtMain() === null ? 'tsx' : 'built')
beforeAll(async () => {
  if (!full) return
  built = await buildServer()
  console.info(
    built.main === null
      ? `crash suite: the build failed, the server runs through tsx: ${built.problem}`
      : `crash suite: built the server in ${built.buildMs} ms`,
  )
}, 200_000)
afterAll(() => built?.dispose())

forEachDialect(`crash safety (${mode}, seed ${settings.seed})`, (dialect) => {
  const rounds = roundsOf(dialect)
  let database: WorldDatabase
  let world: World
  let port: number

  beforeAll(async () => {
    port = await freePort()
    database = await freshDatabase(dialect, postgresUrl)
    world = await prepareWorld(database, { balanceFen: 1_000_000_000, publicUrl: `http://127.0.0.1:${port}` })
  })
  afterAll(async () => database?.dispose())

  it(
    `kill -9 under load, ${rounds} rounds: 0 acknowledged payments lost, 0 charged twice, 0 drift`,
    async () => {
      const started = performance.now()
      const run = await crashRounds({
        database,
        world,
        port,
        rounds,
        seed: settings.seed,
        env: {},
        stopOnLoss: false,
        label: 'CRASH',
        builtMain: builtMain(),
      })
      const restarts = restartsOf(run)
      const summary = {
        dialect,
        server: serverKind(),
        seed: settings.seed,
        wallMs: Math.round(performance.now() - started),
        acknowledged: run.acknowledged.size,
        perRound: run.rounds.map((round) => round.acknowledged),
        inFlightAtKill: run.rounds.map((round) => round.inFlightAtKill),
        lost: run.rounds.reduce((sum, round) => sum + round.lost, 0),
        restartToListeningMs: timing(restarts.map((start) => start.listeningMs)),
        restartToFirst200Ms: timing(restarts.map((start) => start.first200Ms)),
        restartToRecoveredMs: timing(restarts.map((start) => start.recoveredMs)),
        resent: restarts.reduce((sum, start) => sum + start.resent, 0),
        final: run.final,
      }
      console.info(`crash suite [${dialect}]: ${JSON.stringify(summary)}`)
      expect(run.unexpected, `seed ${settings.seed}`).toEqual([])
      expect(
        run.rounds.map((round) => round.lost),
        `acknowledged-but-lost per round, seed ${settings.seed}`,
      ).toEqual(run.rounds.map(() => 0))
      expect(run.pending.size, 'every request acknowledged in the end').toBe(0)
      expect(run.final).toMatchObject({ lost: [], duplicated: [], walletDriftFen: 0, ledgerDrift: 0 })
      expect(run.final!.paid).toBeGreaterThanOrEqual(run.acknowledged.size)
      // Each round must have had work in flight when it was killed, or it tested nothing.
      expect(run.rounds.filter((round) => round.acknowledged > 0).length).toBeGreaterThanOrEqual(rounds - 1)
    },
    budgetMs(150_000, 600_000),
  )

  it(
    'fails the deliberately broken build that acknowledges before it commits',
    async () => {
      const mutantDatabase = await freshDatabase(dialect, postgresUrl)
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
          builtMain: builtMain(),
        })
        console.info(`crash suite, mutant [${dialect}, ${serverKind()}]: ${JSON.stringify(run.rounds)}`)
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

  const durability = dialect === 'sqlite' ? 'synchronous=FULL in WAL mode' : 'synchronous_commit=on'
  it(`the server's database commits durably (${durability})`, async () => {
    const storage = await openDatabase(database)
    try {
      if (dialect === 'sqlite') {
        const row = await sql<{ synchronous: number }>`pragma synchronous`.execute(storage.db)
        const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(storage.db)
        expect(row.rows[0]?.synchronous, 'synchronous=FULL is 2').toBe(2)
        expect(journal.rows[0]?.journal_mode).toBe('wal')
      } else {
        const row = await sql<{ synchronous_commit: string }>`show synchronous_commit`.execute(storage.db)
        const fsync = await sql<{ fsync: string }>`show fsync`.execute(storage.db)
        expect(row.rows[0]?.synchronous_commit).toBe('on')
        expect(fsync.rows[0]?.fsync).toBe('on')
      }
    } finally {
      await storage.close()
    }
  })
})

describe('the ack-before-commit mutant switch', () => {
  it('is refused outside tests', () => {
    expect(() => parseConfig({ BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1' })).toThrow(/refused unless NODE_ENV=test/)
    expect(() => parseConfig({ BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1', NODE_ENV: 'production' })).toThrow(
      /refused unless NODE_ENV=test/,
    )
    expect(
      parseConfig({ BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT: '1', NODE_ENV: 'test' }).testMutantAckBeforeCommit,
    ).toBe(true)
    expect(parseConfig({}).testMutantAckBeforeCommit).toBe(false)
  })
})
