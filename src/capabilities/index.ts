/**
 * The capabilities this build ships. Adding a capability is adding its folder and one line
 * here; the registry does the rest.
 */
import type { CapabilityModule } from './contract.js'
import ledger from './ledger/index.js'
import payment from './payment/index.js'
import stores from './stores/index.js'

export const capabilities: readonly CapabilityModule<any>[] = [ledger, stores, payment]
