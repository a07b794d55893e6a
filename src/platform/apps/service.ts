/**
 * Apps and their public keys. An organisation's app lives in one environment (sandbox or
 * live). Keys rotate with an overlap: registering a new key sets the end of the current
 * key(s) to now + overlap, so callers can switch without a window of refused requests.
 */
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import type { UserPrincipal } from '../../server/route-kit.js'
import { isUniqueViolation } from '../../storage/database.js'
import { prepared } from '../../storage/prepared.js'
import type { AppEnvironment, AppKeysTable, AppsTable, CoreTables, MemberRole } from '../../storage/tables.js'
import { appendAudit } from '../audit/audit-log.js'
import { requireMember, roles } from '../identity/service.js'
import { newId } from '../ids.js'
import { parsePublicKey } from './public-keys.js'

type Db = Kysely<CoreTables>

/** At most this many keys verify at once (the current one plus those in their overlap). */
export const activeKeysMax = 3
export const overlapSMax = 30 * 24 * 3600
export const overlapSDefault = 24 * 3600

export async function createApp(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  input: { name: string; environment: AppEnvironment },
  now: number,
): Promise<AppsTable> {
  await requireMember(db, principal, organizationId, roles.developer)
  const row: AppsTable = {
    id: newId('app'),
    organization_id: organizationId,
    name: input.name,
    environment: input.environment,
    created_at: now,
  }
  await (db as Db).insertInto('apps').values(row).execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'app.created',
      target: row.id,
      data: { organization_id: organizationId, environment: row.environment },
    },
    now,
  )
  return row
}

/** An app of the organisation, after checking the caller belongs to it with one of `allowed` roles. */
export async function getApp(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  allowed: readonly MemberRole[] | 'read' = 'read',
): Promise<AppsTable> {
  await requireMember(db, principal, organizationId, allowed)
  const app = await (db as Db)
    .selectFrom('apps')
    .selectAll()
    .where('id', '=', appId)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  if (app === undefined) throw new AppError('APP_NOT_FOUND', { field: 'params.app_id' })
  return app
}

export async function registerKey(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  input: { publicKeyPem: string; overlapS: number },
  now: number,
): Promise<AppKeysTable> {
  await requireMember(db, principal, organizationId, roles.developer)
  await getApp(db, principal, organizationId, appId)
  const parsed = parsePublicKey(input.publicKeyPem)
  const active = await activeKeys(db, appId, now)
  if (active.some((key) => key.fingerprint === parsed.fingerprint)) {
    throw new AppError('APP_KEY_ALREADY_REGISTERED', { field: 'body.public_key_pem' })
  }
  if (active.length >= activeKeysMax) throw new AppError('APP_KEY_LIMIT_REACHED')
  const overlapEnd = now + input.overlapS * 1000
  // The current key (not_after null) starts its overlap; keys already ending keep the
  // earlier of their end and the new one, so an overlap never grows by rotating again.
  await (db as Db)
    .updateTable('app_keys')
    .set({ not_after: overlapEnd })
    .where('app_id', '=', appId)
    .where('not_after', 'is', null)
    .execute()
  await (db as Db)
    .updateTable('app_keys')
    .set({ not_after: overlapEnd })
    .where('app_id', '=', appId)
    .where('not_after', '>', overlapEnd)
    .execute()
  const row: AppKeysTable = {
    id: newId('key'),
    app_id: appId,
    algorithm: parsed.algorithm,
    bits: parsed.bits,
    public_key_pem: parsed.pem,
    fingerprint: parsed.fingerprint,
    created_at: now,
    not_after: null,
  }
  try {
    await (db as Db).insertInto('app_keys').values(row).execute()
  } catch (error) {
    // The same key registered before and since expired: refuse rather than revive it.
    if (isUniqueViolation(error)) throw new AppError('APP_KEY_ALREADY_REGISTERED', { field: 'body.public_key_pem' })
    throw error
  }
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'app.key_registered',
      target: appId,
      data: {
        key_id: row.id,
        algorithm: row.algorithm,
        bits: row.bits,
        fingerprint: row.fingerprint,
        overlap_s: input.overlapS,
      },
    },
    now,
  )
  return row
}

export async function revokeKey(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  keyId: string,
  now: number,
): Promise<AppKeysTable> {
  await requireMember(db, principal, organizationId, roles.developer)
  await getApp(db, principal, organizationId, appId)
  const key = await (db as Db)
    .selectFrom('app_keys')
    .selectAll()
    .where('id', '=', keyId)
    .where('app_id', '=', appId)
    .executeTakeFirst()
  if (key === undefined) throw new AppError('APP_KEY_NOT_FOUND', { field: 'params.key_id' })
  if (key.not_after === null || key.not_after > now) {
    await (db as Db).updateTable('app_keys').set({ not_after: now }).where('id', '=', keyId).execute()
    await appendAudit(
      db,
      { actor: principal.userId, action: 'app.key_revoked', target: appId, data: { key_id: keyId } },
      now,
    )
  }
  return { ...key, not_after: Math.min(key.not_after ?? now, now) }
}

/** Keys that verify at `now`, newest first: one definition, {@link signingApp}'s. */
export async function activeKeys(db: Kysely<any>, appId: string, now: number): Promise<readonly AppKeysTable[]> {
  return (await signingApp(db, appId, now))?.keys ?? []
}

/** What checking an app's signature needs: the app, and its keys that verify now, newest first. */
export interface SigningApp {
  readonly id: string
  readonly organizationId: string
  readonly environment: AppEnvironment
  readonly keys: readonly AppKeysTable[]
}

/**
 * The app and the keys that verify at `now` (`not_after` unset or later), newest first, in one
 * statement: a row per key, and one with no key columns when the app has none.
 */
const signingAppQuery = prepared((db: Db, p: { appId: string; now: number }) =>
  db
    .selectFrom('apps')
    .leftJoin('app_keys', (join) =>
      join
        .onRef('app_keys.app_id', '=', 'apps.id')
        .on((eb) => eb.or([eb('app_keys.not_after', 'is', null), eb('app_keys.not_after', '>', p.now)])),
    )
    .select([
      'apps.id as app_id',
      'apps.organization_id',
      'apps.environment',
      'app_keys.id as key_id',
      'app_keys.algorithm',
      'app_keys.bits',
      'app_keys.public_key_pem',
      'app_keys.fingerprint',
      'app_keys.created_at',
      'app_keys.not_after',
    ])
    .where('apps.id', '=', p.appId)
    .orderBy('app_keys.created_at', 'desc')
    .orderBy('app_keys.id', 'desc')
    .limit(activeKeysMax + 1),
)

/**
 * The app a signed request names, with the keys that verify at `now` (at most
 * `activeKeysMax + 1`), or undefined when there is no such app. One read rather than two: every signed request needs
 * both, and on PostgreSQL each statement is a round trip.
 */
export async function signingApp(db: Kysely<any>, appId: string, now: number): Promise<SigningApp | undefined> {
  const rows = await signingAppQuery.rows(db, { appId, now })
  const first = rows[0]
  if (first === undefined) return undefined
  const keys: AppKeysTable[] = []
  for (const row of rows) {
    if (row.key_id === null) continue
    keys.push({
      id: row.key_id,
      app_id: row.app_id,
      algorithm: row.algorithm!,
      bits: row.bits!,
      public_key_pem: row.public_key_pem!,
      fingerprint: row.fingerprint!,
      created_at: row.created_at!,
      not_after: row.not_after,
    })
  }
  return { id: first.app_id, organizationId: first.organization_id, environment: first.environment, keys }
}
