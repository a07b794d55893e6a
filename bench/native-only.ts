/**
 * Just the native payment benchmark, for profiling a change:
 * `node --import tsx bench/native-only.ts sqlite|postgres [closed seconds] [open-loop fraction of peak]`;
 * BENCH_PROFILE=1 writes the server's CPU profile to /tmp/prof; BENCH_API=gateway measures
 * `alipay.trade.pay` through the gateway instead; BENCH_MERCHANTS=8 spreads the calls over
 * eight merchants, each with its own buyer.
 */
import { loadConfig } from '../src/config.js'
import { benchNative } from './lib/native.js'

const kind = (process.argv[2] ?? 'sqlite') as 'sqlite' | 'postgres'
const result = await benchNative(kind, {
  closedS: Number(process.argv[3] ?? 6),
  openS: Number(process.argv[4] ?? 0) > 0 ? 8 : 0,
  warmupS: 2,
  openFraction: Number(process.argv[4] ?? 0),
  connections: 50,
  postgresUrl: loadConfig().testDatabaseUrl,
  log: (line) => console.log(line),
  api: process.env.BENCH_API === 'gateway' ? 'gateway' : 'native',
  merchants: merchantsFrom(process.env.BENCH_MERCHANTS ?? '1'),
  ...(process.env.BENCH_PROFILE ? { serverNodeArgs: ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] } : {}),
})
console.log(JSON.stringify({ ...result, closed: result.closed }, null, 2))

function merchantsFrom(text: string): number {
  const merchants = Number(text)
  if (!Number.isInteger(merchants) || merchants < 1)
    throw new Error(`BENCH_MERCHANTS must be an integer ≥ 1, not ${text}`)
  return merchants
}
