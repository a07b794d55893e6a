/**
 * Idempotency with Stripe's semantics. The first response to a key is stored for the TTL
 * (24 h by default); a retry with the same key and the same request gets that response
 * again, byte for byte; the same key with another request is IDEMPOTENCY_KEY_REUSED; a
 * duplicate that arrives while the first is running gets IDEMPOTENCY_REQUEST_IN_PROGRESS.
 *
 * Nothing executes twice: the key is reserved in its own committed write, and the stored
 * response is written in the same transaction as the work it describes. A crash between the
 * two leaves a reservation without effects, which a retry may take over once its lock has
 * aged past `lockS`.
 */
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { AppError } from '../../errors.js'
import { isUniqueViolation } from '../../storage/database.js'
import { prepared } from '../../storage/prepared.js'
import type { CoreTables } from '../../storage/tables.js'

export const idempotencyKeyLengthMax = 255
const keyPattern = /^[\x21-\x7e]{1,255}$/

export interface IdempotencyRequest {
  /** Who owns the key: `app:<app id>:<tenant>` or `user:<user id>`. */
  readonly principal: string
  readonly key: string
  /** SHA-256 of the request's method, path with query, and raw body; the tenant is in `principal`. */
  readonly fingerprint: string
  readonly now: number
  readonly ttlS: number
  readonly lockS: number
}

export interface StoredResponse {
  readonly status: number
  readonly body: string
}

export type Reservation =
  | { readonly kind: 'reserved'; readonly lockedAt: number }
  | { readonly kind: 'replay'; readonly response: StoredResponse }

const reserveKey = prepared(
  (
    db: Kysely<CoreTables>,
    p: { principal: string; key: string; fingerprint: string; now: number; expiresAt: number },
  ) =>
    db.insertInto('idempotency_records').values({
      principal: p.principal,
      idempotency_key: p.key,
      fingerprint: p.fingerprint,
      state: 'running',
      response_status: null,
      response_body: null,
      locked_at: p.now,
      created_at: p.now,
      expires_at: p.expiresAt,
    }),
)

const storeResponse = prepared(
  (db: Kysely<CoreTables>, p: { principal: string; key: string; lockedAt: number; status: number; body: string }) =>
    db
      .updateTable('idempotency_records')
      .set({ state: 'done', response_status: p.status, response_body: p.body })
      .where('principal', '=', p.principal)
      .where('idempotency_key', '=', p.key)
      .where('state', '=', 'running')
      .where('locked_at', '=', p.lockedAt),
)

export function checkIdempotencyKey(key: string): void {
  if (!keyPattern.test(key)) throw new AppError('IDEMPOTENCY_KEY_INVALID', { field: 'headers.idempotency-key' })
}

/** Claims the key, or returns the stored response, or throws the conflict. */
export async function reserve(db: Kysely<any>, request: IdempotencyRequest): Promise<Reservation> {
  const core = db as Kysely<CoreTables>
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await reserveKey.affected(core, {
        principal: request.principal,
        key: request.key,
        fingerprint: request.fingerprint,
        now: request.now,
        expiresAt: request.now + request.ttlS * 1000,
      })
      return { kind: 'reserved', lockedAt: request.now }
    } catch (error) {
      if (!isUniqueViolation(error)) throw error
    }
    const row = await core
      .selectFrom('idempotency_records')
      .selectAll()
      .where('principal', '=', request.principal)
      .where('idempotency_key', '=', request.key)
      .executeTakeFirst()
    if (row === undefined) continue // released between our insert and select: try again
    if (row.expires_at <= request.now) {
      await core
        .deleteFrom('idempotency_records')
        .where('principal', '=', row.principal)
        .where('idempotency_key', '=', row.idempotency_key)
        .where('expires_at', '=', row.expires_at)
        .execute()
      continue
    }
    if (row.fingerprint !== request.fingerprint) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', { field: 'headers.idempotency-key' })
    }
    if (row.state === 'done') {
      assert(row.response_status !== null && row.response_body !== null, 'a done record keeps its response')
      return { kind: 'replay', response: { status: row.response_status, body: row.response_body } }
    }
    if (row.locked_at > request.now - request.lockS * 1000) {
      throw new AppError('IDEMPOTENCY_REQUEST_IN_PROGRESS')
    }
    // The first attempt died without finishing (its transaction never committed). Take
    // over its lock with a compare-and-set so only one retry wins.
    const taken = await core
      .updateTable('idempotency_records')
      .set({ locked_at: request.now })
      .where('principal', '=', row.principal)
      .where('idempotency_key', '=', row.idempotency_key)
      .where('state', '=', 'running')
      .where('locked_at', '=', row.locked_at)
      .executeTakeFirst()
    if (taken.numUpdatedRows === 1n) return { kind: 'reserved', lockedAt: request.now }
    throw new AppError('IDEMPOTENCY_REQUEST_IN_PROGRESS')
  }
  throw new AppError('IDEMPOTENCY_REQUEST_IN_PROGRESS')
}

/**
 * Stores the response. Call it inside the transaction of the work, so that the work and its
 * record commit together. Fails (rolling the work back) if another retry took the lock.
 */
export async function complete(
  db: Kysely<any>,
  request: IdempotencyRequest,
  lockedAt: number,
  response: StoredResponse,
): Promise<void> {
  const done = await storeResponse.affected(db, {
    principal: request.principal,
    key: request.key,
    lockedAt,
    status: response.status,
    body: response.body,
  })
  if (done !== 1) throw new AppError('IDEMPOTENCY_REQUEST_IN_PROGRESS')
}

/** Gives the key back after a failure that executed nothing, so a retry may run. */
export async function release(db: Kysely<any>, request: IdempotencyRequest, lockedAt: number): Promise<void> {
  await (db as Kysely<CoreTables>)
    .deleteFrom('idempotency_records')
    .where('principal', '=', request.principal)
    .where('idempotency_key', '=', request.key)
    .where('state', '=', 'running')
    .where('locked_at', '=', lockedAt)
    .execute()
}
