/**
 * Assembles a running platform from a config: storage, capability registry, migrations,
 * platform keys, the operator account, the HTTP app and the housekeeping timer. The CLI's
 * `serve` and the tests both go through here, so they run the same code.
 */
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { capabilities as defaultCapabilities } from '../capabilities/index.js'
import type { CapabilityModule } from '../capabilities/contract.js'
import type { PaymentServices } from '../capabilities/payment/index.js'
import { loadRegistry, type Registry } from '../capabilities/registry.js'
import { ConfigError, type Config } from '../config.js'
import { assert } from '../assert.js'
import { createGovernancePolicySource, governanceJobs } from '../governance/index.js'
import { alipayNotificationFormat } from '../gateway/alipay/index.js'
import { authorizationTokenResolver, purgeAuthorizationCodes } from '../platform/authorization/index.js'
import { bootstrapOperator } from '../platform/identity/bootstrap.js'
import { systemClock, type Clock } from '../platform/ids.js'
import {
  startNotificationWorker,
  type NotificationWorker,
  type NotificationWorkerSettings,
} from '../platform/notifications/worker.js'
import type { PolicySource } from '../platform/policy/policy-service.js'
import {
  ensurePlatformKeys,
  holdsSealedKeys,
  loadPlatformKeys,
  type PlatformKey,
} from '../platform/signing/platform-keys.js'
import { keyFileExposure, readKeyFile, resolveSealingKey, type SealingKey } from '../platform/signing/sealing.js'
import type { AppEnvironment } from '../storage/tables.js'
import { openStorage, storageTarget, type Storage, type StorageTarget } from '../storage/database.js'
import { migrateToLatest } from '../storage/migrate.js'
import { deleteExpired } from '../storage/expiry.js'
import { buildApp } from './app.js'
import { startJobs, type JobRunner } from './jobs.js'
import type { AppAuthTokenResolver } from './authenticate.js'

export interface PlatformOptions {
  readonly target?: StorageTarget
  readonly capabilities?: readonly CapabilityModule<any>[]
  readonly clock?: Clock
  readonly logger?: boolean | { level: string }
  readonly appAuthTokenResolver?: AppAuthTokenResolver | null
  /**
   * Where enacted parameter values come from: governance's enacted policy versions unless
   * given; an explicit null means declared defaults only.
   */
  readonly policySource?: PolicySource | null
  /** Receives the operator's one-time login on the very first start. */
  readonly onOperatorCreated?: (login: { email: string; password: string }) => void
  /**
   * Background workers to run in this process. Off unless asked for: the CLI's `serve` asks
   * for them, tests ask only when they exercise them. `true` takes the defaults.
   */
  readonly workers?: {
    readonly notifications?: boolean | NotificationWorkerSettings
    /** The capabilities' recurring jobs (expiring trades, settlement). */
    readonly jobs?: boolean
  }
}

export interface Platform {
  readonly app: FastifyInstance
  readonly storage: Storage
  readonly registry: Registry
  readonly config: Config
  /** The platform's own key pairs, opened from their sealed rows at start (tests sign with them too). */
  readonly platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>
  /** The workers this process runs; null where not started. */
  readonly workers: { readonly notifications: NotificationWorker | null; readonly jobs: JobRunner }
  /** Deletes expired nonces, idempotency records and sessions. */
  housekeep(): Promise<void>
  close(): Promise<void>
}

/** Opens storage, runs migrations and creates what the first start needs. */
export async function preparePlatform(config: Config, options: PlatformOptions & { readonly keys?: boolean } = {}) {
  const capabilities = options.capabilities ?? defaultCapabilities
  const policySource = options.policySource === undefined ? createGovernancePolicySource() : options.policySource
  const registry = loadRegistry(capabilities, config, policySource)
  const target = options.target ?? storageTarget(config)
  // `keys: false` (migrate, the verify commands) reads, makes and seals no platform key: a
  // one-off job must never seal the keys under a key file that leaves with its container.
  const keys = options.keys ?? true
  if (keys) checkSecretKeySource(config, target)
  const storage = await openStorage(target)
  let sealingKey: SealingKey | null = null
  try {
    await migrateToLatest(storage.db, registry.modules, storage.dialect)
    const now = (options.clock ?? systemClock).now()
    if (keys) {
      // A missing key file is made only for a database without sealed keys (ADR 0018).
      sealingKey = resolveSealingKey(config.secretKey, { mayMake: !(await holdsSealedKeys(storage.db)) })
      await ensurePlatformKeys(storage.db, now, sealingKey)
    }
    const login = await bootstrapOperator(storage.db, config.operatorEmail, now)
    if (login !== null) options.onOperatorCreated?.(login)
  } catch (error) {
    await storage.close()
    throw error
  }
  return { registry, storage, sealingKey }
}

/**
 * Before the database is touched: a malformed key file stops the start, and so does PostgreSQL
 * with the default key file, which each host would make for itself — every process sharing a
 * database must be given the same key (`BASEPLATE_SECRET_KEY`, or a file it names).
 */
function checkSecretKeySource(config: Config, target: StorageTarget): void {
  const source = config.secretKey
  if (source.kind !== 'file') return
  if (target.kind === 'postgres' && !source.named) {
    throw new ConfigError([
      'with DATABASE_URL, set BASEPLATE_SECRET_KEY (the same on every process that shares the database) ' +
        'or BASEPLATE_SECRET_KEY_FILE: a key file each host made for itself would lock the others out',
    ])
  }
  readKeyFile(source.path)
}

export async function openPlatform(config: Config, options: PlatformOptions = {}): Promise<Platform> {
  const { registry, storage, sealingKey } = await preparePlatform(config, { ...options, keys: true })
  assert(sealingKey !== null, 'a platform that serves has its sealing key')
  const clock = options.clock ?? systemClock
  let platformKeys: Awaited<ReturnType<typeof loadPlatformKeys>>
  let app: Awaited<ReturnType<typeof buildApp>>
  try {
    platformKeys = await loadPlatformKeys(storage.db, sealingKey)
    app = await buildApp({
      config,
      storage,
      registry,
      platformKeys,
      clock,
      // An explicit null (no resolver: every app auth token refused) overrides the default too.
      appAuthTokenResolver:
        options.appAuthTokenResolver === undefined ? authorizationTokenResolver : options.appAuthTokenResolver,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    })
  } catch (error) {
    // The database (and its checkpoint thread) must not outlive a platform that never started.
    await storage.close()
    throw error
  }
  const exposure = keyFileExposure(config.secretKey)
  if (exposure !== null) app.log.warn(exposure)
  const notificationSettings = options.workers?.notifications ?? false
  const notifications =
    notificationSettings === false
      ? null
      : startNotificationWorker({
          ...(notificationSettings === true ? {} : notificationSettings),
          storage,
          platformKeys,
          clock,
          // Alipay-format notifications ride the same worker as native webhooks.
          formats: registry.modules.some((module) => module.id === 'payment')
            ? [
                alipayNotificationFormat({
                  storage,
                  payment: registry.service<PaymentServices>('payment'),
                  platformKeys,
                  settings: config.alipay,
                }),
              ]
            : [],
          onError: (error) => app.log.error({ err: error }, 'notification worker step failed'),
        })
  // Without timers the runner still exists, so tests and the CLI can run the jobs by hand.
  const jobs = startJobs({
    jobs: [...registry.jobs, ...governanceJobs(registry)],
    storage,
    clock,
    timers: options.workers?.jobs === true,
    onError: (job, error) => app.log.error({ err: error, job }, 'job failed'),
  })
  return {
    app,
    storage,
    registry,
    config,
    platformKeys,
    workers: { notifications, jobs },
    housekeep: () => housekeep(storage.db, clock.now()),
    async close() {
      await jobs.stop()
      await notifications?.stop()
      await app.close()
      await storage.close()
    },
  }
}

/**
 * The tables whose rows housekeeping deletes once `expires_at` has passed (authorisation codes
 * go later, by `purgeAuthorizationCodes`). Each has an index led by `expires_at`, so a run reads
 * only the rows it deletes (test/housekeeping.test.ts checks the indexes).
 */
export const expiringTables = ['request_nonces', 'idempotency_records', 'sessions'] as const

/** Deletes expired nonces, idempotency records, sessions and old authorisation codes, in batches. */
export async function housekeep(db: Kysely<any>, now: number): Promise<void> {
  for (const table of expiringTables) await deleteExpired(db, table, now)
  await purgeAuthorizationCodes(db, now)
}
