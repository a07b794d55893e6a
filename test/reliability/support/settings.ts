/**
 * How much each reliability test does. `npm test` runs the short version (inside CI's time);
 * `npm run test:reliability` sets BASEPLATE_TEST_RELIABILITY=full for the published figures.
 * Every random choice comes from `seed`, printed with any failure, so a run can be replayed
 * (BASEPLATE_TEST_RELIABILITY picks the sizes; the seed is fixed here and in the docs).
 */
import { loadConfig } from '../../../src/config.js'

const config = loadConfig()

export const full = config.testReliability === 'full'
export const mode = config.testReliability
export const postgresUrl = config.testDatabaseUrl
export const postgresMode = config.testPostgres

export const settings = {
  seed: 20261125,
  crash: {
    rounds: full ? 20 : 5,
    /** PostgreSQL's rounds: fewer in the short run, which `npm test` pays for. */
    postgresRounds: full ? 20 : 3,
    mutantRoundsMax: 6,
    connections: 32,
    killAfterMsMin: 300,
    killAfterMsMax: 1800,
  },
  storm: { keys: full ? 1000 : 60, copies: 50 },
  bank: { operations: full ? 100_000 : 4_000, accounts: 16, writers: 24, readers: 2 },
  forgery: { mutations: full ? 12_000 : 1_500 },
  fuzz: { requests: full ? 20_000 : 2_000 },
  notifications: { events: full ? 200 : 40, kills: full ? 3 : 1 },
  overload: { seconds: full ? 20 : 4 },
  /** Command sequences of the payment model (reference figure 5: at least 10^4 per run). */
  model: { sequences: 10_000, postgresSequences: full ? 2_000 : 300 },
  /** `npm run test:soak` only (reference figure 12): half the peak for 30 minutes. */
  soak: { minutes: config.testSoakMinutes, rssGrowthMax: 0.1, p99DriftMax: 0.2 },
} as const

/** Milliseconds a test may take: generous, since the two cores are shared with other suites. */
export function budgetMs(shortMs: number, fullMs: number): number {
  return full ? fullMs : shortMs
}
