/**
 * Measures what RSA response signing costs the v2 gateway, so that the choice of
 * `BASEPLATE_ALIPAY_SIGNING_THREADS` rests on numbers (docs/guides/alipay-compatibility.md
 * records them). Run it on an otherwise idle machine:
 *
 *     node --import tsx src/gateway/alipay/signing-bench.ts [seconds per run, default 8] [rounds, default 3]
 *
 * Each run opens a fresh SQLite platform, makes a sandbox and one paid trade, mounts only the
 * gateway, and has a load thread send the same pre-signed `alipay.trade.query` (and, in a
 * second series, `alipay.trade.precreate` of new orders, cycling through 4,000) over
 * keep-alive connections for the duration. Runs: a signer that does no RSA work (the
 * ceiling), inline signing, and pools of one and two threads, interleaved over the rounds so
 * that a noisy neighbour hurts them alike; the medians are printed. The load thread runs on
 * the same cores, as a client on the same box would.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import Fastify from 'fastify'
import type { PaymentServices } from '../../capabilities/payment/index.js'
import { createSandbox } from '../../cli/sandbox.js'
import { parseConfig } from '../../config.js'
import { authorizationTokenResolver } from '../../platform/authorization/index.js'
import { systemClock } from '../../platform/ids.js'
import { assert } from '../../assert.js'
import { loadPlatformKeys } from '../../platform/signing/platform-keys.js'
import { preparePlatform } from '../../server/platform.js'
import { registerAlipayGateway } from './gateway.js'
import { formatTime } from './params.js'
import { v2SigningString } from './protocol.js'
import { createRsaSigner, type RsaSigner } from './signer.js'

const concurrency = 16
const warmupMs = 1_000

// The load thread: plain http with keep-alive; each request is a prepared body, so the client
// spends no RSA time of its own. It reports how many answers came back with code 10000.
const loadSource = `
const http = require('node:http')
const { parentPort, workerData } = require('node:worker_threads')
const { url, bodies, concurrency, warmupMs, durationMs } = workerData
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
let ok = 0, failed = 0, counting = false, stop = false, next = 0
const target = new URL(url)
function once() {
  return new Promise((resolve) => {
    const body = bodies[next++ % bodies.length]
    const headers = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }
    const { hostname, port, pathname: path } = target
    const options = { hostname, port, path, method: 'POST', agent, headers }
    const request = http.request(options, (response) => {
      let text = ''
      response.on('data', (chunk) => { text += chunk })
      response.on('end', () => {
        if (counting) { if (text.includes('"code":"10000"')) ok++; else failed++ }
        resolve()
      })
    })
    request.on('error', () => { if (counting) failed++; resolve() })
    request.end(body)
  })
}
async function loop() { while (!stop) await once() }
setTimeout(() => { counting = true }, warmupMs)
setTimeout(() => { stop = true }, warmupMs + durationMs)
Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
  parentPort.postMessage({ ok, failed })
  agent.destroy()
})
`

interface Run {
  readonly name: string
  readonly signer: (keys: Awaited<ReturnType<typeof loadPlatformKeys>>) => RsaSigner
}

const fixedSignature = crypto.randomBytes(256).toString('base64')
const runs: readonly Run[] = [
  { name: 'no RSA (ceiling)', signer: () => ({ sign: async () => fixedSignature, close: async () => {} }) },
  { name: 'inline (threads 0)', signer: (keys) => createRsaSigner(keys, { threads: 0 }) },
  { name: 'pool, 1 thread', signer: (keys) => createRsaSigner(keys, { threads: 1 }) },
  { name: 'pool, 2 threads', signer: (keys) => createRsaSigner(keys, { threads: 2 }) },
]

function signedBody(params: Record<string, string>, privateKey: string): string {
  const map = new Map(Object.entries(params))
  const sign = crypto.createSign('RSA-SHA256').update(v2SigningString(map, false), 'utf8').sign(privateKey, 'base64')
  return new URLSearchParams({ ...params, sign }).toString()
}

async function measure(
  run: Run,
  method: 'query' | 'precreate',
  durationMs: number,
): Promise<{ perSecond: number; busyMsPerAnswer: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-bench-'))
  const config = parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_DATA_DIR: dir })
  const { registry, storage, sealingKey } = await preparePlatform(config)
  assert(sealingKey !== null, 'the platform keys were prepared')
  const keys = await loadPlatformKeys(storage.db, sealingKey)
  const payment = registry.service<PaymentServices>('payment')
  const sandbox = await createSandbox(storage.db, registry, config, Date.now())
  const signer = run.signer(keys)
  const app = Fastify({ logger: false })
  await registerAlipayGateway(app, {
    config,
    storage,
    payment,
    platformKeys: keys,
    clock: systemClock,
    resolver: authorizationTokenResolver,
    signer,
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const common = {
    app_id: sandbox.appId,
    charset: 'utf-8',
    version: '1.0',
    sign_type: 'RSA2',
    timestamp: formatTime(Date.now(), config.alipay.timezoneOffsetMinutes),
    app_auth_token: sandbox.appAuthToken,
  }
  const pay = {
    ...common,
    method: 'alipay.trade.pay',
    biz_content: JSON.stringify({
      out_trade_no: 'BENCH-PAID',
      total_amount: '12.30',
      subject: 'bench',
      auth_code: sandbox.buyer.paymentCode,
    }),
  }
  await fetch(`${address}/gateway.do`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: signedBody(pay, sandbox.appPrivateKey),
  })
  const bodies =
    method === 'query'
      ? [
          signedBody(
            { ...common, method: 'alipay.trade.query', biz_content: '{"out_trade_no":"BENCH-PAID"}' },
            sandbox.appPrivateKey,
          ),
        ]
      : Array.from({ length: 4_000 }, (_, index) =>
          signedBody(
            {
              ...common,
              method: 'alipay.trade.precreate',
              biz_content: JSON.stringify({
                out_trade_no: `BENCH-${index}`,
                total_amount: '1.00',
                subject: '压测 bench',
              }),
            },
            sandbox.appPrivateKey,
          ),
        )
  // Main-thread busy time per answer: what bounds the throughput of one process, and far
  // less sensitive to a noisy neighbour than the throughput itself.
  let busyFrom: ReturnType<typeof performance.eventLoopUtilization> | undefined
  let busy: ReturnType<typeof performance.eventLoopUtilization> | undefined
  setTimeout(() => {
    busyFrom = performance.eventLoopUtilization()
  }, warmupMs)
  setTimeout(() => {
    busy = performance.eventLoopUtilization(busyFrom)
  }, warmupMs + durationMs)
  const result = await new Promise<{ ok: number; failed: number }>((resolve, reject) => {
    const worker = new Worker(loadSource, {
      eval: true,
      workerData: { url: `${address}/gateway.do`, bodies, concurrency, warmupMs, durationMs },
    })
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  await app.close()
  await signer.close()
  await storage.close()
  fs.rmSync(dir, { recursive: true, force: true })
  if (result.failed > 0) throw new Error(`${run.name}: ${result.failed} requests failed`)
  return { perSecond: result.ok / (durationMs / 1000), busyMsPerAnswer: (busy?.active ?? 0) / result.ok }
}

const seconds = Number(process.argv[2] ?? '8')
const rounds = Number(process.argv[3] ?? '3')
const results = new Map<string, number[]>()
const busyResults = new Map<string, number[]>()
for (let round = 1; round <= rounds; round += 1) {
  for (const method of ['query', 'precreate'] as const) {
    for (const run of runs) {
      const label = `alipay.trade.${method.padEnd(9)} ${run.name.padEnd(20)}`
      const measured = await measure(run, method, seconds * 1000)
      const perSecond = Math.round(measured.perSecond)
      const busyUs = Math.round(measured.busyMsPerAnswer * 1000)
      results.set(label, [...(results.get(label) ?? []), perSecond])
      busyResults.set(label, [...(busyResults.get(label) ?? []), busyUs])
      const load = os.loadavg()[0]!.toString().slice(0, 4)
      process.stdout.write(
        `round ${round}: ${label} ${perSecond} req/s, ${busyUs} µs main thread/answer (load ${load})\n`,
      )
    }
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
process.stdout.write(
  `\ncores: ${os.availableParallelism()}, node ${process.version}, ${rounds} x ${seconds} s per run, ` +
    `${concurrency} connections; median (min-max)\n`,
)
for (const [label, values] of results) {
  const busy = busyResults.get(label)!
  const range = `${Math.min(...values)}-${Math.max(...values)}`
  const busyRange = `${Math.min(...busy)}-${Math.max(...busy)}`
  process.stdout.write(
    `${label} ${String(median(values)).padStart(6)} req/s (${range}), ` +
      `${String(median(busy)).padStart(5)} µs main thread/answer (${busyRange})\n`,
  )
}
