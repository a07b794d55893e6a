/**
 * WAL checkpoints mostly off the event loop. SQLite copies the write-ahead log back into the
 * database file every `wal_autocheckpoint` pages, inside whichever COMMIT crosses that size,
 * and that COMMIT also fsyncs the database file: every few hundred milliseconds under load one
 * COMMIT held the event loop for 5-20 ms, and every request in flight waited (the open-loop
 * p99). Here a worker thread with its own connection runs a PASSIVE checkpoint every
 * {@link CheckpointerOptions.intervalMs}: it copies pages and fsyncs the database file while
 * the event loop goes on. The request connection keeps its own automatic checkpoint, which
 * then finds almost everything copied already; it is what lets the log restart from its
 * beginning (a passive checkpoint alone never catches up with a log written continuously).
 *
 * Durability does not change: each commit is fsynced to the WAL before it returns
 * (`synchronous=FULL` on the request connection); a checkpoint only moves committed pages, and
 * it never blocks the writer.
 *
 * @example
 * const checkpointer = startCheckpointer('data/baseplate.db', { intervalMs: 50 })
 * await checkpointer.close()
 */
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { assert } from '../assert.js'

export interface CheckpointerOptions {
  /** Time between two passive checkpoints. */
  readonly intervalMs: number
}

export interface Checkpointer {
  /** Passive checkpoints so far that copied pages, and how many pages (diagnostics, tests). */
  stats(): Promise<{ readonly checkpoints: number; readonly pagesCopied: number }>
  close(): Promise<void>
}

// Plain CommonJS evaluated from this string, so it runs the same from the TypeScript sources
// (tests) and the compiled build, with no file to resolve.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.file)
db.pragma('busy_timeout = 1000')
db.pragma('synchronous = FULL')
let checkpoints = 0
let pagesCopied = 0
let copiedBefore = 0
const timer = setInterval(() => {
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)')
    // checkpointed counts every frame backfilled in this log; it starts again when the log does.
    const copied = result.checkpointed >= copiedBefore ? result.checkpointed - copiedBefore : result.checkpointed
    copiedBefore = result.checkpointed
    if (copied > 0) {
      checkpoints += 1
      pagesCopied += copied
    }
  } catch {
    // Busy, or the file is going away: the next tick tries again.
  }
}, workerData.intervalMs)
parentPort.on('message', (message) => {
  if (message.kind === 'stats') parentPort.postMessage({ id: message.id, stats: { checkpoints, pagesCopied } })
  if (message.kind === 'close') {
    clearInterval(timer)
    db.close()
    parentPort.close()
  }
})
`

export function startCheckpointer(file: string, options: CheckpointerOptions): Checkpointer {
  assert(Number.isInteger(options.intervalMs) && options.intervalMs >= 1, 'intervalMs is a whole number ≥ 1')
  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  // No inherited Node options: the thread needs none, and some (--cpu-prof) kept it from exiting.
  const worker = new Worker(workerSource, {
    eval: true,
    execArgv: [],
    workerData: { file, driver, intervalMs: options.intervalMs },
  })
  // A checkpointer must not keep alive a process that is otherwise done.
  worker.unref()
  let exited = false
  let closing = false
  const exit = new Promise<void>((resolve) => worker.once('exit', () => resolve())).then(() => {
    exited = true
  })
  // A failed worker leaves checkpoints to the request connection, as SQLite does by default;
  // say so once, since the event loop then pays for them again.
  worker.once('error', (error) => {
    process.emitWarning(`WAL checkpoints are back on the event loop: ${String(error)}`, 'BaseplateWarning')
  })
  const none = { checkpoints: 0, pagesCopied: 0 }
  let asked = 0
  return {
    stats: () =>
      new Promise((resolve) => {
        if (exited) return resolve(none)
        asked += 1
        const id = asked
        // Waiting on an unreferenced thread would not keep the process alive for the answer.
        worker.ref()
        const done = (stats: { checkpoints: number; pagesCopied: number }) => {
          worker.off('message', onMessage)
          worker.off('exit', onExit)
          if (!closing) worker.unref()
          resolve(stats)
        }
        const onMessage = (message: { id: number; stats: { checkpoints: number; pagesCopied: number } }) => {
          if (message.id === id) done(message.stats)
        }
        const onExit = () => done(none)
        worker.on('message', onMessage)
        worker.once('exit', onExit)
        worker.postMessage({ kind: 'stats', id })
      }),
    async close() {
      if (exited) return
      closing = true
      worker.ref()
      worker.postMessage({ kind: 'close' })
      await exit
    },
  }
}
