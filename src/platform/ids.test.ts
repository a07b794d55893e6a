import { describe, expect, it } from 'vitest'
import { newId } from './ids.js'

describe('newId', () => {
  it('draws fresh randomness for every id, across refills of the pool', () => {
    // 1,000 ids cross the 4 KiB pool about five times; a reused byte run would repeat an id.
    const ids = Array.from({ length: 1_000 }, () => newId('tr'))
    expect(new Set(ids).size).toBe(ids.length)
    for (const id of ids) expect(id).toMatch(/^tr_[0-9a-hjkmnp-tv-z]{20}$/)
  })

  it('uses every symbol of the alphabet about equally', () => {
    const counts = new Map<string, number>()
    for (let index = 0; index < 2_000; index += 1)
      for (const symbol of newId('x').slice(2)) counts.set(symbol, (counts.get(symbol) ?? 0) + 1)
    expect(counts.size).toBe(32)
    // 40,000 symbols over 32: 1,250 each expected; 5 standard deviations is about ±175.
    for (const count of counts.values()) expect(Math.abs(count - 1_250)).toBeLessThan(200)
  })
})
