import { describe, expect, it } from 'vitest'
import { newId } from './ids.js'

describe('newId', () => {
  it('draws fresh randomness for every id, across refills of the pool', () => {
    // 1,000 ids cross the 4 KiB pool about five times; a reused byte run would repeat an id.
    const ids = Array.from({ length: 1_000 }, () => newId('tr'))
    expect(new Set(ids).size).toBe(ids.length)
    for (const id of ids) expect(id).toMatch(/^tr_[0-9a-hjkmnp-tv-z]{20}$/)
  })

  it('uses every symbol of the alphabet about equally in its random part', () => {
    const counts = new Map<string, number>()
    for (let index = 0; index < 4_000; index += 1)
      for (const symbol of newId('x').slice(2 + 9)) counts.set(symbol, (counts.get(symbol) ?? 0) + 1)
    expect(counts.size).toBe(32)
    // 44,000 symbols over 32: 1,375 each expected; 5 standard deviations is about ±183.
    for (const count of counts.values()) expect(Math.abs(count - 1_375)).toBeLessThan(210)
  })

  it('starts with the creation time, so later ids sort after earlier ones', async () => {
    const decode = (id: string) =>
      [...id.slice(2, 2 + 9)].reduce(
        (total, symbol) => total * 32 + '0123456789abcdefghjkmnpqrstvwxyz'.indexOf(symbol),
        0,
      )
    const before = Date.now()
    const first = newId('x')
    expect(decode(first)).toBeGreaterThanOrEqual(before)
    expect(decode(first)).toBeLessThanOrEqual(Date.now())
    await new Promise((resolve) => setTimeout(resolve, 3))
    const later = newId('x')
    expect(later > first).toBe(true)
  })
})
