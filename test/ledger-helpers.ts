/**
 * Ledger helpers for any suite that moves money: a check to run after every test, and the
 * ledger service of a test platform.
 *
 * @example
 * const bp = useTestPlatform(dialect)
 * afterEach(() => expectLedgerConsistent(bp().storage.db))
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import { expect } from 'vitest'
import {
  verifyLedger,
  type AccountKind,
  type AccountRef,
  type LedgerService,
} from '../src/capabilities/ledger/index.js'
import { createLedgerService } from '../src/capabilities/ledger/service.js'
import type { Platform } from '../src/server/platform.js'

/**
 * Fails the test unless every account's totals equal the sums of its entries and every
 * posting balances.
 *
 * @example
 * afterEach(() => expectLedgerConsistent(bp().storage.db))
 */
export async function expectLedgerConsistent(db: Kysely<any>): Promise<void> {
  const result = await verifyLedger(db)
  expect(result.drift, 'ledger accounts whose totals differ from their entries').toEqual([])
  expect(result.unbalancedPostings, 'ledger postings that do not balance').toEqual([])
  expect(result.ok).toBe(true)
}

/**
 * The ledger service of a test platform. The service keeps no state of its own, so this
 * instance behaves exactly like the one the registry hands to other capabilities.
 *
 * @example
 * const ledger = ledgerOf(bp())
 * const { balance } = await ledger.balance(bp().storage.db, wallet)
 */
export function ledgerOf(platform: Platform): LedgerService {
  expect(
    platform.registry.modules.some((module) => module.id === 'ledger'),
    'the ledger is registered',
  ).toBe(true)
  return createLedgerService()
}

/**
 * An account with a fresh owner, so tests sharing a database never share an account.
 *
 * @example
 * const wallet = freshAccount('consumer_wallet')
 */
export function freshAccount(
  kind: AccountKind,
  environment: 'sandbox' | 'live' = 'sandbox',
  ownerId = `owner_${crypto.randomBytes(8).toString('hex')}`,
): AccountRef {
  return { kind, ownerId, environment }
}
