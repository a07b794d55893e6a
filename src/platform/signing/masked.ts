/**
 * What an error or a log line may show of a request. Echoing the string a signature was checked
 * against finds nearly every signing mistake (ADR 0002), and a request log needs the URL; but
 * both are built from what the caller sent, bearer tokens included, and error bodies and logs
 * end up in client logs, proxies, log stores and support tickets. So each credential is replaced
 * by its fingerprint: the first 16 hex digits of its SHA-256, which the caller can compute from
 * its own value to check that the server received the same one (ADR 0018).
 *
 * @example
 * maskSecrets('…\nbpat_abc…\n…', ['bpat_abc…']) // '…\n<secret sha256:5a3f…>\n…'
 * maskUrl('/gateway.do?app_auth_token=bpat_abc…&method=x') // '/gateway.do?app_auth_token=%3Csecret…&method=x'
 */
import { sha256Hex } from '../ids.js'

/** Secrets shorter than this are not masked: an empty or one-letter value would mask everything. */
const secretLengthMin = 8

/**
 * Names under which requests carry credentials, in a query, a form or a JSON object, on the
 * native API and the Alipay gateway: tokens, refresh tokens, authorisation codes and the
 * buyer's payment code.
 */
const credentialNames: ReadonlySet<string> = new Set([
  'app_auth_token',
  'auth_token',
  'refresh_token',
  'code',
  'auth_code',
  'app_auth_code',
])

function secretFingerprint(secret: string): string {
  return `<secret sha256:${sha256Hex(secret).slice(0, 16)}>`
}

export function maskSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let masked = text
  // Longest first, so that a secret containing another is masked whole.
  const present = [...new Set(secrets)]
    .filter((secret): secret is string => secret !== undefined && secret.length >= secretLengthMin)
    .sort((a, b) => b.length - a.length)
  for (const secret of present) masked = masked.split(secret).join(secretFingerprint(secret))
  return masked
}

/**
 * The credentials a request carries: values given by name, the credential parameters of query
 * strings (`a=1&b=2`, raw or decoded), and the credential fields at the top of JSON objects.
 */
export function credentialsIn(parts: {
  readonly named?: Iterable<readonly [string, string | undefined]>
  readonly queries?: readonly (string | undefined)[]
  readonly json?: readonly (string | undefined)[]
}): string[] {
  const found: string[] = []
  for (const [name, value] of parts.named ?? []) if (value !== undefined && credentialNames.has(name)) found.push(value)
  for (const query of parts.queries ?? []) {
    if (query === undefined) continue
    for (const [name, value] of new URLSearchParams(query)) {
      if (!credentialNames.has(name)) continue
      found.push(value)
      // The raw spelling too, for texts that show the query as it was sent.
      const raw = rawQueryValue(query, name)
      if (raw !== undefined) found.push(raw)
    }
  }
  for (const text of parts.json ?? []) {
    if (text === undefined || text === '') continue
    let object: unknown
    try {
      object = JSON.parse(text)
    } catch {
      continue
    }
    if (typeof object !== 'object' || object === null) continue
    for (const name of credentialNames) {
      const value = (object as Record<string, unknown>)[name]
      if (typeof value === 'string') found.push(value)
    }
  }
  return found
}

/**
 * The credentials of a signed request: its app auth token (a header, outside the query and
 * body), the credential parameters of its URL's query and the credential fields of its body.
 */
export function requestCredentials(request: {
  readonly appAuthToken: string | undefined
  readonly url: string
  readonly body: string
}): string[] {
  return credentialsIn({
    named: [['app_auth_token', request.appAuthToken]],
    queries: [request.url.split('?')[1]],
    json: [request.body],
  })
}

function rawQueryValue(query: string, name: string): string | undefined {
  for (const pair of query.split('&')) {
    const at = pair.indexOf('=')
    if (at > 0 && safeDecode(pair.slice(0, at)) === name) return pair.slice(at + 1)
  }
  return undefined
}

/** `url` with the value of each credential parameter in its query replaced by its fingerprint. */
export function maskUrl(url: string): string {
  const at = url.indexOf('?')
  if (at < 0) return url
  const masked = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=')
      if (equals < 0 || !credentialNames.has(safeDecode(pair.slice(0, equals)) ?? '')) return pair
      const value = safeDecode(pair.slice(equals + 1)) ?? pair.slice(equals + 1)
      return `${pair.slice(0, equals)}=${encodeURIComponent(secretFingerprint(value))}`
    })
  return `${url.slice(0, at)}?${masked.join('&')}`
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}
