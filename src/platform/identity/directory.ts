import type { Kysely } from 'kysely'
import type { Directory } from '../../capabilities/contract.js'
import type { CoreTables } from '../../storage/tables.js'

/** The identity module's answer to capabilities that need an organisation's kind or industry. */
export const organizationDirectory: Directory = {
  async organization(db, organizationId) {
    const row = await (db as Kysely<CoreTables>)
      .selectFrom('organizations')
      .select(['id', 'kind', 'name', 'industry'])
      .where('id', '=', organizationId)
      .executeTakeFirst()
    return row ?? null
  },
}
