/**
 * The double-entry ledger. A posting moves money between accounts in one atomic step: each
 * transfer debits one account and credits another by the same amount, so every posting
 * balances by construction, and each account keeps running totals (`debits_posted`,
 * `credits_posted`) next to the entries they sum, which `verify` recomputes.
 *
 * The hot path (a payment) costs one guarded UPDATE per account touched, then one INSERT for
 * the posting and one for all its entries; on PostgreSQL all of them go as one statement
 * (ADR 0017). The guard in the UPDATE's WHERE clause is what keeps
 * a floored account from going negative under concurrency: PostgreSQL re-evaluates it against
 * the latest committed row after waiting for the row lock, and SQLite runs writers one at a time.
 *
 * @example
 * const ledger = createLedgerService()
 * await db.transaction().execute((tx) => ledger.post(tx, {
 *   reference: { type: 'wallet.top_up', id: topUpId }, description: 'Sandbox top-up',
 *   transfers: [{ debit: funding, credit: wallet, amount: fen(10_000) }],
 * }, Date.now()))
 */
import { sql, type Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { AppError } from '../../errors.js'
import { newId } from '../../platform/ids.js'
import { fen, isValidAmount, type Fen } from '../../platform/money/money.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { everyColumn, onPostgres, prepared, type PreparedQuery } from '../../storage/prepared.js'
import {
  accountFloors,
  descriptionLengthMax,
  ownerIdLengthMax,
  referenceLengthMax,
  transfersPerPostingMax,
  type AccountKind,
  type AccountRef,
  type Balance,
  type LedgerAccountsTable,
  type LedgerDb,
  type LedgerEntriesTable,
  type LedgerService,
  type LedgerTables,
  type PostingInput,
  type Transfer,
} from './model.js'
import type { MerchantBalanceView } from './schema.js'
import { verifyLedger } from './verify.js'

/** The net effect of one posting on one account. */
interface AccountChange {
  readonly key: string
  readonly account: AccountRef
  readonly debits: number
  readonly credits: number
}

type PostedRow = Pick<LedgerAccountsTable, 'id' | 'kind' | 'floor' | 'debits_posted' | 'credits_posted'>

const currency = 'CNY'
const zero = fen(0)
/** The most an account's running totals may reach, so that they stay exact JavaScript numbers. */
const totalFenMax = Number.MAX_SAFE_INTEGER

/**
 * Database errors where retrying the whole transaction can succeed: PostgreSQL deadlock
 * (40P01), serialization failure (40001) and lock timeout (55P03), and SQLite's busy lock
 * when another process (the CLI) holds the write lock past the busy timeout.
 */
const transientCodes: ReadonlySet<string> = new Set(['40P01', '40001', '55P03', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT'])

/** A unique, totally ordered key per account; the order in which a posting locks accounts. */
function accountKey(account: AccountRef): string {
  return JSON.stringify([account.kind, account.environment, account.ownerId])
}

function checkAccount(account: AccountRef): void {
  assert(Object.hasOwn(accountFloors, account.kind), `unknown account kind ${String(account.kind)}`)
  assert(
    account.environment === 'sandbox' || account.environment === 'live',
    `unknown environment ${String(account.environment)}`,
  )
  assert(
    typeof account.ownerId === 'string' && account.ownerId.length > 0 && account.ownerId.length <= ownerIdLengthMax,
    `account owner id must be 1-${ownerIdLengthMax} characters`,
  )
}

function checkText(value: unknown, lengthMin: number, lengthMax: number, what: string): void {
  assert(
    typeof value === 'string' && value.length >= lengthMin && value.length <= lengthMax,
    `${what} must be a string of ${lengthMin}-${lengthMax} characters`,
  )
}

/** A malformed posting is a bug in the caller, never bad input from a user: assert it. */
function checkPosting(posting: PostingInput, now: number): void {
  assert(Number.isSafeInteger(now) && now > 0, 'now must be epoch milliseconds')
  checkText(posting.reference?.type, 1, referenceLengthMax, 'reference.type')
  checkText(posting.reference?.id, 1, referenceLengthMax, 'reference.id')
  checkText(posting.description, 0, descriptionLengthMax, 'description')
  assert(
    Array.isArray(posting.transfers) &&
      posting.transfers.length >= 1 &&
      posting.transfers.length <= transfersPerPostingMax,
    `a posting carries 1-${transfersPerPostingMax} transfers, not ${posting.transfers?.length}`,
  )
  const environment = posting.transfers[0]?.debit.environment
  for (const transfer of posting.transfers) {
    checkAccount(transfer.debit)
    checkAccount(transfer.credit)
    // Sandbox and live are separate worlds: no posting may move money between them.
    assert(
      transfer.debit.environment === environment && transfer.credit.environment === environment,
      'all accounts of a posting belong to one environment',
    )
    assert(isValidAmount(transfer.amount), `transfer amount ${transfer.amount} must be 1 to amountFenMax fen`)
    assert(accountKey(transfer.debit) !== accountKey(transfer.credit), 'a transfer debits and credits one account')
  }
}

/** Folds the transfers into one change per account, in lock order. */
function netChanges(transfers: readonly Transfer[]): AccountChange[] {
  const changes = new Map<string, AccountChange>()
  const add = (account: AccountRef, debits: number, credits: number): void => {
    const key = accountKey(account)
    const previous = changes.get(key)
    changes.set(key, {
      key,
      account,
      debits: (previous?.debits ?? 0) + debits,
      credits: (previous?.credits ?? 0) + credits,
    })
  }
  for (const transfer of transfers) {
    add(transfer.debit, transfer.amount, 0)
    add(transfer.credit, 0, transfer.amount)
  }
  // Every transaction locks the accounts it touches in the same order, so two postings over
  // the same accounts queue up on PostgreSQL instead of deadlocking. The order is that of the
  // account's unique key rather than its id, which saves looking the ids up first.
  return [...changes.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

/** Checks a row read back from the database; corrupt totals abort rather than mislead. */
function toBalance(row: Pick<LedgerAccountsTable, 'kind' | 'floor' | 'debits_posted' | 'credits_posted'>): Balance {
  assert(Number.isSafeInteger(row.debits_posted) && row.debits_posted >= 0, 'debits_posted is a safe integer ≥ 0')
  assert(Number.isSafeInteger(row.credits_posted) && row.credits_posted >= 0, 'credits_posted is a safe integer ≥ 0')
  assert(row.floor === accountFloors[row.kind], `a ${row.kind} account has floor ${row.floor}`)
  const balance = row.credits_posted - row.debits_posted
  assert(row.floor === 'none' || balance >= 0, `a floored ${row.kind} account shows a negative balance`)
  return { debits: fen(row.debits_posted), credits: fen(row.credits_posted), balance: fen(balance) }
}

/** The columns of the unique key that names an account. */
function identity(account: AccountRef) {
  return { kind: account.kind, owner_id: account.ownerId, environment: account.environment, currency } as const
}

/**
 * Adds a change to an account's totals if the account exists, its floor allows it and its
 * totals stay exact numbers; returns undefined otherwise. The floor guard takes the whole net
 * change, so a posting that credits an account before debiting it is judged on where the
 * account ends up.
 */
const applyChangeQuery = prepared(
  (
    db: LedgerDb,
    p: {
      kind: AccountKind
      ownerId: string
      environment: AccountRef['environment']
      debits: number
      credits: number
      debitsRoom: number
      creditsRoom: number
    },
  ) =>
    db
      .updateTable('ledger_accounts')
      .set((eb) => ({
        debits_posted: eb('debits_posted', '+', p.debits),
        credits_posted: eb('credits_posted', '+', p.credits),
      }))
      .where((eb) => eb.and(identity({ kind: p.kind, ownerId: p.ownerId, environment: p.environment })))
      // Written as SQL because Kysely does not parenthesise nested arithmetic: built with `eb`,
      // `(c + x) - (d + y)` would compile to `c + x - d + y`.
      .where((eb) =>
        eb.or([
          eb('floor', '=', 'none'),
          sql<boolean>`(credits_posted + ${p.credits}) - (debits_posted + ${p.debits}) >= 0`,
        ]),
      )
      .where('debits_posted', '<=', p.debitsRoom)
      .where('credits_posted', '<=', p.creditsRoom)
      .returning(['id', 'kind', 'floor', 'debits_posted', 'credits_posted']),
)

async function applyChange(db: LedgerDb, change: AccountChange): Promise<PostedRow | undefined> {
  return applyChangeQuery.first(db, {
    kind: change.account.kind,
    ownerId: change.account.ownerId,
    environment: change.account.environment,
    debits: change.debits,
    credits: change.credits,
    debitsRoom: totalFenMax - change.debits,
    creditsRoom: totalFenMax - change.credits,
  })
}

async function createAccount(db: LedgerDb, account: AccountRef, now: number): Promise<void> {
  // A concurrent first posting may create the same account: the loser's insert does nothing
  // (on PostgreSQL it waits for the winner to commit or roll back first).
  await db
    .insertInto('ledger_accounts')
    .values({
      id: newId('lacct'),
      kind: account.kind,
      owner_id: account.ownerId,
      environment: account.environment,
      currency,
      floor: accountFloors[account.kind],
      debits_posted: 0,
      credits_posted: 0,
      created_at: now,
    })
    .onConflict((conflict) => conflict.columns(['kind', 'owner_id', 'environment', 'currency']).doNothing())
    .execute()
}

/** Says why the guarded update refused a change; runs only on that (rare) path. */
async function refusal(db: LedgerDb, change: AccountChange): Promise<AppError> {
  const row = await db
    .selectFrom('ledger_accounts')
    .select(['debits_posted', 'credits_posted'])
    .where((eb) => eb.and(identity(change.account)))
    .executeTakeFirst()
  if (row === undefined) {
    // Read committed always sees the account it just created or found; a caller running a
    // stricter isolation level may not see one a concurrent transaction created. A retry will.
    return new AppError('SERVICE_UNAVAILABLE', { message: 'The ledger met a concurrent update; retry' })
  }
  if (row.debits_posted > totalFenMax - change.debits || row.credits_posted > totalFenMax - change.credits) {
    return new AppError('LEDGER_ACCOUNT_TOTALS_OVERFLOW', { details: { account_kind: change.account.kind } })
  }
  return new AppError('LEDGER_INSUFFICIENT_FUNDS', {
    message: `The ${change.account.kind} account does not hold enough funds for this posting`,
    details: { account_kind: change.account.kind },
  })
}

/**
 * Applies every change or none, and returns the accounts' ids in the order of `changes`. The
 * first `done.length` changes were applied already (by {@link postAtOnce}), with these rows. A
 * refused change undoes every one applied before it, then throws, so the posting leaves nothing
 * behind even if a caller catches the error and commits.
 */
async function applyChanges(
  db: LedgerDb,
  changes: readonly AccountChange[],
  now: number,
  done: readonly PostedRow[] = [],
): Promise<string[]> {
  const applied: Array<{ readonly id: string; readonly change: AccountChange }> = []
  const take = (row: PostedRow, change: AccountChange): void => {
    assert(row.kind === change.account.kind, 'the guarded update hit the account it named')
    toBalance(row)
    applied.push({ id: row.id, change })
  }
  done.forEach((row, index) => take(row, changes[index]!))
  for (const change of changes.slice(done.length)) {
    let row = await applyChange(db, change)
    if (row === undefined) {
      // Either the account does not exist yet or a guard refused the change; creating it is a
      // no-op in the second case, and after it the account exists.
      await createAccount(db, change.account, now)
      row = await applyChange(db, change)
    }
    if (row === undefined) {
      const error = await refusal(db, change)
      for (const { id, change: undone } of applied.reverse()) {
        await db
          .updateTable('ledger_accounts')
          .set((eb) => ({
            debits_posted: eb('debits_posted', '-', undone.debits),
            credits_posted: eb('credits_posted', '-', undone.credits),
          }))
          .where('id', '=', id)
          .execute()
      }
      throw error
    }
    take(row, change)
  }
  return applied.map(({ id }) => id)
}

/** An entry of a posting before its account's id is known: `change` indexes the posting's changes. */
interface PlannedEntry {
  readonly id: string
  readonly change: number
  readonly side: 'debit' | 'credit'
  readonly amount: number
}

/** Two entries per transfer, checked to balance. */
function planEntries(posting: PostingInput, changes: readonly AccountChange[]): PlannedEntry[] {
  const changeOf = (account: AccountRef): number => {
    const index = changes.findIndex((change) => change.key === accountKey(account))
    assert(index >= 0, 'every account of the posting has its change')
    return index
  }
  const entries: PlannedEntry[] = []
  for (const transfer of posting.transfers) {
    entries.push({ id: newId('lent'), change: changeOf(transfer.debit), side: 'debit', amount: transfer.amount })
    entries.push({ id: newId('lent'), change: changeOf(transfer.credit), side: 'credit', amount: transfer.amount })
  }
  const sum = (side: 'debit' | 'credit') =>
    entries.filter((entry) => entry.side === side).reduce((total, entry) => total + entry.amount, 0)
  assert(Number.isSafeInteger(sum('debit')) && sum('debit') === sum('credit'), 'the posting balances')
  return entries
}

function entryRows(
  planned: readonly PlannedEntry[],
  accountIds: readonly string[],
  postingId: string,
  now: number,
): LedgerEntriesTable[] {
  return planned.map((entry) => {
    const accountId = accountIds[entry.change]
    assert(accountId !== undefined, 'every account of the posting was updated')
    const { id, side, amount } = entry
    return { id, account_id: accountId, side, posting_id: postingId, amount, created_at: now }
  })
}

const insertPosting = prepared(
  (db: LedgerDb, p: { id: string; referenceType: string; referenceId: string; description: string; now: number }) =>
    db.insertInto('ledger_postings').values({
      id: p.id,
      reference_type: p.referenceType,
      reference_id: p.referenceId,
      description: p.description,
      created_at: p.now,
    }),
)

const entryColumns = everyColumn<LedgerEntriesTable>()([
  'id',
  'account_id',
  'side',
  'posting_id',
  'amount',
  'created_at',
])

/** One prepared insert per number of entries (two per transfer, so a handful of sizes). */
const insertEntriesOfSize = new Map<number, PreparedQuery<LedgerTables, Record<string, unknown>, unknown>>()

async function insertEntries(db: LedgerDb, entries: readonly LedgerEntriesTable[]): Promise<void> {
  assert(entries.length > 0 && entries.length <= 2 * transfersPerPostingMax, 'a posting has 1 to the maximum transfers')
  let query = insertEntriesOfSize.get(entries.length)
  if (query === undefined) {
    const rows = Array.from({ length: entries.length }, (_, index) => index)
    query = prepared((d: LedgerDb, p: Record<string, unknown>) =>
      d
        .insertInto('ledger_entries')
        .values(rows.map((index) => Object.fromEntries(entryColumns.map((c) => [c, p[`${c}${index}`]])) as never)),
    )
    insertEntriesOfSize.set(entries.length, query)
  }
  const values: Record<string, unknown> = {}
  entries.forEach((entry, index) => {
    for (const column of entryColumns) values[`${column}${index}`] = entry[column]
  })
  await query.affected(db, values)
}

/**
 * PostgreSQL only: a posting in one statement, one round trip instead of four. Each guarded
 * update is a data-modifying `WITH` step that runs only if the one before it applied, so the
 * accounts are locked in the posting's lock order, as one by one, and what applied is always a
 * leading run of `changes`; the posting and its entries are written only if every change
 * applied. It returns the rows of the changes that applied. Fewer than all means an account
 * does not exist yet, or a guard refused a change — possibly on the statement's snapshot, older
 * than the row a later step waited for — and nothing else was written: the caller goes on one
 * by one from there ({@link applyChanges}), judging each change again on the latest row. The
 * rows locked are also held for fewer round trips (three fewer for the first account), and
 * the one account every payment to a merchant locks is what caps a merchant on PostgreSQL.
 */
async function postAtOnce(
  db: LedgerDb,
  changes: readonly AccountChange[],
  planned: readonly PlannedEntry[],
  posting: PostingInput,
  postingId: string,
  now: number,
): Promise<PostedRow[]> {
  const shape = `${changes.length}:${planned.length}`
  let query = postAtOnceOfShape.get(shape)
  if (query === undefined) {
    query = postAtOnceQuery(changes.length, planned.length)
    postAtOnceOfShape.set(shape, query)
  }
  const values: Record<string, unknown> = {
    postingId,
    referenceType: posting.reference.type,
    referenceId: posting.reference.id,
    description: posting.description,
    now,
  }
  changes.forEach((change, index) => {
    values[`kind${index}`] = change.account.kind
    values[`owner${index}`] = change.account.ownerId
    values[`environment${index}`] = change.account.environment
    values[`debits${index}`] = change.debits
    values[`credits${index}`] = change.credits
    values[`debitsRoom${index}`] = totalFenMax - change.debits
    values[`creditsRoom${index}`] = totalFenMax - change.credits
  })
  planned.forEach((entry, index) => {
    values[`entry${index}`] = entry.id
    values[`entryChange${index}`] = entry.change
    values[`entrySide${index}`] = entry.side
    values[`entryAmount${index}`] = entry.amount
  })
  const rows = await query.rows(db, values)
  rows.forEach((row, index) => assert(row.step === index, 'the applied changes are a leading run, in order'))
  // Money moved if and only if the posting and all its entries were written with it.
  const all = rows.length === changes.length
  for (const row of rows) {
    assert(Number(row.postings) === (all ? 1 : 0), 'the posting is written exactly when every change applied')
    assert(Number(row.entries) === (all ? planned.length : 0), 'the entries are written exactly with the posting')
  }
  return rows
}

/** A change the one-statement posting applied, with what the statement wrote beside it. */
type AppliedRow = PostedRow & { step: number; postings: number; entries: number }

/** One statement per number of changes and of entries (a handful of shapes). */
const postAtOnceOfShape = new Map<string, PreparedQuery<LedgerTables, Record<string, unknown>, AppliedRow>>()

function postAtOnceQuery(changeCount: number, entryCount: number) {
  assert(changeCount >= 1 && entryCount >= 2, 'a posting changes at least one account and has two entries')
  return prepared((db: LedgerDb, p: Record<string, unknown>) => {
    const step = (index: number) => sql.raw(`change${index}`)
    const updates = Array.from({ length: changeCount }, (_, index) => {
      const value = (name: string) => p[`${name}${index}`]
      // Runs only once the change before it applied: that keeps the lock order and the prefix.
      const after = index === 0 ? sql`` : sql` and exists (select 1 from ${step(index - 1)})`
      return sql`${step(index)} as (
        update ledger_accounts
        set debits_posted = debits_posted + ${value('debits')},
          credits_posted = credits_posted + ${value('credits')}
        where kind = ${value('kind')} and owner_id = ${value('owner')}
          and environment = ${value('environment')} and currency = ${currency}
          and (floor = 'none' or (credits_posted + ${value('credits')}) - (debits_posted + ${value('debits')}) >= 0)
          and debits_posted <= ${value('debitsRoom')} and credits_posted <= ${value('creditsRoom')}${after}
        returning id, kind, floor, debits_posted, credits_posted)`
    })
    const applied = sql.join(
      Array.from(
        { length: changeCount },
        (_, index) =>
          sql`select ${sql.raw(String(index))} as step, id, kind, floor, debits_posted, credits_posted
            from ${step(index)}`,
      ),
      sql` union all `,
    )
    const entries = sql.join(
      Array.from({ length: entryCount }, (_, index) => {
        const value = (name: string) => p[`${name}${index}`]
        return sql`(${value('entry')}::text, ${value('entryChange')}::integer,
          ${value('entrySide')}::text, ${value('entryAmount')}::bigint)`
      }),
    )
    const all = sql.raw(`(select count(*) from applied) = ${changeCount}`)
    const statement = sql<AppliedRow>`with ${sql.join(updates)},
      applied as (${applied}),
      posting as (
        insert into ledger_postings (id, reference_type, reference_id, description, created_at)
        select ${p.postingId}::text, ${p.referenceType}::text, ${p.referenceId}::text,
          ${p.description}::text, ${p.now}::bigint
        where ${all}
        returning id),
      entries as (
        insert into ledger_entries (id, account_id, side, posting_id, amount, created_at)
        select entry.id, applied.id, entry.side, ${p.postingId}::text, entry.amount, ${p.now}::bigint
        from (values ${entries}) as entry (id, step, side, amount)
        join applied on applied.step = entry.step
        where ${all}
        returning id)
      select step, id, kind, floor, debits_posted, credits_posted,
        (select count(*) from posting) as postings, (select count(*) from entries) as entries
      from applied order by step`
    return { compile: () => statement.compile(db) }
  })
}

function transient(error: unknown): unknown {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  if (typeof code === 'string' && transientCodes.has(code)) {
    return new AppError('SERVICE_UNAVAILABLE', { message: 'The ledger met a concurrent update; retry', cause: error })
  }
  return error
}

/**
 * The ledger service the registry hands out. `merchantBalances` serves `GET /v1/balances`;
 * other capabilities see only {@link LedgerService}.
 *
 * @example
 * const ledger = createLedgerService()
 * const { balance } = await ledger.balance(db, { kind: 'consumer_wallet', ownerId, environment: 'sandbox' })
 */
export function createLedgerService() {
  const service = {
    async post(db: Kysely<any>, posting: PostingInput, now: number): Promise<{ postingId: string }> {
      checkPosting(posting, now)
      const ledger = db as LedgerDb
      try {
        const changes = netChanges(posting.transfers)
        const planned = planEntries(posting, changes)
        const postingId = newId('lpost')
        const done = onPostgres(ledger) ? await postAtOnce(ledger, changes, planned, posting, postingId, now) : []
        // Checks the rows the statement applied, then applies the rest one by one.
        const accountIds = await applyChanges(ledger, changes, now, done)
        if (done.length === changes.length) return { postingId }
        await insertPosting.affected(ledger, {
          id: postingId,
          referenceType: posting.reference.type,
          referenceId: posting.reference.id,
          description: posting.description,
          now,
        })
        await insertEntries(ledger, entryRows(planned, accountIds, postingId, now))
        return { postingId }
      } catch (error) {
        throw transient(error)
      }
    },

    async balance(db: Kysely<any>, account: AccountRef): Promise<Balance> {
      checkAccount(account)
      const row = await (db as LedgerDb)
        .selectFrom('ledger_accounts')
        .select(['kind', 'floor', 'debits_posted', 'credits_posted'])
        .where((eb) => eb.and(identity(account)))
        .executeTakeFirst()
      return row === undefined ? { debits: zero, credits: zero, balance: zero } : toBalance(row)
    },

    verify: verifyLedger,

    /** The tenant's merchant balances in the app's environment, read in one statement. */
    async merchantBalances(db: Kysely<any>, principal: AppPrincipal): Promise<MerchantBalanceView> {
      const kinds: readonly AccountKind[] = ['merchant_pending', 'merchant_available']
      const rows = await (db as LedgerDb)
        .selectFrom('ledger_accounts')
        .select(['kind', 'floor', 'debits_posted', 'credits_posted'])
        .where('kind', 'in', kinds)
        .where('owner_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
        .where('currency', '=', currency)
        .execute()
      const amount = (kind: AccountKind): Fen => {
        const row = rows.find((candidate) => candidate.kind === kind)
        return row === undefined ? zero : toBalance(row).balance
      }
      return {
        object: 'balance',
        organization_id: principal.tenantId,
        environment: principal.environment,
        currency,
        pending_amount: amount('merchant_pending'),
        available_amount: amount('merchant_available'),
      }
    },
  } satisfies LedgerService & Record<string, unknown>
  return service
}

export type LedgerModuleService = ReturnType<typeof createLedgerService>
