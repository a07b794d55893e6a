/**
 * Growth for partners: expert office hours, courses and study tours with a capacity. A
 * partner organisation takes one place per session; past capacity it joins the waitlist,
 * and a cancellation promotes the longest-waiting organisation (which is notified). The
 * session row is locked while places are counted, so two last-place enrolments cannot both
 * succeed.
 *
 * @example
 * const session = await createSession(tx, operator, { kind: 'course', capacity: 30, … }, now)
 * const enrolment = await enrol(tx, principal, organizationId, session.id, now) // enrolled | waitlisted
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { requireMember, roles } from '../platform/identity/service.js'
import { newId } from '../platform/ids.js'
import type { UserPrincipal } from '../server/route-kit.js'
import { hasSeat, requireIndustry, requireOperator } from './council.js'
import { notify } from './events.js'
import { requirePartner } from './roadmap.js'
import type { EnrolmentStatus, GovernanceTables, GovTrainingSessionsTable, TrainingKind } from './tables.js'
import { notBefore } from '../storage/expressions.js'

type Db = Kysely<GovernanceTables>

export async function createSession(
  db: Kysely<any>,
  principal: UserPrincipal,
  input: {
    kind: TrainingKind
    title: { en: string; zh: string }
    industry?: string
    starts_at: number
    capacity: number
  },
  now: number,
): Promise<GovTrainingSessionsTable> {
  requireOperator(principal)
  if (input.industry !== undefined) await requireIndustry(db, input.industry, 'body.industry')
  if (input.starts_at <= now) {
    throw new AppError('GOV_SESSION_STARTED', { field: 'body.starts_at', message: 'starts_at is in the past' })
  }
  const row: GovTrainingSessionsTable = {
    id: newId('gtrn'),
    kind: input.kind,
    title_en: input.title.en,
    title_zh: input.title.zh,
    industry: input.industry ?? null,
    starts_at: input.starts_at,
    capacity: input.capacity,
    enrolled_count: 0,
    created_by: principal.userId,
    created_at: now,
    updated_at: now,
  }
  await (db as Db).insertInto('gov_training_sessions').values(row).execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.training.created',
      target: row.id,
      data: { kind: row.kind, industry: row.industry, capacity: row.capacity, starts_at: row.starts_at },
    },
    now,
  )
  return row
}

/** Locks the session row and reads it; refuses a session that has started. */
async function lockSession(db: Kysely<any>, id: string, now: number): Promise<GovTrainingSessionsTable> {
  const locked = await (db as Db)
    .updateTable('gov_training_sessions')
    .set({ updated_at: notBefore('updated_at', now) })
    .where('id', '=', id)
    .executeTakeFirst()
  if (locked.numUpdatedRows === 0n) throw new AppError('GOV_SESSION_NOT_FOUND', { field: 'params.session_id' })
  const row = await (db as Db)
    .selectFrom('gov_training_sessions')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
  if (now >= row.starts_at) throw new AppError('GOV_SESSION_STARTED')
  return row
}

export async function enrol(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  sessionId: string,
  now: number,
): Promise<{ status: EnrolmentStatus; position: number | null }> {
  await requireMember(db, principal, organizationId, roles.write)
  await requirePartner(db, organizationId)
  const session = await lockSession(db, sessionId, now)
  if (session.industry !== null && !(await hasSeat(db, organizationId, session.industry))) {
    throw new AppError('GOV_NOT_PARTNER', { message: `This session is for ${session.industry} partners` })
  }
  const existing = await (db as Db)
    .selectFrom('gov_enrolments')
    .select('status')
    .where('session_id', '=', sessionId)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  if (existing !== undefined && existing.status !== 'cancelled') throw new AppError('GOV_ENROLMENT_EXISTS')
  const status: EnrolmentStatus = session.enrolled_count < session.capacity ? 'enrolled' : 'waitlisted'
  const values = { user_id: principal.userId, status, created_at: now, updated_at: now }
  await (db as Db)
    .insertInto('gov_enrolments')
    .values({ session_id: sessionId, organization_id: organizationId, ...values })
    .onConflict((oc) => oc.columns(['session_id', 'organization_id']).doUpdateSet(values))
    .execute()
  if (status === 'enrolled') {
    await (db as Db)
      .updateTable('gov_training_sessions')
      .set((eb) => ({ enrolled_count: eb('enrolled_count', '+', 1) }))
      .where('id', '=', sessionId)
      .execute()
  }
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: `governance.training.${status}`,
      target: sessionId,
      data: { organization_id: organizationId },
    },
    now,
  )
  return { status, position: status === 'waitlisted' ? await waitlistPosition(db, sessionId, organizationId) : null }
}

async function waitlistPosition(db: Kysely<any>, sessionId: string, organizationId: string): Promise<number> {
  const queue = await (db as Db)
    .selectFrom('gov_enrolments')
    .select('organization_id')
    .where('session_id', '=', sessionId)
    .where('status', '=', 'waitlisted')
    .orderBy('created_at')
    .orderBy('organization_id')
    .execute()
  return queue.findIndex((row) => row.organization_id === organizationId) + 1
}

/** Gives the place back; the first organisation on the waitlist takes it. */
export async function cancelEnrolment(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  sessionId: string,
  now: number,
): Promise<{ promoted: string | null }> {
  await requireMember(db, principal, organizationId, roles.write)
  await lockSession(db, sessionId, now)
  const existing = await (db as Db)
    .selectFrom('gov_enrolments')
    .select('status')
    .where('session_id', '=', sessionId)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  if (existing === undefined || existing.status === 'cancelled') throw new AppError('GOV_ENROLMENT_NOT_FOUND')
  await (db as Db)
    .updateTable('gov_enrolments')
    .set({ status: 'cancelled', updated_at: now })
    .where('session_id', '=', sessionId)
    .where('organization_id', '=', organizationId)
    .execute()
  let promoted: string | null = null
  if (existing.status === 'enrolled') {
    const next = await (db as Db)
      .selectFrom('gov_enrolments')
      .select('organization_id')
      .where('session_id', '=', sessionId)
      .where('status', '=', 'waitlisted')
      .orderBy('created_at')
      .orderBy('organization_id')
      .executeTakeFirst()
    if (next === undefined) {
      await (db as Db)
        .updateTable('gov_training_sessions')
        .set((eb) => ({ enrolled_count: eb('enrolled_count', '-', 1) }))
        .where('id', '=', sessionId)
        .execute()
    } else {
      promoted = next.organization_id
      await (db as Db)
        .updateTable('gov_enrolments')
        .set({ status: 'enrolled', updated_at: now })
        .where('session_id', '=', sessionId)
        .where('organization_id', '=', promoted)
        .execute()
      await notify(
        db,
        'governance.training.enrolment_changed',
        [promoted],
        { session_id: sessionId, status: 'enrolled' },
        now,
      )
    }
  }
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.training.cancelled',
      target: sessionId,
      data: { organization_id: organizationId, promoted },
    },
    now,
  )
  return { promoted }
}

export async function listSessions(db: Kysely<any>, from: number, limit: number) {
  return (db as Db)
    .selectFrom('gov_training_sessions')
    .selectAll()
    .where('starts_at', '>=', from)
    .orderBy('starts_at')
    .orderBy('id')
    .limit(limit)
    .execute()
}
