/**
 * The server compiled as `npm start` runs it: tsc with tsconfig.build.json, into a fresh
 * temporary folder (never dist/, which belongs to `npm run build`), so that a suite can time
 * what production starts rather than tsx compiling TypeScript at start. The folder gets a
 * package.json (`"type": "module"`) and a link to the repository's node_modules, so the built
 * files resolve their packages; dispose() removes it.
 *
 * Building takes tsc's time (about 7 s on an idle 2-core machine), so only full runs use it.
 * If tsc fails (say, someone's change does not type-check yet), `main` is null with the
 * reason, and the caller falls back to tsx instead of failing the suite.
 *
 * @example
 * const built = await buildServer()
 * const server = await startServer({ env, port, ...(built.main === null ? {} : { builtMain: built.main }) })
 * built.dispose()
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { repoRoot } from './server.js'

export interface BuiltServer {
  /** The compiled CLI (src/cli/main.js), or null if the build failed. */
  readonly main: string | null
  /** Why `main` is null: the end of tsc's output. */
  readonly problem: string | null
  readonly buildMs: number
  dispose(): void
}

const buildTimeoutMs = 180_000

export async function buildServer(): Promise<BuiltServer> {
  const started = performance.now()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-build-'))
  const modules = path.join(dir, 'node_modules')
  const dispose = () => {
    fs.rmSync(modules, { force: true })
    fs.rmSync(dir, { recursive: true, force: true })
  }
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n')
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), modules, 'dir')
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
  const args = ['-p', 'tsconfig.build.json', '--outDir', dir, '--tsBuildInfoFile', path.join(dir, '.tsbuildinfo')]
  const child = spawn(process.execPath, [tsc, ...args, '--sourceMap', 'false'], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000)))
  child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000)))
  const timer = setTimeout(() => child.kill('SIGKILL'), buildTimeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)))
  clearTimeout(timer)
  const main = path.join(dir, 'src', 'cli', 'main.js')
  const buildMs = Math.round(performance.now() - started)
  if (code !== 0 || !fs.existsSync(main)) {
    return { main: null, problem: `tsc exited with ${code}: ${output.trim()}`, buildMs, dispose }
  }
  return { main, problem: null, buildMs, dispose }
}
