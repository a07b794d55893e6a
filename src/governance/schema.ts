/**
 * Wire schemas of the governance API: what requests may contain and what responses show.
 * Request objects forbid unknown properties; texts come in Chinese and English.
 */
import { Type, type TSchema } from '@sinclair/typebox'
import { Id, IsoTime } from '../server/schemas.js'
import { ProposalRules } from './rules.js'

export const actionsMax = 20
export const optionsMax = 10

export const Text = (maxLength: number) =>
  Type.Object(
    { en: Type.String({ minLength: 1, maxLength }), zh: Type.String({ minLength: 1, maxLength }) },
    { additionalProperties: false },
  )
const TextOut = Type.Object({ en: Type.String(), zh: Type.String() })

export const IndustryCode = Type.String({ pattern: '^[a-z][a-z0-9_]{1,39}$', description: 'e.g. education' })
export const TypeKey = Type.String({ pattern: '^[a-z][a-z0-9_]{1,39}$', description: 'e.g. parameter_change' })
export const OptionKey = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,39}$' })
export const Reason = (minLength: number) => Type.String({ minLength, maxLength: 4000 })

export const ActionInput = Type.Object(
  {
    parameter: Type.String({
      minLength: 1,
      maxLength: 100,
      description: 'A declared parameter, e.g. payment.fee_rate_bps',
    }),
    scope: Type.Union([Type.Literal('industry'), Type.Literal('merchant')], {
      description: "industry: the proposal's industry; merchant: one merchant of that industry",
    }),
    merchant_id: Type.Optional(Id('org')),
    op: Type.Union([Type.Literal('set'), Type.Literal('unset')]),
    value: Type.Optional(Type.Unknown({ description: "For set: checked against the parameter's schema" })),
    base_version: Type.Optional(
      Type.Integer({ minimum: 0, description: "The scope's version this was written against; current when absent" }),
    ),
  },
  { additionalProperties: false },
)

export const OptionInput = Type.Object(
  { key: OptionKey, title: Text(200), actions: Type.Array(ActionInput, { maxItems: actionsMax }) },
  { additionalProperties: false },
)

export const ContentFields = {
  title: Text(200),
  body: Text(20_000),
  actions: Type.Optional(Type.Array(ActionInput, { maxItems: actionsMax })),
  options: Type.Optional(Type.Array(OptionInput, { minItems: 2, maxItems: optionsMax })),
  effective_from: Type.Optional(IsoTime),
}

export const Action = Type.Object({
  parameter: Type.String(),
  scope: Type.String(),
  merchant_id: Type.Union([Type.String(), Type.Null()]),
  scope_key: Type.String(),
  op: Type.String(),
  value: Type.Optional(Type.Unknown()),
  base_version: Type.Integer(),
})

export const DiffEntry = Type.Object({
  option: Type.Union([Type.String(), Type.Null()]),
  parameter: Type.String(),
  description: TextOut,
  scope_key: Type.String(),
  scope_label: TextOut,
  op: Type.String(),
  old_value: Type.Unknown(),
  old_source: Type.String({ description: 'default, global, industry:… or merchant:…' }),
  old_policy_version: Type.Integer(),
  new_value: Type.Unknown(),
  merchants_affected: Type.Integer(),
  summary: TextOut,
})

export const Content = Type.Object({
  title: TextOut,
  body: TextOut,
  actions: Type.Array(Action),
  options: Type.Union([
    Type.Array(Type.Object({ key: Type.String(), title: TextOut, actions: Type.Array(Action) })),
    Type.Null(),
  ]),
  effective_from: Type.Union([IsoTime, Type.Null()]),
})

export const Rules = ProposalRules

export const TallyView = Type.Object({
  method: Type.String(),
  electorate: Type.Integer(),
  ballots: Type.Integer(),
  quorum_met: Type.Boolean(),
  passed: Type.Boolean(),
  winner: Type.Union([Type.String(), Type.Null()]),
  counts: Type.Record(Type.String(), Type.Integer()),
  rounds: Type.Array(Type.Record(Type.String(), Type.Integer())),
  explanation: TextOut,
})

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

export const Proposal = Type.Object({
  id: Id('prop'),
  industry: Type.String(),
  type: Type.String(),
  proposer: Type.Object({ organization_id: Nullable(Type.String()), operator: Type.Boolean() }),
  state: Type.String(),
  version: Type.Integer(),
  content_hash: Type.String({ description: 'SHA-256 of the canonical JSON of the content; a vote names it' }),
  content: Content,
  diff: Type.Array(DiffEntry),
  rules: Rules,
  rules_version: Type.Integer(),
  electorate: Nullable(Type.Array(Type.String())),
  recused: Type.Array(Type.String()),
  tally: Nullable(TallyView),
  winner: Nullable(Type.String()),
  policy_versions: Type.Array(Type.Integer()),
  closed_reason: Nullable(Type.String()),
  veto: Nullable(Type.Object({ reason: Type.String(), at: IsoTime })),
  timeline: Type.Object({
    created_at: IsoTime,
    discussion_at: Nullable(IsoTime),
    expires_at: Nullable(IsoTime),
    voting_opens_at: Nullable(IsoTime),
    voting_closes_at: Nullable(IsoTime),
    decided_at: Nullable(IsoTime),
    executable_at: Nullable(IsoTime),
    execution_deadline_at: Nullable(IsoTime),
    closed_at: Nullable(IsoTime),
  }),
})

export const ProposalVersion = Type.Object({
  version: Type.Integer(),
  content_hash: Type.String(),
  content: Content,
  diff: Type.Array(DiffEntry),
  note: Type.String(),
  created_at: IsoTime,
})

export const Vote = Type.Object({
  organization_id: Type.String(),
  content_hash: Type.String(),
  choice: Nullable(Type.Unknown({ description: 'Null where ballots are secret' })),
  reason: Nullable(Type.String()),
  via_proxy: Type.Boolean(),
  cast_at: IsoTime,
})

export const VoteInput = Type.Object(
  {
    content_hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    vote: Type.Optional(
      Type.Union([
        Type.Literal('yes'),
        Type.Literal('no'),
        Type.Literal('abstain'),
        Type.Literal('consent'),
        Type.Literal('object'),
      ]),
    ),
    approve: Type.Optional(Type.Array(OptionKey, { maxItems: optionsMax })),
    ranking: Type.Optional(Type.Array(OptionKey, { maxItems: optionsMax })),
    reason: Type.Optional(Reason(1)),
  },
  { additionalProperties: false },
)

export const Comment = Type.Object({
  id: Id('gcom'),
  version: Type.Integer(),
  organization_id: Nullable(Type.String()),
  operator: Type.Boolean(),
  body: Type.String(),
  created_at: IsoTime,
})

export const PolicyVersion = Type.Object({
  number: Type.Integer(),
  scope_key: Type.String(),
  version: Type.Integer(),
  proposal_id: Nullable(Type.String()),
  content_hash: Nullable(Type.String()),
  parameters: Type.Record(Type.String(), Type.Unknown()),
  changes: Type.Array(
    Type.Object({ parameter: Type.String(), op: Type.String(), value: Type.Optional(Type.Unknown()) }),
  ),
  effective_from: IsoTime,
  enacted_at: IsoTime,
})

export { TextOut, Nullable }
