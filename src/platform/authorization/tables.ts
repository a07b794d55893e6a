/**
 * Row shapes of the authorisation tables (migration `2026-11-25T01-00_authorizations`).
 * Times are epoch milliseconds; `scopes` is a JSON array of scope names, sorted.
 */
import type { Kysely } from 'kysely'
import type { CoreTables } from '../../storage/tables.js'

export interface AppRedirectUrisTable {
  app_id: string
  redirect_uri: string
  /** Keeps the order the ISV gave. */
  position: number
  created_at: number
}

export type AuthorizationStatus = 'active' | 'revoked'

export interface AuthorizationsTable {
  id: string
  app_id: string
  merchant_id: string
  scopes: string
  status: AuthorizationStatus
  /** SHA-256 of the current app auth token; null once revoked. */
  token_hash: string | null
  token_expires_at: number | null
  /** SHA-256 of the current refresh token; null once revoked. */
  refresh_hash: string | null
  refresh_expires_at: number | null
  source_code_hash: string | null
  /** The user who approved, or the actor of a direct (sandbox) grant. */
  granted_by: string
  created_at: number
  updated_at: number
  revoked_at: number | null
  revoked_by: string | null
  revoke_reason: RevokeReason | null
}

/** Why an authorisation ended: the merchant revoked it, or its code was replayed. */
export type RevokeReason = 'merchant' | 'code_reused'

export interface AuthorizationCodesTable {
  code_hash: string
  app_id: string
  merchant_id: string
  scopes: string
  redirect_uri: string
  approved_by: string
  created_at: number
  expires_at: number
  used_at: number | null
  /** The authorisation the exchange created or replaced. */
  authorization_id: string | null
}

export interface AuthorizationTables extends CoreTables {
  app_redirect_uris: AppRedirectUrisTable
  authorizations: AuthorizationsTable
  authorization_codes: AuthorizationCodesTable
}

export type Db = Kysely<AuthorizationTables>
