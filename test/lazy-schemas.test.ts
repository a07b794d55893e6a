import { expect, it } from 'vitest'
import { describe } from 'vitest'
import { useTestPlatform } from './harness.js'

describe('route schemas compiled at first use', () => {
  const bp = useTestPlatform('sqlite')

  it('serves before any schema is compiled, compiling only what the request needs', async () => {
    const first = await bp().app.inject({ method: 'GET', url: '/v1/trades/trade_00000000000000000000' })
    expect(first.statusCode).toBe(401)
    expect(first.json()).toMatchObject({ code: 'AUTH_SIGNATURE_MISSING' })
  })

  it('compiles every route schema without an error, once', () => {
    // Every validator and serializer of every route: a schema mistake fails here, not at the
    // first request that reaches the route in production.
    expect(bp().app.compileAllSchemas()).toBeGreaterThan(100)
    expect(bp().app.compileAllSchemas()).toBe(0)
  })
})
