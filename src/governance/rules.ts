/**
 * The rules of a proposal type: how a council decides (voting method, quorum, threshold),
 * how long each stage lasts, who may propose and whether ballots are published. A proposal
 * copies its type's rules when it is created and keeps them, so a rule change never alters a
 * proposal already under way (as Aragon's pinned `ProposalParameters`, Snapshot X's stored
 * quorum).
 *
 * @example
 * const rules = checkRules({ ...defaultRules.parameter_change, voting_period_s: 3 * 86_400 })
 */
import { Type, type Static } from '@sinclair/typebox'
import { AppError } from '../errors.js'

const day = 86_400

export const VotingMethod = Type.Union(
  [Type.Literal('majority'), Type.Literal('consent'), Type.Literal('approval'), Type.Literal('ranked')],
  {
    description:
      'majority: yes/no/abstain; consent: passes unless someone objects with a reason; ' +
      'approval and ranked: choose among options',
  },
)
export type VotingMethod = Static<typeof VotingMethod>

export const ProposalRules = Type.Object(
  {
    method: VotingMethod,
    quorum_bps: Type.Integer({
      minimum: 0,
      maximum: 10_000,
      description: 'Share of the seats (after recusals) that must cast a ballot, abstentions included; at least',
    }),
    threshold_bps: Type.Integer({
      minimum: 0,
      maximum: 9_999,
      description:
        'majority: the yes share of yes+no must be strictly above it; approval: the winner must be ' +
        'approved by strictly more than this share of ballots; ranked: above max(50%, this); consent: unused',
    }),
    discussion_min_s: Type.Integer({ minimum: 0, maximum: 90 * day }),
    discussion_max_s: Type.Integer({
      minimum: 3600,
      maximum: 365 * day,
      description: 'A draft or discussion that does not reach a vote by then expires',
    }),
    voting_period_s: Type.Integer({ minimum: 60, maximum: 90 * day }),
    veto_window_s: Type.Integer({ minimum: 60, maximum: 90 * day }),
    execution_window_s: Type.Integer({
      minimum: 60,
      maximum: 90 * day,
      description: 'After the veto window, how long enactment may still happen before the proposal expires',
    }),
    reminder_before_s: Type.Integer({ minimum: 0, maximum: 30 * day }),
    proposers: Type.Union([Type.Literal('partners'), Type.Literal('operator'), Type.Literal('partners_and_operator')]),
    ballots: Type.Union([Type.Literal('public'), Type.Literal('secret')], {
      description: 'secret: choices are never published, only who voted and, after the close, the tally',
    }),
  },
  { additionalProperties: false },
)
export type ProposalRules = Static<typeof ProposalRules>

/** What a new industry's council starts with (the migration seeded the first seven alike). */
export const defaultProposalTypes: ReadonlyArray<{
  readonly key: string
  readonly name: { readonly en: string; readonly zh: string }
  readonly rules: ProposalRules
}> = [
  {
    key: 'parameter_change',
    name: { en: 'Change governed parameters', zh: '调整治理参数' },
    rules: {
      method: 'majority',
      quorum_bps: 5000,
      threshold_bps: 5000,
      discussion_min_s: 3 * day,
      discussion_max_s: 60 * day,
      voting_period_s: 7 * day,
      veto_window_s: 3 * day,
      execution_window_s: 7 * day,
      reminder_before_s: day,
      proposers: 'partners',
      ballots: 'public',
    },
  },
  {
    key: 'service_standard',
    name: { en: 'Service standard (consent)', zh: '服务标准（无异议通过）' },
    rules: {
      method: 'consent',
      quorum_bps: 0,
      threshold_bps: 0,
      discussion_min_s: 3 * day,
      discussion_max_s: 60 * day,
      voting_period_s: 3 * day,
      veto_window_s: 3 * day,
      execution_window_s: 7 * day,
      reminder_before_s: day,
      proposers: 'partners_and_operator',
      ballots: 'public',
    },
  },
  {
    key: 'priorities',
    name: { en: 'Priorities (approval)', zh: '优先事项（认可投票）' },
    rules: {
      method: 'approval',
      quorum_bps: 3000,
      threshold_bps: 0,
      discussion_min_s: day,
      discussion_max_s: 60 * day,
      voting_period_s: 7 * day,
      veto_window_s: day,
      execution_window_s: 7 * day,
      reminder_before_s: day,
      proposers: 'partners_and_operator',
      ballots: 'secret',
    },
  },
  {
    key: 'ranked_priorities',
    name: { en: 'Priorities (ranked choice)', zh: '优先事项（排序复选）' },
    rules: {
      method: 'ranked',
      quorum_bps: 3000,
      threshold_bps: 0,
      discussion_min_s: day,
      discussion_max_s: 60 * day,
      voting_period_s: 7 * day,
      veto_window_s: day,
      execution_window_s: 7 * day,
      reminder_before_s: day,
      proposers: 'partners_and_operator',
      ballots: 'secret',
    },
  },
]

/** The relations between fields that a schema cannot express. */
export function checkRules(rules: ProposalRules, field = 'body.rules'): ProposalRules {
  if (rules.discussion_max_s <= rules.discussion_min_s) {
    throw new AppError('GOV_RULES_INVALID', {
      field: `${field}.discussion_max_s`,
      message: 'discussion_max_s must be longer than discussion_min_s',
    })
  }
  if (rules.reminder_before_s >= rules.voting_period_s) {
    throw new AppError('GOV_RULES_INVALID', {
      field: `${field}.reminder_before_s`,
      message: 'reminder_before_s must be shorter than voting_period_s',
    })
  }
  return Object.freeze({ ...rules })
}

/** Whether the method chooses among options (approval, ranked) rather than yes or no on actions. */
export function choosesAmongOptions(method: VotingMethod): boolean {
  return method === 'approval' || method === 'ranked'
}
