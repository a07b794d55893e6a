import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLedgerService } from '../src/capabilities/ledger/service.js'
import { fen } from '../src/platform/money/money.js'
import { openStorage } from '../src/storage/database.js'
import { cliEnvironment, runCli } from './cli-harness.js'
import { forEachDialect, freshTarget, type TestTarget } from './harness.js'
import { freshAccount } from './ledger-helpers.js'

forEachDialect('baseplate ledger verify', (dialect) => {
  let target: TestTarget
  let env: Record<string, string>
  const withDb = async <T>(work: (db: Kysely<any>) => Promise<T>): Promise<T> => {
    const storage = await openStorage(target.target)
    try {
      return await work(storage.db)
    } finally {
      await storage.close()
    }
  }

  beforeAll(async () => {
    target = await freshTarget(dialect)
    env = cliEnvironment(target.target)
  })
  afterAll(async () => target.dispose())

  it('exits 0 on an empty and on a consistent ledger', async () => {
    const empty = await runCli(['ledger', 'verify', '--json'], env)
    expect(empty.exitCode, empty.err).toBe(0)
    expect(JSON.parse(empty.out)).toEqual({ ok: true, accounts: 0, postings: 0, drift: [], unbalancedPostings: [] })
    await withDb((db) =>
      db.transaction().execute(async (tx) => {
        const ledger = createLedgerService()
        const funding = freshAccount('sandbox_funding', 'sandbox', 'platform')
        const wallet = freshAccount('consumer_wallet', 'sandbox', 'consumer_cli')
        await ledger.post(
          tx,
          {
            reference: { type: 'test.fund', id: 'cli' },
            description: 'top-up',
            transfers: [{ debit: funding, credit: wallet, amount: fen(9_900) }],
          },
          Date.now(),
        )
      }),
    )
    const consistent = await runCli(['ledger', 'verify'], env)
    expect(consistent.exitCode, consistent.err).toBe(0)
    expect(consistent.out).toContain('ledger OK: 2 accounts, 1 postings')
  })

  it('exits 1 and names the account after an account total was tampered with', async () => {
    await withDb((db) =>
      db
        .updateTable('ledger_accounts')
        .set({ credits_posted: 99_900 })
        .where('owner_id', '=', 'consumer_cli')
        .execute(),
    )
    const text = await runCli(['ledger', 'verify'], env)
    expect(text.exitCode).toBe(1)
    expect(text.err).toContain('ledger DRIFT: 1 account(s) drifted, 0 posting(s) unbalanced')
    expect(text.err).toContain('consumer_wallet consumer_cli (sandbox): stored debits 0 credits 99900')
    const json = await runCli(['ledger', 'verify', '--json'], env)
    expect(json.exitCode).toBe(1)
    expect(JSON.parse(json.out)).toMatchObject({
      ok: false,
      drift: [{ account: { ownerId: 'consumer_cli' }, recomputed: { credits: 9_900 } }],
    })
  })

  it('exits 1 and names the posting after an entry was deleted', async () => {
    await withDb((db) =>
      db.updateTable('ledger_accounts').set({ credits_posted: 9_900 }).where('owner_id', '=', 'consumer_cli').execute(),
    )
    expect((await runCli(['ledger', 'verify'], env)).exitCode).toBe(0)
    const postingId = await withDb(async (db) => {
      const entry = await db
        .selectFrom('ledger_entries')
        .selectAll()
        .where('side', '=', 'debit')
        .executeTakeFirstOrThrow()
      await db.deleteFrom('ledger_entries').where('id', '=', entry.id).execute()
      return entry.posting_id as string
    })
    const result = await runCli(['ledger', 'verify'], env)
    expect(result.exitCode).toBe(1)
    expect(result.err).toContain(`posting ${postingId}: does not balance`)
  })
})

describe('baseplate ledger verify without a database', () => {
  it('has --help', async () => {
    const result = await runCli(['ledger', 'verify', '--help'], {})
    expect(result.out).toMatch(/Usage: baseplate ledger verify/)
    expect(result.out).toContain('--json')
  })
})
