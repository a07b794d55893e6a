/**
 * Row shapes of the governance tables (migration `2026-11-25T03-00_governance`). JSON
 * columns are text and parsed where they are read; times are epoch milliseconds.
 */
import type { CoreTables } from '../storage/tables.js'

export type ProposalState =
  'draft' | 'discussion' | 'voting' | 'defeated' | 'queued' | 'vetoed' | 'enacted' | 'stale' | 'expired' | 'withdrawn'

export interface GovIndustriesTable {
  code: string
  name_en: string
  name_zh: string
  created_at: number
}

export interface GovProposalTypesTable {
  id: string
  industry: string
  type_key: string
  name_en: string
  name_zh: string
  rules: string
  rules_version: number
  created_at: number
  updated_at: number
}

export interface GovPartnersTable {
  organization_id: string
  industry: string
  status: 'active' | 'suspended'
  application_id: string | null
  admitted_at: number
}

export interface GovProxiesTable {
  organization_id: string
  industry: string
  user_id: string
  granted_by: string
  created_at: number
}

export interface GovProposalsTable {
  id: string
  industry: string
  type_id: string
  type_key: string
  proposer_org_id: string | null
  proposer_user_id: string
  state: ProposalState
  version: number
  content_hash: string
  rules: string
  electorate: string | null
  tally: string | null
  winner: string | null
  effective_from: number | null
  policy_versions: string | null
  closed_reason: string | null
  veto_reason: string | null
  vetoed_by: string | null
  created_at: number
  updated_at: number
  discussion_at: number | null
  expires_at: number | null
  voting_opens_at: number | null
  voting_closes_at: number | null
  reminded_at: number | null
  decided_at: number | null
  executable_at: number | null
  execution_deadline_at: number | null
  closed_at: number | null
  due_at: number | null
}

export interface GovProposalVersionsTable {
  proposal_id: string
  version: number
  content: string
  content_hash: string
  diff: string
  note: string
  author_user_id: string
  created_at: number
}

export interface GovCommentsTable {
  id: string
  proposal_id: string
  version: number
  organization_id: string | null
  user_id: string
  body: string
  created_at: number
}

export interface GovVotesTable {
  proposal_id: string
  organization_id: string
  content_hash: string
  choice: string
  reason: string | null
  cast_by: string
  via_proxy: number
  created_at: number
  updated_at: number
}

export interface GovConflictsTable {
  proposal_id: string
  organization_id: string
  reason: string
  declared_by: string
  created_at: number
}

export interface GovPolicyHeadTable {
  id: number
  number: number
  token: string
}

export interface GovParameterSetsTable {
  scope_key: string
  version: number
  updated_at: number
}

export interface GovPolicyVersionsTable {
  number: number
  scope_key: string
  version: number
  proposal_id: string | null
  content_hash: string | null
  parameters: string
  changes: string
  effective_from: number
  enacted_at: number
}

export interface GovBatchesTable {
  id: string
  name: string
  industries: string
  criteria: string
  opens_at: number
  closes_at: number
  created_by: string
  created_at: number
}

export type ApplicationStatus = 'submitted' | 'admitted' | 'waitlisted' | 'rejected'

export interface GovApplicationsTable {
  id: string
  batch_id: string
  organization_id: string
  industries: string
  company: string
  founder: string
  evaluation: string
  status: ApplicationStatus
  decision_reason: string | null
  decided_by: string | null
  decided_at: number | null
  created_at: number
}

export type OutcomeStatus = 'not_started' | 'in_progress' | 'done' | 'blocked'

export interface GovOutcomesTable {
  id: string
  proposal_id: string
  industry: string
  owner: string | null
  status: OutcomeStatus
  progress_bps: number
  review_on: number
  milestones: string
  created_at: number
  updated_at: number
}

export type RequestStatus = 'open' | 'planned' | 'in_progress' | 'shipped' | 'declined'

export interface GovImprovementRequestsTable {
  id: string
  capability: string
  organization_id: string
  title: string
  body: string
  status: RequestStatus
  support_count: number
  created_at: number
  updated_at: number
}

export interface GovRequestSupportsTable {
  request_id: string
  organization_id: string
  created_at: number
}

export interface GovRequestChangesTable {
  id: string
  request_id: string
  status: string
  note: string
  changed_by: string
  created_at: number
}

export type TrainingKind = 'office_hours' | 'course' | 'study_tour'

export interface GovTrainingSessionsTable {
  id: string
  kind: TrainingKind
  title_en: string
  title_zh: string
  industry: string | null
  starts_at: number
  capacity: number
  enrolled_count: number
  created_by: string
  created_at: number
  updated_at: number
}

export type EnrolmentStatus = 'enrolled' | 'waitlisted' | 'cancelled'

export interface GovEnrolmentsTable {
  session_id: string
  organization_id: string
  user_id: string
  status: EnrolmentStatus
  created_at: number
  updated_at: number
}

export interface GovInboxTable {
  id: string
  organization_id: string
  type: string
  payload: string
  created_at: number
}

export interface GovernanceTables extends CoreTables {
  gov_industries: GovIndustriesTable
  gov_proposal_types: GovProposalTypesTable
  gov_partners: GovPartnersTable
  gov_proxies: GovProxiesTable
  gov_proposals: GovProposalsTable
  gov_proposal_versions: GovProposalVersionsTable
  gov_comments: GovCommentsTable
  gov_votes: GovVotesTable
  gov_conflicts: GovConflictsTable
  gov_policy_head: GovPolicyHeadTable
  gov_parameter_sets: GovParameterSetsTable
  gov_policy_versions: GovPolicyVersionsTable
  gov_batches: GovBatchesTable
  gov_applications: GovApplicationsTable
  gov_outcomes: GovOutcomesTable
  gov_improvement_requests: GovImprovementRequestsTable
  gov_request_supports: GovRequestSupportsTable
  gov_request_changes: GovRequestChangesTable
  gov_training_sessions: GovTrainingSessionsTable
  gov_enrolments: GovEnrolmentsTable
  gov_inbox: GovInboxTable
}
