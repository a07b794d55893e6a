/**
 * Capability co-building: partners file improvement requests against a capability and
 * support the ones they want first (one support per partner, so priority is a count of
 * partners, not of accounts); the operator moves requests through a public roadmap, and
 * every move is a changelog entry with a note.
 *
 * @example
 * const request = await fileRequest(tx, capabilities, principal, organizationId, { capability: 'payment', … }, now)
 * await supportRequest(tx, principal, otherOrganizationId, request.id, true, now)
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { requireMember, roles } from '../platform/identity/service.js'
import { newId } from '../platform/ids.js'
import type { UserPrincipal } from '../server/route-kit.js'
import { requireOperator } from './council.js'
import type { GovernanceTables, GovImprovementRequestsTable, RequestStatus } from './tables.js'

type Db = Kysely<GovernanceTables>

/** Partners are organisations with at least one active seat. */
async function requirePartner(db: Kysely<any>, organizationId: string): Promise<void> {
  const seat = await (db as Db)
    .selectFrom('gov_partners')
    .select('industry')
    .where('organization_id', '=', organizationId)
    .where('status', '=', 'active')
    .executeTakeFirst()
  if (seat === undefined) throw new AppError('GOV_NOT_PARTNER', { message: 'Only admitted partners may do this' })
}

export { requirePartner }

async function requireRequest(db: Kysely<any>, id: string): Promise<GovImprovementRequestsTable> {
  const row = await (db as Db)
    .selectFrom('gov_improvement_requests')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst()
  if (row === undefined) throw new AppError('GOV_REQUEST_NOT_FOUND', { field: 'params.request_id' })
  return row
}

export async function fileRequest(
  db: Kysely<any>,
  capabilities: readonly string[],
  principal: UserPrincipal,
  organizationId: string,
  input: { capability: string; title: string; body: string },
  now: number,
): Promise<GovImprovementRequestsTable> {
  await requireMember(db, principal, organizationId, roles.write)
  await requirePartner(db, organizationId)
  if (!capabilities.includes(input.capability)) {
    throw new AppError('GOV_CAPABILITY_UNKNOWN', {
      field: 'body.capability',
      message: `Capabilities: ${capabilities.join(', ')}`,
    })
  }
  const row: GovImprovementRequestsTable = {
    id: newId('greq'),
    capability: input.capability,
    organization_id: organizationId,
    title: input.title,
    body: input.body,
    status: 'open',
    // The filer supports its own request.
    support_count: 1,
    created_at: now,
    updated_at: now,
  }
  await (db as Db).insertInto('gov_improvement_requests').values(row).execute()
  await (db as Db)
    .insertInto('gov_request_supports')
    .values({ request_id: row.id, organization_id: organizationId, created_at: now })
    .execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.request.filed',
      target: row.id,
      data: { capability: row.capability, organization_id: organizationId, title: row.title },
    },
    now,
  )
  return row
}

/** Adds or withdraws the organisation's support; answers the request as it now stands. */
export async function supportRequest(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  requestId: string,
  support: boolean,
  now: number,
): Promise<GovImprovementRequestsTable> {
  await requireMember(db, principal, organizationId, roles.write)
  await requirePartner(db, organizationId)
  await requireRequest(db, requestId)
  const changed = support
    ? (
        await (db as Db)
          .insertInto('gov_request_supports')
          .values({ request_id: requestId, organization_id: organizationId, created_at: now })
          .onConflict((oc) => oc.columns(['request_id', 'organization_id']).doNothing())
          .executeTakeFirst()
      ).numInsertedOrUpdatedRows === 1n
    : (
        await (db as Db)
          .deleteFrom('gov_request_supports')
          .where('request_id', '=', requestId)
          .where('organization_id', '=', organizationId)
          .executeTakeFirst()
      ).numDeletedRows === 1n
  if (changed) {
    await (db as Db)
      .updateTable('gov_improvement_requests')
      .set((eb) => ({ support_count: eb('support_count', '+', support ? 1 : -1), updated_at: now }))
      .where('id', '=', requestId)
      .execute()
    await appendAudit(
      db,
      {
        actor: principal.userId,
        action: support ? 'governance.request.supported' : 'governance.request.unsupported',
        target: requestId,
        data: { organization_id: organizationId },
      },
      now,
    )
  }
  return requireRequest(db, requestId)
}

export async function moveRequest(
  db: Kysely<any>,
  principal: UserPrincipal,
  requestId: string,
  input: { status: RequestStatus; note: string },
  now: number,
): Promise<GovImprovementRequestsTable> {
  requireOperator(principal)
  const existing = await requireRequest(db, requestId)
  await (db as Db)
    .updateTable('gov_improvement_requests')
    .set({ status: input.status, updated_at: now })
    .where('id', '=', requestId)
    .execute()
  await (db as Db)
    .insertInto('gov_request_changes')
    .values({
      id: newId('gchg'),
      request_id: requestId,
      status: input.status,
      note: input.note,
      changed_by: principal.userId,
      created_at: now,
    })
    .execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.request.moved',
      target: requestId,
      data: { from: existing.status, to: input.status, note: input.note },
    },
    now,
  )
  return { ...existing, status: input.status, updated_at: now }
}

/** The public roadmap: requests by status, most supported first, with their changelog. */
export async function roadmap(db: Kysely<any>, capability: string | undefined, limit: number) {
  let query = (db as Db)
    .selectFrom('gov_improvement_requests')
    .selectAll()
    .orderBy('support_count', 'desc')
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit)
  if (capability !== undefined) query = query.where('capability', '=', capability)
  const requests = await query.execute()
  const changes =
    requests.length === 0
      ? []
      : await (db as Db)
          .selectFrom('gov_request_changes')
          .selectAll()
          .where(
            'request_id',
            'in',
            requests.map((request) => request.id),
          )
          .orderBy('created_at')
          .orderBy('id')
          .execute()
  return requests.map((request) => ({
    request,
    changelog: changes.filter((change) => change.request_id === request.id),
  }))
}
