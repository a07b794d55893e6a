/**
 * The counting rules, edge by edge, without a database: quorum exactly met and just missed,
 * a yes share exactly at the threshold (fails: it must be above), abstentions (count for
 * quorum, not for the threshold), consent objections, approval ties and instant-runoff
 * rounds. Also the canonical content hash the ballots are bound to.
 */
import { describe, expect, it } from 'vitest'
import { canonicalJson, contentHash } from '../src/governance/canonical.js'
import { tally, type Ballot } from '../src/governance/tally.js'
import { sha256Hex } from '../src/platform/ids.js'

const majority = { method: 'majority' as const, quorum_bps: 5000, threshold_bps: 5000 }
const votes = (...choices: Array<'yes' | 'no' | 'abstain' | 'consent' | 'object'>): Ballot[] =>
  choices.map((vote) => ({ vote }))

describe('majority', () => {
  it('passes strictly above the threshold and fails exactly at it', () => {
    expect(tally(majority, 4, votes('yes', 'yes', 'no'), []).passed).toBe(true)
    const tie = tally(majority, 4, votes('yes', 'yes', 'no', 'no'), [])
    expect(tie).toMatchObject({ quorum_met: true, passed: false, counts: { yes: 2, no: 2, abstain: 0 } })
    // 2/3 with a 6666 bps threshold passes; with 6667 it is exactly at (rounded up) and fails.
    const twoThirds = votes('yes', 'yes', 'no')
    expect(tally({ ...majority, threshold_bps: 6666 }, 3, twoThirds, []).passed).toBe(true)
    expect(tally({ ...majority, threshold_bps: 6667 }, 3, twoThirds, []).passed).toBe(false)
  })

  it('meets quorum exactly at the quorum, abstentions included, and not one ballot below', () => {
    const atQuorum = tally(majority, 4, votes('yes', 'abstain'), [])
    expect(atQuorum).toMatchObject({ quorum_met: true, passed: true, ballots: 2 })
    const below = tally(majority, 5, votes('yes', 'abstain'), [])
    expect(below).toMatchObject({ quorum_met: false, passed: false })
    expect(below.explanation.en).toContain('Quorum not reached')
  })

  it('leaves abstentions out of the threshold, and all-abstain fails', () => {
    // 1 yes, 0 no, 3 abstain: 100% of decisive ballots.
    expect(tally(majority, 4, votes('yes', 'abstain', 'abstain', 'abstain'), []).passed).toBe(true)
    expect(tally(majority, 4, votes('abstain', 'abstain', 'abstain'), []).passed).toBe(false)
  })

  it('never reaches quorum with an empty electorate, even at 0%', () => {
    expect(tally({ ...majority, quorum_bps: 0 }, 0, [], []).quorum_met).toBe(false)
    expect(tally({ ...majority, quorum_bps: 0 }, 3, [], []).quorum_met).toBe(true)
  })
})

describe('consent', () => {
  const consent = { method: 'consent' as const, quorum_bps: 0, threshold_bps: 0 }
  it('passes on silence and abstention, fails on one objection', () => {
    expect(tally(consent, 3, [], []).passed).toBe(true)
    expect(tally(consent, 3, votes('consent', 'abstain'), []).passed).toBe(true)
    const blocked = tally(consent, 3, votes('consent', 'object'), [])
    expect(blocked).toMatchObject({ passed: false, counts: { object: 1 } })
  })
})

describe('approval', () => {
  const approval = { method: 'approval' as const, quorum_bps: 5000, threshold_bps: 0 }
  const options = ['a', 'b', 'c']
  it('elects the most approved option, needs a unique leader and the threshold', () => {
    const ballots: Ballot[] = [{ approve: ['a', 'b'] }, { approve: ['b'] }, { approve: ['c', 'b'] }]
    expect(tally(approval, 4, ballots, options)).toMatchObject({ passed: true, winner: 'b', counts: { a: 1, b: 3 } })
    const tie: Ballot[] = [{ approve: ['a'] }, { approve: ['b'] }]
    expect(tally(approval, 4, tie, options)).toMatchObject({ passed: false, winner: null })
    // b is approved by exactly half of the ballots: not above 5000 bps, above 4999.
    const half: Ballot[] = [{ approve: ['b'] }, { approve: ['b'] }, { approve: ['a'] }, { approve: ['c'] }]
    expect(tally({ ...approval, threshold_bps: 5000 }, 4, half, options).passed).toBe(false)
    expect(tally({ ...approval, threshold_bps: 4999 }, 4, half, options).winner).toBe('b')
  })

  it('counts empty ballots as abstentions: quorum, but not the threshold', () => {
    const ballots: Ballot[] = [{ approve: ['a'] }, { approve: [] }]
    expect(tally({ ...approval, threshold_bps: 9000 }, 4, ballots, options)).toMatchObject({
      quorum_met: true,
      passed: true,
      winner: 'a',
    })
  })
})

describe('ranked choice', () => {
  const ranked = { method: 'ranked' as const, quorum_bps: 0, threshold_bps: 0 }
  const options = ['a', 'b', 'c']
  it('runs off until an option has a majority of the continuing ballots', () => {
    const ballots: Ballot[] = [
      { ranking: ['a', 'b'] },
      { ranking: ['a'] },
      { ranking: ['b', 'a'] },
      { ranking: ['b', 'c'] },
      { ranking: ['c', 'b'] },
    ]
    const result = tally(ranked, 5, ballots, options)
    // Round 1: a 2, b 2, c 1 -> c out; round 2: b 3 of 5 wins.
    expect(result.rounds).toEqual([
      { a: 2, b: 2, c: 1 },
      { a: 2, b: 3 },
    ])
    expect(result).toMatchObject({ passed: true, winner: 'b' })
  })

  it('ends without a winner when every remaining option ties', () => {
    const ballots: Ballot[] = [{ ranking: ['a'] }, { ranking: ['b'] }]
    expect(tally(ranked, 2, ballots, options)).toMatchObject({ passed: false, winner: null })
  })
})

describe('content hash', () => {
  it('is the SHA-256 of canonical JSON, independent of key order', () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }], skipped: undefined })).toBe('{"a":[2,{"c":4,"d":3}],"b":1}')
    expect(contentHash({ x: 1, y: 2 })).toBe(contentHash({ y: 2, x: 1 }))
    expect(contentHash({ x: 1 })).toBe(sha256Hex('{"x":1}'))
  })
})
