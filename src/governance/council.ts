/**
 * Industries and their councils: the admitted partners of an industry (one equal seat each,
 * never weighted by commercial tier), the operator (who holds the veto, not a vote), the
 * proposal types with their rules, and the proxies partners name inside their own
 * organisation.
 *
 * @example
 * const seats = await activePartnerIds(db, 'education')
 * const as = await voterRole(db, principal, organizationId, 'education') // 'direct' | 'proxy'
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { requireMember, roles } from '../platform/identity/service.js'
import { newId } from '../platform/ids.js'
import type { Principal, UserPrincipal } from '../server/route-kit.js'
import { checkRules, defaultProposalTypes, ProposalRules } from './rules.js'
import type { GovernanceTables, GovIndustriesTable, GovProposalTypesTable } from './tables.js'

type Db = Kysely<GovernanceTables>

/** Operator-only routes call this first; everyone else gets 403. */
export function requireOperator(principal: Principal): UserPrincipal {
  if (principal.kind !== 'user' || !principal.isOperator) {
    throw new AppError('AUTH_FORBIDDEN', { message: 'Only the platform operator may do this' })
  }
  return principal
}

export async function requireIndustry(db: Kysely<any>, code: string, field = 'params.industry') {
  const row = await (db as Db).selectFrom('gov_industries').selectAll().where('code', '=', code).executeTakeFirst()
  if (row === undefined) throw new AppError('GOV_INDUSTRY_NOT_FOUND', { field })
  return row
}

export async function listIndustries(db: Kysely<any>): Promise<GovIndustriesTable[]> {
  return (db as Db).selectFrom('gov_industries').selectAll().orderBy('created_at').orderBy('code').execute()
}

/** Adds an industry with the default proposal types; the operator extends the list. */
export async function createIndustry(
  db: Kysely<any>,
  operator: UserPrincipal,
  input: { code: string; name: { en: string; zh: string } },
  now: number,
): Promise<GovIndustriesTable> {
  const row: GovIndustriesTable = { code: input.code, name_en: input.name.en, name_zh: input.name.zh, created_at: now }
  const inserted = await (db as Db)
    .insertInto('gov_industries')
    .values(row)
    .onConflict((oc) => oc.column('code').doNothing())
    .executeTakeFirst()
  if (inserted.numInsertedOrUpdatedRows !== 1n) throw new AppError('GOV_INDUSTRY_EXISTS', { field: 'body.code' })
  for (const type of defaultProposalTypes) {
    await (db as Db)
      .insertInto('gov_proposal_types')
      .values({
        id: newId('ptype'),
        industry: row.code,
        type_key: type.key,
        name_en: type.name.en,
        name_zh: type.name.zh,
        rules: JSON.stringify(type.rules),
        rules_version: 1,
        created_at: now,
        updated_at: now,
      })
      .execute()
  }
  await appendAudit(
    db,
    { actor: operator.userId, action: 'governance.industry.created', target: row.code, data: { name: input.name } },
    now,
  )
  return row
}

export async function listProposalTypes(db: Kysely<any>, industry: string): Promise<GovProposalTypesTable[]> {
  return (db as Db)
    .selectFrom('gov_proposal_types')
    .selectAll()
    .where('industry', '=', industry)
    .orderBy('type_key')
    .execute()
}

export async function requireProposalType(db: Kysely<any>, industry: string, key: string, field: string) {
  const row = await (db as Db)
    .selectFrom('gov_proposal_types')
    .selectAll()
    .where('industry', '=', industry)
    .where('type_key', '=', key)
    .executeTakeFirst()
  if (row === undefined) throw new AppError('GOV_PROPOSAL_TYPE_NOT_FOUND', { field })
  return row
}

/**
 * Creates a proposal type or changes its rules. A change raises `rules_version` and affects
 * only proposals created afterwards: each proposal keeps the rules it was created with.
 */
export async function putProposalType(
  db: Kysely<any>,
  operator: UserPrincipal,
  target: { industry: string; key: string },
  input: { name: { en: string; zh: string }; rules: ProposalRules },
  now: number,
): Promise<GovProposalTypesTable> {
  await requireIndustry(db, target.industry)
  const rules = checkRules(input.rules)
  const existing = await (db as Db)
    .selectFrom('gov_proposal_types')
    .selectAll()
    .where('industry', '=', target.industry)
    .where('type_key', '=', target.key)
    .executeTakeFirst()
  let row: GovProposalTypesTable
  if (existing === undefined) {
    row = {
      id: newId('ptype'),
      industry: target.industry,
      type_key: target.key,
      name_en: input.name.en,
      name_zh: input.name.zh,
      rules: JSON.stringify(rules),
      rules_version: 1,
      created_at: now,
      updated_at: now,
    }
    await (db as Db).insertInto('gov_proposal_types').values(row).execute()
  } else {
    row = {
      ...existing,
      name_en: input.name.en,
      name_zh: input.name.zh,
      rules: JSON.stringify(rules),
      rules_version: existing.rules_version + 1,
      updated_at: now,
    }
    const updated = await (db as Db)
      .updateTable('gov_proposal_types')
      .set({
        name_en: row.name_en,
        name_zh: row.name_zh,
        rules: row.rules,
        rules_version: row.rules_version,
        updated_at: now,
      })
      .where('id', '=', existing.id)
      .where('rules_version', '=', existing.rules_version)
      .executeTakeFirst()
    if (updated.numUpdatedRows !== 1n) {
      throw new AppError('GOV_CONFLICT', { message: 'The proposal type changed meanwhile; retry' })
    }
  }
  await appendAudit(
    db,
    {
      actor: operator.userId,
      action: 'governance.proposal_type.saved',
      target: `${target.industry}/${target.key}`,
      data: { rules_version: row.rules_version, rules, name: input.name },
    },
    now,
  )
  return row
}

/** The organisations holding an active seat on the industry's council, in a stable order. */
export async function activePartnerIds(db: Kysely<any>, industry: string): Promise<string[]> {
  const rows = await (db as Db)
    .selectFrom('gov_partners')
    .select('organization_id')
    .where('industry', '=', industry)
    .where('status', '=', 'active')
    .orderBy('organization_id')
    .execute()
  return rows.map((row) => row.organization_id)
}

export async function hasSeat(db: Kysely<any>, organizationId: string, industry: string): Promise<boolean> {
  const row = await (db as Db)
    .selectFrom('gov_partners')
    .select('organization_id')
    .where('organization_id', '=', organizationId)
    .where('industry', '=', industry)
    .where('status', '=', 'active')
    .executeTakeFirst()
  return row !== undefined
}

export async function requireSeat(db: Kysely<any>, organizationId: string, industry: string): Promise<void> {
  if (!(await hasSeat(db, organizationId, industry))) {
    throw new AppError('GOV_NOT_PARTNER', {
      message: `This organisation holds no seat on the ${industry} council`,
    })
  }
}

/**
 * How the caller may act for a partner's seat: directly as an owner or admin of the
 * organisation, or as the proxy the organisation named for that industry. A member with
 * neither standing is refused; a non-member learns nothing (404, as everywhere).
 */
export async function voterRole(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  industry: string,
): Promise<'direct' | 'proxy'> {
  const role = await requireMember(db, principal, organizationId, 'read')
  if (role === 'owner' || role === 'admin') return 'direct'
  const proxy = await (db as Db)
    .selectFrom('gov_proxies')
    .select('user_id')
    .where('organization_id', '=', organizationId)
    .where('industry', '=', industry)
    .executeTakeFirst()
  if (role !== 'operator' && proxy?.user_id === principal.userId) return 'proxy'
  throw new AppError('GOV_VOTER_NOT_ALLOWED')
}

export interface SeatView {
  industry: string
  admitted_at: number
  status: string
  proxy_user_id: string | null
}

export async function seatsOf(db: Kysely<any>, organizationId: string): Promise<SeatView[]> {
  const rows = await (db as Db)
    .selectFrom('gov_partners')
    .leftJoin('gov_proxies', (join) =>
      join
        .onRef('gov_proxies.organization_id', '=', 'gov_partners.organization_id')
        .onRef('gov_proxies.industry', '=', 'gov_partners.industry'),
    )
    .select([
      'gov_partners.industry',
      'gov_partners.admitted_at',
      'gov_partners.status',
      'gov_proxies.user_id as proxy_user_id',
    ])
    .where('gov_partners.organization_id', '=', organizationId)
    .orderBy('gov_partners.industry')
    .execute()
  return rows.map((row) => ({ ...row, proxy_user_id: row.proxy_user_id ?? null }))
}

/** Names (or replaces) the proxy of a seat: a member of the same organisation. */
export async function setProxy(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  industry: string,
  email: string,
  now: number,
): Promise<{ user_id: string }> {
  await requireMember(db, principal, organizationId, roles.write)
  await requireSeat(db, organizationId, industry)
  const member = await (db as Db)
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .select('users.id')
    .where('memberships.organization_id', '=', organizationId)
    .where('users.email', '=', email.toLowerCase())
    .executeTakeFirst()
  if (member === undefined) throw new AppError('GOV_PROXY_NOT_MEMBER', { field: 'body.email' })
  await (db as Db)
    .insertInto('gov_proxies')
    .values({
      organization_id: organizationId,
      industry,
      user_id: member.id,
      granted_by: principal.userId,
      created_at: now,
    })
    .onConflict((oc) =>
      oc
        .columns(['organization_id', 'industry'])
        .doUpdateSet({ user_id: member.id, granted_by: principal.userId, created_at: now }),
    )
    .execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.proxy.set',
      target: organizationId,
      data: { industry, proxy_user_id: member.id },
    },
    now,
  )
  return { user_id: member.id }
}

export async function revokeProxy(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  industry: string,
  now: number,
): Promise<void> {
  await requireMember(db, principal, organizationId, roles.write)
  const deleted = await (db as Db)
    .deleteFrom('gov_proxies')
    .where('organization_id', '=', organizationId)
    .where('industry', '=', industry)
    .executeTakeFirst()
  if (deleted.numDeletedRows !== 1n) throw new AppError('GOV_PROXY_NOT_FOUND', { field: 'params.industry' })
  await appendAudit(
    db,
    { actor: principal.userId, action: 'governance.proxy.revoked', target: organizationId, data: { industry } },
    now,
  )
}
