/**
 * Signs requests before a measurement, on worker threads, so the load generator spends no
 * CPU on RSA during it (the generator shares the machine's two cores with the server). Each
 * request carries its own nonce and a timestamp of "now": use them within the signature
 * window (300 s by default).
 *
 * @example
 * const requests = await presign(world, { count: 10_000, prefix: 'BENCH-A', threads: 2 })
 */
import crypto from 'node:crypto'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { assert } from '../../src/assert.js'
import { signedPay, type PreparedRequest } from '../../test/reliability/support/http.js'
import { gatewayPay } from './gateway-request.js'
import type { World } from '../../test/reliability/support/world.js'

type SignedWorld = Omit<World, 'privateKey' | 'platformPublicKey'>

interface Job {
  /** Request `index` goes to `worlds[index % worlds.length]`; all sign with one app key. */
  readonly worlds: readonly SignedWorld[]
  readonly privateKeyPem: string
  readonly prefix: string
  readonly from: number
  readonly to: number
  readonly amountFen: number
  /** native: POST /v1/trades/pay; gateway: alipay.trade.pay through /gateway.do (v2, RSA2). */
  readonly kind: 'native' | 'gateway'
}

function signRange(job: Job): PreparedRequest[] {
  const privateKey = crypto.createPrivateKey(job.privateKeyPem)
  const platformPublicKey = crypto.createPublicKey(
    crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }),
  )
  const worlds: World[] = job.worlds.map((world) => ({ ...world, privateKey, platformPublicKey }))
  const out: PreparedRequest[] = []
  for (let index = job.from; index < job.to; index += 1) {
    const world = worlds[index % worlds.length]!
    const outTradeNo = `${job.prefix}-${index}`
    out.push(
      job.kind === 'native'
        ? signedPay(world, outTradeNo, job.amountFen)
        : gatewayPay(world, outTradeNo, job.amountFen),
    )
  }
  return out
}

if (!isMainThread && parentPort !== null) parentPort.postMessage(signRange(workerData as Job))

// Node 20 does not apply `--import tsx` to a worker's own entry file: register tsx first.
const workerEntry = new URL(
  `data:text/javascript,${encodeURIComponent(
    `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); ` +
      `await import(${JSON.stringify(import.meta.url)})`,
  )}`,
)

/** Signs `count` requests; given several worlds (one app, many merchants), they take turns. */
export async function presign(
  worlds: World | readonly World[],
  options: { count: number; prefix: string; threads?: number; amountFen?: number; kind?: 'native' | 'gateway' },
): Promise<PreparedRequest[]> {
  const threads = Math.max(1, options.threads ?? 2)
  const all = Array.isArray(worlds) ? (worlds as readonly World[]) : [worlds as World]
  assert(all.length > 0, 'presign needs a world to sign for')
  const privateKey = all[0]!.privateKey
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const signedWorlds = all.map(({ privateKey: key, platformPublicKey: _unused, ...rest }) => {
    assert(key === privateKey, 'the worlds of one run share their app key')
    return rest
  })
  const per = Math.ceil(options.count / threads)
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, thread) => {
      const job: Job = {
        worlds: signedWorlds,
        privateKeyPem,
        prefix: options.prefix,
        from: thread * per,
        to: Math.min(options.count, (thread + 1) * per),
        amountFen: options.amountFen ?? 1,
        kind: options.kind ?? 'native',
      }
      return new Promise<PreparedRequest[]>((resolve, reject) => {
        const worker = new Worker(workerEntry, { workerData: job })
        worker.once('message', resolve)
        worker.once('error', reject)
      })
    }),
  )
  return parts.flat()
}
