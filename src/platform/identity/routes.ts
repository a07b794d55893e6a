import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import type { Config } from '../../config.js'
import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import { LoginThrottledError, loginAccount, userAccount, type LoginThrottle } from './login-throttle.js'
import { Email, Id, IsoTime, Name, isoTime } from '../../server/schemas.js'
import type { CoreTables, OrganizationsTable } from '../../storage/tables.js'
import {
  addMember,
  changePassword,
  login,
  createOrganization,
  createUser,
  logout,
  requireMember,
  roles,
  sessionCookieName,
} from './service.js'

const Password = Type.String({ minLength: 12, maxLength: 200, description: 'At least 12 characters' })
const Industry = Type.String({ pattern: '^[a-z][a-z0-9_]{1,39}$', description: 'Industry code, e.g. education' })
const OrganizationKind = Type.Union([Type.Literal('isv'), Type.Literal('merchant')])
const Role = Type.Union([
  Type.Literal('owner'),
  Type.Literal('admin'),
  Type.Literal('developer'),
  Type.Literal('viewer'),
])

const Organization = Type.Object({
  id: Id('org'),
  kind: OrganizationKind,
  name: Type.String(),
  industry: Type.Union([Type.String(), Type.Null()]),
  created_at: IsoTime,
})
const User = Type.Object({ id: Id('user'), email: Type.String(), is_operator: Type.Boolean() })
const Member = Type.Object({ user_id: Id('user'), email: Type.String(), role: Role, created_at: IsoTime })
const OrganizationInput = Type.Object(
  {
    name: Name,
    kind: OrganizationKind,
    industry: Type.Optional(Industry),
  },
  { additionalProperties: false },
)
const OrganizationParams = Type.Object({ organization_id: Id('org') })

function organizationView(row: OrganizationsTable) {
  return { id: row.id, kind: row.kind, name: row.name, industry: row.industry, created_at: isoTime(row.created_at) }
}

export function identityRoutes(config: Config, loginThrottle: LoginThrottle): RouteSpec[] {
  const tags = ['identity']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/signup',
      operationId: 'signUp',
      auth: 'public',
      tags,
      status: 201,
      summary: 'Create a user and its first organisation (ISV or merchant)',
      idempotency: 'none',
      schema: {
        body: Type.Object(
          { email: Email, password: Password, organization: OrganizationInput },
          { additionalProperties: false },
        ),
        response: Type.Object({ user: User, organization: Organization }),
      },
      handler: async ({ db, body, now }) => {
        const user = await createUser(db, body, now, 'anonymous')
        const organization = await createOrganization(db, body.organization, user.id, now)
        return { user: { ...user, is_operator: false }, organization: organizationView(organization) }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/sessions',
      operationId: 'logIn',
      auth: 'public',
      tags,
      status: 201,
      summary: 'Log in to the console; sets the session cookie and returns the token once',
      idempotency: 'none',
      ownTransactions: true,
      schema: {
        body: Type.Object(
          { email: Email, password: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: Type.Object({ token: Type.String(), expires_at: IsoTime, user: User }),
      },
      handler: async ({ db, body, now, setCookie, setHeader, clientAddress }) => {
        const session = await loginThrottle
          .guarded(loginAccount(body.email), clientAddress, () =>
            login(db, body.email, body.password, now, config.sessionTtlS),
          )
          .catch(retryAfterOnThrottle(setHeader))
        setCookie(sessionCookieName, session.token, { maxAgeS: config.sessionTtlS, httpOnly: true })
        return {
          token: session.token,
          expires_at: isoTime(session.expiresAt),
          user: { id: session.user.id, email: session.user.email, is_operator: session.user.is_operator === 1 },
        }
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/sessions/current',
      operationId: 'logOut',
      auth: 'session',
      tags,
      summary: 'End the current session',
      idempotency: 'none',
      schema: { response: Type.Object({ ended: Type.Boolean() }) },
      handler: async ({ db, principal, now, setCookie }) => {
        await logout(db, principal, now)
        setCookie(sessionCookieName, '', { maxAgeS: 0, httpOnly: true })
        return { ended: true }
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/me',
      operationId: 'getMe',
      auth: 'session',
      tags,
      summary: 'The logged-in user and the organisations it belongs to',
      schema: {
        response: Type.Object({
          user: User,
          memberships: Type.Array(Type.Object({ organization: Organization, role: Role })),
        }),
      },
      handler: async ({ db, principal }) => {
        const core = db as Kysely<CoreTables>
        const user = await core
          .selectFrom('users')
          .select(['id', 'email', 'is_operator'])
          .where('id', '=', principal.userId)
          .executeTakeFirstOrThrow()
        const rows = await core
          .selectFrom('memberships')
          .innerJoin('organizations', 'organizations.id', 'memberships.organization_id')
          .selectAll('organizations')
          .select('memberships.role')
          .where('memberships.user_id', '=', principal.userId)
          .orderBy('organizations.id')
          .execute()
        return {
          user: { id: user.id, email: user.email, is_operator: user.is_operator === 1 },
          memberships: rows.map((row) => ({ organization: organizationView(row), role: row.role })),
        }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/me/password',
      operationId: 'changePassword',
      auth: 'session',
      tags,
      summary: 'Change the password; ends every session of the user',
      idempotency: 'none',
      schema: {
        body: Type.Object(
          { current_password: Type.String({ minLength: 1, maxLength: 200 }), new_password: Password },
          { additionalProperties: false },
        ),
        response: Type.Object({ changed: Type.Boolean() }),
      },
      handler: async ({ db, principal, body, now, setHeader, clientAddress }) => {
        await loginThrottle
          .guarded(userAccount(principal.userId), clientAddress, () =>
            changePassword(db, principal, body.current_password, body.new_password, now),
          )
          .catch(retryAfterOnThrottle(setHeader))
        return { changed: true }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations',
      operationId: 'createOrganization',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Create an organisation; the caller becomes its owner',
      schema: { body: OrganizationInput, response: Organization },
      handler: async ({ db, principal, body, now }) =>
        organizationView(await createOrganization(db, body, principal.userId, now)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id',
      operationId: 'getOrganization',
      auth: 'session',
      tags,
      summary: 'Read an organisation you belong to',
      schema: { params: OrganizationParams, response: Organization },
      handler: async ({ db, principal, params }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const row = await (db as Kysely<CoreTables>)
          .selectFrom('organizations')
          .selectAll()
          .where('id', '=', params.organization_id)
          .executeTakeFirstOrThrow()
        return organizationView(row)
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/members',
      operationId: 'listMembers',
      auth: 'session',
      tags,
      summary: 'List the members of an organisation',
      schema: { params: OrganizationParams, response: Type.Object({ data: Type.Array(Member) }) },
      handler: async ({ db, principal, params }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const rows = await (db as Kysely<CoreTables>)
          .selectFrom('memberships')
          .innerJoin('users', 'users.id', 'memberships.user_id')
          .select(['users.id', 'users.email', 'memberships.role', 'memberships.created_at'])
          .where('memberships.organization_id', '=', params.organization_id)
          .orderBy('users.id')
          .execute()
        return {
          data: rows.map((row) => ({
            user_id: row.id,
            email: row.email,
            role: row.role,
            created_at: isoTime(row.created_at),
          })),
        }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/members',
      operationId: 'addMember',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Add an existing user to the organisation with a role',
      schema: {
        params: OrganizationParams,
        body: Type.Object({ email: Email, role: Role }, { additionalProperties: false }),
        response: Member,
      },
      handler: async ({ db, principal, params, body, now }) => {
        const member = await addMember(db, principal, params.organization_id, body.email, body.role, now)
        return { ...member, created_at: isoTime(member.created_at) }
      },
    }),
  ]
}

export { roles }

/** Passes an error on, first setting Retry-After when it is the login throttle's refusal. */
function retryAfterOnThrottle(setHeader: (name: string, value: string) => void) {
  return (error: unknown): never => {
    if (error instanceof LoginThrottledError) setHeader('retry-after', String(error.retryAfterS))
    throw error
  }
}
