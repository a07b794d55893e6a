/**
 * Two processes starting at once on a new database — two replicas rolled out together, or a
 * `migrate` job beside the first `serve` — both come up: migrations run once (on SQLite under
 * the write lock the migration holds from its first statement, src/storage/migrate.ts), the
 * platform keys are made once, and neither process fails.
 */
import { spawn } from 'node:child_process'
import { afterEach, expect, it } from 'vitest'
import { cliEnvironment } from './cli-harness.js'
import { forEachDialect, freshTarget, type TestTarget } from './harness.js'
import { repoRoot } from './reliability/support/server.js'

/**
 * A CLI process, loaded and waiting: `go()` starts the command, so that several start within a
 * millisecond of each other rather than a second apart as their module loading decides.
 */
async function loadedCli(args: readonly string[], env: Record<string, string>) {
  const script =
    "const { createCli } = await import('./src/cli/commands.ts');" +
    "process.stdout.write('ready\\n');" +
    "process.stdin.once('data', async () => {" +
    '  const cli = createCli({ out: () => {}, err: (text) => process.stderr.write(text) });' +
    "  try { await cli.parseAsync(['node', 'baseplate', ...process.argv.slice(1)]) }" +
    '  catch (error) { process.stderr.write(String(error)); process.exitCode = 1 }' +
    '  process.stdin.destroy() })'
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ...args], {
    cwd: repoRoot,
    env: { NODE_ENV: 'test', BASEPLATE_LOG_LEVEL: 'silent', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8')
  })
  const exited = new Promise<{ code: number | null; err: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, err })),
  )
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve())
    void exited.then(({ err: message }) => reject(new Error(`the CLI exited before it was ready: ${message}`)))
  })
  return {
    go: () => child.stdin.write('go\n'),
    exited,
  }
}

forEachDialect('concurrent first starts', (dialect) => {
  let target: TestTarget | undefined
  afterEach(async () => {
    await target?.dispose()
    target = undefined
  })

  it('both succeed on a new database', async () => {
    target = await freshTarget(dialect)
    const env = cliEnvironment(target.target)
    const processes = await Promise.all([
      loadedCli(['migrate'], env),
      loadedCli(['sandbox', '--json'], env),
      loadedCli(['migrate'], env),
    ])
    for (const process of processes) process.go()
    const outcomes = await Promise.all(processes.map((process) => process.exited))
    expect(outcomes.map((outcome) => `${outcome.code} ${outcome.err}`)).toEqual(['0 ', '0 ', '0 '])
  }, 60_000)
})
