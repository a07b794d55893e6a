/**
 * Users, organisations, memberships and console sessions. A session token is a 256-bit
 * random secret shown once; only its SHA-256 is stored.
 */
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import { isUniqueViolation } from '../../storage/database.js'
import type { CoreTables, MemberRole, OrganizationKind, OrganizationsTable } from '../../storage/tables.js'
import { appendAudit } from '../audit/audit-log.js'
import { newId, newSecret, sha256Hex } from '../ids.js'
import type { UserPrincipal } from '../../server/route-kit.js'
import { decoyPasswordHash, hashPassword, verifyPassword } from './passwords.js'

type Db = Kysely<CoreTables>

export const sessionCookieName = 'bp_session'
const writeRoles: readonly MemberRole[] = ['owner', 'admin']
const developerRoles: readonly MemberRole[] = ['owner', 'admin', 'developer']
export const roles = { write: writeRoles, developer: developerRoles } as const

export interface NewOrganization {
  readonly name: string
  readonly kind: OrganizationKind
  readonly industry?: string | undefined
}

export async function createUser(
  db: Kysely<any>,
  input: { email: string; password: string; isOperator?: boolean },
  now: number,
  actor: string,
): Promise<{ id: string; email: string }> {
  const id = newId('user')
  const email = input.email.toLowerCase()
  try {
    await (db as Db)
      .insertInto('users')
      .values({
        id,
        email,
        password_hash: await hashPassword(input.password),
        is_operator: input.isOperator === true ? 1 : 0,
        created_at: now,
      })
      .execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError('IDENTITY_EMAIL_TAKEN', { field: 'body.email' })
    throw error
  }
  await appendAudit(
    db,
    { actor, action: 'user.created', target: id, data: { email, operator: input.isOperator === true } },
    now,
  )
  return { id, email }
}

export async function createOrganization(
  db: Kysely<any>,
  input: NewOrganization,
  ownerId: string,
  now: number,
): Promise<OrganizationsTable> {
  const row: OrganizationsTable = {
    id: newId('org'),
    kind: input.kind,
    name: input.name,
    industry: input.industry ?? null,
    created_at: now,
  }
  await (db as Db).insertInto('organizations').values(row).execute()
  await (db as Db)
    .insertInto('memberships')
    .values({
      organization_id: row.id,
      user_id: ownerId,
      role: 'owner',
      created_at: now,
    })
    .execute()
  await appendAudit(
    db,
    {
      actor: ownerId,
      action: 'organization.created',
      target: row.id,
      data: { kind: row.kind, name: row.name, industry: row.industry },
    },
    now,
  )
  return row
}

/**
 * Checks the credentials and opens a session. Takes the root database, not a transaction:
 * a failed attempt is audited in its own transaction, which must commit although the login
 * itself fails.
 */
export async function login(db: Kysely<any>, email: string, password: string, now: number, ttlS: number) {
  const user = await (db as Db)
    .selectFrom('users')
    .selectAll()
    .where('email', '=', email.toLowerCase())
    .executeTakeFirst()
  const valid = await verifyPassword(password, user?.password_hash ?? (await decoyPasswordHash()))
  if (user === undefined || !valid) {
    await db
      .transaction()
      .execute((tx) =>
        appendAudit(
          tx,
          { actor: 'anonymous', action: 'session.login_failed', target: email.toLowerCase(), data: {} },
          now,
        ),
      )
    throw new AppError('AUTH_INVALID_CREDENTIALS')
  }
  const token = newSecret('sess')
  const expiresAt = now + ttlS * 1000
  await db.transaction().execute(async (tx) => {
    await (tx as Db)
      .insertInto('sessions')
      .values({
        token_hash: sha256Hex(token),
        user_id: user.id,
        created_at: now,
        expires_at: expiresAt,
      })
      .execute()
    await appendAudit(tx, { actor: user.id, action: 'session.login', target: user.id, data: {} }, now)
  })
  return { token, expiresAt, user }
}

export async function logout(db: Kysely<any>, principal: UserPrincipal, now: number) {
  await (db as Db).deleteFrom('sessions').where('token_hash', '=', sha256Hex(principal.sessionToken)).execute()
  await appendAudit(db, { actor: principal.userId, action: 'session.logout', target: principal.userId, data: {} }, now)
}

/** The user behind a session token, or null when the token is unknown or expired. */
export async function userForSession(db: Kysely<any>, token: string, now: number): Promise<UserPrincipal | null> {
  const row = await (db as Db)
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['users.id', 'users.is_operator', 'sessions.expires_at'])
    .where('sessions.token_hash', '=', sha256Hex(token))
    .executeTakeFirst()
  if (row === undefined || row.expires_at <= now) return null
  return { kind: 'user', userId: row.id, isOperator: row.is_operator === 1, sessionToken: token }
}

export async function changePassword(
  db: Kysely<any>,
  principal: UserPrincipal,
  current: string,
  next: string,
  now: number,
) {
  const user = await (db as Db)
    .selectFrom('users')
    .selectAll()
    .where('id', '=', principal.userId)
    .executeTakeFirstOrThrow()
  if (!(await verifyPassword(current, user.password_hash))) {
    throw new AppError('AUTH_INVALID_CREDENTIALS', {
      field: 'body.current_password',
      message: 'The current password is wrong',
    })
  }
  await (db as Db)
    .updateTable('users')
    .set({ password_hash: await hashPassword(next) })
    .where('id', '=', user.id)
    .execute()
  // Every session of this user ends, this one too: a changed password must lock out whoever had it.
  await (db as Db).deleteFrom('sessions').where('user_id', '=', user.id).execute()
  await appendAudit(db, { actor: user.id, action: 'user.password_changed', target: user.id, data: {} }, now)
}

/**
 * The caller's role in an organisation. A non-member gets IDENTITY_ORGANIZATION_NOT_FOUND,
 * not 403, so that probing ids tells nothing about other tenants. The operator may read
 * every organisation (it runs the platform) but writes only where it is a member.
 */
export async function requireMember(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  allowed: readonly MemberRole[] | 'read',
): Promise<MemberRole | 'operator'> {
  const membership = await (db as Db)
    .selectFrom('memberships')
    .select('role')
    .where('organization_id', '=', organizationId)
    .where('user_id', '=', principal.userId)
    .executeTakeFirst()
  if (membership === undefined) {
    if (principal.isOperator && allowed === 'read') {
      const exists = await (db as Db)
        .selectFrom('organizations')
        .select('id')
        .where('id', '=', organizationId)
        .executeTakeFirst()
      if (exists !== undefined) return 'operator'
    }
    throw new AppError('IDENTITY_ORGANIZATION_NOT_FOUND', { field: 'params.organization_id' })
  }
  if (allowed !== 'read' && !allowed.includes(membership.role)) {
    throw new AppError('AUTH_FORBIDDEN', { message: `Your role (${membership.role}) may not do this` })
  }
  return membership.role
}

export async function addMember(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  email: string,
  role: MemberRole,
  now: number,
) {
  await requireMember(db, principal, organizationId, writeRoles)
  const user = await (db as Db)
    .selectFrom('users')
    .select(['id', 'email'])
    .where('email', '=', email.toLowerCase())
    .executeTakeFirst()
  if (user === undefined) throw new AppError('IDENTITY_USER_NOT_FOUND', { field: 'body.email' })
  try {
    await (db as Db)
      .insertInto('memberships')
      .values({
        organization_id: organizationId,
        user_id: user.id,
        role,
        created_at: now,
      })
      .execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError('IDENTITY_MEMBER_EXISTS', { field: 'body.email' })
    throw error
  }
  await appendAudit(
    db,
    { actor: principal.userId, action: 'membership.added', target: organizationId, data: { user_id: user.id, role } },
    now,
  )
  return { user_id: user.id, email: user.email, role, created_at: now }
}
