import type { Kysely } from 'kysely'
import type { Directory } from '../../capabilities/contract.js'
import { prepared } from '../../storage/prepared.js'
import type { CoreTables } from '../../storage/tables.js'

const organizationById = prepared((db: Kysely<CoreTables>, p: { organizationId: string }) =>
  db.selectFrom('organizations').select(['id', 'kind', 'name', 'industry']).where('id', '=', p.organizationId),
)

/** The identity module's answer to capabilities that need an organisation's kind or industry. */
export const organizationDirectory: Directory = {
  async organization(db, organizationId) {
    return (await organizationById.first(db, { organizationId })) ?? null
  },
}
