/**
 * Schemas shared by many routes. Request schemas forbid unknown properties, so a typo in a
 * field name is a clear 400 rather than a silently ignored value.
 */
import { Type, type TSchema } from '@sinclair/typebox'

export const pageSizeMax = 100
export const pageSizeDefault = 20

export const Id = (prefix: string) =>
  Type.String({ pattern: `^${prefix}_[0-9a-z]{20}$`, maxLength: 64, description: `A ${prefix}_ identifier` })

export const IsoTime = Type.String({ format: 'date-time', description: 'ISO 8601 time, UTC' })

export const Name = Type.String({ minLength: 1, maxLength: 200 })

export const Email = Type.String({ format: 'email', maxLength: 254 })

export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: pageSizeMax, default: pageSizeDefault })),
    starting_after: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
)

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    data: Type.Array(item),
    has_more: Type.Boolean({ description: 'True when more items follow the last one returned' }),
  })
}

export const ErrorBody = Type.Object(
  {
    code: Type.String(),
    message: Type.String(),
    field: Type.Optional(Type.String()),
    requestId: Type.String(),
    signedString: Type.Optional(Type.String({ description: 'On AUTH_SIGNATURE_INVALID: what the server verified' })),
  },
  { $id: 'ErrorBody', additionalProperties: true },
)

export function isoTime(ms: number): string {
  return new Date(ms).toISOString()
}

/** Splits a fetched page of `limit + 1` rows into the page and its `has_more` flag. */
export function toPage<R, T>(rows: readonly R[], limit: number, map: (row: R) => T): { data: T[]; has_more: boolean } {
  return { data: rows.slice(0, limit).map(map), has_more: rows.length > limit }
}
