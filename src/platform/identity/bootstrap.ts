import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import type { CoreTables } from '../../storage/tables.js'
import { isAppError } from '../../errors.js'
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
  const operatorExists = async () =>
    (await (db as Kysely<CoreTables>)
      .selectFrom('users')
      .select('id')
      .where('is_operator', '=', 1)
      .executeTakeFirst()) !== undefined
  if (await operatorExists()) return null
  const password = crypto.randomBytes(18).toString('base64url')
  try {
    await db.transaction().execute((tx) => createUser(tx, { email, password, isOperator: true }, now, 'system'))
  } catch (error) {
    // Another process starting at the same moment made the operator first: it prints the login.
    if (isAppError(error) && error.code === 'IDENTITY_EMAIL_TAKEN' && (await operatorExists())) return null
    throw error
  }
  return { email, password }
}
