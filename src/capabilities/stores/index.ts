import { Type } from '@sinclair/typebox'
import { defineCapability } from '../contract.js'
import { storeErrors } from './errors.js'
import * as createStores from './migrations/2026-11-25T00-10_create_stores.js'
import { routes } from './routes.js'
import { Store } from './schema.js'
import { createStoreService, openStoresMaxKey, type StoreService } from './service.js'

export default defineCapability<StoreService>({
  id: 'stores',
  version: '1.0.0',
  title: { en: 'Stores', zh: '门店' },
  dependsOn: [],
  scopes: {
    'stores:read': "Read the merchant's stores",
    'stores:write': "Create and close the merchant's stores",
  },
  events: { 'stores.created': Store, 'stores.closed': Store },
  parameters: {
    [openStoresMaxKey]: {
      schema: Type.Integer({ minimum: 1, maximum: 100_000 }),
      default: 200,
      scope: 'merchant',
      description: {
        en: 'How many open stores one merchant may have',
        zh: '单个商家可同时营业的门店数量上限',
      },
    },
  },
  errors: storeErrors,
  migrations: { '2026-11-25T00-10_create_stores': createStores },
  createService: createStoreService,
  routes,
})
