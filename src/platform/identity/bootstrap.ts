import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import type { CoreTables } from '../../storage/tables.js'
import { createUser } from './service.js'

/**
 * Creates the operator account on the first start and returns its one-time password, or
 * null when an operator exists already. The password is returned to be printed once on the
 * terminal that started the platform; it is never logged or stored in clear.
 */
export async function bootstrapOperator(
  db: Kysely<any>,
  email: string,
  now: number,
): Promise<{ email: string; password: string } | null> {
  const existing = await (db as Kysely<CoreTables>)
    .selectFrom('users')
    .select('id')
    .where('is_operator', '=', 1)
    .executeTakeFirst()
  if (existing !== undefined) return null
  const password = crypto.randomBytes(18).toString('base64url')
  await db.transaction().execute((tx) => createUser(tx, { email, password, isOperator: true }, now, 'system'))
  return { email, password }
}
