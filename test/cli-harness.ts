import path from 'node:path'
import { createCli } from '../src/cli/commands.js'
import { parseConfig } from '../src/config.js'
import { testConfig, testSecretKey, type TestTarget } from './harness.js'

/** Runs the CLI in-process against a database, collecting what it prints and its exit code. */
export async function runCli(args: string[], env: Record<string, string>) {
  let out = ''
  let err = ''
  const previousExitCode = process.exitCode
  process.exitCode = undefined
  const cli = createCli({
    out: (text) => {
      out += text
    },
    err: (text) => {
      err += text
    },
    config: (overrides) => parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', ...env, ...overrides }),
    waitForStop: async () => undefined,
  })
  let thrown: unknown
  try {
    await cli.parseAsync(['node', 'baseplate', ...args])
  } catch (error) {
    thrown = error
  }
  const exitCode = process.exitCode ?? 0
  process.exitCode = previousExitCode
  return { out, err, exitCode, thrown }
}

/** The environment that points the CLI at a test database (a data dir, or a URL with a schema). */
export function cliEnvironment(target: TestTarget['target']): Record<string, string> {
  if (target.kind === 'sqlite')
    return { BASEPLATE_DATA_DIR: path.dirname(target.file), BASEPLATE_SECRET_KEY: testSecretKey }
  const url = new URL(testConfig.testDatabaseUrl)
  url.searchParams.set('options', `-c search_path=${target.schema}`)
  return { DATABASE_URL: url.toString(), BASEPLATE_SECRET_KEY: testSecretKey }
}
