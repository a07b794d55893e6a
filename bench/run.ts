/**
 * `npm run bench`: every figure of docs/benchmarks.md in one bounded run on loopback, each
 * target a ratio to a baseline measured in the same run (the machine is shared and noisy):
 *
 * 1. Fastify hello world on the same Node (closed loop; open loop at the rates used below);
 * 2. the raw SQLite payment transaction in prepared statements, FULL, 100 per commit (and 1),
 *    and the same transaction in Kysely over the platform's group-commit dialect, with the
 *    platform's prepared queries (the target) and built on every call;
 * 3. the single-core RSA-2048 sign rate;
 * 4. Baseplate: signed native pay calls (create + pay, Idempotency-Key, ledger, outbox) on
 *    SQLite and PostgreSQL, closed-loop peak and open-loop latency at 50 % of it; the same
 *    through the Alipay-compatible gateway when it is there; the server's peak RSS.
 *
 * Writes bench/results/<date>.json and prints a table with PASS/FAIL per target.
 * Options (environment): BENCH_SECONDS (closed-loop seconds, default 6), BENCH_OPEN_SECONDS
 * (open-loop seconds after a 2 s warm-up, default 8), BENCH_SKIP (comma list of postgres,
 * gateway).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { loadConfig } from '../src/config.js'
import { freePort, repoRoot, startServer } from '../test/reliability/support/server.js'
import { closedLoop, type ClosedLoopResult } from './lib/closed-loop.js'
import { rsaSignRate } from './lib/crypto-rate.js'
import { benchNative, type NativeResult } from './lib/native.js'
import { openLoop, type OpenLoopResult } from './lib/open-loop.js'
import { kyselySqlitePayments, rawSqlitePayments } from './lib/raw-sqlite.js'

const closedS = Number(process.env.BENCH_SECONDS ?? 6)
const openS = Number(process.env.BENCH_OPEN_SECONDS ?? 8)
const warmupS = 2
const connections = 50
const skip = new Set((process.env.BENCH_SKIP ?? '').split(',').filter(Boolean))
const config = loadConfig()
const log = (line: string) => console.log(line)
const startedAt = new Date()
const benchStarted = performance.now()

function packageVersion(name: string): string {
  try {
    const file = path.join(repoRoot, 'node_modules', name, 'package.json')
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version
  } catch {
    return 'absent'
  }
}

async function postgresInfo(): Promise<{ reachable: boolean; version: string | null; problem: string | null }> {
  const client = new pg.Client({ connectionString: config.testDatabaseUrl, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    const version = await client.query<{ server_version: string }>('show server_version')
    return { reachable: true, version: version.rows[0]?.server_version ?? null, problem: null }
  } catch (error) {
    return { reachable: false, version: null, problem: String(error) }
  } finally {
    await client.end().catch(() => undefined)
  }
}

const postgres = skip.has('postgres')
  ? { reachable: false, version: null, problem: 'skipped (BENCH_SKIP)' }
  : await postgresInfo()
const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  loadAverageAtStart: os.loadavg().map((value) => Math.round(value * 100) / 100),
  platform: `${os.type()} ${os.release()}`,
  node: process.version,
  versions: {
    fastify: packageVersion('fastify'),
    'better-sqlite3': packageVersion('better-sqlite3'),
    kysely: packageVersion('kysely'),
    pg: packageVersion('pg'),
    autocannon: packageVersion('autocannon'),
    'hdr-histogram-js': packageVersion('hdr-histogram-js'),
    postgresql: postgres.version,
  },
}
log(`Baseplate bench ${startedAt.toISOString()} on ${machine.cpu} (${machine.cores} cores), Node ${machine.node}`)
log(
  `load average at start: ${machine.loadAverageAtStart.join(' ')} (other work on the box skews absolutes, not ratios)`,
)

// 1. Hello world: its own process, kept up for the open-loop comparisons below.
const helloPort = await freePort()
const hello = await startServer({ entry: ['bench/hello-server.ts', String(helloPort)], port: helloPort, env: {} })
await closedLoop({ url: hello.url, connections, durationS: 1 })
const helloClosed = await closedLoop({ url: hello.url, connections, durationS: closedS })
log(
  `hello world: ${Math.round(helloClosed.perSecond)} req/s closed loop (c=${connections}), ` +
    `p99 ${helloClosed.latencyMs.p99} ms`,
)

const helloOpenAt = async (rate: number): Promise<OpenLoopResult> => {
  const request = { method: 'GET', path: '/', headers: {}, body: '' }
  return openLoop({ url: hello.url, rate, durationS: openS, warmupS, next: () => request })
}

// 2. Raw SQLite and Kysely.
const rawGrouped = rawSqlitePayments({ seconds: 2, perCommit: 100 })
const rawSingle = rawSqlitePayments({ seconds: 1, perCommit: 1 })
// The atomicity each request gets on the platform (a savepoint), in raw statements: how much of
// Kysely's ratio is that rather than Kysely.
const rawSavepoints = rawSqlitePayments({ seconds: 2, perCommit: 100, savepointEach: true })
// The target is on the way the platform writes its hot path (prepared queries, ADR 0014); the
// usual build-every-time Kysely is reported beside it.
const kysely = await kyselySqlitePayments({ seconds: 2, inFlight: 100, queries: 'prepared' })
const kyselyBuilt = await kyselySqlitePayments({ seconds: 2, inFlight: 100, queries: 'built' })
log(
  `raw SQLite payment transaction (FULL): ${Math.round(rawGrouped.perSecond)}/s at 100 per commit, ` +
    `${Math.round(rawSingle.perSecond)}/s at 1 per commit, ${Math.round(rawSavepoints.perSecond)}/s with a ` +
    `savepoint each; Kysely + group commit ${Math.round(kysely.perSecond)}/s ` +
    `with prepared queries, ${Math.round(kyselyBuilt.perSecond)}/s built on every call`,
)

// 3. RSA.
const rsa = rsaSignRate(1)
log(`RSA-2048 sign, one core: ${Math.round(rsa.perSecond)}/s`)

// 4. Baseplate.
interface Measured {
  readonly result: NativeResult | null
  readonly helloOpen: OpenLoopResult | null
  readonly skipped: string | null
}

async function measure(
  api: 'native' | 'gateway',
  kind: 'sqlite' | 'postgres',
  shape: { merchants: number; openFraction: number } = { merchants: 1, openFraction: 0.5 },
): Promise<Measured> {
  if (kind === 'postgres' && !postgres.reachable) return { result: null, helloOpen: null, skipped: postgres.problem }
  try {
    const result = await benchNative(kind, {
      api,
      closedS,
      openS,
      warmupS,
      connections,
      openFraction: shape.openFraction,
      merchants: shape.merchants,
      postgresUrl: config.testDatabaseUrl,
      log,
    })
    const helloOpen = result.open === null ? null : await helloOpenAt(result.open.rate)
    if (helloOpen !== null) log(`  hello world at ${helloOpen.rate}/s: p99 ${helloOpen.latencyMs.p99} ms`)
    return { result, helloOpen, skipped: null }
  } catch (error) {
    log(`  ${api} ${kind}: skipped, ${String(error).split('\n')[0]}`)
    return { result: null, helloOpen: null, skipped: String(error).split('\n').slice(0, 3).join(' ') }
  }
}

const nativeSqlite = await measure('native', 'sqlite')
const nativePostgres = await measure('native', 'postgres')
// The same over eight merchants, each with its own buyer (closed loop only, a diagnostic): how
// much of the figure above is the one merchant's and one buyer's accounts, which every
// payment there updates and PostgreSQL locks until COMMIT.
const spreadMerchants = 8
const nativePostgresSpread = await measure('native', 'postgres', { merchants: spreadMerchants, openFraction: 0 })
const gatewayPresent = fs.existsSync(path.join(repoRoot, 'src/gateway/alipay/index.ts'))
const gatewaySqlite: Measured =
  skip.has('gateway') || !gatewayPresent
    ? { result: null, helloOpen: null, skipped: gatewayPresent ? 'skipped (BENCH_SKIP)' : 'src/gateway/alipay absent' }
    : await measure('gateway', 'sqlite')
await hello.stop()

// Targets.
interface Target {
  readonly name: string
  readonly measured: string
  readonly pass: boolean | null
}
const targets: Target[] = []
const mib = (bytes: number | null) => (bytes === null ? null : Math.round(bytes / 2 ** 20))
const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000
const fraction = (a: number, b: number) => `${Math.round(a)} / ${Math.round(b)} = ${ratio(a, b)}`
const valid = (measured: Measured) =>
  measured.result !== null &&
  measured.result.ledgerOk &&
  measured.result.walletDriftFen === 0 &&
  measured.result.paidTrades >= measured.result.answered2xx

for (const [label, measured] of [
  ['native SQLite', nativeSqlite],
  ['native PostgreSQL', nativePostgres],
] as const) {
  const result = measured.result
  if (result === null) {
    targets.push({ name: `${label}: all targets`, measured: `not run: ${measured.skipped}`, pass: null })
    continue
  }
  const perSecond = result.closed.perSecond
  targets.push({
    name: `${label} pay calls/s ≥ 0.20 × hello-world req/s`,
    measured: fraction(perSecond, helloClosed.perSecond),
    pass: perSecond >= 0.2 * helloClosed.perSecond && valid(measured),
  })
  targets.push({
    name: `${label} pay calls/s ≥ 0.20 × raw grouped SQLite tx/s`,
    measured: fraction(perSecond, rawGrouped.perSecond),
    pass: perSecond >= 0.2 * rawGrouped.perSecond,
  })
  if (result.open !== null && measured.helloOpen !== null) {
    const p99 = result.open.latencyMs.p99
    const helloP99 = measured.helloOpen.latencyMs.p99
    targets.push({
      name: `${label} p99 at 50% of peak (${result.open.rate}/s) ≤ 2.5 × hello p99 and ≤ 25 ms`,
      measured: `${p99} ms vs hello ${helloP99} ms (${ratio(p99, helloP99)}×)`,
      pass: p99 <= 2.5 * helloP99 && p99 <= 25,
    })
    targets.push({
      name: `${label} p99.9 at 50% of peak ≤ 100 ms`,
      measured: `${result.open.latencyMs.p999} ms`,
      pass: result.open.latencyMs.p999 <= 100,
    })
  }
  targets.push({
    name: `${label} server peak RSS ≤ 300 MiB`,
    measured: `${mib(result.peakRssBytes)} MiB`,
    pass: result.peakRssBytes !== null && result.peakRssBytes <= 300 * 2 ** 20,
  })
  targets.push({
    name: `${label} correctness: ledger verify OK, wallet drift 0, every 2xx paid`,
    measured:
      `ledger ${result.ledgerOk ? 'OK' : 'DRIFT'}, drift ${result.walletDriftFen} fen, ` +
      `${result.paidTrades} paid / ${result.answered2xx} 2xx`,
    pass: valid(measured),
  })
}
if (nativePostgresSpread.result !== null) {
  // No speed target (a diagnostic), but its figure counts only if every call was really paid.
  const spread = nativePostgresSpread.result
  targets.push({
    name: `native PostgreSQL over ${spreadMerchants} merchants correctness: ledger OK, drift 0, every call paid`,
    measured:
      `ledger ${spread.ledgerOk ? 'OK' : 'BROKEN'}, drift ${spread.walletDriftFen} fen, ` +
      `${spread.paidTrades} paid / ${spread.answered2xx} 2xx, ${spread.closed.non2xx} non-2xx`,
    pass: valid(nativePostgresSpread) && spread.closed.non2xx === 0,
  })
}
if (gatewaySqlite.result === null) {
  targets.push({
    name: 'gateway calls/s ≥ 0.9 × single-core RSA sign rate',
    measured: `not run: ${gatewaySqlite.skipped}`,
    pass: null,
  })
} else {
  const perSecond = gatewaySqlite.result.closed.perSecond
  targets.push({
    name: 'gateway calls/s ≥ 0.9 × single-core RSA sign rate',
    measured: fraction(perSecond, rsa.perSecond),
    pass: perSecond >= 0.9 * rsa.perSecond && valid(gatewaySqlite),
  })
  targets.push({
    name: 'gateway correctness: every answered call paid, ledger OK',
    measured: `${gatewaySqlite.result.paidTrades} paid / ${gatewaySqlite.result.answered2xx} HTTP 2xx`,
    pass: valid(gatewaySqlite),
  })
}
targets.push({
  name: 'Kysely (prepared queries) + group commit ≤ 1.5× raw statements (cost per transaction)',
  measured:
    `${fraction(rawGrouped.perSecond, kysely.perSecond)}× (raw/s over Kysely/s; ` +
    `${fraction(rawGrouped.perSecond, kyselyBuilt.perSecond)}× built on every call; ` +
    `${fraction(rawSavepoints.perSecond, kysely.perSecond)}× raw with a savepoint each)`,
  pass: rawGrouped.perSecond / kysely.perSecond <= 1.5,
})

const durationS = Math.round((performance.now() - benchStarted) / 1000)
const slim = (closed: ClosedLoopResult) => closed
const report = {
  startedAt: startedAt.toISOString(),
  durationS,
  machine: { ...machine, loadAverageAtEnd: os.loadavg().map((value) => Math.round(value * 100) / 100) },
  settings: { closedS, openS, warmupS, connections, openFraction: 0.5 },
  baselines: {
    helloWorld: { closed: slim(helloClosed) },
    rawSqlite: {
      grouped100: rawGrouped,
      perCommit1: rawSingle,
      grouped100SavepointEach: rawSavepoints,
      kyselyGroupCommit: kysely,
      kyselyBuiltEveryCall: kyselyBuilt,
    },
    rsa2048SignPerSecond: rsa.perSecond,
  },
  baseplate: {
    nativeSqlite: nativeSqlite.result ?? { skipped: nativeSqlite.skipped },
    nativeSqliteHelloOpen: nativeSqlite.helloOpen,
    nativePostgres: nativePostgres.result ?? { skipped: nativePostgres.skipped },
    nativePostgresHelloOpen: nativePostgres.helloOpen,
    nativePostgresSpread: nativePostgresSpread.result
      ? { merchants: spreadMerchants, openFraction: 0, ...nativePostgresSpread.result }
      : { skipped: nativePostgresSpread.skipped },
    gatewaySqlite: gatewaySqlite.result ?? { skipped: gatewaySqlite.skipped },
    gatewaySqliteHelloOpen: gatewaySqlite.helloOpen,
  },
  targets,
}
const resultsDir = path.join(repoRoot, 'bench', 'results')
fs.mkdirSync(resultsDir, { recursive: true })
const file = path.join(resultsDir, `${startedAt.toISOString().replace(/[:]/g, '-').slice(0, 19)}.json`)
fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`)

const row = (cells: string[], widths: number[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')
const figures: string[][] = [
  [
    'figure',
    'req/s',
    'p99 closed',
    'open-loop rate',
    'p99 open',
    'p99.9 open',
    'peak RSS',
    'server CPU/call',
    'db CPU/call',
  ],
  ['hello world', `${Math.round(helloClosed.perSecond)}`, `${helloClosed.latencyMs.p99} ms`, '', '', '', '', ''],
]
for (const [label, measured] of [
  ['native SQLite', nativeSqlite],
  ['native PostgreSQL', nativePostgres],
  [`native PostgreSQL, ${spreadMerchants} merchants`, nativePostgresSpread],
  ['gateway SQLite', gatewaySqlite],
] as const) {
  const result = measured.result
  if (result === null) {
    figures.push([label, 'not run', '', '', '', '', '', '', ''])
    continue
  }
  figures.push([
    label,
    `${Math.round(result.closed.perSecond)}`,
    `${result.closed.latencyMs.p99} ms`,
    result.open === null ? '' : `${result.open.rate}/s`,
    result.open === null ? '' : `${result.open.latencyMs.p99} ms`,
    result.open === null ? '' : `${result.open.latencyMs.p999} ms`,
    `${mib(result.peakRssBytes)} MiB`,
    result.serverCpuUsPerCall === null ? '' : `${result.serverCpuUsPerCall} µs`,
    result.databaseCpuUsPerCall === null ? '' : `${result.databaseCpuUsPerCall} µs`,
  ])
  if (measured.helloOpen !== null) {
    figures.push([
      `  hello at same rate`,
      '',
      '',
      `${measured.helloOpen.rate}/s`,
      `${measured.helloOpen.latencyMs.p99} ms`,
      `${measured.helloOpen.latencyMs.p999} ms`,
      '',
      '',
      '',
    ])
  }
}
figures.push(['raw SQLite tx, 100/commit', `${Math.round(rawGrouped.perSecond)}`, '', '', '', '', '', '', ''])
figures.push(['raw SQLite tx, 100/commit, savepoint each', `${Math.round(rawSavepoints.perSecond)}`])
figures.push(['raw SQLite tx, 1/commit', `${Math.round(rawSingle.perSecond)}`, '', '', '', '', '', '', ''])
figures.push(['Kysely tx, prepared, group commit', `${Math.round(kysely.perSecond)}`, '', '', '', '', '', '', ''])
figures.push(['Kysely tx, built each call', `${Math.round(kyselyBuilt.perSecond)}`, '', '', '', '', '', '', ''])
figures.push(['RSA-2048 sign, 1 core', `${Math.round(rsa.perSecond)}`, '', '', '', '', '', '', ''])
// Rows name their leading cells only; the rest are blank.
for (const cells of figures) while (cells.length < figures[0]!.length) cells.push('')
const widths = figures[0]!.map((_, i) => Math.max(...figures.map((cells) => cells[i]!.length)))
log('')
for (const cells of figures) log(row(cells, widths))
log('')
const targetWidth = Math.max(...targets.map((target) => target.name.length))
for (const target of targets) {
  const verdict = target.pass === null ? 'N/A ' : target.pass ? 'PASS' : 'FAIL'
  log(`${verdict}  ${target.name.padEnd(targetWidth)}  ${target.measured}`)
}
log(`\nwrote ${path.relative(repoRoot, file)} (${durationS} s)`)
