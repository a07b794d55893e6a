// Frozen in time: this migration must never import application code or change once released.
//
// Partner co-governance: industries and their councils (partners, proposal types with their
// rules), proposals with versions, comments, votes, proxies and conflict declarations, the
// versioned parameter sets that enacted proposals write and the policy service reads, and
// the partner programme around it (recruitment, accountability, roadmap, training, inbox).
// JSON is text; times are epoch milliseconds; booleans are 0/1.
import { sql, type Kysely } from 'kysely'

const industries: ReadonlyArray<readonly [string, string, string]> = [
  ['mobility', 'Mobility', '出行'],
  ['education', 'Education', '教育'],
  ['healthcare', 'Healthcare', '医疗'],
  ['retail', 'Retail', '零售'],
  ['parking', 'Parking', '停车'],
  ['pharmacy', 'Pharmacy', '药店'],
  ['rental', 'Rental', '租赁'],
]

const day = 86_400

// The proposal types every industry starts with. Their rules are copied into each proposal
// at creation; changing them here later would change nothing already proposed.
const proposalTypes: ReadonlyArray<{ key: string; en: string; zh: string; rules: Record<string, unknown> }> = [
  {
    key: 'parameter_change',
    en: 'Change governed parameters',
    zh: '调整治理参数',
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
    en: 'Service standard (consent)',
    zh: '服务标准（无异议通过）',
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
    en: 'Priorities (approval)',
    zh: '优先事项（认可投票）',
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
    en: 'Priorities (ranked choice)',
    zh: '优先事项（排序复选）',
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

function check(column: string, values: readonly string[]) {
  return sql.raw(`${column} in (${values.map((value) => `'${value}'`).join(', ')})`)
}

async function createCouncilTables(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('gov_industries')
    .addColumn('code', 'text', (c) => c.primaryKey())
    .addColumn('name_en', 'text', (c) => c.notNull())
    .addColumn('name_zh', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('gov_proposal_types')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('industry', 'text', (c) => c.notNull().references('gov_industries.code'))
    .addColumn('type_key', 'text', (c) => c.notNull())
    .addColumn('name_en', 'text', (c) => c.notNull())
    .addColumn('name_zh', 'text', (c) => c.notNull())
    .addColumn('rules', 'text', (c) => c.notNull())
    .addColumn('rules_version', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('gov_proposal_types_key', ['industry', 'type_key'])
    .execute()
  await db.schema
    .createTable('gov_partners')
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('industry', 'text', (c) => c.notNull().references('gov_industries.code'))
    .addColumn('status', 'text', (c) => c.notNull().check(check('status', ['active', 'suspended'])))
    .addColumn('application_id', 'text')
    .addColumn('admitted_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_partners_pk', ['organization_id', 'industry'])
    .execute()
  await db.schema.createIndex('gov_partners_industry').on('gov_partners').columns(['industry', 'status']).execute()
  // One proxy per seat: a member of the partner's own organisation, named by an owner or admin.
  await db.schema
    .createTable('gov_proxies')
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('industry', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_proxies_pk', ['organization_id', 'industry'])
    .execute()
}

async function createProposalTables(db: Kysely<any>): Promise<void> {
  const states = [
    'draft',
    'discussion',
    'voting',
    'defeated',
    'queued',
    'vetoed',
    'enacted',
    'stale',
    'expired',
    'withdrawn',
  ]
  await db.schema
    .createTable('gov_proposals')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('industry', 'text', (c) => c.notNull().references('gov_industries.code'))
    .addColumn('type_id', 'text', (c) => c.notNull().references('gov_proposal_types.id'))
    .addColumn('type_key', 'text', (c) => c.notNull())
    // Null for the operator's own proposals.
    .addColumn('proposer_org_id', 'text')
    .addColumn('proposer_user_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(check('state', states)))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('content_hash', 'text', (c) => c.notNull())
    // The rules of the proposal type as they were when the proposal was created.
    .addColumn('rules', 'text', (c) => c.notNull())
    // The seats that may vote, fixed when voting opens (JSON array of organisation ids).
    .addColumn('electorate', 'text')
    .addColumn('tally', 'text')
    .addColumn('winner', 'text')
    .addColumn('effective_from', 'bigint')
    .addColumn('policy_versions', 'text')
    .addColumn('closed_reason', 'text')
    .addColumn('veto_reason', 'text')
    .addColumn('vetoed_by', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('discussion_at', 'bigint')
    .addColumn('expires_at', 'bigint')
    .addColumn('voting_opens_at', 'bigint')
    .addColumn('voting_closes_at', 'bigint')
    .addColumn('reminded_at', 'bigint')
    .addColumn('decided_at', 'bigint')
    .addColumn('executable_at', 'bigint')
    .addColumn('execution_deadline_at', 'bigint')
    .addColumn('closed_at', 'bigint')
    // The next instant at which time alone changes the proposal (a reminder, the end of
    // voting or of the veto window, expiry); null once nothing more is scheduled.
    .addColumn('due_at', 'bigint')
    .execute()
  await sql`create index gov_proposals_due on gov_proposals (due_at) where due_at is not null`.execute(db)
  await db.schema.createIndex('gov_proposals_industry').on('gov_proposals').columns(['industry', 'id']).execute()
  await db.schema
    .createIndex('gov_proposals_proposer')
    .on('gov_proposals')
    .columns(['proposer_org_id', 'industry', 'state'])
    .execute()
  await db.schema
    .createTable('gov_proposal_versions')
    .addColumn('proposal_id', 'text', (c) => c.notNull().references('gov_proposals.id'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('content_hash', 'text', (c) => c.notNull())
    .addColumn('diff', 'text', (c) => c.notNull())
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('author_user_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_proposal_versions_pk', ['proposal_id', 'version'])
    .execute()
  await db.schema
    .createTable('gov_comments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('proposal_id', 'text', (c) => c.notNull().references('gov_proposals.id'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('organization_id', 'text')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('gov_comments_proposal').on('gov_comments').columns(['proposal_id', 'id']).execute()
  await db.schema
    .createTable('gov_votes')
    .addColumn('proposal_id', 'text', (c) => c.notNull().references('gov_proposals.id'))
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('content_hash', 'text', (c) => c.notNull())
    .addColumn('choice', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('cast_by', 'text', (c) => c.notNull())
    .addColumn('via_proxy', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_votes_pk', ['proposal_id', 'organization_id'])
    .execute()
  await db.schema
    .createTable('gov_conflicts')
    .addColumn('proposal_id', 'text', (c) => c.notNull().references('gov_proposals.id'))
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('declared_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_conflicts_pk', ['proposal_id', 'organization_id'])
    .execute()
}

async function createPolicyTables(db: Kysely<any>): Promise<void> {
  // One row: the number of the last policy version, across all scopes, and a random token
  // that every enactment replaces. The policy source compares the token with the one its
  // cache was loaded under; a token never comes back, even from a rolled-back enactment.
  await db.schema
    .createTable('gov_policy_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('number', 'bigint', (c) => c.notNull())
    .addColumn('token', 'text', (c) => c.notNull())
    .execute()
  await db.insertInto('gov_policy_head').values({ id: 1, number: 0, token: 'genesis' }).execute()
  // The current version of each scope's parameter set: the row enactment compares and sets.
  await db.schema
    .createTable('gov_parameter_sets')
    .addColumn('scope_key', 'text', (c) => c.primaryKey())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('gov_policy_versions')
    .addColumn('number', 'bigint', (c) => c.primaryKey())
    .addColumn('scope_key', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('proposal_id', 'text')
    .addColumn('content_hash', 'text')
    // The whole parameter set of the scope from this version on, and what changed.
    .addColumn('parameters', 'text', (c) => c.notNull())
    .addColumn('changes', 'text', (c) => c.notNull())
    .addColumn('effective_from', 'bigint', (c) => c.notNull())
    .addColumn('enacted_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('gov_policy_versions_scope', ['scope_key', 'version'])
    .execute()
}

async function createProgrammeTables(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('gov_batches')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('industries', 'text', (c) => c.notNull())
    .addColumn('criteria', 'text', (c) => c.notNull())
    .addColumn('opens_at', 'bigint', (c) => c.notNull())
    .addColumn('closes_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('gov_applications')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('batch_id', 'text', (c) => c.notNull().references('gov_batches.id'))
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('industries', 'text', (c) => c.notNull())
    .addColumn('company', 'text', (c) => c.notNull())
    .addColumn('founder', 'text', (c) => c.notNull())
    .addColumn('evaluation', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(check('status', ['submitted', 'admitted', 'waitlisted', 'rejected'])),
    )
    .addColumn('decision_reason', 'text')
    .addColumn('decided_by', 'text')
    .addColumn('decided_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('gov_applications_once', ['batch_id', 'organization_id'])
    .execute()
  await db.schema
    .createIndex('gov_applications_organization')
    .on('gov_applications')
    .columns(['organization_id', 'id'])
    .execute()
  await db.schema
    .createTable('gov_outcomes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('proposal_id', 'text', (c) => c.notNull().unique().references('gov_proposals.id'))
    .addColumn('industry', 'text', (c) => c.notNull())
    .addColumn('owner', 'text')
    .addColumn('status', 'text', (c) =>
      c.notNull().check(check('status', ['not_started', 'in_progress', 'done', 'blocked'])),
    )
    .addColumn('progress_bps', 'integer', (c) => c.notNull())
    .addColumn('review_on', 'bigint', (c) => c.notNull())
    .addColumn('milestones', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('gov_improvement_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('capability', 'text', (c) => c.notNull())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(check('status', ['open', 'planned', 'in_progress', 'shipped', 'declined'])),
    )
    .addColumn('support_count', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('gov_request_supports')
    .addColumn('request_id', 'text', (c) => c.notNull().references('gov_improvement_requests.id'))
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_request_supports_pk', ['request_id', 'organization_id'])
    .execute()
  await db.schema
    .createTable('gov_request_changes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('request_id', 'text', (c) => c.notNull().references('gov_improvement_requests.id'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('changed_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('gov_request_changes_request')
    .on('gov_request_changes')
    .columns(['request_id', 'created_at'])
    .execute()
  await db.schema
    .createTable('gov_training_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(check('kind', ['office_hours', 'course', 'study_tour'])))
    .addColumn('title_en', 'text', (c) => c.notNull())
    .addColumn('title_zh', 'text', (c) => c.notNull())
    .addColumn('industry', 'text')
    .addColumn('starts_at', 'bigint', (c) => c.notNull())
    .addColumn('capacity', 'integer', (c) => c.notNull())
    .addColumn('enrolled_count', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('gov_enrolments')
    .addColumn('session_id', 'text', (c) => c.notNull().references('gov_training_sessions.id'))
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(check('status', ['enrolled', 'waitlisted', 'cancelled'])))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('gov_enrolments_pk', ['session_id', 'organization_id'])
    .execute()
  await db.schema
    .createIndex('gov_enrolments_queue')
    .on('gov_enrolments')
    .columns(['session_id', 'status', 'created_at'])
    .execute()
  // The in-app side of governance notifications; the webhook side goes through the outbox.
  await db.schema
    .createTable('gov_inbox')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('gov_inbox_organization').on('gov_inbox').columns(['organization_id', 'id']).execute()
}

export async function up(db: Kysely<any>): Promise<void> {
  await createCouncilTables(db)
  await createProposalTables(db)
  await createPolicyTables(db)
  await createProgrammeTables(db)
  const now = Date.UTC(2026, 10, 25)
  for (const [code, en, zh] of industries) {
    await db.insertInto('gov_industries').values({ code, name_en: en, name_zh: zh, created_at: now }).execute()
    for (const type of proposalTypes) {
      await db
        .insertInto('gov_proposal_types')
        .values({
          id: `ptype_${code}_${type.key}`,
          industry: code,
          type_key: type.key,
          name_en: type.en,
          name_zh: type.zh,
          rules: JSON.stringify(type.rules),
          rules_version: 1,
          created_at: now,
          updated_at: now,
        })
        .execute()
    }
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'gov_inbox',
    'gov_enrolments',
    'gov_training_sessions',
    'gov_request_changes',
    'gov_request_supports',
    'gov_improvement_requests',
    'gov_outcomes',
    'gov_applications',
    'gov_batches',
    'gov_policy_versions',
    'gov_parameter_sets',
    'gov_policy_head',
    'gov_conflicts',
    'gov_votes',
    'gov_comments',
    'gov_proposal_versions',
    'gov_proposals',
    'gov_proxies',
    'gov_partners',
    'gov_proposal_types',
    'gov_industries',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
