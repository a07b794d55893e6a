/**
 * Counting, as pure functions of the ballots: no database, no clock, so every edge case is
 * tested directly. One seat is one ballot; recused seats are not in the electorate.
 *
 * - Quorum counts every ballot, abstentions included, and is inclusive: exactly the quorum
 *   is enough. An empty electorate never reaches quorum.
 * - majority: passes when the yes share of yes+no is strictly above the threshold (5000 is
 *   "more than half"; a tie fails). Abstentions count for quorum only.
 * - consent: passes unless at least one seat objects (with a reason, checked on casting).
 * - approval: the option approved by most ballots wins if it is approved by strictly more
 *   than `threshold_bps` of the non-empty ballots; a tie for first place means no winner.
 * - ranked: instant runoff. Each round counts every ballot for its highest-ranked option
 *   still running; an option with strictly more than max(50%, threshold) of those ballots
 *   wins. Otherwise every option tied for the fewest votes is eliminated together; when
 *   that would eliminate all that remain, there is no winner.
 *
 * @example
 * tally({ method: 'majority', quorum_bps: 5000, threshold_bps: 5000 }, 4, [{ vote: 'yes' }, { vote: 'no' }], [])
 * // { passed: false, quorum_met: true, counts: { yes: 1, no: 1, abstain: 0 }, … }
 */
import { assert } from '../assert.js'
import type { VotingMethod } from './rules.js'

export type Ballot =
  | { readonly vote: 'yes' | 'no' | 'abstain' | 'consent' | 'object' }
  | { readonly approve: readonly string[] }
  | { readonly ranking: readonly string[] }

export interface TallyRules {
  readonly method: VotingMethod
  readonly quorum_bps: number
  readonly threshold_bps: number
}

export interface Tally {
  readonly method: VotingMethod
  readonly electorate: number
  readonly ballots: number
  readonly quorum_met: boolean
  readonly passed: boolean
  readonly winner: string | null
  readonly counts: Readonly<Record<string, number>>
  /** Ranked choice only: the count of each running option, round by round. */
  readonly rounds: ReadonlyArray<Readonly<Record<string, number>>>
  readonly explanation: { readonly en: string; readonly zh: string }
}

const bps = 10_000

function quorumMet(rules: TallyRules, electorate: number, ballots: number): boolean {
  return electorate > 0 && ballots * bps >= rules.quorum_bps * electorate
}

function countVotes(ballots: readonly Ballot[], labels: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(labels.map((label) => [label, 0]))
  for (const ballot of ballots) {
    assert('vote' in ballot && ballot.vote in counts, 'ballot does not fit the method')
    counts[ballot.vote]! += 1
  }
  return counts
}

export function tally(
  rules: TallyRules,
  electorate: number,
  ballots: readonly Ballot[],
  options: readonly string[],
): Tally {
  assert(Number.isSafeInteger(electorate) && electorate >= 0, 'electorate is a count')
  assert(ballots.length <= electorate, 'never more ballots than seats')
  const quorum = quorumMet(rules, electorate, ballots.length)
  const base = { method: rules.method, electorate, ballots: ballots.length, quorum_met: quorum }
  const noQuorum = {
    en: `Quorum not reached: ${ballots.length} of ${electorate} seats voted, ${rules.quorum_bps / 100}% needed.`,
    zh: `未达法定人数：${electorate} 个席位中 ${ballots.length} 个投票，需要 ${rules.quorum_bps / 100}%。`,
  }
  switch (rules.method) {
    case 'majority': {
      const counts = countVotes(ballots, ['yes', 'no', 'abstain'])
      const yes = counts.yes!
      const decisive = yes + counts.no!
      const passed = quorum && yes > 0 && yes * bps > rules.threshold_bps * decisive
      const explanation = !quorum
        ? noQuorum
        : {
            en:
              `${yes} yes, ${counts.no} no, ${counts.abstain} abstain: ` +
              `${passed ? 'above' : 'not above'} the ${rules.threshold_bps / 100}% threshold.`,
            zh:
              `赞成 ${yes}，反对 ${counts.no}，弃权 ${counts.abstain}：` +
              `${passed ? '超过' : '未超过'} ${rules.threshold_bps / 100}% 的通过线。`,
          }
      return { ...base, passed, winner: null, counts, rounds: [], explanation }
    }
    case 'consent': {
      const counts = countVotes(ballots, ['consent', 'object', 'abstain'])
      const passed = quorum && counts.object === 0
      const explanation = !quorum
        ? noQuorum
        : passed
          ? { en: 'No objection was raised.', zh: '无人提出异议。' }
          : {
              en: `${counts.object} reasoned objection(s) block consent.`,
              zh: `${counts.object} 项有理由的异议，未能通过。`,
            }
      return { ...base, passed, winner: null, counts, rounds: [], explanation }
    }
    case 'approval':
      return approval(rules, base, ballots, options, noQuorum)
    case 'ranked':
      return ranked(rules, base, ballots, options, noQuorum)
  }
}

type Base = Pick<Tally, 'method' | 'electorate' | 'ballots' | 'quorum_met'>

function approval(
  rules: TallyRules,
  base: Base,
  ballots: readonly Ballot[],
  options: readonly string[],
  noQuorum: Tally['explanation'],
): Tally {
  const counts: Record<string, number> = Object.fromEntries(options.map((option) => [option, 0]))
  let voters = 0
  for (const ballot of ballots) {
    assert('approve' in ballot, 'approval ballot expected')
    if (ballot.approve.length > 0) voters += 1
    for (const option of new Set(ballot.approve)) {
      assert(option in counts, `unknown option ${option}`)
      counts[option]! += 1
    }
  }
  const top = Math.max(0, ...Object.values(counts))
  const leaders = options.filter((option) => counts[option] === top)
  const winner = base.quorum_met && top > 0 && leaders.length === 1 && top * bps > rules.threshold_bps * voters
  const explanation = !base.quorum_met
    ? noQuorum
    : winner
      ? {
          en: `"${leaders[0]}" is approved by ${top} of ${voters} ballots.`,
          zh: `“${leaders[0]}”获 ${top}/${voters} 票认可。`,
        }
      : leaders.length > 1 && top > 0
        ? { en: `Tie between ${leaders.join(', ')}: no winner.`, zh: `${leaders.join('、')} 票数相同，无胜出项。` }
        : { en: 'No option reached the threshold.', zh: '没有选项达到通过线。' }
  return { ...base, passed: winner, winner: winner ? leaders[0]! : null, counts, rounds: [], explanation }
}

function ranked(
  rules: TallyRules,
  base: Base,
  ballots: readonly Ballot[],
  options: readonly string[],
  noQuorum: Tally['explanation'],
): Tally {
  const rankings = ballots.map((ballot) => {
    assert('ranking' in ballot, 'ranked ballot expected')
    for (const option of ballot.ranking) assert(options.includes(option), `unknown option ${option}`)
    return ballot.ranking
  })
  const threshold = Math.max(5000, rules.threshold_bps)
  const running = new Set(options)
  const rounds: Record<string, number>[] = []
  let winner: string | null = null
  // Each round removes at least one option, so this ends within options.length rounds.
  while (running.size > 0) {
    const counts: Record<string, number> = Object.fromEntries([...running].map((option) => [option, 0]))
    let continuing = 0
    for (const ranking of rankings) {
      const choice = ranking.find((option) => running.has(option))
      if (choice === undefined) continue
      counts[choice]! += 1
      continuing += 1
    }
    rounds.push(counts)
    if (continuing === 0) break
    const top = Math.max(...Object.values(counts))
    const leaders = Object.keys(counts).filter((option) => counts[option] === top)
    if (leaders.length === 1 && top * bps > threshold * continuing) {
      winner = leaders[0]!
      break
    }
    const bottom = Math.min(...Object.values(counts))
    const losers = Object.keys(counts).filter((option) => counts[option] === bottom)
    if (losers.length === running.size) break
    for (const option of losers) running.delete(option)
  }
  const passed = base.quorum_met && winner !== null
  const explanation = !base.quorum_met
    ? noQuorum
    : passed
      ? {
          en: `"${winner}" wins in round ${rounds.length} of the instant runoff.`,
          zh: `“${winner}”在即时决选第 ${rounds.length} 轮胜出。`,
        }
      : { en: 'The instant runoff ended without a majority winner.', zh: '即时决选未产生过半数胜出项。' }
  return { ...base, passed, winner: passed ? winner : null, counts: rounds[0] ?? {}, rounds, explanation }
}
