/**
 * Mounts the capabilities' server-rendered pages. They live in an encapsulated plugin with
 * its own form parser, so the JSON API keeps refusing form posts (415): a cross-site form can
 * reach only these pages, which never act on a console session.
 */
import type { FastifyInstance } from 'fastify'
import type { PageSpec } from '../capabilities/contract.js'
import type { Storage } from '../storage/database.js'
import type { Clock } from '../platform/ids.js'

const formBodyLimitBytes = 16 * 1024

export async function registerPages(
  app: FastifyInstance,
  pages: readonly PageSpec[],
  storage: Storage,
  clock: Clock,
): Promise<void> {
  await app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: formBodyLimitBytes },
      (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
    )
    for (const spec of pages) {
      scope.route({
        method: spec.method,
        url: spec.url,
        schema: { hide: true },
        handler: async (request, reply) => {
          const result = await spec.handler({
            params: request.params as Record<string, string>,
            query: request.query as Record<string, string>,
            form: (request.body ?? {}) as Record<string, string>,
            db: storage.db,
            now: clock.now(),
          })
          if (result.kind === 'redirect') return reply.redirect(result.location, 302)
          return reply
            .code(result.status)
            .type('text/html; charset=utf-8')
            .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
            .header('x-frame-options', 'DENY')
            .send(result.html)
        },
      })
    }
  })
}
