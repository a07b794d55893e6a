/**
 * Money is an integer count of fen (分, the minor unit of CNY) in a branded type, never a
 * float. Every conversion is explicit and exact; anything that would lose a fen throws.
 *
 * @example
 * const amount = fen(1230)         // ¥12.30
 * formatYuan(amount)               // '12.30'
 * parseYuan('12.3')                // 1230 fen
 * parseYuan('12.305')              // throws: more than two decimals
 */
import { assert } from '../../assert.js'

export type Fen = number & { readonly __brand: 'Fen' }

/** The largest amount one operation may carry: ¥10,000,000,000.00, far below 2^53 fen. */
export const amountFenMax = 1_000_000_000_000

export function fen(value: number): Fen {
  assert(Number.isSafeInteger(value), `amount ${value} is not a whole number of fen`)
  return value as Fen
}

export function isValidAmount(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && value <= amountFenMax
}

const yuanPattern = /^(0|[1-9]\d{0,11})(\.\d{1,2})?$/

/** Parses a yuan string such as "12.30" exactly; returns null when it is not one. */
export function parseYuan(text: string): Fen | null {
  if (!yuanPattern.test(text)) return null
  const [whole, fraction = ''] = text.split('.') as [string, string?]
  const value = Number(whole) * 100 + Number(fraction.padEnd(2, '0'))
  return Number.isSafeInteger(value) ? fen(value) : null
}

export function formatYuan(amount: Fen): string {
  assert(Number.isSafeInteger(amount), 'amount must be whole fen')
  const sign = amount < 0 ? '-' : ''
  const absolute = Math.abs(amount)
  return `${sign}${Math.floor(absolute / 100)}.${String(absolute % 100).padStart(2, '0')}`
}

export type Rounding = 'down' | 'half-even' | 'up'

/**
 * `amount × numerator / denominator`, rounded as the caller says; there is no default.
 * Used for fees in basis points: `multiplyRatio(amount, feeBps, 10_000, 'half-even')`.
 */
export function multiplyRatio(amount: Fen, numerator: number, denominator: number, rounding: Rounding): Fen {
  assert(Number.isSafeInteger(numerator) && numerator >= 0, 'numerator must be a non-negative integer')
  assert(Number.isSafeInteger(denominator) && denominator > 0, 'denominator must be a positive integer')
  const product = BigInt(amount) * BigInt(numerator)
  const divisor = BigInt(denominator)
  let quotient = product / divisor
  const remainder = product % divisor
  if (remainder !== 0n) {
    if (rounding === 'up') quotient += 1n
    else if (rounding === 'half-even') {
      const twice = remainder * 2n
      if (twice > divisor || (twice === divisor && quotient % 2n === 1n)) quotient += 1n
    }
  }
  return fen(Number(quotient))
}
