/**
 * Consumers (用户): people who pay. They never log into the console; their wallet balance is
 * a ledger account. In the sandbox, apps create test consumers, top them up for free and
 * mint payment codes; in live, consumers arrive through real channels (not built yet).
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import { newId, sha256Hex } from '../../platform/ids.js'
import type { Fen } from '../../platform/money/money.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { isoTime } from '../../server/schemas.js'
import { prepared } from '../../storage/prepared.js'
import type { CapabilityContext } from '../contract.js'
import type { LedgerService } from '../ledger/index.js'
import type { ConsumersTable, PaymentTables } from './tables.js'

type Db = Kysely<PaymentTables>

const codeWithConsumer = prepared((db: Db, p: { codeHash: string }) =>
  db
    .selectFrom('payment_codes')
    .innerJoin('payment_consumers', 'payment_consumers.id', 'payment_codes.consumer_id')
    .select([
      'payment_codes.code_hash',
      'payment_codes.consumer_id',
      'payment_codes.reusable',
      'payment_codes.expires_at',
      'payment_codes.used_at',
      'payment_consumers.environment',
    ])
    .where('payment_codes.code_hash', '=', p.codeHash),
)

/** Consumes a one-time code: only the first use finds it unused. */
const useCode = prepared((db: Db, p: { codeHash: string; now: number }) =>
  db
    .updateTable('payment_codes')
    .set({ used_at: p.now })
    .where('code_hash', '=', p.codeHash)
    .where('used_at', 'is', null),
)

/** A one-time code lives one minute, as at a real till. */
export const paymentCodeTtlMs = 60_000
/** Reusable sandbox codes last a year: long enough for any test suite. */
export const reusableCodeTtlMs = 365 * 24 * 3600 * 1000
const paymentCodeLength = 18

export function requireSandbox(principal: AppPrincipal): void {
  if (principal.environment !== 'sandbox') throw new AppError('PAYMENT_SANDBOX_ONLY')
}

/** 18 digits starting with 28, like the codes wallets show at a till. */
function newPaymentCode(): string {
  let digits = '28'
  while (digits.length < paymentCodeLength) digits += String(crypto.randomInt(0, 10))
  return digits
}

export function createConsumerService(context: CapabilityContext, ledger: LedgerService) {
  async function view(db: Kysely<any>, row: ConsumersTable) {
    const balance = await ledger.balance(db, { kind: 'consumer_wallet', ownerId: row.id, environment: row.environment })
    return {
      id: row.id,
      environment: row.environment,
      display_name: row.display_name,
      balance: balance.balance,
      created_at: isoTime(row.created_at),
    }
  }

  async function find(db: Kysely<any>, principal: AppPrincipal, consumerId: string): Promise<ConsumersTable> {
    // A sandbox consumer is a test fixture of the organisation whose app made it: others
    // (and the other environment) do not see it. Paying with its code works anywhere.
    const row = await (db as Db)
      .selectFrom('payment_consumers')
      .selectAll()
      .where('id', '=', consumerId)
      .where('environment', '=', principal.environment)
      .where('owner_organization_id', '=', principal.organizationId)
      .executeTakeFirst()
    if (row === undefined) throw new AppError('PAYMENT_CONSUMER_NOT_FOUND', { field: 'params.consumer_id' })
    return row
  }

  return {
    find,
    /** Whether a consumer exists in the environment: enough to name a trade's buyer. */
    async exists(db: Kysely<any>, environment: 'sandbox' | 'live', consumerId: string): Promise<boolean> {
      const row = await (db as Db)
        .selectFrom('payment_consumers')
        .select('id')
        .where('id', '=', consumerId)
        .where('environment', '=', environment)
        .executeTakeFirst()
      return row !== undefined
    },
    async create(db: Kysely<any>, principal: AppPrincipal, displayName: string, now: number) {
      requireSandbox(principal)
      const row: ConsumersTable = {
        id: newId('cons'),
        environment: principal.environment,
        display_name: displayName,
        owner_organization_id: principal.organizationId,
        created_by_app_id: principal.appId,
        created_at: now,
      }
      await (db as Db).insertInto('payment_consumers').values(row).execute()
      return view(db, row)
    },
    /** The organisation's sandbox consumer with this name, created on first use. */
    async findOrCreate(db: Kysely<any>, principal: AppPrincipal, displayName: string, now: number) {
      requireSandbox(principal)
      const row = await (db as Db)
        .selectFrom('payment_consumers')
        .selectAll()
        .where('environment', '=', principal.environment)
        .where('owner_organization_id', '=', principal.organizationId)
        .where('display_name', '=', displayName)
        .orderBy('created_at')
        .executeTakeFirst()
      return row === undefined ? this.create(db, principal, displayName, now) : view(db, row)
    },
    async get(db: Kysely<any>, principal: AppPrincipal, consumerId: string) {
      return view(db, await find(db, principal, consumerId))
    },
    /** Free money, sandbox only: from sandbox_funding into the consumer's wallet. */
    async topUp(db: Kysely<any>, principal: AppPrincipal, consumerId: string, amount: Fen, now: number) {
      requireSandbox(principal)
      const consumer = await find(db, principal, consumerId)
      await ledger.post(
        db,
        {
          reference: { type: 'consumer.top_up', id: newId('topup') },
          description: `sandbox top-up of ${consumer.id}`,
          transfers: [
            {
              // Funding per owning organisation: no shared row to queue on or to exhaust.
              debit: {
                kind: 'sandbox_funding',
                ownerId: consumer.owner_organization_id,
                environment: consumer.environment,
              },
              credit: { kind: 'consumer_wallet', ownerId: consumer.id, environment: consumer.environment },
              amount,
            },
          ],
        },
        now,
      )
      return view(db, consumer)
    },
    async mintCode(db: Kysely<any>, principal: AppPrincipal, consumerId: string, reusable: boolean, now: number) {
      if (reusable) requireSandbox(principal)
      const consumer = await find(db, principal, consumerId)
      const code = newPaymentCode()
      const expiresAt = now + (reusable ? reusableCodeTtlMs : paymentCodeTtlMs)
      await (db as Db)
        .insertInto('payment_codes')
        .values({
          code_hash: sha256Hex(code),
          consumer_id: consumer.id,
          reusable: reusable ? 1 : 0,
          expires_at: expiresAt,
          used_at: null,
          created_at: now,
        })
        .execute()
      return { code, consumer_id: consumer.id, reusable, expires_at: isoTime(expiresAt) }
    },
    /**
     * The consumer behind a payment code, consuming a one-time code. Must run in the
     * transaction of the payment, so a failed payment gives the code back.
     */
    async redeemCode(db: Kysely<any>, code: string, environment: 'sandbox' | 'live', now: number): Promise<string> {
      const row = await codeWithConsumer.first(db, { codeHash: sha256Hex(code) })
      if (row === undefined || row.environment !== environment || row.expires_at <= now) {
        throw new AppError('PAYMENT_CODE_INVALID', { field: 'body.auth_code' })
      }
      if (row.reusable === 1) return row.consumer_id
      const used = await useCode.affected(db, { codeHash: row.code_hash, now })
      if (used !== 1) throw new AppError('PAYMENT_CODE_INVALID', { field: 'body.auth_code' })
      return row.consumer_id
    },
  }
}

export type ConsumerService = ReturnType<typeof createConsumerService>
