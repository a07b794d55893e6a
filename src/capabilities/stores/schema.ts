import { Type, type Static } from '@sinclair/typebox'
import { Id, IsoTime } from '../../server/schemas.js'

export const StoreStatus = Type.Union([Type.Literal('open'), Type.Literal('closed')])

export const Store = Type.Object({
  id: Id('store'),
  organization_id: Id('org'),
  out_store_no: Type.String({ description: "The merchant's own store number, unique per merchant" }),
  name: Type.String(),
  address: Type.String(),
  city_code: Type.Union([Type.String(), Type.Null()], { description: 'GB/T 2260 administrative code' }),
  status: StoreStatus,
  created_at: IsoTime,
  closed_at: Type.Union([IsoTime, Type.Null()]),
})
export type StoreView = Static<typeof Store>

export const CreateStore = Type.Object(
  {
    out_store_no: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    address: Type.String({ minLength: 1, maxLength: 512 }),
    city_code: Type.Optional(Type.String({ pattern: '^[0-9]{6}$' })),
  },
  { additionalProperties: false },
)
export type CreateStoreInput = Static<typeof CreateStore>

export const StoreParams = Type.Object({ store_id: Id('store') })

export const StoreListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    starting_after: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    status: Type.Optional(StoreStatus),
  },
  { additionalProperties: false },
)
