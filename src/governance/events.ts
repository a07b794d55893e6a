/**
 * Governance notifications. Like authorisation, governance is a platform service, so it
 * declares its event types here and publishes them through the same outbox with a publisher
 * of its own: each partner organisation concerned gets the event (its apps' webhook
 * endpoints receive it) and a row in its in-app inbox, in the transaction of the change.
 *
 * @example
 * await notify(tx, 'governance.proposal.voting_opened', partnerIds, proposalEvent(row, content), now)
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { createEventPublisher, type EventPublisher } from '../platform/events/outbox.js'
import { newId } from '../platform/ids.js'
import { IsoTime, isoTime } from '../server/schemas.js'
import type { ProposalContent } from './actions.js'
import type { GovernanceTables, GovProposalsTable } from './tables.js'

const TextOut = Type.Object({ en: Type.String(), zh: Type.String() })

export const ProposalEvent = Type.Object({
  proposal_id: Type.String(),
  industry: Type.String(),
  title: TextOut,
  state: Type.String(),
  version: Type.Integer(),
  content_hash: Type.String(),
  voting_closes_at: Type.Union([IsoTime, Type.Null()]),
})

export const ApplicationEvent = Type.Object({
  application_id: Type.String(),
  batch_id: Type.String(),
  status: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  industries: Type.Array(Type.String()),
})

export const EnrolmentEvent = Type.Object({
  session_id: Type.String(),
  status: Type.String(),
})

export const governanceEvents = Object.freeze({
  /** A proposal left draft: partners of its industry may read and comment. */
  'governance.proposal.discussion_opened': ProposalEvent,
  /** Voting is open on the content hash in the payload. */
  'governance.proposal.voting_opened': ProposalEvent,
  /** Voting closes soon; sent to the seats that have not voted. */
  'governance.proposal.closing_soon': ProposalEvent,
  /** The proposal reached a result: defeated, queued, enacted, vetoed, stale, expired or withdrawn. */
  'governance.proposal.result': ProposalEvent,
  /** The operator admitted, waitlisted or rejected the organisation's application. */
  'governance.application.decided': ApplicationEvent,
  /** A training enrolment changed: enrolled, waitlisted, promoted from the waitlist, cancelled. */
  'governance.training.enrolment_changed': EnrolmentEvent,
} satisfies Record<string, TSchema>)

export type GovernanceEventType = keyof typeof governanceEvents

export const governanceEventPublisher: EventPublisher = createEventPublisher(new Map(Object.entries(governanceEvents)))

export function proposalEvent(row: GovProposalsTable, content: ProposalContent): Static<typeof ProposalEvent> {
  return {
    proposal_id: row.id,
    industry: row.industry,
    title: { en: content.title.en, zh: content.title.zh },
    state: row.state,
    version: row.version,
    content_hash: row.content_hash,
    voting_closes_at: row.voting_closes_at === null ? null : isoTime(row.voting_closes_at),
  }
}

/** Publishes one event to each organisation, on the webhook and in the in-app inbox. */
export async function notify(
  db: Kysely<any>,
  type: GovernanceEventType,
  organizationIds: readonly string[],
  payload: Readonly<Record<string, unknown>>,
  now: number,
): Promise<void> {
  for (const organizationId of new Set(organizationIds)) {
    await governanceEventPublisher.emit(db, { type, organizationId, payload }, now)
    await (db as Kysely<GovernanceTables>)
      .insertInto('gov_inbox')
      .values({
        id: newId('gmsg'),
        organization_id: organizationId,
        type,
        payload: JSON.stringify(payload),
        created_at: now,
      })
      .execute()
  }
}
