/**
 * RSA2 (SHA256withRSA) signing of what the gateway sends, with the platform's RSA key of the
 * environment. An RSA-2048 signature costs about 0.7-0.9 ms of CPU on this project's
 * reference box (two cores), several times what answering a trade query costs otherwise, so
 * signing on the event loop would cap the gateway well below the native API. With
 * `threads > 0` signatures are made on a small pool of worker threads while the main thread
 * keeps serving; docs/guides/alipay-compatibility.md records the measurement.
 *
 * The pool is bounded: at most {@link queuedPerThreadMax} signatures wait per thread. Beyond
 * that the caller signs inline, which slows that request rather than growing a queue without
 * limit (back pressure lands where the load comes from).
 *
 * @example
 * const signer = createRsaSigner(platformKeys, { threads: 1 })
 * const signature = await signer.sign('sandbox', '{"code":"10000","msg":"Success"}')
 * await signer.close()
 */
import crypto from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { assert } from '../../assert.js'
import type { PlatformKey } from '../../platform/signing/platform-keys.js'
import type { AppEnvironment } from '../../storage/tables.js'

export const queuedPerThreadMax = 256

export interface RsaSigner {
  /** Base64 SHA256withRSA signature of the UTF-8 text. */
  sign(environment: AppEnvironment, text: string): Promise<string>
  close(): Promise<void>
}

/** Signs on the calling thread. */
export function signInline(privateKey: crypto.KeyObject, text: string): string {
  return crypto.createSign('RSA-SHA256').update(text, 'utf8').sign(privateKey, 'base64')
}

// The worker is plain CommonJS evaluated from this string, so it runs the same from the
// TypeScript sources (tests) and the compiled build, with no file to resolve.
const workerSource = `
const crypto = require('node:crypto')
const { parentPort, workerData } = require('node:worker_threads')
const keys = new Map()
for (const [environment, pem] of Object.entries(workerData.keys)) keys.set(environment, crypto.createPrivateKey(pem))
parentPort.on('message', ({ id, environment, text }) => {
  try {
    const signature = crypto.createSign('RSA-SHA256').update(text, 'utf8').sign(keys.get(environment), 'base64')
    parentPort.postMessage({ id, signature })
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message || error) })
  }
})
`

interface Pending {
  readonly resolve: (signature: string) => void
  readonly reject: (error: Error) => void
}

interface PoolThread {
  readonly worker: Worker
  readonly pending: Map<number, Pending>
  alive: boolean
}

export function createRsaSigner(
  platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>,
  options: { readonly threads: number },
): RsaSigner {
  assert(Number.isInteger(options.threads) && options.threads >= 0 && options.threads <= 16, 'threads is 0..16')
  const keyOf = (environment: AppEnvironment) => {
    const key = platformKeys.get(environment)
    assert(key !== undefined, `platform key for ${environment} is loaded`)
    return key.rsa
  }
  if (options.threads === 0) {
    return { sign: async (environment, text) => signInline(keyOf(environment).privateKey, text), close: async () => {} }
  }

  const keys = Object.fromEntries([...platformKeys].map(([environment, key]) => [environment, key.rsa.privateKeyPem]))
  let nextId = 1
  let closed = false
  const threads: PoolThread[] = []
  const failAll = (thread: PoolThread, error: Error) => {
    for (const pending of thread.pending.values()) pending.reject(error)
    thread.pending.clear()
  }
  const startThread = (): PoolThread => {
    const worker = new Worker(workerSource, { eval: true, workerData: { keys } })
    // Idle signing threads must not keep a process alive that is otherwise done.
    worker.unref()
    const thread: PoolThread = { worker, pending: new Map(), alive: true }
    worker.on('message', (message: { id: number; signature?: string; error?: string }) => {
      const pending = thread.pending.get(message.id)
      if (pending === undefined) return
      thread.pending.delete(message.id)
      if (message.signature !== undefined) pending.resolve(message.signature)
      else pending.reject(new Error(`signing thread failed: ${message.error ?? 'unknown'}`))
    })
    // A thread that fails leaves the rotation; with none left, signing goes inline.
    worker.on('error', (error) => {
      thread.alive = false
      failAll(thread, error)
    })
    worker.on('exit', () => {
      thread.alive = false
      failAll(thread, new Error('signing thread exited'))
    })
    return thread
  }

  return {
    sign(environment, text) {
      const key = keyOf(environment)
      // Threads start with the first signature: a platform that never serves the gateway
      // (most test platforms, a deployment without Alipay ISVs) never pays for them.
      if (threads.length === 0 && !closed) {
        for (let index = 0; index < options.threads; index += 1) threads.push(startThread())
      }
      // The least busy live thread; ties go to the first.
      let chosen: PoolThread | undefined
      for (const thread of threads) {
        if (thread.alive && (chosen === undefined || thread.pending.size < chosen.pending.size)) chosen = thread
      }
      if (closed || chosen === undefined || chosen.pending.size >= queuedPerThreadMax) {
        return Promise.resolve(signInline(key.privateKey, text))
      }
      const thread = chosen
      const id = nextId
      nextId += 1
      const signed = new Promise<string>((resolve, reject) => {
        thread.pending.set(id, { resolve, reject })
        thread.worker.postMessage({ id, environment, text })
      })
      // A thread that died mid-request costs that request an inline signature, not an error.
      return signed.catch(() => signInline(key.privateKey, text))
    },
    async close() {
      closed = true
      await Promise.all(threads.map((thread) => thread.worker.terminate()))
    },
  }
}
