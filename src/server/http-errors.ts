/**
 * The one place where failures become HTTP responses. An {@link AppError} answers with its
 * code's status; Fastify's own request errors (bad JSON, body too large, schema mismatch) are
 * mapped onto stable codes; anything else is logged and answered as INTERNAL_ERROR with no
 * detail, so internals never leak.
 */
import type { FastifyError } from 'fastify'
import { AppError, isAppError } from '../errors.js'

export interface ErrorResponse {
  readonly status: number
  readonly body: {
    code: string
    message: string
    field?: string
    requestId: string
    [extra: string]: unknown
  }
}

interface ValidationItem {
  instancePath?: string
  keyword?: string
  message?: string
  params?: Record<string, unknown>
}

function validationField(context: string | undefined, item: ValidationItem | undefined): string {
  const base = context ?? 'body'
  if (item === undefined) return base
  const path = (item.instancePath ?? '').split('/').filter(Boolean).join('.')
  const extra = item.params?.missingProperty ?? item.params?.additionalProperty
  return [base, path, typeof extra === 'string' ? extra : ''].filter(Boolean).join('.')
}

/** Maps an error that is not an AppError onto one, or returns null when it is a bug. */
export function requestErrorToAppError(error: unknown): AppError | null {
  if (isAppError(error)) return error
  const fastifyError = error as Partial<FastifyError> & { validation?: ValidationItem[]; validationContext?: string }
  if (Array.isArray(fastifyError.validation)) {
    const first = fastifyError.validation[0]
    const field = validationField(fastifyError.validationContext, first)
    const reason = first?.keyword === 'additionalProperties' ? 'is not a known field' : (first?.message ?? 'is invalid')
    return new AppError('REQUEST_VALIDATION_FAILED', { field, message: `${field} ${reason}` })
  }
  const status = fastifyError.statusCode
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('REQUEST_BODY_TOO_LARGE')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('REQUEST_UNSUPPORTED_MEDIA_TYPE')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('REQUEST_MALFORMED_JSON', { message: 'The JSON body is empty' })
    // Fastify 5 reports every JSON parse failure with this code rather than a SyntaxError,
    // including a body refused for a `__proto__` or `constructor.prototype` key.
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('REQUEST_MALFORMED_JSON', {
        message: 'The request body is not valid JSON (keys __proto__ and constructor.prototype are refused too)',
      })
    default:
      break
  }
  if (error instanceof SyntaxError || (status === 400 && fastifyError.code === undefined)) {
    return new AppError('REQUEST_MALFORMED_JSON')
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new AppError('REQUEST_BODY_TOO_LARGE')
    if (status === 415) return new AppError('REQUEST_UNSUPPORTED_MEDIA_TYPE')
    return new AppError('REQUEST_VALIDATION_FAILED', { message: 'The request is malformed' })
  }
  return null
}

export function errorResponse(error: AppError, requestId: string): ErrorResponse {
  const body: ErrorResponse['body'] = { code: error.code, message: error.message, requestId }
  if (error.field !== undefined) body.field = error.field
  if (error.details !== undefined) Object.assign(body, error.details)
  return { status: error.status, body }
}

export function internalError(requestId: string): ErrorResponse {
  return errorResponse(new AppError('INTERNAL_ERROR'), requestId)
}
