/**
 * Refused access in the audit log (ADR 0020): a request refused for its credentials (a bad
 * signature, a stale timestamp, a replayed nonce, an unknown app or key, an invalid app auth
 * token or session, a throttled login) or for its rights (a role, a scope, a form token) leaves
 * an `access.refused` entry, in its own transaction after the refusal, naming who was proven
 * (the app or user, else `anonymous` with the app the request claimed), the error code, the
 * route's template (never the URL, which may carry credentials), the client address and the
 * request id. A wrong password at login leaves `session.login_failed` instead, in the login's
 * own code; a wrong current password in a signed-in password change is a refusal.
 *
 * A refusal is cheap to send, so the entries are budgeted per key — the proven caller and the
 * address, or for an unproven one the address alone (whatever app it claims):
 * {@link refusalRecordsBurst}, then one per {@link refusalRecordRefillS}; a refusal past the
 * budget is counted, and the next entry written for that key says how many it stands for
 * (`data.unrecorded`). So a flood costs a bounded number of rows, and the count survives.
 *
 * @example
 * const refusals = createRefusalAudit(clock, { proxiesNamed: false, onError: (error) => log.error(error) })
 * await refusals.record(db, { code: 'AUTH_SIGNATURE_INVALID', ... }, now)
 */
import type { Kysely } from 'kysely'
import type { CoreErrorCode } from '../../errors.js'
import { TokenBuckets } from '../../server/admission.js'
import type { Clock } from '../ids.js'
import { addressKey } from '../identity/login-throttle.js'
import { appendAudit } from './audit-log.js'

/** The codes that record a refusal, and why: the credentials, or the rights they carry. */
export const refusalReasons: Readonly<Partial<Record<CoreErrorCode, RefusalReason>>> = {
  AUTH_SESSION_REQUIRED: 'authentication',
  /** Only when a signed-in user is refused (the password change); a login audits its own. */
  AUTH_INVALID_CREDENTIALS: 'authentication',
  AUTH_SIGNATURE_MISSING: 'authentication',
  AUTH_SIGNATURE_INVALID: 'authentication',
  AUTH_TIMESTAMP_OUT_OF_WINDOW: 'authentication',
  AUTH_NONCE_REPLAYED: 'authentication',
  AUTH_APP_NOT_FOUND: 'authentication',
  AUTH_APP_NO_ACTIVE_KEY: 'authentication',
  AUTH_APP_AUTH_TOKEN_INVALID: 'authentication',
  AUTH_LOGIN_THROTTLED: 'authentication',
  AUTHZ_CODE_INVALID: 'authentication',
  AUTHZ_REFRESH_TOKEN_INVALID: 'authentication',
  AUTH_FORBIDDEN: 'authorization',
  AUTH_SCOPE_MISSING: 'authorization',
  AUTHZ_CSRF_TOKEN_INVALID: 'authorization',
  AUTHZ_MERCHANT_ROLE_REQUIRED: 'authorization',
}

/** Entries one key may write at once, and how fast it earns another: 20, then one per 6 s. */
export const refusalRecordsBurst = 20
export const refusalRecordRefillS = 6
/** Keys held at most (about 150 bytes each); past it the oldest are forgotten, counts and all. */
const keysMax = 50_000
/** Claimed app ids are the caller's text: only this much of one is kept. */
const claimedLengthMax = 64

export type RefusalReason = 'authentication' | 'authorization'

export interface Refusal {
  readonly reason: RefusalReason
  /** The error code (or the Alipay gateway's sub_code) the caller was answered. */
  readonly code: string
  /** The proven app or user id; `anonymous` when the credentials themselves were refused. */
  readonly actor: string
  /** The app id the request named, if it named one; kept even when unproven. */
  readonly claimedApp: string | null
  readonly method: string
  /** The route's template (`/v1/trades/:trade_id`), or null for an unknown route. */
  readonly route: string | null
  readonly clientAddress: string
  readonly requestId: string
}

/** What the caller of {@link RefusalAudit.record} knows of a refusal beyond the request itself. */
export type RefusalOfRequest = Pick<Refusal, 'reason' | 'code' | 'actor' | 'claimedApp'>

export interface RefusalAudit {
  /**
   * Appends the entry if the key's budget allows, else counts it. Never throws: a failed
   * append is counted and reported to `onError`.
   */
  record(db: Kysely<any>, refusal: Refusal, now: number): Promise<'recorded' | 'counted' | 'failed'>
}

export function createRefusalAudit(
  clock: Clock,
  options: { readonly proxiesNamed: boolean; readonly onError: (error: unknown) => void },
): RefusalAudit {
  const budgets = new TokenBuckets(1 / refusalRecordRefillS, refusalRecordsBurst, () => clock.now(), keysMax)
  const unrecorded = new Map<string, number>()
  /** Adds to a key's count of refusals not written, within the cap (the oldest key goes first). */
  const count = (key: string, refusals: number) => {
    if (unrecorded.size >= keysMax && !unrecorded.has(key)) unrecorded.delete(unrecorded.keys().next().value!)
    unrecorded.set(key, (unrecorded.get(key) ?? 0) + refusals)
  }
  return {
    async record(db, refusal, now) {
      const claimed = refusal.claimedApp?.slice(0, claimedLengthMax) ?? null
      // The key is who was proven, else the address alone: an unproven caller names whatever
      // app it likes, and each name must not buy it a fresh budget.
      const address = addressKey(refusal.clientAddress, options.proxiesNamed) ?? '(shared address)'
      const key = `${refusal.actor}\n${address}`
      if (!budgets.take(key).allowed) {
        count(key, 1)
        return 'counted'
      }
      const before = unrecorded.get(key) ?? 0
      unrecorded.delete(key)
      try {
        await db.transaction().execute((tx) =>
          appendAudit(
            tx,
            {
              actor: refusal.actor,
              action: 'access.refused',
              target: `${refusal.method} ${refusal.route ?? '(no route)'}`,
              data: {
                reason: refusal.reason,
                code: refusal.code,
                ...(claimed === null ? {} : { claimed_app: claimed }),
                address: refusal.clientAddress,
                request_id: refusal.requestId,
                ...(before > 0 ? { unrecorded: before } : {}),
              },
            },
            now,
          ),
        )
        return 'recorded'
      } catch (error) {
        count(key, before + 1)
        options.onError(error)
        return 'failed'
      }
    },
  }
}
