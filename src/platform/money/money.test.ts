import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fen, formatYuan, multiplyRatio, parseYuan } from './money.js'

describe('money', () => {
  it('parses yuan strings exactly and refuses anything else', () => {
    expect(parseYuan('12.30')).toBe(1230)
    expect(parseYuan('12.3')).toBe(1230)
    expect(parseYuan('0.01')).toBe(1)
    expect(parseYuan('100')).toBe(10000)
    for (const bad of ['12.305', '-1', '1e3', ' 1', '01', '1.', '.5', '', 'NaN', '0x10', '1,000']) {
      expect(parseYuan(bad), bad).toBeNull()
    }
  })

  it('round-trips every amount through formatYuan and parseYuan', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000_000_000 }),
        (value) => parseYuan(formatYuan(fen(value))) === value,
      ),
    )
  })

  it('rounds ratios as told', () => {
    expect(multiplyRatio(fen(1005), 60, 10_000, 'half-even')).toBe(6) // 6.03
    expect(multiplyRatio(fen(250), 1, 100, 'half-even')).toBe(2) // 2.5 -> 2
    expect(multiplyRatio(fen(350), 1, 100, 'half-even')).toBe(4) // 3.5 -> 4
    expect(multiplyRatio(fen(101), 1, 100, 'down')).toBe(1)
    expect(multiplyRatio(fen(101), 1, 100, 'up')).toBe(2)
  })

  it('never exceeds the amount for a ratio at most one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 ** 12 }),
        fc.integer({ min: 0, max: 10_000 }),
        (amount, bps) => multiplyRatio(fen(amount), bps, 10_000, 'half-even') <= amount,
      ),
    )
  })
})
