/**
 * Canonical JSON (object keys sorted at every level, no whitespace) and its SHA-256, so the
 * same proposal content always hashes the same, whatever order its fields were sent in. A
 * vote names this hash; the public can recompute it from the published content.
 *
 * @example
 * contentHash({ b: 1, a: [2, { d: 3, c: 4 }] }) === sha256Hex('{"a":[2,{"c":4,"d":3}],"b":1}')
 */
import { sha256Hex } from '../platform/ids.js'

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`
}

export function contentHash(value: unknown): string {
  return sha256Hex(canonicalJson(value))
}
