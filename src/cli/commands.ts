/**
 * The `baseplate` command line: serve, migrate, keys generate, audit verify, ledger verify.
 * Built as a function of its output streams so tests run it in-process.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import { verifyLedger } from '../capabilities/ledger/index.js'
import { loadConfig, type Config } from '../config.js'
import { verifyAuditLog } from '../platform/audit/audit-log.js'
import { acceleratedClock, acceleratedPollIntervalMs } from '../platform/clock.js'
import { pollIntervalMsDefault } from '../platform/notifications/worker.js'
import { openPlatform, preparePlatform } from '../server/platform.js'
import { startHousekeeping } from '../storage/expiry.js'
import { createSandbox } from './sandbox.js'

export interface CliIo {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  /** Configuration for this run; the real CLI reads the environment. */
  readonly config?: (overrides: Record<string, string | undefined>) => Config
  /** Lets tests stop `serve`; the real CLI waits for SIGINT or SIGTERM. */
  readonly waitForStop?: () => Promise<void>
}

/**
 * Housekeeping runs often, so that each run deletes a few seconds' worth of expired rows (at a
 * steady 650 calls/s about 3,000 nonces) rather than a minute's burst: the 30-minute soak
 * measured p99 at 520-860 ms once the first nonces expired, against 50-80 ms before.
 */
const housekeepingIntervalMs = 5_000

function parsePort(value: string): string {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError('must be a port number')
  return value
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}

export function createCli(io: CliIo): Command {
  const config = io.config ?? ((overrides) => loadConfig(overrides))
  const program = new Command('baseplate')
    .description('Baseplate: an open platform in a box')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
  program
    .command('serve')
    .description('Run migrations, then serve the API, /docs and /openapi.json')
    .option('-p, --port <port>', 'port to listen on (default $PORT or 8080)', parsePort)
    .option('--host <host>', 'interface to listen on (default 127.0.0.1)')
    .action(async (options: { port?: string; host?: string }) => {
      const overrides: Record<string, string | undefined> = {}
      if (options.port !== undefined) Object.assign(overrides, { PORT: options.port, BASEPLATE_PORT: undefined })
      if (options.host !== undefined) overrides.BASEPLATE_HOST = options.host
      const settings = config(overrides)
      // Tests only (NODE_ENV=test): a clock running `speedup` times faster, and a worker that
      // polls as often in clock time as it would at normal speed (src/platform/clock.ts).
      const { speedup, originMs } = settings.testClock
      const fast = speedup === 1 ? null : acceleratedClock({ speedup, originMs: originMs ?? Date.now() })
      const platform = await openPlatform(settings, {
        logger: { level: settings.logLevel },
        ...(fast === null ? {} : { clock: fast }),
        workers: {
          notifications:
            fast === null ? true : { pollIntervalMs: acceleratedPollIntervalMs(speedup, pollIntervalMsDefault) },
          jobs: true,
        },
        onOperatorCreated: (login) =>
          io.out(
            `\nOperator account created. Log in once with the password below and change it:\n` +
              `  email:    ${login.email}\n  password: ${login.password}\n` +
              `This password is shown only now and is stored only as a scrypt hash.\n\n`,
          ),
      })
      const housekeeping = startHousekeeping(
        () => platform.housekeep(),
        housekeepingIntervalMs,
        (error) => platform.app.log.error({ err: error }, 'housekeeping failed'),
      )
      const address = await platform.app.listen({ port: settings.port, host: settings.host })
      io.out(`Baseplate is listening on ${address} (${platform.storage.dialect}); docs at ${address}/docs\n`)
      await (io.waitForStop ?? waitForSignal)()
      await housekeeping.stop()
      await platform.close()
    })
  program
    .command('migrate')
    .description('Apply pending database migrations and exit')
    .action(async () => {
      const { storage } = await preparePlatform(config({}), {
        keys: false,
        onOperatorCreated: (login) =>
          io.out(`Operator account created: ${login.email} / ${login.password} (shown once)\n`),
      })
      await storage.close()
      io.out('migrations are up to date\n')
    })
  program
    .command('sandbox')
    .description('Create or reuse a ready sandbox (ISV app, authorised merchant, funded buyer) and print it')
    .option('--json', 'print JSON only (includes the app private key: keep it to yourself)')
    .action(async (options: { json?: boolean }) => {
      const settings = config({})
      const { storage, registry } = await preparePlatform(settings)
      try {
        const sandbox = await createSandbox(storage.db, registry, settings, Date.now())
        if (options.json === true) io.out(`${JSON.stringify(sandbox, null, 2)}\n`)
        else {
          io.out(
            `Sandbox ready at ${sandbox.endpoint}\n  app:      ${sandbox.appId}\n` +
              `  merchant: ${sandbox.merchant.id}\n  buyer:    ${sandbox.buyer.id} ` +
              `(balance ${sandbox.buyer.balance} fen, payment code ${sandbox.buyer.paymentCode})\n` +
              'Run with --json to get the app private key and app auth token.\n',
          )
        }
      } finally {
        await storage.close()
      }
    })
  const keys = program.command('keys').description('Key utilities')
  keys
    .command('generate')
    .description('Generate an app key pair; register the public key, keep the private key to yourself')
    .addOption(new Option('-t, --type <type>', 'key type').choices(['rsa', 'ed25519']).default('rsa'))
    .option(
      '-b, --bits <bits>',
      'RSA modulus length (2048 or more)',
      (value) => {
        if (!/^\d+$/.test(value) || Number(value) < 2048 || Number(value) > 8192) {
          throw new InvalidArgumentError('must be a whole number from 2048 to 8192')
        }
        return Number(value)
      },
      2048,
    )
    .option('-o, --out <dir>', 'write private.pem (mode 0600) and public.pem into this folder instead of printing')
    .action((options: { type: 'rsa' | 'ed25519'; bits: number; out?: string }) => {
      const pair =
        options.type === 'rsa'
          ? crypto.generateKeyPairSync('rsa', { modulusLength: options.bits })
          : crypto.generateKeyPairSync('ed25519')
      const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString()
      if (options.out === undefined) {
        io.out(privatePem + publicPem)
        return
      }
      fs.mkdirSync(options.out, { recursive: true })
      fs.writeFileSync(path.join(options.out, 'private.pem'), privatePem, { mode: 0o600, flag: 'wx' })
      fs.writeFileSync(path.join(options.out, 'public.pem'), publicPem, { flag: 'wx' })
      io.out(`wrote ${path.join(options.out, 'private.pem')} and public.pem\n`)
    })
  const audit = program.command('audit').description('Audit log utilities')
  audit
    .command('verify')
    .description("Recompute the audit log's hash chain; exit 1 on any edited, deleted or cut-off row")
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
      const { storage } = await preparePlatform(config({}), { keys: false })
      try {
        const result = await verifyAuditLog(storage.db)
        if (options.json === true) io.out(`${JSON.stringify(result)}\n`)
        else if (result.ok) io.out(`audit log OK: ${result.entries} entries, chain intact\n`)
        else {
          io.err(`audit log BROKEN: ${result.problems.length} problem(s)\n`)
          for (const problem of result.problems) io.err(`  seq ${problem.seq}: ${problem.problem}\n`)
        }
        if (!result.ok) process.exitCode = 1
      } finally {
        await storage.close()
      }
    })
  const ledger = program.command('ledger').description('Ledger utilities')
  ledger
    .command('verify')
    .description(
      "Recompute every account's totals from its entries and check every posting balances; " + 'exit 1 on any drift',
    )
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
      const { storage } = await preparePlatform(config({}), { keys: false })
      try {
        const result = await verifyLedger(storage.db)
        if (options.json === true) io.out(`${JSON.stringify(result)}\n`)
        else if (result.ok) io.out(`ledger OK: ${result.accounts} accounts, ${result.postings} postings, no drift\n`)
        else {
          io.err(
            `ledger DRIFT: ${result.drift.length} account(s) drifted, ` +
              `${result.unbalancedPostings.length} posting(s) unbalanced\n`,
          )
          for (const { account, stored, recomputed } of result.drift) {
            io.err(
              `  ${account.kind} ${account.ownerId} (${account.environment}): stored debits ${stored.debits} ` +
                `credits ${stored.credits}, entries sum to debits ${recomputed.debits} credits ${recomputed.credits}\n`,
            )
          }
          for (const postingId of result.unbalancedPostings) io.err(`  posting ${postingId}: does not balance\n`)
        }
        if (!result.ok) process.exitCode = 1
      } finally {
        await storage.close()
      }
    })
  return program
}
