/**
 * The double-entry ledger. A posting moves money between accounts in one atomic step: each
 * transfer debits one account and credits another by the same amount, so every posting
 * balances by construction, and each account keeps running totals (`debits_posted`,
 * `credits_posted`) next to the entries they sum, which `verify` recomputes.
 *
 * The hot path (a payment) costs one guarded UPDATE per account touched, then one INSERT for
 * the posting and one for all its entries. The guard in the UPDATE's WHERE clause is what keeps
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
import { everyColumn, prepared, type PreparedQuery } from '../../storage/prepared.js'
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
 * Applies every change or none. A refused change undoes the ones already applied before it
 * throws, so the posting leaves nothing behind even if a caller catches the error and commits.
 */
async function applyChanges(
  db: LedgerDb,
  changes: readonly AccountChange[],
  now: number,
): Promise<ReadonlyMap<string, string>> {
  const accountIds = new Map<string, string>()
  const applied: Array<{ readonly id: string; readonly change: AccountChange }> = []
  for (const change of changes) {
    let row = await applyChange(db, change)
    if (row === undefined) {
      // Either the account does not exist yet or a guard refused the change; creating it is a
      // no-op in the second case, and after it the account exists.
      await createAccount(db, change.account, now)
      row = await applyChange(db, change)
    }
    if (row === undefined) {
      const error = await refusal(db, change)
      for (const { id, change: done } of applied.reverse()) {
        await db
          .updateTable('ledger_accounts')
          .set((eb) => ({
            debits_posted: eb('debits_posted', '-', done.debits),
            credits_posted: eb('credits_posted', '-', done.credits),
          }))
          .where('id', '=', id)
          .execute()
      }
      throw error
    }
    assert(row.kind === change.account.kind, 'the guarded update hit the account it named')
    toBalance(row)
    accountIds.set(change.key, row.id)
    applied.push({ id: row.id, change })
  }
  return accountIds
}

function entriesOf(
  posting: PostingInput,
  postingId: string,
  accountIds: ReadonlyMap<string, string>,
  now: number,
): LedgerEntriesTable[] {
  const entries: LedgerEntriesTable[] = []
  const accountId = (account: AccountRef): string => {
    const id = accountIds.get(accountKey(account))
    assert(id !== undefined, 'every account of the posting was updated')
    return id
  }
  for (const transfer of posting.transfers) {
    const common = { posting_id: postingId, amount: transfer.amount, created_at: now }
    entries.push({ id: newId('lent'), account_id: accountId(transfer.debit), side: 'debit', ...common })
    entries.push({ id: newId('lent'), account_id: accountId(transfer.credit), side: 'credit', ...common })
  }
  const sum = (side: 'debit' | 'credit') =>
    entries.filter((entry) => entry.side === side).reduce((total, entry) => total + entry.amount, 0)
  assert(Number.isSafeInteger(sum('debit')) && sum('debit') === sum('credit'), 'the posting balances')
  return entries
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
        const accountIds = await applyChanges(ledger, netChanges(posting.transfers), now)
        const postingId = newId('lpost')
        await insertPosting.affected(ledger, {
          id: postingId,
          referenceType: posting.reference.type,
          referenceId: posting.reference.id,
          description: posting.description,
          now,
        })
        await insertEntries(ledger, entriesOf(posting, postingId, accountIds, now))
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
