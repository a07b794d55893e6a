/**
 * Slows password guessing at the two logins (the console's `POST /v1/sessions` and the consent
 * page's form). Every attempt takes a token from two buckets, one per account (the email, known
 * or not, so the answer reveals nothing about which emails exist) and one per client address; a
 * failed attempt keeps them spent, a successful one refills the account's bucket and returns
 * the address's token. An attempt finding either bucket empty is refused with
 * `AUTH_LOGIN_THROTTLED` (429, `Retry-After`) before the password is checked, so a guesser
 * costs neither a scrypt nor an audit row (ADR 0019).
 *
 * Per process, like the per-app rate limit (ADR 0012): N processes allow N times the rate.
 *
 * @example
 * const throttle = createLoginThrottle(clock)
 * const session = await throttledLogin(throttle, { db, email, password, clientAddress, now, ttlS })
 */
import type { Kysely } from 'kysely'
import { AppError, isAppError } from '../../errors.js'
import { TokenBuckets } from '../../server/admission.js'
import type { Clock } from '../ids.js'
import { login } from './service.js'

/** Failed logins an account may have at once, and how fast it earns another: 5, then one per 3 minutes. */
export const accountFailuresBurst = 5
export const accountFailureRefillS = 180
/** The same for one client address, across accounts (offices behind one NAT): 50, then one per 10 s. */
export const addressFailuresBurst = 50
export const addressFailureRefillS = 10

export interface LoginThrottle {
  /** Takes a token from both buckets, or throws AUTH_LOGIN_THROTTLED with the wait in `retryAfterS`. */
  admit(email: string, clientAddress: string): void
  /** The attempt succeeded: the account's bucket is full again, and the address's token returned. */
  succeeded(email: string, clientAddress: string): void
  /** The attempt failed for another reason than the credentials: both tokens are returned. */
  uncounted(email: string, clientAddress: string): void
}

export class LoginThrottledError extends AppError {
  constructor(readonly retryAfterS: number) {
    super('AUTH_LOGIN_THROTTLED')
  }
}

export function createLoginThrottle(clock: Clock): LoginThrottle {
  const ticks = () => clock.now()
  const accounts = new TokenBuckets(1 / accountFailureRefillS, accountFailuresBurst, ticks)
  const addresses = new TokenBuckets(1 / addressFailureRefillS, addressFailuresBurst, ticks)
  const account = (email: string) => email.trim().toLowerCase()
  return {
    admit(email, clientAddress) {
      const byAccount = accounts.take(account(email))
      const byAddress = addresses.take(clientAddress)
      if (byAccount.allowed && byAddress.allowed) return
      // A refused attempt costs nothing: whichever token it did take goes back.
      if (byAccount.allowed) accounts.giveBack(account(email))
      if (byAddress.allowed) addresses.giveBack(clientAddress)
      const waitMs = Math.max(
        byAccount.allowed ? 0 : byAccount.retryAfterMs,
        byAddress.allowed ? 0 : byAddress.retryAfterMs,
      )
      throw new LoginThrottledError(Math.max(1, Math.ceil(waitMs / 1000)))
    },
    succeeded(email, clientAddress) {
      accounts.forget(account(email))
      addresses.giveBack(clientAddress)
    },
    uncounted(email, clientAddress) {
      accounts.giveBack(account(email))
      addresses.giveBack(clientAddress)
    },
  }
}

/**
 * {@link login}, throttled: refused at once while the account or the address is over its
 * failures, and counting the attempt unless it failed for another reason than the credentials.
 */
export async function throttledLogin(
  throttle: LoginThrottle,
  attempt: {
    readonly db: Kysely<any>
    readonly email: string
    readonly password: string
    readonly clientAddress: string
    readonly now: number
    readonly ttlS: number
  },
): ReturnType<typeof login> {
  const { db, email, password, clientAddress, now, ttlS } = attempt
  throttle.admit(email, clientAddress)
  try {
    const session = await login(db, email, password, now, ttlS)
    throttle.succeeded(email, clientAddress)
    return session
  } catch (error) {
    if (!isAppError(error) || error.code !== 'AUTH_INVALID_CREDENTIALS') throttle.uncounted(email, clientAddress)
    throw error
  }
}
