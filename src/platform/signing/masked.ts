/**
 * What a signature error may show of the string the server verified. Echoing that string finds
 * nearly every signing mistake (ADR 0002), but it is built from what the caller sent, bearer
 * tokens included, and error bodies end up in client logs, proxies and support tickets. So each
 * secret in it is replaced by its fingerprint: the first 16 hex digits of its SHA-256, which the
 * caller can compute from its own value to check that the server received the same one.
 *
 * @example
 * maskSecrets('…\nbpat_abc\n…', ['bpat_abc']) // '…\n<secret sha256:5a3f…>\n…'
 */
import { sha256Hex } from '../ids.js'

/** Secrets shorter than this are not masked: an empty or one-letter value would mask everything. */
const secretLengthMin = 8

export function secretFingerprint(secret: string): string {
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
