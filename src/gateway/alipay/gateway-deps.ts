import type { Kysely } from 'kysely'
import type { PaymentServices } from '../../capabilities/payment/index.js'
import type { Config } from '../../config.js'
import type { Storage } from '../../storage/database.js'
import type { AppAuthTokenResolver } from '../../server/authenticate.js'
import type { RsaSigner } from './signer.js'

/** What both protocol versions need to answer a request. */
export interface GatewayDeps {
  readonly config: Config
  /** The root database; methods open their own transactions. */
  readonly db: Kysely<any>
  /** Runs a step whose commits are owed rather than awaited (`Storage.deferDurability`, ADR 0013). */
  readonly deferDurability: Storage['deferDurability']
  /** Null without the payment capability: methods that need it are then unknown. */
  readonly payment: PaymentServices | null
  readonly resolver: AppAuthTokenResolver | null
  readonly signer: RsaSigner
}
