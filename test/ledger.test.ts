import { sql, type Kysely } from 'kysely'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssertionFailure } from '../src/assert.js'
import type { AccountRef, LedgerService, PostingInput, Transfer } from '../src/capabilities/ledger/index.js'
import { AppError } from '../src/errors.js'
import { amountFenMax, fen } from '../src/platform/money/money.js'
import { createAppWithKey, json, rsaKeyPair, signed, signUp } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'
import { expectLedgerConsistent, freshAccount, ledgerOf } from './ledger-helpers.js'

const now = Date.UTC(2026, 10, 25, 4, 0, 0)

const transfer = (debit: AccountRef, credit: AccountRef, amount: number): Transfer => ({
  debit,
  credit,
  amount: fen(amount),
})

const posting = (transfers: Transfer[], id = 'test'): PostingInput => ({
  reference: { type: 'test.posting', id },
  description: 'a test posting',
  transfers,
})

forEachDialect('ledger', (dialect) => {
  const bp = useTestPlatform(dialect)
  const db = () => bp().storage.db as Kysely<any>
  let ledger: LedgerService
  const post = (input: PostingInput) =>
    db()
      .transaction()
      .execute((tx) => ledger.post(tx, input, now))
  const balanceOf = async (account: AccountRef) => (await ledger.balance(db(), account)).balance
  const counts = async () => ({
    postings: Number(
      (
        await db()
          .selectFrom('ledger_postings')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    entries: Number(
      (
        await db()
          .selectFrom('ledger_entries')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
  })
  const funding = freshAccount('sandbox_funding', 'sandbox', 'platform')
  /** A consumer wallet topped up from the sandbox's funding account. */
  const fundedWallet = async (amount: number) => {
    const wallet = freshAccount('consumer_wallet')
    await post(posting([transfer(funding, wallet, amount)], 'top-up'))
    return wallet
  }

  beforeAll(() => {
    ledger = ledgerOf(bp())
  })
  afterEach(() => expectLedgerConsistent(db()))

  it('is registered first, so its migration runs before those of capabilities that post', () => {
    expect(bp().registry.modules[0]?.id).toBe('ledger')
    expect(bp().registry.scopes.has('ledger:read')).toBe(true)
  })

  it('posts a top-up and a payment with a fee; every posting balances', async () => {
    const wallet = await fundedWallet(10_000)
    const pending = freshAccount('merchant_pending')
    const fees = freshAccount('platform_fee_revenue', 'sandbox', `fees_${pending.ownerId}`)
    const { postingId } = await post({
      reference: { type: 'trade.pay', id: 'trade_1' },
      description: 'Payment',
      transfers: [transfer(wallet, pending, 1230), transfer(pending, fees, 7)],
    })
    expect(await ledger.balance(db(), wallet)).toEqual({ debits: 1230, credits: 10_000, balance: 8770 })
    expect(await ledger.balance(db(), pending)).toEqual({ debits: 7, credits: 1230, balance: 1223 })
    expect(await balanceOf(fees)).toBe(7)
    const entries = await db().selectFrom('ledger_entries').selectAll().where('posting_id', '=', postingId).execute()
    expect(entries).toHaveLength(4)
    const sum = (side: string) => entries.filter((e) => e.side === side).reduce((t, e) => t + e.amount, 0)
    expect(sum('debit')).toBe(1237)
    expect(sum('credit')).toBe(1237)
    expect(entries.every((entry) => typeof entry.amount === 'number')).toBe(true)
    const row = await db().selectFrom('ledger_postings').selectAll().where('id', '=', postingId).executeTakeFirst()
    expect(row).toMatchObject({ reference_type: 'trade.pay', reference_id: 'trade_1', created_at: now })
  })

  it('reads a zero balance for an account never posted to', async () => {
    expect(await ledger.balance(db(), freshAccount('merchant_available'))).toEqual({
      debits: 0,
      credits: 0,
      balance: 0,
    })
  })

  it('keeps sandbox and live money apart for the same owner', async () => {
    const sandbox = await fundedWallet(500)
    expect(await balanceOf({ ...sandbox, environment: 'live' })).toBe(0)
  })

  it('lets unbounded accounts go negative', async () => {
    const clearing = freshAccount('channel_clearing', 'live')
    const wallet = freshAccount('consumer_wallet', 'live')
    await post(posting([transfer(clearing, wallet, 2_000)]))
    expect(await ledger.balance(db(), clearing)).toEqual({ debits: 2000, credits: 0, balance: -2000 })
  })

  it("refuses a posting that would take an account's totals past 2^53 fen, and stays readable", async () => {
    const clearing = freshAccount('channel_clearing', 'live')
    const wallet = freshAccount('consumer_wallet', 'live')
    await post(posting([transfer(clearing, wallet, 100)]))
    // Decades of volume, simulated by editing the total, then put back for the consistency check.
    const nearMax = Number.MAX_SAFE_INTEGER - 50
    const setDebits = (value: number) =>
      db()
        .updateTable('ledger_accounts')
        .set({ debits_posted: value })
        .where('owner_id', '=', clearing.ownerId)
        .execute()
    await setDebits(nearMax)
    try {
      await expect(post(posting([transfer(clearing, wallet, 100)]))).rejects.toMatchObject({
        code: 'LEDGER_ACCOUNT_TOTALS_OVERFLOW',
        details: { account_kind: 'channel_clearing' },
      })
      expect(await ledger.balance(db(), clearing)).toEqual({ debits: nearMax, credits: 0, balance: -nearMax })
      expect(await balanceOf(wallet)).toBe(100)
    } finally {
      await setDebits(100)
    }
  })

  it('refuses a debit below the floor with LEDGER_INSUFFICIENT_FUNDS naming the account kind', async () => {
    const wallet = await fundedWallet(100)
    const pending = freshAccount('merchant_pending')
    const refused = await post(posting([transfer(wallet, pending, 101)])).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(AppError)
    expect(refused).toMatchObject({
      code: 'LEDGER_INSUFFICIENT_FUNDS',
      status: 422,
      transient: false,
      details: { account_kind: 'consumer_wallet' },
    })
    expect(await balanceOf(wallet)).toBe(100)
    await post(posting([transfer(wallet, pending, 100)]))
    expect(await balanceOf(wallet)).toBe(0)
    // An account never posted to holds nothing, so a first debit of a floored one is refused too.
    await expect(post(posting([transfer(freshAccount('isv_commission'), pending, 1)]))).rejects.toMatchObject({
      code: 'LEDGER_INSUFFICIENT_FUNDS',
      details: { account_kind: 'isv_commission' },
    })
  })

  it('judges a posting by where each account ends up: credit then debit of an empty wallet', async () => {
    const wallet = freshAccount('consumer_wallet')
    const pending = freshAccount('merchant_pending')
    await post(posting([transfer(funding, wallet, 500), transfer(wallet, pending, 500)]))
    expect(await ledger.balance(db(), wallet)).toEqual({ debits: 500, credits: 500, balance: 0 })
  })

  describe('when the last transfer of a posting is refused', () => {
    // Owner ids are chosen so that the refused wallet sorts after the others: the posting has
    // already updated earlier accounts when the floor refuses the last one.
    const setUp = async () => {
      const prefix = `partial_${Math.random().toString(36).slice(2, 10)}`
      const rich = freshAccount('consumer_wallet', 'sandbox', `${prefix}_a`)
      const poor = freshAccount('consumer_wallet', 'sandbox', `${prefix}_b`)
      const fresh = freshAccount('consumer_wallet', 'sandbox', `${prefix}_c`)
      const pending = freshAccount('merchant_pending', 'sandbox', prefix)
      await post(posting([transfer(funding, rich, 1_000), transfer(funding, poor, 10)]))
      const input = posting([transfer(funding, fresh, 500), transfer(rich, pending, 300), transfer(poor, pending, 50)])
      const accounts = [funding, rich, poor, fresh, pending]
      const snapshot = async () => ({
        ...(await counts()),
        balances: await Promise.all(accounts.map((account) => ledger.balance(db(), account))),
      })
      return { input, snapshot }
    }

    it("rolls back with the caller's transaction, leaving balances and entries unchanged", async () => {
      const { input, snapshot } = await setUp()
      const before = await snapshot()
      await expect(post(input)).rejects.toMatchObject({ code: 'LEDGER_INSUFFICIENT_FUNDS' })
      expect(await snapshot()).toEqual(before)
    })

    it('undoes its own partial updates even when the caller catches the error and commits', async () => {
      const { input, snapshot } = await setUp()
      const before = await snapshot()
      const code = await db()
        .transaction()
        .execute(async (tx) => {
          try {
            await ledger.post(tx, input, now)
            return 'posted'
          } catch (error) {
            return (error as AppError).code
          }
        })
      expect(code).toBe('LEDGER_INSUFFICIENT_FUNDS')
      expect(await snapshot()).toEqual(before)
    })
  })

  it('completes a posting whose later account does not exist yet, after the earlier ones applied', async () => {
    // In lock order the funded wallet comes first and the new one after it, so the accounts
    // are updated up to the missing one before it is created.
    const prefix = `later_${Math.random().toString(36).slice(2, 10)}`
    const rich = freshAccount('consumer_wallet', 'sandbox', `${prefix}_a`)
    const fresh = freshAccount('consumer_wallet', 'sandbox', `${prefix}_b`)
    await post(posting([transfer(funding, rich, 1_000)]))
    const before = await counts()
    await post(posting([transfer(rich, fresh, 400)]))
    expect(await balanceOf(rich)).toBe(600)
    expect(await balanceOf(fresh)).toBe(400)
    expect(await counts()).toEqual({ postings: before.postings + 1, entries: before.entries + 2 })
  })

  if (dialect === 'postgres') {
    it('posts over existing accounts in one statement on PostgreSQL', async () => {
      const wallet = await fundedWallet(1_000)
      const pending = freshAccount('merchant_pending')
      await post(posting([transfer(wallet, pending, 100)]))
      const before = await counts()
      await db()
        .connection()
        .execute(async (conn) => {
          // How often this connection has run each statement it prepared, by a fragment of its text.
          const runsOf = async (fragment: string) => {
            const { rows } = await sql<{ statement: string; runs: number }>`
              select statement, generic_plans + custom_plans as runs from pg_prepared_statements`.execute(conn)
            return rows.filter((row) => row.statement.includes(fragment)).reduce((n, row) => n + Number(row.runs), 0)
          }
          const fragments = [
            'with change0 as',
            'update "ledger_accounts"',
            'insert into "ledger_postings"',
            'insert into "ledger_entries"',
          ]
          const runsBefore = await Promise.all(fragments.map(runsOf))
          await conn.transaction().execute((tx) => ledger.post(tx, posting([transfer(wallet, pending, 250)]), now))
          const runsAfter = await Promise.all(fragments.map(runsOf))
          expect(runsAfter.map((runs, index) => runs - runsBefore[index]!)).toEqual([1, 0, 0, 0])
        })
      expect(await balanceOf(wallet)).toBe(650)
      expect(await balanceOf(pending)).toBe(350)
      expect(await counts()).toEqual({ postings: before.postings + 1, entries: before.entries + 2 })
    })
  }

  if (dialect === 'postgres') {
    it('locks accounts in order, and a change refused on the statement’s snapshot is judged again', async () => {
      // `first` sorts before `second`: the statement locks `first`, then `second`.
      const prefix = `order_${Math.random().toString(36).slice(2, 10)}`
      const first = freshAccount('consumer_wallet', 'sandbox', `${prefix}_a`)
      const second = freshAccount('consumer_wallet', 'sandbox', `${prefix}_b`)
      await post(posting([transfer(funding, first, 10), transfer(funding, second, 50)]))
      const before = await counts()
      const ownerIs = (account: AccountRef) => sql`kind = ${account.kind} and owner_id = ${account.ownerId}`
      // Another transaction holds `first` until released.
      let release!: () => void
      const released = new Promise<void>((resolve) => {
        release = resolve
      })
      let holding!: () => void
      const held = new Promise<void>((resolve) => {
        holding = resolve
      })
      const holder = db()
        .transaction()
        .execute(async (tx) => {
          await sql`select id from ledger_accounts where ${ownerIs(first)} for update`.execute(tx)
          holding()
          await released
        })
      await held
      // Moves 100 out of `second`, which holds 50 when the statement starts.
      const blocked = post(posting([transfer(second, first, 100)]))
      const waitingDeadline = Date.now() + 5_000
      for (;;) {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where wait_event_type = 'Lock' and query like 'with change0 as%'`.execute(db())
        if (rows[0]!.n > 0) break
        expect(Date.now(), 'the posting waits for the lock on the first account').toBeLessThan(waitingDeadline)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      // Waiting on `first`, the statement has not locked `second`.
      await db()
        .transaction()
        .execute((tx) => sql`select id from ledger_accounts where ${ownerIs(second)} for update nowait`.execute(tx))
      // `second` is topped up meanwhile; the statement's snapshot still shows 50, so its guard
      // refuses, and the change is judged again one by one against the committed 550.
      await post(posting([transfer(funding, second, 500)]))
      release()
      await holder
      await blocked
      expect(await balanceOf(first)).toBe(110)
      expect(await balanceOf(second)).toBe(450)
      expect(await counts()).toEqual({ postings: before.postings + 2, entries: before.entries + 4 })
    })
  }

  it('treats malformed postings as programmer errors and writes nothing', async () => {
    const wallet = await fundedWallet(1_000)
    const pending = freshAccount('merchant_pending')
    const before = await counts()
    const bad: Array<[string, PostingInput]> = [
      ['zero amount', posting([{ debit: wallet, credit: pending, amount: 0 as never }])],
      ['negative amount', posting([{ debit: wallet, credit: pending, amount: -5 as never }])],
      ['fractional amount', posting([{ debit: wallet, credit: pending, amount: 1.5 as never }])],
      ['amount above the maximum', posting([{ debit: funding, credit: pending, amount: (amountFenMax + 1) as never }])],
      ['same account on both sides', posting([transfer(wallet, { ...wallet }, 1)])],
      ['no transfers', posting([])],
      ['33 transfers', posting(Array.from({ length: 33 }, () => transfer(wallet, pending, 1)))],
      ['unknown kind', posting([transfer({ ...wallet, kind: 'bitcoin' as never }, pending, 1)])],
      ['empty owner', posting([transfer(funding, { ...wallet, ownerId: '' }, 1)])],
      ['sandbox to live', posting([transfer(wallet, { ...pending, environment: 'live' }, 1)])],
      [
        'sandbox and live transfers',
        posting([
          transfer(wallet, pending, 1),
          transfer(freshAccount('channel_clearing', 'live'), freshAccount('consumer_wallet', 'live'), 1),
        ]),
      ],
      ['empty reference', { ...posting([transfer(wallet, pending, 1)]), reference: { type: '', id: 'x' } }],
    ]
    for (const [name, input] of bad) {
      await expect(post(input), name).rejects.toBeInstanceOf(AssertionFailure)
    }
    expect(await counts()).toEqual(before)
    expect(await balanceOf(wallet)).toBe(1_000)
    // 32 transfers is the limit, and it is allowed.
    await post(posting(Array.from({ length: 32 }, () => transfer(wallet, pending, 1))))
    expect(await balanceOf(pending)).toBe(32)
  })

  it.skipIf(dialect === 'sqlite')('maps a PostgreSQL deadlock to the transient SERVICE_UNAVAILABLE', async () => {
    // Each transaction posts twice, locking its own account first and then the other's: a
    // deadlock no ordering inside one posting can prevent, which PostgreSQL breaks by
    // aborting one of the two.
    const [p, q, pOwn, qOwn] = ['p', 'q', 'p_own', 'q_own'].map((name) =>
      freshAccount('channel_clearing', 'sandbox', `deadlock_${name}_${Math.random().toString(36).slice(2)}`),
    )
    let arrived = 0
    let release!: () => void
    const barrier = new Promise<void>((resolve) => {
      release = resolve
    })
    const run = (mine: AccountRef, own: AccountRef, theirs: AccountRef) =>
      db()
        .transaction()
        .execute(async (tx) => {
          await ledger.post(tx, posting([transfer(mine, own, 1)]), now)
          arrived += 1
          if (arrived === 2) release()
          await barrier
          await ledger.post(tx, posting([transfer(theirs, own, 1)]), now)
        })
    const results = await Promise.allSettled([run(p!, pOwn!, q!), run(q!, qOwn!, p!)])
    const rejected = results.filter((result) => result.status === 'rejected')
    expect(rejected).toHaveLength(1)
    expect((rejected[0] as PromiseRejectedResult).reason).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      transient: true,
    })
  })

  describe('verify', () => {
    const setUp = async () => {
      const wallet = await fundedWallet(5_000)
      const pending = freshAccount('merchant_pending')
      const { postingId } = await post(posting([transfer(wallet, pending, 1_200)]))
      const entries = await db()
        .selectFrom('ledger_entries')
        .selectAll()
        .where('posting_id', '=', postingId)
        .orderBy('side')
        .execute()
      expect(entries.map((entry) => entry.side)).toEqual(['credit', 'debit'])
      return { wallet, pending, postingId, credit: entries[0]!, debit: entries[1]! }
    }

    it('counts accounts and postings of a consistent ledger', async () => {
      await setUp()
      const result = await ledger.verify(db())
      expect(result).toMatchObject({ ok: true, drift: [], unbalancedPostings: [] })
      expect(result.accounts).toBeGreaterThanOrEqual(3)
      expect(result.postings).toBeGreaterThanOrEqual(2)
    })

    it('detects an edited entry: the account drifts and the posting no longer balances', async () => {
      const { pending, postingId, credit } = await setUp()
      await db().updateTable('ledger_entries').set({ amount: 1_300 }).where('id', '=', credit.id).execute()
      const result = await ledger.verify(db())
      expect(result.ok).toBe(false)
      expect(result.drift).toEqual([
        {
          account: pending,
          stored: { debits: 0, credits: 1200, balance: 1200 },
          recomputed: { debits: 0, credits: 1300, balance: 1300 },
        },
      ])
      expect(result.unbalancedPostings).toEqual([postingId])
      await db().updateTable('ledger_entries').set({ amount: credit.amount }).where('id', '=', credit.id).execute()
      expect((await ledger.verify(db())).ok).toBe(true)
    })

    it('detects a deleted entry, and a posting left with no entries at all', async () => {
      const { wallet, pending, postingId, credit, debit } = await setUp()
      await db().deleteFrom('ledger_entries').where('id', '=', debit.id).execute()
      let result = await ledger.verify(db())
      expect(result.drift.map((drift) => drift.account)).toEqual([wallet])
      expect(result.drift[0]?.recomputed).toEqual({ debits: 0, credits: 5000, balance: 5000 })
      expect(result.unbalancedPostings).toEqual([postingId])
      await db().deleteFrom('ledger_entries').where('id', '=', credit.id).execute()
      result = await ledger.verify(db())
      expect(result.drift.map((drift) => drift.account.kind).sort()).toEqual(['consumer_wallet', 'merchant_pending'])
      expect(result.drift.find((drift) => drift.account.kind === 'merchant_pending')?.account).toEqual(pending)
      expect(result.unbalancedPostings).toEqual([postingId])
      await db().insertInto('ledger_entries').values([debit, credit]).execute()
      expect((await ledger.verify(db())).ok).toBe(true)
    })

    it('detects an edited account total while every posting still balances', async () => {
      const { wallet } = await setUp()
      const row = await db()
        .selectFrom('ledger_accounts')
        .selectAll()
        .where('owner_id', '=', wallet.ownerId)
        .executeTakeFirstOrThrow()
      await db()
        .updateTable('ledger_accounts')
        .set({ credits_posted: row.credits_posted + 1_000_000 })
        .where('id', '=', row.id)
        .execute()
      const result = await ledger.verify(db())
      expect(result).toMatchObject({ ok: false, unbalancedPostings: [] })
      expect(result.drift).toEqual([
        {
          account: wallet,
          stored: { debits: 1200, credits: 1_005_000, balance: 1_003_800 },
          recomputed: { debits: 1200, credits: 5000, balance: 3800 },
        },
      ])
      await db()
        .updateTable('ledger_accounts')
        .set({ credits_posted: row.credits_posted })
        .where('id', '=', row.id)
        .execute()
      expect((await ledger.verify(db())).ok).toBe(true)
    })
  })
})

forEachDialect('GET /v1/balances', (dialect) => {
  const bp = useTestPlatform(dialect)
  const db = () => bp().storage.db as Kysely<any>

  it("answers the tenant's pending and available fen in the app's environment only", async () => {
    const ledger = ledgerOf(bp())
    const merchant = await signUp(bp().app, 'merchant', 'retail')
    const sandboxApp = await createAppWithKey(bp().app, merchant, rsaKeyPair(), 'sandbox')
    const liveApp = await createAppWithKey(bp().app, merchant, rsaKeyPair(), 'live')
    const other = await createAppWithKey(bp().app, await signUp(bp().app, 'merchant'), rsaKeyPair(), 'sandbox')
    const read = async (app: typeof sandboxApp) => {
      const response = await signed(bp().app, app, { method: 'GET', url: '/v1/balances' })
      expect(response.statusCode, response.body).toBe(200)
      return json(response)
    }
    expect(await read(sandboxApp)).toEqual({
      object: 'balance',
      organization_id: merchant.organizationId,
      environment: 'sandbox',
      currency: 'CNY',
      pending_amount: 0,
      available_amount: 0,
    })

    const owner = merchant.organizationId
    const pending = freshAccount('merchant_pending', 'sandbox', owner)
    const available = freshAccount('merchant_available', 'sandbox', owner)
    const wallet = freshAccount('consumer_wallet')
    await db()
      .transaction()
      .execute(async (tx) => {
        const funding = freshAccount('sandbox_funding', 'sandbox', 'platform')
        await ledger.post(tx, posting([transfer(funding, wallet, 10_000), transfer(wallet, pending, 4_321)]), now)
        await ledger.post(tx, posting([transfer(pending, available, 1_000)]), now)
        await ledger.post(
          tx,
          posting([
            transfer(freshAccount('channel_clearing', 'live'), freshAccount('merchant_pending', 'live', owner), 99),
          ]),
          now,
        )
      })
    expect(await read(sandboxApp)).toMatchObject({ pending_amount: 3_321, available_amount: 1_000 })
    expect(await read(liveApp)).toMatchObject({ environment: 'live', pending_amount: 99, available_amount: 0 })
    expect(await read(other)).toMatchObject({ pending_amount: 0, available_amount: 0 })
    await expectLedgerConsistent(db())
  })

  it('declares its scope in the OpenAPI document', async () => {
    const document = bp().app.swagger() as unknown as { paths: Record<string, Record<string, Record<string, unknown>>> }
    expect(document.paths['/v1/balances']?.get?.['x-baseplate-scope']).toBe('ledger:read')
  })
})
