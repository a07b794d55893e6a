import type { ErrorSpec } from '../../errors.js'

export const storeErrors = {
  STORES_NOT_FOUND: { status: 404, message: 'No such store' },
  STORES_OUT_STORE_NO_TAKEN: { status: 409, message: 'A store with this out_store_no exists' },
  STORES_LIMIT_REACHED: { status: 422, message: 'The merchant has reached its limit of open stores' },
  STORES_ALREADY_CLOSED: { status: 409, message: 'The store is closed already' },
} as const satisfies Record<string, ErrorSpec>
