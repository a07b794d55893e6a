/**
 * Password guessing at the console login is slowed per account and per client address
 * (ADR 0019): five failures for an account, then one more every three minutes; fifty from an
 * address; refused attempts are answered 429 before the password is checked, and an unknown
 * email is treated exactly like a known one.
 */
import { beforeAll, expect, it } from 'vitest'
import {
  accountFailureRefillS,
  accountFailuresBurst,
  addressFailuresBurst,
} from '../src/platform/identity/login-throttle.js'
import { json, signUp, testPassword, type Tenant } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

forEachDialect('login throttle', (dialect) => {
  const clock = manualClock()
  const bp = useTestPlatform(dialect, { clock })
  let user: Tenant
  let address = 0
  /** A fresh client address for each test, so that tests do not share its bucket. */
  const nextAddress = () => `10.0.0.${(address += 1)}`

  beforeAll(async () => {
    user = await signUp(bp().app)
  })

  const attempt = (email: string, password: string, remoteAddress: string) =>
    bp().app.inject({ method: 'POST', url: '/v1/sessions', payload: { email, password }, remoteAddress })

  it('refuses an account after its failures, even with the right password, until it has waited', async () => {
    const from = nextAddress()
    for (let n = 0; n < accountFailuresBurst; n += 1)
      expect((await attempt(user.email, 'wrong', from)).statusCode).toBe(401)
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

  it("forgets an account's failures when it logs in", async () => {
    const other = await signUp(bp().app)
    const from = nextAddress()
    for (let n = 0; n < accountFailuresBurst - 1; n += 1) await attempt(other.email, 'wrong', from)
    expect((await attempt(other.email, testPassword, from)).statusCode).toBe(201)
    for (let n = 0; n < accountFailuresBurst; n += 1)
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
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    expect((await attempt(`spray-${dialect}-last@example.com`, 'wrong', nextAddress())).statusCode).toBe(401)
  })
})
