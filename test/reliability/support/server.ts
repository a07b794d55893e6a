/**
 * A real Baseplate server in a child process, on loopback: the same `baseplate serve` that
 * `npm start` runs (through tsx, so no build step is needed; or compiled, see build.ts), or
 * another entry file. The child gets exactly the environment given and nothing inherited, so
 * a test's settings are all in the test. `kill('SIGKILL')` is the crash of the crash suite.
 *
 * @example
 * const server = await startServer({ env: { BASEPLATE_DATA_DIR: dir }, port: await freePort() })
 * await fetch(`${server.url}/healthz`)
 * await server.kill('SIGKILL')
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

export interface ServerProcess {
  readonly url: string
  readonly port: number
  readonly pid: number
  /** Milliseconds from spawn to the "listening" line. */
  readonly startMs: number
  /** What the child printed so far (the last `outputMaxBytes`, 64 KiB unless given). */
  output(): string
  /** Peak resident memory of the child so far (VmHWM), in bytes; null once it has exited. */
  peakRssBytes(): number | null
  /** Resident memory of the child now (VmRSS), in bytes; null once it has exited. */
  rssBytes(): number | null
  /** Sends the signal and waits for the process to exit. */
  kill(signal: NodeJS.Signals): Promise<void>
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export interface ServerOptions {
  readonly env: Record<string, string>
  /** Fixed port, so a restarted server answers at the same URL. */
  readonly port: number
  /** Node arguments after `--import tsx`; default the CLI's `serve`. */
  readonly entry?: readonly string[]
  readonly startTimeoutMs?: number
  /** Extra Node flags, e.g. `--cpu-prof` to profile the server. */
  readonly nodeArgs?: readonly string[]
  /**
   * The CLI compiled to JavaScript (`buildServer()` in build.ts), run by plain Node as
   * `npm start` runs dist/: no tsx, so no compiling at start. Default: src/cli/main.ts through tsx.
   */
  readonly builtMain?: string
  /** How much of what the child prints is kept for `output()` (the end of it). */
  readonly outputMaxBytes?: number
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const outputMaxDefault = 64 * 1024

// A run that dies (a failed assertion, ^C) must not leave servers behind.
const children = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const main = options.builtMain ?? 'src/cli/main.ts'
  const entry = options.entry ?? [main, 'serve', '--port', String(options.port), '--host', '127.0.0.1']
  const loader = options.builtMain === undefined ? ['--import', 'tsx'] : []
  const started = performance.now()
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, ...entry], {
    cwd: repoRoot,
    env: { NODE_ENV: 'test', BASEPLATE_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  let output = ''
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-(options.outputMaxBytes ?? outputMaxDefault))
  }
  child.stdout!.on('data', append)
  child.stderr!.on('data', append)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  let running = true
  void exited.then(() => {
    running = false
    children.delete(child)
  })
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000)
  const url = `http://127.0.0.1:${options.port}`
  for (;;) {
    if (/listening on http/i.test(output)) break
    if (!running) throw new Error(`server exited before listening:\n${output}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`server not listening after ${options.startTimeoutMs ?? 30_000} ms:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const startMs = performance.now() - started
  /** A memory figure of the child from /proc (`VmRSS`, `VmHWM`), in bytes. */
  const memoryBytes = (field: 'VmRSS' | 'VmHWM'): number | null => {
    if (!running) return null
    try {
      const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))
      return match === null ? null : Number(match[1]) * 1024
    } catch {
      return null
    }
  }
  const kill = async (signal: NodeJS.Signals) => {
    if (running) child.kill(signal)
    await exited
  }
  return {
    url,
    port: options.port,
    pid: child.pid!,
    startMs,
    output: () => output,
    peakRssBytes: () => memoryBytes('VmHWM'),
    rssBytes: () => memoryBytes('VmRSS'),
    kill,
    async stop(graceMs = 10_000) {
      if (!running) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(timer)
    },
    exited,
  }
}
