/**
 * Password guessing is slowed per account and per client address (ADR 0019): five failures for
 * an account, then one more every three minutes; fifty from an address; refused attempts are
 * answered 429 before the password is checked, and an unknown email is treated exactly like a
 * known one. Addresses are the TEST-NET ranges, public ones; a private or loopback peer is not
 * counted unless proxies are named.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import {
  accountFailureRefillS,
  accountFailuresBurst,
  addressFailureRefillS,
  addressFailuresBurst,
  addressKey,
} from '../src/platform/identity/login-throttle.js'
import { json, session, signUp, testPassword, type Tenant } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

describe('the address a login is counted under', () => {
  it('counts public addresses, IPv6 by /64, and private peers only behind named proxies', () => {
    expect(addressKey('203.0.113.7', false)).toBe('203.0.113.7')
    expect(addressKey('::ffff:203.0.113.7', false)).toBe('203.0.113.7')
    expect(addressKey('2001:db8:aa:bb:1:2:3:4', false)).toBe('2001:db8:aa:bb::/64')
    expect(addressKey('2001:db8:aa:bb::9', false)).toBe('2001:db8:aa:bb::/64')
    expect(addressKey('2001:db8::1', false)).toBe('2001:db8:0:0::/64')
    for (const peer of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '::1', 'fd00::1', '::ffff:10.0.0.1']) {
      expect(addressKey(peer, false), peer).toBeNull()
    }
    expect(addressKey('10.1.2.3', true)).toBe('10.1.2.3')
  })
})

forEachDialect('login throttle', (dialect) => {
  const clock = manualClock()
  const bp = useTestPlatform(dialect, { clock })
  let user: Tenant
  let address = 0
  /** A fresh public client address for each test, so that tests do not share its bucket. */
  const nextAddress = () => `203.0.113.${(address += 1)}`

  beforeAll(async () => {
    user = await signUp(bp().app)
  })

  const attempt = (email: string, password: string, remoteAddress: string) =>
    bp().app.inject({ method: 'POST', url: '/v1/sessions', payload: { email, password }, remoteAddress })

  it('refuses an account after its failures, even with the right password, until it has waited', async () => {
    const from = nextAddress()
    for (let n = 0; n < accountFailuresBurst; n += 1) {
      expect((await attempt(user.email, 'wrong', from)).statusCode).toBe(401)
    }
    const refused = await attempt(user.email, testPassword, from)
    expect(refused.statusCode).toBe(429)
    expect(json(refused).code).toBe('AUTH_LOGIN_THROTTLED')
    expect(Number(refused.headers['retry-after'])).toBe(accountFailureRefillS)
    // Another address does not help: the account is what is being guessed.
    expect((await attempt(user.email, testPassword, nextAddress())).statusCode).toBe(429)
    clock.advance(accountFailureRefillS * 1000)
    expect((await attempt(user.email, testPassword, from)).statusCode).toBe(201)
  })

  it('treats an unknown email like a known one', async () => {
    const from = nextAddress()
    const unknown = `nobody-${dialect}@example.com`
    for (let n = 0; n < accountFailuresBurst; n += 1) {
      const answer = await attempt(unknown, 'wrong', from)
      expect(answer.statusCode).toBe(401)
      expect(json(answer).code).toBe('AUTH_INVALID_CREDENTIALS')
    }
    expect(json(await attempt(unknown, 'wrong', from)).code).toBe('AUTH_LOGIN_THROTTLED')
    // The email's case does not make a new account to guess.
    expect(json(await attempt(unknown.toUpperCase(), 'wrong', from)).code).toBe('AUTH_LOGIN_THROTTLED')
  })

  it('costs a successful login nothing, and does not forget the failures before it', async () => {
    const other = await signUp(bp().app)
    const from = nextAddress()
    for (let n = 0; n < accountFailuresBurst - 1; n += 1) await attempt(other.email, 'wrong', from)
    for (let n = 0; n < 3; n += 1) expect((await attempt(other.email, testPassword, from)).statusCode).toBe(201)
    expect((await attempt(other.email, 'wrong', from)).statusCode).toBe(401)
    expect((await attempt(other.email, 'wrong', from)).statusCode).toBe(429)
  })

  it('refuses an address guessing across accounts, and no other address', async () => {
    const from = nextAddress()
    for (let n = 0; n < addressFailuresBurst; n += 1) {
      expect((await attempt(`spray-${dialect}-${n}@example.com`, 'wrong', from)).statusCode).toBe(401)
    }
    const refused = await attempt(`spray-${dialect}-last@example.com`, 'wrong', from)
    expect(refused.statusCode).toBe(429)
    expect(Number(refused.headers['retry-after'])).toBe(addressFailureRefillS)
    expect((await attempt(`spray-${dialect}-last@example.com`, 'wrong', nextAddress())).statusCode).toBe(401)
  })

  it('does not count a loopback or private peer, which may be a proxy in front of everyone', async () => {
    for (let n = 0; n < addressFailuresBurst + 5; n += 1) {
      expect((await attempt(`behind-${dialect}-${n}@example.com`, 'wrong', '10.0.0.1')).statusCode).toBe(401)
    }
    expect((await attempt(user.email, testPassword, '10.0.0.1')).statusCode).toBe(201)
  })

  it('throttles the current password of a password change the same way', async () => {
    const changer = await signUp(bp().app)
    const change = (current: string) =>
      session(bp().app, 'POST', '/v1/me/password', changer.token, {
        current_password: current,
        new_password: 'another long passphrase',
      })
    for (let n = 0; n < accountFailuresBurst; n += 1) expect((await change('wrong')).statusCode).toBe(401)
    const refused = await change(testPassword)
    expect(refused.statusCode).toBe(429)
    expect(json(refused).code).toBe('AUTH_LOGIN_THROTTLED')
  })
})

forEachDialect('login throttle behind a named proxy', (dialect) => {
  // A still clock: 50 scrypts on a loaded machine may take over the 10 s that refill a token.
  const bp = useTestPlatform(dialect, { clock: manualClock(), config: { BASEPLATE_TRUST_PROXY: '127.0.0.1' } })

  it('counts the client the proxy names, not the proxy', async () => {
    const attempt = (email: string, client: string) =>
      bp().app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email, password: 'wrong' },
        headers: { 'x-forwarded-for': client },
      })
    for (let n = 0; n < addressFailuresBurst; n += 1) {
      expect((await attempt(`proxied-${dialect}-${n}@example.com`, '198.51.100.7')).statusCode).toBe(401)
    }
    expect((await attempt(`proxied-${dialect}-x@example.com`, '198.51.100.7')).statusCode).toBe(429)
    expect((await attempt(`proxied-${dialect}-x@example.com`, '198.51.100.8')).statusCode).toBe(401)
  })
})
