/**
 * Reading Alipay business parameters into what the native services take, and writing the
 * native results back in Alipay's forms: yuan strings, `yyyy-MM-dd HH:mm:ss` times in the
 * configured zone, order numbers. Every refusal is an {@link AlipayError} naming the field.
 *
 * @example
 * const biz = bizReader(parsedBizContent)
 * const amount = biz.amount('total_amount')        // "88.80" -> 8880 fen
 * formatAmount(8880)                                // "88.80"
 * formatTime(Date.UTC(2026, 10, 25, 4), 480)        // "2026-11-25 12:00:00"
 */
import { fen, formatYuan, isValidAmount, parseYuan, type Fen } from '../../platform/money/money.js'
import { AlipayError, type SubCode } from './errors.js'

/** Order numbers as the native API accepts them (Alipay allows a subset of these). */
const outNoPattern = /^[A-Za-z0-9_.:-]{1,64}$/
const timestampPattern = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/
/** A trade may wait at least a minute and at most 15 days, as natively. */
export const tradeTimeoutSMin = 60
export const tradeTimeoutSMax = 15 * 24 * 3600

/** The number of characters as a person counts them (code points), as the native schemas do. */
function length(text: string): number {
  return [...text].length
}

/**
 * Reads `yyyy-MM-dd HH:mm:ss` in a zone `offsetMinutes` east of UTC; null when it is not such
 * a time (including impossible dates such as 2026-02-30).
 */
export function parseLocalTime(text: string, offsetMinutes: number): number | null {
  const match = timestampPattern.exec(text)
  if (match === null) return null
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ]
  const utc = Date.UTC(year, month - 1, day, hour, minute, second)
  const back = new Date(utc)
  const sameFields =
    back.getUTCFullYear() === year &&
    back.getUTCMonth() === month - 1 &&
    back.getUTCDate() === day &&
    back.getUTCHours() === hour &&
    back.getUTCMinutes() === minute &&
    back.getUTCSeconds() === second
  return sameFields ? utc - offsetMinutes * 60_000 : null
}

/** `yyyy-MM-dd HH:mm:ss` of an instant, in a zone `offsetMinutes` east of UTC. */
export function formatTime(ms: number, offsetMinutes: number): string {
  const shifted = new Date(ms + offsetMinutes * 60_000).toISOString()
  return `${shifted.slice(0, 10)} ${shifted.slice(11, 19)}`
}

/** The same, from the ISO time the native views carry; null stays null. */
export function formatIsoTime(iso: string | null, offsetMinutes: number): string | null {
  return iso === null ? null : formatTime(Date.parse(iso), offsetMinutes)
}

export function formatAmount(amount: number): string {
  return formatYuan(fen(amount))
}

/**
 * Converts a yuan amount exactly. Strings are the protocol's form ("88.80"); a JSON number in
 * `biz_content` (some ISV code sends `88.8`) is read through its shortest decimal form, which
 * for an amount of at most 15 significant digits is exactly the literal that was written.
 */
export function yuanToFen(value: unknown, field: string, subCode: SubCode = 'ACQ.INVALID_PARAMETER'): Fen {
  const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : null
  const parsed = text === null ? null : parseYuan(text)
  if (parsed === null) {
    throw new AlipayError(
      subCode,
      `${field} 格式错误: must be yuan with at most two decimals, e.g. "88.80"; got ${JSON.stringify(value)}`,
    )
  }
  if (!isValidAmount(parsed)) {
    throw new AlipayError(subCode, `${field} 超出范围: must be from 0.01 to 10000000000.00; got ${text}`)
  }
  return parsed
}

/** Typed access to a parsed business object, refusing wrong types with the field's name. */
export interface BizReader {
  readonly raw: Readonly<Record<string, unknown>>
  text(name: string, options?: { required?: boolean; max?: number }): string | undefined
  requiredText(name: string, max?: number): string
  outNo(name: string, required: true): string
  outNo(name: string, required?: false): string | undefined
  amount(name: string): Fen
  list(name: string, max: number): ReadonlyArray<Readonly<Record<string, unknown>>>
  /** Refuses a field Baseplate does not implement, when its value would change what happens. */
  unsupported(name: string, why: string): void
}

export function bizReader(raw: Readonly<Record<string, unknown>>, prefix = ''): BizReader {
  const invalid = (message: string) => new AlipayError('ACQ.INVALID_PARAMETER', message)
  const reader: BizReader = {
    raw,
    text(name, options = {}) {
      const value = raw[name]
      if (value === undefined || value === null || value === '') {
        if (options.required === true) throw invalid(`缺少参数 ${prefix}${name} (required)`)
        return undefined
      }
      if (typeof value !== 'string' && typeof value !== 'number') throw invalid(`${prefix}${name} must be a string`)
      const text = String(value)
      const max = options.max ?? 256
      if (length(text) > max) throw invalid(`${prefix}${name} is longer than ${max} characters`)
      return text
    },
    requiredText(name, max) {
      return reader.text(name, { required: true, ...(max === undefined ? {} : { max }) })!
    },
    outNo(name: string, required?: boolean): any {
      const text = reader.text(name, { required: required === true, max: 64 })
      if (text !== undefined && !outNoPattern.test(text)) {
        throw invalid(`${prefix}${name} may hold only letters, digits and _ . : - (at most 64)`)
      }
      return text
    },
    amount(name) {
      if (raw[name] === undefined || raw[name] === null || raw[name] === '') {
        throw invalid(`缺少参数 ${prefix}${name} (required)`)
      }
      return yuanToFen(raw[name], `${prefix}${name}`)
    },
    list(name, max) {
      const value = raw[name]
      // Some ISV code sends nested lists as JSON text, as Alipay's form fields allow.
      const parsed = typeof value === 'string' ? safeJson(value) : value
      if (!Array.isArray(parsed) || parsed.length === 0) throw invalid(`${prefix}${name} must be a non-empty list`)
      if (parsed.length > max) throw invalid(`${prefix}${name} has more than ${max} items`)
      return parsed.map((item, index) => {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) {
          throw invalid(`${prefix}${name}[${index}] must be an object`)
        }
        return item as Record<string, unknown>
      })
    },
    unsupported(name, why) {
      const value = raw[name]
      if (value !== undefined && value !== null && value !== '') {
        throw invalid(`${prefix}${name} is not supported by Baseplate: ${why}`)
      }
    },
  }
  return reader
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/**
 * How long a new trade may wait, from `time_expire` (an absolute time, which wins as on
 * Alipay) or `timeout_express` (`90m`, `2h`, `3d`, or `1c`: until the end of today).
 */
export function tradeTimeoutS(biz: BizReader, now: number, offsetMinutes: number): number | undefined {
  const invalid = (message: string) => new AlipayError('ACQ.INVALID_PARAMETER', message)
  let seconds: number | undefined
  const expire = biz.text('time_expire', { max: 32 })
  const express = biz.text('timeout_express', { max: 8 })
  if (expire !== undefined) {
    const at = parseLocalTime(expire, offsetMinutes)
    if (at === null) throw invalid('time_expire must be yyyy-MM-dd HH:mm:ss')
    seconds = Math.floor((at - now) / 1000)
  } else if (express !== undefined) {
    const match = /^(\d{1,5})([mhdc])$/.exec(express)
    if (match === null) throw invalid('timeout_express must be like 90m, 2h, 3d or 1c')
    const count = Number(match[1])
    if (match[2] === 'c') {
      if (count !== 1) throw invalid('timeout_express in c (until the end of today) must be 1c')
      const endOfToday = parseLocalTime(`${formatTime(now, offsetMinutes).slice(0, 10)} 23:59:59`, offsetMinutes)!
      seconds = Math.floor((endOfToday - now) / 1000)
    } else {
      seconds = count * { m: 60, h: 3600, d: 86_400 }[match[2] as 'm' | 'h' | 'd']
    }
  }
  if (seconds === undefined) return undefined
  if (seconds < tradeTimeoutSMin || seconds > tradeTimeoutSMax) {
    throw invalid('The trade must be allowed between 1 minute and 15 days (timeout_express or time_expire)')
  }
  return seconds
}
