/**
 * Stores (门店): the places a merchant sells from. Small, but a real capability: tenant-
 * scoped rows, a governable limit read through the policy service, and outbox events.
 */
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { AppError } from '../../errors.js'
import { newId } from '../../platform/ids.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { isoTime, toPage } from '../../server/schemas.js'
import { isUniqueViolation } from '../../storage/database.js'
import type { CapabilityContext } from '../contract.js'
import type { CreateStoreInput, StoreView } from './schema.js'

export interface StoresTable {
  id: string
  organization_id: string
  /** Sandbox and live keep separate data, as they keep separate apps and keys. */
  environment: 'sandbox' | 'live'
  out_store_no: string
  name: string
  address: string
  city_code: string | null
  status: 'open' | 'closed'
  created_by_app_id: string | null
  created_at: number
  closed_at: number | null
}

type Db = Kysely<{ stores: StoresTable }>

export const openStoresMaxKey = 'stores.open_stores_max'

function view(row: StoresTable): StoreView {
  return {
    id: row.id,
    organization_id: row.organization_id,
    out_store_no: row.out_store_no,
    name: row.name,
    address: row.address,
    city_code: row.city_code,
    status: row.status,
    created_at: isoTime(row.created_at),
    closed_at: row.closed_at === null ? null : isoTime(row.closed_at),
  }
}

export function createStoreService(context: CapabilityContext) {
  async function find(db: Kysely<any>, principal: AppPrincipal, storeId: string): Promise<StoresTable> {
    // Every query is scoped by the tenant: another tenant's store is simply not found.
    const row = await (db as Db)
      .selectFrom('stores')
      .selectAll()
      .where('id', '=', storeId)
      .where('organization_id', '=', principal.tenantId)
      .where('environment', '=', principal.environment)
      .executeTakeFirst()
    if (row === undefined) throw new AppError('STORES_NOT_FOUND', { field: 'params.store_id' })
    return row
  }

  return {
    async create(db: Kysely<any>, principal: AppPrincipal, input: CreateStoreInput, now: number) {
      const limit = await context.policy.get<number>(db, openStoresMaxKey, { merchantId: principal.tenantId, at: now })
      const open = await (db as Db)
        .selectFrom('stores')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('organization_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
        .where('status', '=', 'open')
        .executeTakeFirstOrThrow()
      if (Number(open.count) >= limit.value) {
        throw new AppError('STORES_LIMIT_REACHED', {
          message:
            `The merchant has ${open.count} open stores; ` +
            `the limit (policy version ${limit.version}) is ${limit.value}`,
        })
      }
      const row: StoresTable = {
        id: newId('store'),
        organization_id: principal.tenantId,
        environment: principal.environment,
        out_store_no: input.out_store_no,
        name: input.name,
        address: input.address,
        city_code: input.city_code ?? null,
        status: 'open',
        created_by_app_id: principal.appId,
        created_at: now,
        closed_at: null,
      }
      try {
        await (db as Db).insertInto('stores').values(row).execute()
      } catch (error) {
        if (isUniqueViolation(error)) throw new AppError('STORES_OUT_STORE_NO_TAKEN', { field: 'body.out_store_no' })
        throw error
      }
      const result = view(row)
      await context.events.emit(
        db,
        { type: 'stores.created', organizationId: row.organization_id, appId: principal.appId, payload: result },
        now,
      )
      return result
    },

    async get(db: Kysely<any>, principal: AppPrincipal, storeId: string) {
      return view(await find(db, principal, storeId))
    },

    async list(
      db: Kysely<any>,
      principal: AppPrincipal,
      query: { limit?: number; starting_after?: string; status?: 'open' | 'closed' },
    ) {
      const limit = query.limit ?? 20
      let select = (db as Db)
        .selectFrom('stores')
        .selectAll()
        .where('organization_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
      if (query.status !== undefined) select = select.where('status', '=', query.status)
      if (query.starting_after !== undefined) select = select.where('id', '>', query.starting_after)
      return toPage(
        await select
          .orderBy('id')
          .limit(limit + 1)
          .execute(),
        limit,
        view,
      )
    },

    async close(db: Kysely<any>, principal: AppPrincipal, storeId: string, now: number) {
      const row = await find(db, principal, storeId)
      if (row.status === 'closed') throw new AppError('STORES_ALREADY_CLOSED')
      const updated = await (db as Db)
        .updateTable('stores')
        .set({ status: 'closed', closed_at: now })
        .where('id', '=', storeId)
        .where('status', '=', 'open')
        .executeTakeFirst()
      // A concurrent close of the same store lost the race inside its own transaction.
      if (updated.numUpdatedRows === 0n) throw new AppError('STORES_ALREADY_CLOSED')
      assert(updated.numUpdatedRows === 1n, 'closing a store updates exactly one row')
      const result = view({ ...row, status: 'closed', closed_at: now })
      await context.events.emit(
        db,
        { type: 'stores.closed', organizationId: row.organization_id, appId: principal.appId, payload: result },
        now,
      )
      return result
    },
  }
}

export type StoreService = ReturnType<typeof createStoreService>
