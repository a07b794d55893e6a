/**
 * Baseplate's own figure: signed native barcode payments (`POST /v1/trades/pay`, create + pay
 * in one call, with an Idempotency-Key, ledger posting and outbox event) against a real
 * `baseplate serve` process on SQLite or PostgreSQL, with the world `baseplate sandbox` makes
 * (or as many merchants, each with its own buyer, taking turns: `merchants`).
 * Closed-loop peak first, then open-loop latency at a given fraction of that peak.
 *
 * @example
 * const result = await benchNative('sqlite', { closedS: 6, openS: 8, warmupS: 2, connections: 50 })
 */
import fs from 'node:fs'
import { freePort, startServer } from '../../test/reliability/support/server.js'
import {
  databaseEnv,
  freshDatabase,
  openDatabase,
  manyMerchants,
  prepareWorld,
  walletBalance,
  type WorldDatabase,
} from '../../test/reliability/support/world.js'
import type { Kysely } from 'kysely'
import { verifyLedger } from '../../src/capabilities/ledger/index.js'
import { closedLoop, type ClosedLoopResult } from './closed-loop.js'
import { openLoop, type OpenLoopResult } from './open-loop.js'
import { presign } from './presign.js'

export interface NativeResult {
  readonly api: 'native' | 'gateway'
  readonly database: 'sqlite' | 'postgres'
  /** Requests answered 2xx in all phases (warm-up included), against trades found paid. */
  readonly answered2xx: number
  readonly closed: ClosedLoopResult
  /** Every signed request was used before the deadline: `closed.perSecond` is then only a lower bound. */
  readonly closedListUsedUp: boolean
  readonly open: OpenLoopResult | null
  readonly peakRssBytes: number | null
  /**
   * Server CPU time (user + system) per call in the closed loop, in microseconds; null where
   * /proc is not there. Steadier than throughput on a shared machine: a diagnostic, not a target.
   */
  readonly serverCpuUsPerCall: number | null
  /**
   * CPU time of the PostgreSQL server's processes on this machine per call in the closed loop,
   * in microseconds (they share its cores with the server); null on SQLite or where /proc
   * shows no PostgreSQL processes. A diagnostic, like the server's: it counts every process
   * named `postgres` on the machine, so other load on another database inflates it.
   */
  readonly databaseCpuUsPerCall: number | null
  readonly serverStartMs: number
  readonly paidTrades: number
  readonly ledgerOk: boolean
  readonly walletDriftFen: number
}

export interface NativeOptions {
  readonly closedS: number
  readonly openS: number
  readonly warmupS: number
  readonly connections: number
  /** Open-loop rate as a fraction of the closed-loop peak; 0 skips the open-loop run. */
  readonly openFraction: number
  readonly postgresUrl?: string
  readonly serverEnv?: Record<string, string>
  readonly serverNodeArgs?: readonly string[]
  /** Largest number of requests signed for the closed-loop run. */
  readonly closedRequestsMax?: number
  readonly log?: (line: string) => void
  /** native: POST /v1/trades/pay; gateway: alipay.trade.pay through /gateway.do. */
  readonly api?: 'native' | 'gateway'
  /**
   * Merchants the calls take turns over, each with a buyer of its own (default 1: the
   * sandbox's one merchant and one buyer, whose two accounts every payment then updates).
   */
  readonly merchants?: number
}

export async function benchNative(kind: 'sqlite' | 'postgres', options: NativeOptions): Promise<NativeResult> {
  const log = options.log ?? (() => undefined)
  const api = options.api ?? 'native'
  const database = await freshDatabase(kind, options.postgresUrl)
  try {
    return await benchOn(database, kind, api, log, options)
  } finally {
    await database.dispose()
  }
}

async function benchOn(
  database: WorldDatabase,
  kind: 'sqlite' | 'postgres',
  api: 'native' | 'gateway',
  log: (line: string) => void,
  options: NativeOptions,
): Promise<NativeResult> {
  const port = await freePort()
  const publicUrl = `http://127.0.0.1:${port}`
  const balanceFen = 1_000_000_000_000
  const first = await prepareWorld(database, { balanceFen, publicUrl })
  const merchants = options.merchants ?? 1
  const worlds =
    merchants > 1 ? await manyMerchants(database, first, { count: merchants, balanceFen, publicUrl }) : [first]
  const server = await startServer({
    env: {
      ...databaseEnv(database),
      BASEPLATE_LOG_LEVEL: 'warn',
      // One app drives the whole load here; the per-app limit (1,000/s by default) is a policy
      // for sharing a server between apps, not part of the cost of a call.
      BASEPLATE_APP_RATE_LIMIT_PER_S: '0',
      ...options.serverEnv,
    },
    port,
    ...(options.serverNodeArgs === undefined ? {} : { nodeArgs: options.serverNodeArgs }),
  })
  try {
    log(`  ${api} ${kind}: server up in ${Math.round(server.startMs)} ms; warming up`)
    const warm = await presign(worlds, { count: 2_000, prefix: 'WARM', kind: api })
    const warmRun = await closedLoop({
      url: server.url,
      connections: options.connections,
      durationS: 20,
      requests: warm,
    })
    // The warm-up runs cold (JIT, caches) and understates the peak: sign well beyond it, since a
    // list used up before the deadline would cap the figure at its length (checked below).
    const estimate = Math.max(1_000, warmRun.perSecond)
    const closedCount = Math.min(options.closedRequestsMax ?? 40_000, Math.ceil(estimate * 2.5 * options.closedS))
    log(`  ${api} ${kind}: warm-up ${Math.round(warmRun.perSecond)}/s; signing ${closedCount} requests`)
    const closedRequests = await presign(worlds, { count: closedCount, prefix: 'CLOSED', kind: api })
    const cpuBefore = processCpuMs(server.pid)
    const databaseCpuBefore = kind === 'postgres' ? postgresCpuMs() : null
    const closed = await closedLoop({
      url: server.url,
      connections: options.connections,
      durationS: options.closedS,
      requests: closedRequests,
    })
    const cpuAfter = processCpuMs(server.pid)
    const databaseCpuAfter = kind === 'postgres' ? postgresCpuMs() : null
    if (closed.requests >= closedCount) {
      log(`  ${api} ${kind}: WARNING all ${closedCount} signed requests used before the deadline: a lower bound`)
    }
    const serverCpuUsPerCall =
      cpuBefore === null || cpuAfter === null || closed.requests === 0
        ? null
        : Math.round((1000 * (cpuAfter - cpuBefore)) / closed.requests)
    const databaseCpuUsPerCall =
      databaseCpuBefore === null || databaseCpuAfter === null || closed.requests === 0
        ? null
        : Math.round((1000 * (databaseCpuAfter - databaseCpuBefore)) / closed.requests)
    log(
      `  ${api} ${kind}: closed loop ${Math.round(closed.perSecond)}/s, ` +
        `p99 ${closed.latencyMs.p99} ms, non2xx ${closed.non2xx}`,
    )
    let open: OpenLoopResult | null = null
    if (options.openFraction > 0) {
      const rate = Math.max(50, Math.round(closed.perSecond * options.openFraction))
      const openRequests = await presign(worlds, {
        count: Math.ceil(rate * (options.openS + options.warmupS)) + 10,
        prefix: 'OPEN',
        kind: api,
      })
      open = await openLoop({
        url: server.url,
        rate,
        durationS: options.openS,
        warmupS: options.warmupS,
        next: (index) => openRequests[index]!,
      })
      log(`  ${api} ${kind}: open loop at ${rate}/s: p99 ${open.latencyMs.p99} ms, p99.9 ${open.latencyMs.p999} ms`)
    }
    const peakRssBytes = server.peakRssBytes()
    await server.stop()
    const storage = await openDatabase(database)
    const db = storage.db as Kysely<any>
    try {
      const paid = await db
        .selectFrom('payment_trades')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('status', '=', 'paid')
        .executeTakeFirstOrThrow()
      const paidTrades = Number(paid.count)
      // Each buyer's wallet moved by exactly what it paid.
      let walletDriftFen = 0
      for (const buyer of worlds) {
        const sum = await db
          .selectFrom('payment_trades')
          .select((eb) => eb.fn.sum<number>('total_amount').as('total'))
          .where('status', '=', 'paid')
          .where('buyer_id', '=', buyer.buyerId)
          .executeTakeFirstOrThrow()
        const balance = await walletBalance(storage.db, buyer.buyerId)
        // Absolute, so that one buyer's gain cannot hide another's loss.
        walletDriftFen += Math.abs(buyer.openingBalanceFen - Number(sum.total ?? 0) - balance)
      }
      const verification = await verifyLedger(storage.db)
      const answered2xx =
        warmRun.requests -
        warmRun.non2xx +
        (closed.requests - closed.non2xx) +
        (open === null ? 0 : open.sent - open.failed)
      return {
        api,
        closedListUsedUp: closed.requests >= closedCount,
        answered2xx,
        database: kind,
        closed,
        open,
        peakRssBytes,
        serverCpuUsPerCall,
        databaseCpuUsPerCall,
        serverStartMs: server.startMs,
        paidTrades,
        ledgerOk: verification.ok,
        walletDriftFen,
      }
    } finally {
      await storage.close()
    }
  } finally {
    await server.stop()
  }
}

/** User + system CPU of a process so far, in milliseconds (Linux /proc; clock ticks of 10 ms). */
function processCpuMs(pid: number | string, withReapedChildren = false): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
    const children = withReapedChildren ? Number(fields[13]) + Number(fields[14]) : 0
    return (Number(fields[11]) + Number(fields[12]) + children) * 10
  } catch {
    return null
  }
}

/**
 * CPU of every process named `postgres` so far, in milliseconds, including backends that have
 * exited (counted in their parent's children's time); null when there are none to read.
 */
function postgresCpuMs(): number | null {
  let totalMs = 0
  let found = false
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue
    let name: string
    try {
      name = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim()
    } catch {
      continue
    }
    if (name !== 'postgres') continue
    const ms = processCpuMs(entry, true)
    if (ms === null) continue
    totalMs += ms
    found = true
  }
  return found ? totalMs : null
}
