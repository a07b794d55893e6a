/**
 * Row shapes of the platform's own tables. Capabilities declare their tables in their own
 * folders and never read these directly; they go through the platform services.
 * Times are epoch milliseconds (BIGINT), booleans are 0/1 integers and JSON is text, so that
 * SQLite and PostgreSQL return the same values.
 */
export interface UsersTable {
  id: string
  email: string
  password_hash: string
  is_operator: number
  created_at: number
}

export type OrganizationKind = 'isv' | 'merchant'

export interface OrganizationsTable {
  id: string
  kind: OrganizationKind
  name: string
  industry: string | null
  created_at: number
}

export type MemberRole = 'owner' | 'admin' | 'developer' | 'viewer'

export interface MembershipsTable {
  organization_id: string
  user_id: string
  role: MemberRole
  created_at: number
}

export interface SessionsTable {
  token_hash: string
  user_id: string
  created_at: number
  expires_at: number
}

export type AppEnvironment = 'sandbox' | 'live'

export interface AppsTable {
  id: string
  organization_id: string
  name: string
  environment: AppEnvironment
  created_at: number
}

export type KeyAlgorithm = 'RSA' | 'Ed25519'

export interface AppKeysTable {
  id: string
  app_id: string
  algorithm: KeyAlgorithm
  bits: number
  public_key_pem: string
  fingerprint: string
  created_at: number
  /** When the key stops verifying; null while it is the current key. */
  not_after: number | null
}

export interface PlatformKeysTable {
  environment: AppEnvironment
  key_id: string
  algorithm: 'Ed25519'
  public_key_pem: string
  /** The PKCS#8 PEM, sealed (src/platform/signing/sealing.ts); never stored in the clear. */
  private_key_sealed: string
  created_at: number
}

export interface RequestNoncesTable {
  app_id: string
  nonce: string
  expires_at: number
}

export interface IdempotencyRecordsTable {
  principal: string
  idempotency_key: string
  fingerprint: string
  state: 'running' | 'done'
  response_status: number | null
  response_body: string | null
  locked_at: number
  created_at: number
  expires_at: number
}

export interface AuditLogTable {
  seq: number
  at: number
  actor: string
  action: string
  target: string
  data: string
  prev_hash: string
  hash: string
}

export interface AuditHeadTable {
  id: number
  seq: number
  hash: string
}

export interface OutboxEventsTable {
  id: string
  type: string
  organization_id: string
  payload: string
  created_at: number
}

export interface CoreTables {
  users: UsersTable
  organizations: OrganizationsTable
  memberships: MembershipsTable
  sessions: SessionsTable
  apps: AppsTable
  app_keys: AppKeysTable
  platform_keys: PlatformKeysTable
  request_nonces: RequestNoncesTable
  idempotency_records: IdempotencyRecordsTable
  audit_log: AuditLogTable
  audit_head: AuditHeadTable
  outbox_events: OutboxEventsTable
}
