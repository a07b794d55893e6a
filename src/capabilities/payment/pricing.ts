/**
 * What a trade costs the merchant, read through the policy service so that councils govern
 * it: the platform fee rate and the ISV's share of that fee, per industry. The trade keeps
 * the rates and the policy versions that priced it, so a later policy never reprices it.
 */
import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import type { OrganizationProfile, ParameterDeclaration } from '../contract.js'
import type { PolicyService } from '../../platform/policy/policy-service.js'

export const parameterKeys = {
  feeRateBps: 'payment.fee_rate_bps',
  commissionShareBps: 'payment.isv_commission_share_bps',
  settlementDelayS: 'payment.settlement_delay_seconds',
  royaltyShareMaxBps: 'payment.royalty_share_max_bps',
} as const

export const bpsDenominator = 10_000

export const paymentParameters: Readonly<Record<string, ParameterDeclaration>> = {
  [parameterKeys.feeRateBps]: {
    schema: Type.Integer({ minimum: 0, maximum: 1000 }),
    default: 60,
    scope: 'industry',
    description: {
      en: 'Platform fee on each trade, in basis points (60 = 0.6%)',
      zh: '平台交易手续费率（基点，60 即 0.6%）',
    },
  },
  [parameterKeys.commissionShareBps]: {
    schema: Type.Integer({ minimum: 0, maximum: bpsDenominator }),
    default: 2000,
    scope: 'industry',
    description: {
      en: 'Share of the platform fee paid to the ISV that made the trade, in basis points',
      zh: '服务商返佣占平台手续费的比例（基点）',
    },
  },
  [parameterKeys.settlementDelayS]: {
    schema: Type.Integer({ minimum: 0, maximum: 30 * 24 * 3600 }),
    default: 86_400,
    scope: 'industry',
    description: {
      en: 'Seconds between payment and settlement to the merchant',
      zh: '交易成功后结算给商家的延迟（秒）',
    },
  },
  [parameterKeys.royaltyShareMaxBps]: {
    schema: Type.Integer({ minimum: 0, maximum: bpsDenominator }),
    default: 3000,
    scope: 'industry',
    description: {
      en: 'Largest share of a trade that profit sharing may pay out, in basis points',
      zh: '分账金额占交易金额的最高比例（基点）',
    },
  },
}

export interface Pricing {
  readonly feeRateBps: number
  readonly feePolicyVersion: number
  readonly commissionShareBps: number
  readonly commissionPolicyVersion: number
}

export async function priceFor(
  policy: PolicyService,
  db: Kysely<any>,
  merchant: OrganizationProfile,
  now: number,
): Promise<Pricing> {
  const scope = { industry: merchant.industry, merchantId: merchant.id, at: now }
  const fee = await policy.get<number>(db, parameterKeys.feeRateBps, scope)
  const share = await policy.get<number>(db, parameterKeys.commissionShareBps, scope)
  return {
    feeRateBps: fee.value,
    feePolicyVersion: fee.version,
    commissionShareBps: share.value,
    commissionPolicyVersion: share.version,
  }
}
