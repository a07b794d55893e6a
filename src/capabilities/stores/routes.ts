import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import { Page } from '../../server/schemas.js'
import { CreateStore, Store, StoreListQuery, StoreParams } from './schema.js'
import type { StoreService } from './service.js'

export function routes(stores: StoreService): RouteSpec[] {
  const tags = ['stores']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/stores',
      operationId: 'createStore',
      auth: 'app',
      scope: 'stores:write',
      tags,
      status: 201,
      summary: 'Open a store for the merchant',
      idempotency: 'required',
      schema: { body: CreateStore, response: Store },
      handler: ({ db, principal, body, now }) => stores.create(db, principal, body, now),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/stores',
      operationId: 'listStores',
      auth: 'app',
      scope: 'stores:read',
      tags,
      summary: "List the merchant's stores",
      schema: { querystring: StoreListQuery, response: Page(Store) },
      handler: ({ db, principal, query }) => stores.list(db, principal, query),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/stores/:store_id',
      operationId: 'getStore',
      auth: 'app',
      scope: 'stores:read',
      tags,
      summary: 'Read a store',
      schema: { params: StoreParams, response: Store },
      handler: ({ db, principal, params }) => stores.get(db, principal, params.store_id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/stores/:store_id/close',
      operationId: 'closeStore',
      auth: 'app',
      scope: 'stores:write',
      tags,
      summary: 'Close a store',
      idempotency: 'optional',
      schema: { params: StoreParams, response: Store },
      handler: ({ db, principal, params, now }) => stores.close(db, principal, params.store_id, now),
    }),
  ]
}
