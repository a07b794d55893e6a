/**
 * Slows password guessing wherever a password is checked: the console's `POST /v1/sessions`, the
 * consent page's login form, and `POST /v1/me/password`. Every check takes a token from two
 * buckets, one per account (for a login the email, known or not, so the answer reveals nothing
 * about which emails exist; for a password change the user) and one per client address. A check
 * that fails on the credentials keeps both spent; any other outcome gives them back. A check
 * finding either bucket empty is refused with `AUTH_LOGIN_THROTTLED` (429, `Retry-After`) before
 * the password is looked at, so a guesser costs neither a scrypt nor an audit row (ADR 0019).
 *
 * The address bucket counts only addresses that can be told apart: without named proxies
 * (`BASEPLATE_TRUST_PROXY`), a loopback or private peer is most likely a reverse proxy in front
 * of every client, and limiting it would let one guesser lock everyone out; IPv6 addresses are
 * counted by their /64, which one host usually has whole.
 *
 * Per process, like the per-app rate limit (ADR 0012): N processes allow N times the rate.
 *
 * @example
 * const throttle = createLoginThrottle(clock, { proxiesNamed: false })
 * const session = await throttle.guarded(loginAccount(email), request.ip, () => login(db, email, password, now, ttlS))
 */
import net from 'node:net'
import { AppError, isAppError } from '../../errors.js'
import { TokenBuckets } from '../../server/admission.js'
import type { Clock } from '../ids.js'

/** Failed checks an account may have at once, and how fast it earns another: 5, then one per 3 minutes. */
export const accountFailuresBurst = 5
export const accountFailureRefillS = 180
/** The same for one client address, across accounts (offices behind one NAT): 50, then one per 10 s. */
export const addressFailuresBurst = 50
export const addressFailureRefillS = 10
/** Keys each map holds at most (about 100 bytes each); past it the oldest are forgotten. */
const keysMax = 100_000

export interface LoginThrottle {
  /**
   * Runs `check` (which throws AUTH_INVALID_CREDENTIALS for wrong credentials) if `account` and
   * the address have tokens left, counting it as a failure only if it threw that.
   */
  guarded<T>(account: string, clientAddress: string, check: () => Promise<T>): Promise<T>
}

export class LoginThrottledError extends AppError {
  constructor(readonly retryAfterS: number) {
    super('AUTH_LOGIN_THROTTLED')
  }
}

/** The account key of a login: the email as `login` matches it. */
export function loginAccount(email: string): string {
  return `email:${email.trim().toLowerCase()}`
}

/** The account key of a password check by a signed-in user. */
export function userAccount(userId: string): string {
  return `user:${userId}`
}

const shared = new net.BlockList()
shared.addSubnet('127.0.0.0', 8, 'ipv4')
shared.addSubnet('10.0.0.0', 8, 'ipv4')
shared.addSubnet('172.16.0.0', 12, 'ipv4')
shared.addSubnet('192.168.0.0', 16, 'ipv4')
shared.addSubnet('169.254.0.0', 16, 'ipv4')
shared.addAddress('::1', 'ipv6')
shared.addSubnet('fc00::', 7, 'ipv6')
shared.addSubnet('fe80::', 10, 'ipv6')

/**
 * The address bucket's key, or null when the address cannot stand for one client: a loopback or
 * private peer while no proxy is named.
 */
export function addressKey(clientAddress: string, proxiesNamed: boolean): string | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(clientAddress)
  const address = mapped === null ? clientAddress : mapped[1]!
  const family = net.isIP(address)
  if (family === 0) return proxiesNamed ? address : null
  if (!proxiesNamed && shared.check(address, family === 4 ? 'ipv4' : 'ipv6')) return null
  if (family === 4) return address
  return `${expandIpv6(address).slice(0, 4).join(':')}::/64`
}

function expandIpv6(address: string): string[] {
  const [head, tail] = address.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0')
  return [...left, ...zeros, ...right].map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
}

export function createLoginThrottle(clock: Clock, options: { readonly proxiesNamed: boolean }): LoginThrottle {
  const ticks = () => clock.now()
  const accounts = new TokenBuckets(1 / accountFailureRefillS, accountFailuresBurst, ticks, keysMax)
  const addresses = new TokenBuckets(1 / addressFailureRefillS, addressFailuresBurst, ticks, keysMax)
  return {
    async guarded(account, clientAddress, check) {
      const address = addressKey(clientAddress, options.proxiesNamed)
      const byAccount = accounts.take(account)
      const byAddress = address === null ? ({ allowed: true } as const) : addresses.take(address)
      const giveBack = () => {
        if (byAccount.allowed) accounts.giveBack(account)
        if (byAddress.allowed && address !== null) addresses.giveBack(address)
      }
      if (!byAccount.allowed || !byAddress.allowed) {
        // A refused attempt costs nothing: whichever token it did take goes back.
        giveBack()
        const waitMs = Math.max(
          byAccount.allowed ? 0 : byAccount.retryAfterMs,
          byAddress.allowed ? 0 : byAddress.retryAfterMs,
        )
        throw new LoginThrottledError(Math.max(1, Math.ceil(waitMs / 1000)))
      }
      try {
        const result = await check()
        giveBack()
        return result
      } catch (error) {
        if (!isAppError(error) || error.code !== 'AUTH_INVALID_CREDENTIALS') giveBack()
        throw error
      }
    },
  }
}
