/**
 * The only module that reads the environment. {@link parseConfig} validates every variable,
 * reports every problem at once and returns a frozen object; the rest of the code receives
 * that object explicitly. An unknown `BASEPLATE_*` variable is an error that names it, so a
 * typo (`BASEPLATE_POTR`) never silently falls back to a default.
 *
 * @example
 * const config = parseConfig({ PORT: '9000' })
 * config.port // 9000
 */
import net from 'node:net'
import path from 'node:path'
import util from 'node:util'

export type TestPostgresMode = 'auto' | 'required' | 'skip'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface Config {
  readonly host: string
  readonly port: number
  /** Where the embedded SQLite database lives when `databaseUrl` is not set. */
  readonly dataDir: string
  /** PostgreSQL connection string; when null, the platform runs on embedded SQLite. */
  readonly databaseUrl: string | null
  readonly logLevel: LogLevel
  /** Public base URL used in links the platform prints (defaults to http://host:port). */
  readonly publicUrl: string
  readonly operatorEmail: string
  /** How far a signed request's timestamp may be from the server clock, either way. */
  readonly signatureWindowS: number
  readonly sessionTtlS: number
  readonly idempotencyTtlS: number
  /** An in-progress idempotency reservation older than this is considered abandoned. */
  readonly idempotencyLockS: number
  readonly bodyLimitBytes: number
  /** Admission control under overload and per-app rate limits (src/server/admission.ts). */
  readonly admission: AdmissionConfig
  readonly testPostgres: TestPostgresMode
  readonly testDatabaseUrl: string
  /** The Alipay-compatible gateway (src/gateway/alipay). */
  readonly alipay: AlipayGatewayConfig
  /**
   * Tests only, and refused unless NODE_ENV=test: a deliberately broken write path that answers
   * before its transaction commits. The crash suite (test/reliability) must catch it losing
   * acknowledged payments; nothing else may ever turn it on.
   */
  readonly testMutantAckBeforeCommit: boolean
  /** Tests only: how much the reliability suite does (short inside `npm test`, full or soak on demand). */
  readonly testReliability: 'short' | 'full' | 'soak'
  /** Minutes the soak test runs (`npm run test:soak`); 30 by the reference. */
  readonly testSoakMinutes: number
  /**
   * Tests only, and refused unless NODE_ENV=test: `serve` runs its clock `speedup` times faster
   * than real time from `originMs` (null: when it starts), so that a test covers the webhook
   * retry schedule (about three days) in seconds. See src/platform/clock.ts.
   */
  readonly testClock: { readonly speedup: number; readonly originMs: number | null }
  /**
   * The key that seals the platform's private keys in the database: BASEPLATE_SECRET_KEY, or
   * else the file BASEPLATE_SECRET_KEY_FILE (default `<dataDir>/secret.key`, made if missing).
   */
  readonly secretKey: SecretKeySource
  /**
   * Addresses (or CIDR ranges) of the reverse proxies whose `X-Forwarded-For` is believed, so
   * that a request's client address is the real client's; empty: none, the peer is the client.
   */
  readonly trustProxy: readonly string[]
}

/**
 * Where the key that seals the platform's private keys comes from (src/platform/signing/sealing.ts):
 * the environment, or a file made at first start if missing.
 */
export type SecretKeySource =
  | { readonly kind: 'value'; readonly value: SecretValue }
  | {
      readonly kind: 'file'
      readonly path: string
      /** Named in BASEPLATE_SECRET_KEY_FILE, rather than the default in the data directory. */
      readonly named: boolean
    }

/**
 * A secret from the environment. It prints, logs and serialises as `[redacted]`; only
 * `reveal()` gives its bytes (a copy).
 */
export class SecretValue {
  readonly #bytes: Buffer

  constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes)
  }

  reveal(): Buffer {
    return Buffer.from(this.#bytes)
  }

  toJSON(): string {
    return '[redacted]'
  }

  toString(): string {
    return '[redacted]'
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'SecretValue [redacted]'
  }
}

/** The sealing key's length: AES-256. */
export const secretKeyBytes = 32

export interface AlipayGatewayConfig {
  /**
   * The zone of v2 `timestamp` values (`yyyy-MM-dd HH:mm:ss`, no zone of their own), in minutes
   * east of UTC: 480 (UTC+8) as Alipay assumes.
   */
  readonly timezoneOffsetMinutes: number
  /** How far a gateway request's timestamp may be from the server clock, either way. */
  readonly timestampWindowS: number
  /** Threads that RSA-sign gateway responses; 0 signs on the main thread. */
  readonly signingThreads: number
}

export interface AdmissionConfig {
  /** Requests served at once; 0 turns admission control off. */
  readonly maxInFlight: number
  /** Requests that may wait for a slot; beyond, a newcomer is refused with 503. */
  readonly maxQueued: number
  /** Waiting requests always taken, whatever their expected wait: a short burst is queued. */
  readonly queueBurst: number
  /** A newcomer expected to wait longer than this for a slot is refused with 503. */
  readonly queueWaitMs: number
  /** Requests a second each app may make, per server process; 0 turns the limit off. */
  readonly appRatePerS: number
  /** Size of each app's token bucket: what an idle app may send at once. */
  readonly appBurstRequests: number
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`)
  }
}

type Env = Readonly<Record<string, string | undefined>>

/** Every BASEPLATE_* variable the platform understands, with what it means. */
export const knownVariables = {
  BASEPLATE_HOST: 'interface to listen on (default 127.0.0.1)',
  BASEPLATE_PORT: 'port to listen on (default 8080; PORT is honoured too)',
  BASEPLATE_DATA_DIR: 'directory of the embedded SQLite database (default ./data)',
  BASEPLATE_LOG_LEVEL: 'fatal | error | warn | info | debug | trace | silent (default info)',
  BASEPLATE_PUBLIC_URL: 'public base URL (default http://HOST:PORT)',
  BASEPLATE_OPERATOR_EMAIL: 'login of the operator account created at first start',
  BASEPLATE_SIGNATURE_WINDOW_S: 'accepted clock skew of signed requests, seconds (default 300)',
  BASEPLATE_SESSION_TTL_S: 'console session lifetime, seconds (default 43200)',
  BASEPLATE_IDEMPOTENCY_TTL_S: 'how long idempotent responses are kept, seconds (default 86400)',
  BASEPLATE_IDEMPOTENCY_LOCK_S: 'when an unfinished idempotent request may be retried (default 60)',
  BASEPLATE_BODY_LIMIT_BYTES: 'largest accepted request body, bytes (default 1048576)',
  BASEPLATE_ADMISSION_MAX_IN_FLIGHT:
    'requests served at once, 0 to 100000; more wait briefly or get 503; 0 turns admission control off (default 16)',
  BASEPLATE_ADMISSION_MAX_QUEUED: 'requests that may wait for a slot, 0 to 100000; more get 503 at once (default 1024)',
  BASEPLATE_ADMISSION_QUEUE_BURST:
    'waiting requests always taken, whatever their expected wait, 0 to MAX_QUEUED (default 512, or MAX_QUEUED if less)',
  BASEPLATE_ADMISSION_QUEUE_WAIT_MS:
    'milliseconds a request may expect to wait for a slot, 1 to 60000; longer gets 503 at once (default 1000)',
  BASEPLATE_APP_RATE_LIMIT_PER_S:
    'requests a second each app may make, per server process, 0 to 1000000; more get 429; 0 is no limit (default 1000)',
  BASEPLATE_APP_RATE_BURST_REQUESTS:
    "requests an idle app may make at once (its token bucket), 1 to 10000000 (default twice the app's rate a second)",
  BASEPLATE_ALIPAY_TIMEZONE_OFFSET_MINUTES:
    'zone of Alipay gateway timestamps, minutes east of UTC, -720 to 840 (default 480, UTC+8)',
  BASEPLATE_ALIPAY_TIMESTAMP_WINDOW_S: 'accepted clock skew of Alipay gateway requests, seconds (default 600)',
  BASEPLATE_ALIPAY_SIGNING_THREADS:
    'worker threads signing Alipay gateway responses, 0 to 16; 0 signs inline (default 1)',
  BASEPLATE_SECRET_KEY:
    "key sealing the platform's private keys in the database: 32 bytes in base64 (openssl rand -base64 32)",
  BASEPLATE_SECRET_KEY_FILE:
    'file holding that key, when BASEPLATE_SECRET_KEY is not set (default DATA_DIR/secret.key, made at first start)',
  BASEPLATE_TRUST_PROXY:
    'comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For is believed (default none)',
  BASEPLATE_TEST_PG: 'tests only: auto | required | skip (default auto)',
  BASEPLATE_TEST_DATABASE_URL: 'tests only: PostgreSQL used by the suite',
  BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT:
    'tests only (refused unless NODE_ENV=test): 1 answers writes before they commit, a bug the crash suite must catch',
  BASEPLATE_TEST_RELIABILITY:
    'tests only: short (default, inside npm test) | full (npm run test:reliability) | soak (npm run test:soak)',
  BASEPLATE_TEST_SOAK_MINUTES: 'tests only: minutes the soak test runs, 1 to 1440 (default 30)',
  BASEPLATE_TEST_CLOCK_SPEEDUP:
    'tests only (refused unless NODE_ENV=test): serve runs its clock this many times faster, 1 to 1000000 (default 1)',
  BASEPLATE_TEST_CLOCK_ORIGIN_MS:
    'tests only (refused unless NODE_ENV=test): Unix ms from which the fast clock runs (default: when serve starts)',
} as const

const logLevels: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export function parseConfig(env: Env, options: { cwd?: string } = {}): Config {
  const problems: string[] = []
  for (const name of Object.keys(env)) {
    if (name.startsWith('BASEPLATE_') && !(name in knownVariables)) {
      problems.push(`${name} is not a known variable (known: ${Object.keys(knownVariables).join(', ')})`)
    }
  }
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    if (!/^\d+$/.test(raw)) {
      problems.push(`${name} must be a whole number, got ${JSON.stringify(raw)}`)
      return fallback
    }
    const value = Number(raw)
    if (value < min || value > max) problems.push(`${name} must be between ${min} and ${max}, got ${value}`)
    return value
  }
  const signedInteger = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    if (!/^[+-]?\d{1,5}$/.test(raw)) {
      problems.push(`${name} must be a whole number (a sign is allowed), got ${JSON.stringify(raw)}`)
      return fallback
    }
    const value = Number(raw)
    if (value < min || value > max) problems.push(`${name} must be between ${min} and ${max}, got ${value}`)
    return value
  }
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    if (!(allowed as readonly string[]).includes(raw)) {
      problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`)
      return fallback
    }
    return raw as T
  }
  const url = (name: string, protocols: readonly string[]): string | null => {
    const raw = env[name]
    if (raw === undefined || raw === '') return null
    try {
      const parsed = new URL(raw)
      if (!protocols.includes(parsed.protocol)) problems.push(`${name} must use ${protocols.join(' or ')}`)
    } catch {
      problems.push(`${name} is not a valid URL`)
    }
    return raw
  }

  if (env.PORT !== undefined && env.BASEPLATE_PORT !== undefined && env.PORT !== env.BASEPLATE_PORT) {
    problems.push('PORT and BASEPLATE_PORT disagree; set only one')
  }
  const port =
    env.BASEPLATE_PORT !== undefined ? integer('BASEPLATE_PORT', 8080, 0, 65535) : integer('PORT', 8080, 0, 65535)
  const host = env.BASEPLATE_HOST || '127.0.0.1'
  const databaseUrl = url('DATABASE_URL', ['postgres:', 'postgresql:'])
  const operatorEmail = env.BASEPLATE_OPERATOR_EMAIL || 'operator@baseplate.local'
  if (!/^[^@\s]+@[^@\s]+$/.test(operatorEmail)) problems.push('BASEPLATE_OPERATOR_EMAIL is not an email address')
  const publicUrl = url('BASEPLATE_PUBLIC_URL', ['http:', 'https:']) ?? `http://${host}:${port}`
  const mutant = oneOf('BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT', ['0', '1'], '0') === '1'
  if (mutant && env.NODE_ENV !== 'test') {
    problems.push(
      'BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT breaks durability on purpose; it is refused unless NODE_ENV=test',
    )
  }
  const clockSpeedup = integer('BASEPLATE_TEST_CLOCK_SPEEDUP', 1, 1, 1_000_000)
  const clockOrigin = env.BASEPLATE_TEST_CLOCK_ORIGIN_MS
  const clockOriginMs =
    clockOrigin === undefined || clockOrigin === '' ? null : integer('BASEPLATE_TEST_CLOCK_ORIGIN_MS', 0, 0, 8.64e15)
  if ((clockSpeedup !== 1 || clockOriginMs !== null) && env.NODE_ENV !== 'test') {
    problems.push('BASEPLATE_TEST_CLOCK_SPEEDUP and BASEPLATE_TEST_CLOCK_ORIGIN_MS are refused unless NODE_ENV=test')
  }

  const maxQueued = integer('BASEPLATE_ADMISSION_MAX_QUEUED', 1024, 0, 100_000)
  const appRatePerS = integer('BASEPLATE_APP_RATE_LIMIT_PER_S', 1000, 0, 1_000_000)

  const dataDir = path.resolve(options.cwd ?? '.', env.BASEPLATE_DATA_DIR || 'data')
  const secretKey = secretKeySource(env, problems, options.cwd ?? '.', dataDir)

  const config: Config = {
    host,
    port,
    dataDir,
    databaseUrl,
    logLevel: oneOf('BASEPLATE_LOG_LEVEL', logLevels, 'info'),
    publicUrl: publicUrl.replace(/\/+$/, ''),
    operatorEmail,
    signatureWindowS: integer('BASEPLATE_SIGNATURE_WINDOW_S', 300, 1, 3600),
    sessionTtlS: integer('BASEPLATE_SESSION_TTL_S', 12 * 3600, 60, 30 * 24 * 3600),
    idempotencyTtlS: integer('BASEPLATE_IDEMPOTENCY_TTL_S', 24 * 3600, 60, 30 * 24 * 3600),
    idempotencyLockS: integer('BASEPLATE_IDEMPOTENCY_LOCK_S', 60, 1, 3600),
    bodyLimitBytes: integer('BASEPLATE_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    admission: Object.freeze({
      maxInFlight: integer('BASEPLATE_ADMISSION_MAX_IN_FLIGHT', 16, 0, 100_000),
      maxQueued,
      queueBurst: integer('BASEPLATE_ADMISSION_QUEUE_BURST', Math.min(512, maxQueued), 0, 100_000),
      queueWaitMs: integer('BASEPLATE_ADMISSION_QUEUE_WAIT_MS', 1000, 1, 60_000),
      appRatePerS,
      appBurstRequests: integer('BASEPLATE_APP_RATE_BURST_REQUESTS', Math.max(1, 2 * appRatePerS), 1, 10_000_000),
    }),
    testPostgres: oneOf('BASEPLATE_TEST_PG', ['auto', 'required', 'skip'], 'auto'),
    testDatabaseUrl:
      url('BASEPLATE_TEST_DATABASE_URL', ['postgres:', 'postgresql:']) ?? 'postgres://postgres@127.0.0.1:5432/test',
    alipay: Object.freeze({
      timezoneOffsetMinutes: signedInteger('BASEPLATE_ALIPAY_TIMEZONE_OFFSET_MINUTES', 480, -720, 840),
      timestampWindowS: integer('BASEPLATE_ALIPAY_TIMESTAMP_WINDOW_S', 600, 1, 24 * 3600),
      signingThreads: integer('BASEPLATE_ALIPAY_SIGNING_THREADS', 1, 0, 16),
    }),
    testMutantAckBeforeCommit: mutant,
    testReliability: oneOf('BASEPLATE_TEST_RELIABILITY', ['short', 'full', 'soak'], 'short'),
    testSoakMinutes: integer('BASEPLATE_TEST_SOAK_MINUTES', 30, 1, 24 * 60),
    testClock: Object.freeze({ speedup: clockSpeedup, originMs: clockOriginMs }),
    secretKey,
    trustProxy: Object.freeze(proxyList(env.BASEPLATE_TRUST_PROXY, problems)),
  }
  // Relations between fields: an abandoned reservation must expire long before its record.
  if (config.admission.queueBurst > config.admission.maxQueued) {
    problems.push('BASEPLATE_ADMISSION_QUEUE_BURST must not exceed BASEPLATE_ADMISSION_MAX_QUEUED')
  }
  if (config.idempotencyLockS >= config.idempotencyTtlS) {
    problems.push('BASEPLATE_IDEMPOTENCY_LOCK_S must be shorter than BASEPLATE_IDEMPOTENCY_TTL_S')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  // A database URL may carry its password: printed, logged or serialised, the config shows it
  // redacted (the fields themselves keep it, for the driver).
  const shown = () => ({
    ...config,
    databaseUrl: config.databaseUrl === null ? null : withoutPassword(config.databaseUrl),
    testDatabaseUrl: withoutPassword(config.testDatabaseUrl),
  })
  Object.defineProperties(config, {
    toJSON: { value: shown },
    // Inspected, the config shows the redacted copy, which util.inspect then formats as usual.
    [util.inspect.custom]: { value: shown },
  })
  return Object.freeze(config)
}

/** The URL with its passwords (the user part's, `password`, `sslpassword`) replaced by `[redacted]` (encoded). */
export function withoutPassword(raw: string): string {
  const parsed = new URL(raw)
  if (parsed.password !== '') parsed.password = '[redacted]'
  for (const name of ['password', 'sslpassword']) {
    if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '[redacted]')
  }
  return parsed.toString()
}

/** BASEPLATE_TRUST_PROXY: addresses or CIDR ranges; `true` or a hop count would believe anyone. */
function proxyList(raw: string | undefined, problems: string[]): string[] {
  if (raw === undefined || raw.trim() === '') return []
  const entries = raw.split(',').map((entry) => entry.trim())
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/')
    const family = net.isIP(address ?? '')
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32))
    if (family === 0 || !prefixOk || extra !== undefined) {
      problems.push(
        `BASEPLATE_TRUST_PROXY must list addresses or CIDR ranges (10.0.0.0/8, ::1), got ${JSON.stringify(entry)}`,
      )
    }
  }
  return entries
}

/** The sealing key's source; a problem names the variable but never echoes its value. */
function secretKeySource(env: Env, problems: string[], cwd: string, dataDir: string): SecretKeySource {
  const value = env.BASEPLATE_SECRET_KEY
  const file = env.BASEPLATE_SECRET_KEY_FILE
  const given = value !== undefined && value !== ''
  if (given && file !== undefined && file !== '') {
    problems.push('BASEPLATE_SECRET_KEY and BASEPLATE_SECRET_KEY_FILE are both set; set only one')
  }
  if (given) {
    const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(value.trim()) ? Buffer.from(value.trim(), 'base64') : Buffer.alloc(0)
    if (bytes.length !== secretKeyBytes) {
      problems.push(
        `BASEPLATE_SECRET_KEY must be ${secretKeyBytes} bytes in base64 (openssl rand -base64 32), ` +
          `got ${bytes.length} bytes`,
      )
    }
    return Object.freeze({ kind: 'value', value: new SecretValue(bytes) })
  }
  const named = file !== undefined && file !== ''
  return Object.freeze({
    kind: 'file',
    path: named ? path.resolve(cwd, file) : path.join(dataDir, 'secret.key'),
    named,
  })
}

/** Reads `process.env` once. Nothing else in the tree touches `process.env`. */
export function loadConfig(overrides: Env = {}): Config {
  return parseConfig({ ...process.env, ...overrides })
}
