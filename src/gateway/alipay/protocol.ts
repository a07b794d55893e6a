/**
 * The two wire forms of the Alipay OpenAPI, as `alipay-sdk` v4 speaks them
 * (docs/guides/alipay-compatibility.md has the whole contract):
 *
 * - v2, `POST /gateway.do`: form parameters from the query string and the body, merged;
 *   signed over `k=v` pairs sorted by key, raw values, `sign` left out; answered with HTTP 200
 *   and `{"<method>_response":{…},"sign":"…"}` where the signature covers the exact bytes of
 *   the inner object.
 * - v3, `/v3/<method with dots as slashes>`: `Authorization: ALIPAY-SHA256withRSA
 *   app_id=…,nonce=…,timestamp=…,sign=…` over `auth\nMETHOD\nurl\nbody\n[token\n]`; answered
 *   with the JSON body signed in `alipay-timestamp`, `alipay-nonce` and `alipay-signature`.
 *
 * These functions are pure: they build and read strings, and sign nothing themselves.
 *
 * @example
 * v2SigningString({ method: 'alipay.trade.query', app_id: 'app_…', sign: '…' }, false)
 * // 'app_id=app_…&method=alipay.trade.query'
 */
import { AlipayError } from './errors.js'

const methodNamePattern = /^[a-z][a-z0-9]*(\.[a-z0-9]+){1,8}$/

export function isMethodName(text: string | undefined): text is string {
  return text !== undefined && text.length <= 128 && methodNamePattern.test(text)
}

/** The envelope key: `alipay.trade.query` answers under `alipay_trade_query_response`. */
export function responseKey(method: string): string {
  return `${method.replaceAll('.', '_')}_response`
}

/**
 * Merges the query string's and the body's form parameters. A name given twice is refused:
 * which value the client signed would be a guess.
 */
export function readFormParameters(
  rawQuery: string,
  rawBody: string,
): { params: Map<string, string>; duplicate: string | null } {
  const params = new Map<string, string>()
  let duplicate: string | null = null
  for (const source of [rawQuery, rawBody]) {
    for (const [name, value] of new URLSearchParams(source)) {
      if (params.has(name)) duplicate ??= name
      params.set(name, value)
    }
  }
  return { params, duplicate }
}

/**
 * The v2 string to sign: every parameter but `sign`, sorted by name, as `name=value` joined
 * with `&`, values raw (URL-decoded, never re-encoded; `biz_content` exactly as received).
 * Alipay leaves out empty values; alipay-sdk signs them as `name=`, so both are tried.
 */
export function v2SigningString(params: ReadonlyMap<string, string>, includeEmpty: boolean): string {
  return [...params.keys()]
    .filter((name) => name !== 'sign' && (includeEmpty || params.get(name) !== ''))
    .sort()
    .map((name) => `${name}=${params.get(name)}`)
    .join('&')
}

/** `{"<key>":<inner>,"sign":"<signature>"}`: the response key first and `sign` last, as the SDK extracts it. */
export function v2Envelope(key: string, innerJson: string, signature: string): string {
  return `{${JSON.stringify(key)}:${innerJson},"sign":${JSON.stringify(signature)}}`
}

/** The method of a v3 path: `/v3/alipay/trade/query` is `alipay.trade.query`; null when it is not one. */
export function v3Method(path: string): string | null {
  if (!path.startsWith('/v3/')) return null
  const name = path.slice(4).replaceAll('/', '.')
  return isMethodName(name) ? name : null
}

export interface V3Authorization {
  /** Everything before `,sign=`: the part that is signed. */
  readonly authString: string
  readonly signature: string
  readonly fields: ReadonlyMap<string, string>
}

const v3Scheme = 'ALIPAY-SHA256withRSA '
const v3HeaderLengthMax = 4096

/** Reads the v3 `Authorization` header; refuses a missing, foreign or malformed one. */
export function parseV3Authorization(header: string | undefined): V3Authorization {
  if (header === undefined || header === '') throw new AlipayError('isv.missing-signature')
  if (!header.startsWith(v3Scheme)) {
    throw new AlipayError('isv.invalid-signature-type', 'Authorization must start with ALIPAY-SHA256withRSA')
  }
  if (header.length > v3HeaderLengthMax) throw new AlipayError('isv.invalid-signature', 'Authorization is too long')
  const rest = header.slice(v3Scheme.length)
  const at = rest.lastIndexOf(',sign=')
  if (at < 0) throw new AlipayError('isv.missing-signature', 'Authorization has no sign=')
  const authString = rest.slice(0, at)
  const fields = new Map<string, string>()
  for (const part of authString.split(',')) {
    const equals = part.indexOf('=')
    const name = equals < 0 ? part : part.slice(0, equals)
    if (equals <= 0 || fields.has(name)) {
      throw new AlipayError(
        'isv.invalid-signature',
        `Authorization field ${JSON.stringify(part.slice(0, 40))} is malformed or repeated`,
      )
    }
    fields.set(name, part.slice(equals + 1))
  }
  return { authString, signature: rest.slice(at + ',sign='.length), fields }
}

/** The v3 request string to sign. */
export function v3SigningString(parts: {
  authString: string
  method: string
  url: string
  body: string
  appAuthToken: string | undefined
}): string {
  const token = parts.appAuthToken === undefined || parts.appAuthToken === '' ? '' : `${parts.appAuthToken}\n`
  return `${parts.authString}\n${parts.method}\n${parts.url}\n${parts.body}\n${token}`
}

/** The v3 response string to sign. */
export function v3ResponseSigningString(timestamp: string, nonce: string, body: string): string {
  return `${timestamp}\n${nonce}\n${body}\n`
}

/**
 * The string a notification is signed over: every field but `sign` and `sign_type`, sorted,
 * raw values; empty fields are never sent, so every verifier agrees on it.
 */
export function notificationSigningString(fields: Readonly<Record<string, string>>): string {
  return Object.keys(fields)
    .filter((name) => name !== 'sign' && name !== 'sign_type')
    .sort()
    .map((name) => `${name}=${fields[name]}`)
    .join('&')
}
