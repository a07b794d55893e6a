/**
 * Two validators: bodies are checked exactly as sent (no type coercion, unknown properties
 * refused), while path and query parameters, which arrive as strings, are coerced to the
 * declared types. A money API must never turn `"amount": "100"` into 100 silently.
 *
 * Numbers are also kept within what the rest of the stack can hold. JSON Schema's `integer`
 * accepts 1e20, and coercing the query string `1e400` yields Infinity, which then passes
 * `integer` as well; such a value reaching SQL (`where seq > 1e20` against a bigint column
 * on PostgreSQL) fails as a 500. So every integer without explicit bounds is limited to the
 * safe-integer range, and every number to finite values, and both answer as
 * REQUEST_VALIDATION_FAILED.
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

type AddFormats = (ajv: Ajv) => Ajv
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats

function createAjv(options: Options): Ajv {
  const ajv = new Ajv({ allErrors: false, useDefaults: true, removeAdditional: false, strict: false, ...options })
  addFormats(ajv)
  return ajv
}

/** Keywords whose value is a subschema or a list of subschemas. */
const subschemaKeywords = new Set([
  'items',
  'additionalItems',
  'additionalProperties',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
  'allOf',
  'anyOf',
  'oneOf',
  'prefixItems',
])
/** Keywords whose value maps names to subschemas. */
const subschemaMapKeywords = new Set(['properties', 'patternProperties', 'dependentSchemas', '$defs', 'definitions'])

function hasUnboundedNumber(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.some(hasUnboundedNumber)
  if (schema === null || typeof schema !== 'object') return false
  const node = schema as Record<string, unknown>
  const types = Array.isArray(node.type) ? node.type : [node.type]
  if (
    (types.includes('integer') || types.includes('number')) &&
    ((node.maximum === undefined && node.exclusiveMaximum === undefined) ||
      (node.minimum === undefined && node.exclusiveMinimum === undefined))
  )
    return true
  return Object.entries(node).some(([key, value]) =>
    subschemaKeywords.has(key)
      ? hasUnboundedNumber(value)
      : subschemaMapKeywords.has(key) && value !== null && typeof value === 'object'
        ? Object.values(value).some(hasUnboundedNumber)
        : false,
  )
}

/** A copy of the schema with every unbounded integer or number given safe bounds. */
function boundNumbers(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(boundNumbers)
  if (schema === null || typeof schema !== 'object') return schema
  const node = schema as Record<string, unknown>
  const copy: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    if (subschemaKeywords.has(key)) copy[key] = boundNumbers(value)
    else if (subschemaMapKeywords.has(key) && value !== null && typeof value === 'object') {
      copy[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, boundNumbers(sub)]))
    } else copy[key] = value
  }
  const types = Array.isArray(node.type) ? node.type : [node.type]
  if (types.includes('integer') || types.includes('number')) {
    const limit = types.includes('number') ? Number.MAX_VALUE : Number.MAX_SAFE_INTEGER
    if (copy.maximum === undefined && copy.exclusiveMaximum === undefined) copy.maximum = limit
    if (copy.minimum === undefined && copy.exclusiveMinimum === undefined) copy.minimum = -limit
  }
  return copy
}

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const bodyAjv = createAjv({ coerceTypes: false })
  const parameterAjv = createAjv({ coerceTypes: 'array' })
  return ({ schema, httpPart }) => {
    const ajv = httpPart === 'body' ? bodyAjv : parameterAjv
    // Schemas that need no bounds are compiled as given, so Ajv's cache still applies.
    const bounded = hasUnboundedNumber(schema) ? boundNumbers(schema) : schema
    const validate = ajv.compile(bounded as object)
    if (httpPart === 'body') return validate as ReturnType<FastifySchemaCompiler<unknown>>
    return strictIntegers(validate, integerProperties(bounded)) as ReturnType<FastifySchemaCompiler<unknown>>
  }
}

/** The names of a parameter schema's integer properties. */
function integerProperties(schema: unknown): string[] {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {}
  return Object.entries(properties)
    .filter(([, property]) => property.type === 'integer')
    .map(([name]) => name)
}

const decimalInteger = /^-?(0|[1-9][0-9]*)$/

/**
 * Path and query values arrive as text and are coerced to the declared type; JavaScript's
 * number rules would read `1 `, `01`, `0x1` or `1e0` as 1. Only plain decimal digits count.
 */
function strictIntegers(validate: ValidateFunction, names: readonly string[]) {
  if (names.length === 0) return validate
  const strict = (data: unknown): boolean => {
    const values = (data ?? {}) as Record<string, unknown>
    for (const name of names) {
      const raw = values[name]
      const texts = Array.isArray(raw) ? raw : [raw]
      if (texts.some((text) => typeof text === 'string' && !decimalInteger.test(text))) {
        strict.errors = [
          {
            instancePath: `/${name}`,
            schemaPath: '#/type',
            keyword: 'type',
            params: { type: 'integer' },
            message: 'must be an integer written in decimal digits',
          },
        ]
        return false
      }
    }
    const valid = validate(data) as boolean
    strict.errors = validate.errors ?? null
    return valid
  }
  strict.errors = null as ErrorObject[] | null | undefined
  return strict
}
