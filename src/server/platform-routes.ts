import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import type { Registry } from '../capabilities/registry.js'
import { AppError } from '../errors.js'
import type { CoreTables } from '../storage/tables.js'
import { defineRoute, type RouteSpec } from './route-kit.js'
import { IsoTime, Page, isoTime, pageSizeDefault, pageSizeMax, toPage } from './schemas.js'

const Text = Type.Object({ en: Type.String(), zh: Type.String() })

/** Read-only platform routes: the capability catalogue, governable parameters, the audit log. */
export function platformRoutes(registry: Registry): RouteSpec[] {
  const tags = ['platform']
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/capabilities',
      operationId: 'listCapabilities',
      auth: 'public',
      tags,
      summary: 'The capabilities this platform runs, with their scopes, events and parameters',
      schema: {
        response: Type.Object({
          data: Type.Array(
            Type.Object({
              id: Type.String(),
              version: Type.String(),
              title: Text,
              depends_on: Type.Array(Type.String()),
              scopes: Type.Array(Type.Object({ scope: Type.String(), description: Type.String() })),
              events: Type.Array(Type.String()),
              parameters: Type.Array(
                Type.Object({
                  key: Type.String(),
                  scope: Type.String(),
                  description: Text,
                  default: Type.Unknown(),
                  schema: Type.Unknown(),
                }),
              ),
            }),
          ),
        }),
      },
      handler: async () => ({
        data: registry.modules.map((module) => ({
          id: module.id,
          version: module.version,
          title: module.title,
          depends_on: [...module.dependsOn],
          scopes: Object.entries(module.scopes).map(([scope, description]) => ({ scope, description })),
          events: Object.keys(module.events),
          parameters: Object.entries(module.parameters).map(([key, declaration]) => ({
            key,
            scope: declaration.scope,
            description: declaration.description,
            default: declaration.default,
            schema: declaration.schema,
          })),
        })),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/audit-events',
      operationId: 'listAuditEvents',
      auth: 'session',
      tags,
      summary: 'The audit log, oldest first (operator only)',
      schema: {
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: pageSizeMax, default: pageSizeDefault })),
            after_seq: Type.Optional(Type.Integer({ minimum: 0 })),
          },
          { additionalProperties: false },
        ),
        response: Page(
          Type.Object({
            seq: Type.Integer(),
            at: IsoTime,
            actor: Type.String(),
            action: Type.String(),
            target: Type.String(),
            data: Type.Unknown(),
            hash: Type.String(),
          }),
        ),
      },
      handler: async ({ db, principal, query }) => {
        if (!principal.isOperator)
          throw new AppError('AUTH_FORBIDDEN', { message: 'Only the operator reads the audit log' })
        const limit = query.limit ?? pageSizeDefault
        const rows = await (db as Kysely<CoreTables>)
          .selectFrom('audit_log')
          .selectAll()
          .where('seq', '>', query.after_seq ?? 0)
          .orderBy('seq')
          .limit(limit + 1)
          .execute()
        return toPage(rows, limit, (row) => ({
          seq: row.seq,
          at: isoTime(row.at),
          actor: row.actor,
          action: row.action,
          target: row.target,
          data: JSON.parse(row.data) as unknown,
          hash: row.hash,
        }))
      },
    }),
  ]
}
