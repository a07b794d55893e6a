import { expect, it } from 'vitest'
import { json } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'

forEachDialect('docs endpoints', (dialect) => {
  const bp = useTestPlatform(dialect)

  it('serves OpenAPI 3.1 built from the route schemas, with auth on every operation', async () => {
    const document = json(await bp().app.inject({ method: 'GET', url: '/openapi.json' }))
    expect(document.openapi).toBe('3.1.0')
    const operations = Object.values(document.paths as Record<string, Record<string, any>>).flatMap((item) =>
      Object.values(item),
    )
    expect(operations.length).toBeGreaterThanOrEqual(15)
    for (const operation of operations) {
      expect(['public', 'session', 'app']).toContain(operation['x-baseplate-auth'])
      expect(operation.operationId).toMatch(/^[a-z][A-Za-z]+$/)
    }
    const createStore = document.paths['/v1/stores'].post
    expect(createStore.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['out_store_no', 'name', 'address']),
    )
    expect(createStore['x-baseplate-scope']).toBe('stores:write')
    expect(createStore['x-baseplate-idempotency']).toBe('required')
  })

  it('renders the docs and answers health checks', async () => {
    const docs = await bp().app.inject({ method: 'GET', url: '/docs/' })
    expect(docs.statusCode).toBe(200)
    expect(docs.headers['content-type']).toContain('text/html')
    const asset = await bp().app.inject({ method: 'GET', url: '/docs/static/swagger-ui-bundle.js' })
    expect(asset.statusCode).toBe(200)
    const health = json(await bp().app.inject({ method: 'GET', url: '/healthz' }))
    expect(health).toEqual({ status: 'ok', database: dialect })
  })
})
