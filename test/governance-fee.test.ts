/**
 * Governance is executable: the education council enacts a lower payment fee through the
 * whole lifecycle over HTTP, and the next trade is priced by it while the previous one keeps
 * the fee and policy version that priced it. Also: the policy source resolves the value in
 * force at an instant, falls back merchant -> industry -> default, and other industries are
 * untouched.
 */
import { beforeAll, expect, it } from 'vitest'
import { json, session, signUp, type Tenant } from './fixtures.js'
import {
  admit,
  elapse,
  expectCode,
  expectStatus,
  feeAction,
  content,
  governanceTestConfig,
  hourMs,
  operatorToken,
  proposeAndOpen,
  putType,
  readProposal,
  vote,
} from './governance-helpers.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'
import { paymentCode, paymentWorld, testTokenResolver, type PaymentWorld } from './payment-fixtures.js'

forEachDialect('governance: an enacted fee changes the next trade', (dialect) => {
  const clock = manualClock(Date.now())
  let operatorLogin: { email: string; password: string } | undefined
  const bp = useTestPlatform(dialect, {
    clock,
    appAuthTokenResolver: testTokenResolver(),
    config: governanceTestConfig,
    onOperatorCreated: (login) => {
      operatorLogin = login
    },
  })
  let world: PaymentWorld
  let partner: Tenant
  let operator: string
  let counter = 0

  beforeAll(async () => {
    world = await paymentWorld(bp(), { now: clock.now, industry: 'education' })
    operator = await operatorToken(bp().app, operatorLogin!)
    partner = await signUp(bp().app, 'isv')
    await admit(bp().app, operator, [partner], ['education'], clock.now())
    await putType(bp().app, operator, 'education', 'parameter_change', { quorum_bps: 10_000 })
  })

  const pay = async (amount: number) => {
    const response = await world.call({
      method: 'POST',
      url: '/v1/trades/pay',
      body: {
        out_trade_no: `GOV-${(counter += 1)}`,
        total_amount: amount,
        subject: '课程 Course',
        auth_code: await paymentCode(world),
      },
    })
    return expectStatus(response, 200)
  }

  it('prices the trade after enactment at the new rate and leaves the earlier trade as it was', async () => {
    const before = await pay(10_000)
    expect(before).toMatchObject({ fee_rate_bps: 60, fee_amount: 60, fee_policy_version: 0 })
    const enactedBefore = clock.now()

    const opened = await proposeAndOpen(bp().app, partner, {
      industry: 'education',
      type: 'parameter_change',
      ...content('Lower the education fee'),
      actions: [feeAction(45)],
    })
    // The diff says, in plain language, what changes for whom.
    expect(opened.diff).toEqual([
      expect.objectContaining({
        parameter: 'payment.fee_rate_bps',
        scope_key: 'industry:education',
        old_value: 60,
        old_source: 'default',
        new_value: 45,
        merchants_affected: 1,
      }),
    ])
    expect(opened.diff[0].summary.en).toContain('60 → 45')
    expect(opened.diff[0].summary.zh).toContain('影响 1 个商家')
    expect(opened.content.actions[0].base_version).toBe(0)
    expectStatus(await vote(bp().app, partner, opened, { vote: 'yes' }), 200)

    // Voting closes; the proposal is queued and nothing changes during the veto window.
    await elapse(bp(), clock, hourMs)
    const queued = await readProposal(bp().app, opened.id)
    expect(queued.state).toBe('queued')
    expect(queued.tally).toMatchObject({ passed: true, counts: { yes: 1, no: 0, abstain: 0 } })
    expect((await pay(10_000)).fee_rate_bps).toBe(60)

    // The window ends; the job enacts it as policy version N.
    await elapse(bp(), clock, 11 * 60_000)
    const enacted = await readProposal(bp().app, opened.id)
    expect(enacted.state).toBe('enacted')
    expect(enacted.policy_versions).toHaveLength(1)
    const number = enacted.policy_versions[0]

    const after = await pay(10_000)
    expect(after).toMatchObject({ fee_rate_bps: 45, fee_amount: 45, fee_policy_version: number })
    const again = expectStatus(await world.call({ method: 'GET', url: `/v1/trades/${before.id}` }), 200)
    expect(again).toMatchObject({ fee_rate_bps: 60, fee_amount: 60, fee_policy_version: 0 })

    const version = expectStatus(
      await bp().app.inject({ method: 'GET', url: `/v1/governance/policy-versions/${number}` }),
      200,
    )
    expect(version).toMatchObject({
      number,
      scope_key: 'industry:education',
      version: 1,
      proposal_id: opened.id,
      content_hash: opened.content_hash,
      parameters: { 'payment.fee_rate_bps': 45 },
    })

    // The value in force at an instant: before enactment it was the default, after it is N.
    const policy = bp().registry.policy
    const db = bp().storage.db
    const scope = { industry: 'education', merchantId: world.merchantId }
    expect(await policy.get(db, 'payment.fee_rate_bps', { ...scope, at: enactedBefore })).toMatchObject({
      value: 60,
      version: 0,
    })
    expect(await policy.get(db, 'payment.fee_rate_bps', { ...scope, at: clock.now() })).toMatchObject({
      value: 45,
      version: number,
    })
    // Another industry, and a parameter nobody changed, keep the declared defaults.
    expect(await policy.get(db, 'payment.fee_rate_bps', { industry: 'retail', at: clock.now() })).toMatchObject({
      value: 60,
      version: 0,
    })
    expect(await policy.get(db, 'payment.isv_commission_share_bps', { ...scope, at: clock.now() })).toMatchObject({
      version: 0,
    })
    await expectLedgerConsistent(db)
  })

  it('sets a merchant-scope value, falls back merchant -> industry -> default, and unsets', async () => {
    const proposals = `/v1/organizations/${partner.organizationId}/governance/proposals`
    const draft = (actions: unknown[]) =>
      session(bp().app, 'POST', proposals, partner.token, {
        industry: 'education',
        type: 'parameter_change',
        ...content('Scopes'),
        actions,
      })
    const refused = [
      feeAction(50, { scope: 'merchant', merchant_id: world.merchantId }),
      { parameter: 'stores.open_stores_max', scope: 'merchant', op: 'set', value: 3 },
      { parameter: 'stores.open_stores_max', scope: 'industry', op: 'set', value: 0 },
      { parameter: 'payment.no_such_thing', scope: 'industry', op: 'set', value: 1 },
      feeAction(5000),
      { parameter: 'payment.fee_rate_bps', scope: 'industry', op: 'unset', value: 1 },
    ]
    for (const action of refused) expectCode(await draft([action]), 'GOV_ACTION_INVALID')

    const stores = { parameter: 'stores.open_stores_max', scope: 'merchant', merchant_id: world.merchantId }
    const opened = await proposeAndOpen(bp().app, partner, {
      industry: 'education',
      type: 'parameter_change',
      ...content('Cap stores for one merchant, restore the default fee'),
      actions: [
        { ...stores, op: 'set', value: 3 },
        { parameter: 'payment.fee_rate_bps', scope: 'industry', op: 'unset' },
      ],
    })
    expect(opened.diff).toEqual([
      expect.objectContaining({ scope_key: `merchant:${world.merchantId}`, old_value: 200, new_value: 3 }),
      expect.objectContaining({
        old_value: 45,
        old_source: 'industry:education',
        new_value: 60,
        merchants_affected: 1,
      }),
    ])
    expectStatus(await vote(bp().app, partner, opened, { vote: 'yes' }), 200)
    await elapse(bp(), clock, hourMs)
    await elapse(bp(), clock, 11 * 60_000)
    const enacted = await readProposal(bp().app, opened.id)
    expect(enacted.state).toBe('enacted')
    expect(enacted.policy_versions).toHaveLength(2)

    const policy = bp().registry.policy
    const db = bp().storage.db
    const at = clock.now()
    // The stores capability asks by merchant only; the merchant's own value answers.
    const own = await policy.get(db, 'stores.open_stores_max', { merchantId: world.merchantId, at })
    expect(own.value).toBe(3)
    expect(enacted.policy_versions).toContain(own.version)
    expect(await policy.get(db, 'stores.open_stores_max', { merchantId: partner.organizationId, at })).toMatchObject({
      value: 200,
      version: 0,
    })
    // The industry's fee was unset: the declared default applies again, and trades say so.
    expect((await pay(1000)).fee_policy_version).toBe(0)
    const industrySet = json(
      await bp().app.inject({ method: 'GET', url: '/v1/governance/policy-versions?scope_key=industry:education' }),
    )
    expect(industrySet.data[0]).toMatchObject({ version: 2, parameters: {}, changes: [{ op: 'unset' }] })
  })

  it('shows the value in force and its version on the public council view', async () => {
    const council = expectStatus(
      await bp().app.inject({ method: 'GET', url: '/v1/governance/industries/education' }),
      200,
    )
    expect(council.seats.map((seat: { organization_id: string }) => seat.organization_id)).toEqual([
      partner.organizationId,
    ])
    const find = (key: string) => council.parameters.find((entry: { key: string }) => entry.key === key)
    expect(find('payment.fee_rate_bps')).toMatchObject({ value: 60, source: 'default', policy_version: 0 })
    expect(find('payment.isv_commission_share_bps')).toMatchObject({ value: 2000, source: 'default' })
    const history = json(await bp().app.inject({ method: 'GET', url: '/v1/governance/policy-versions' }))
    expect(history.data.map((entry: { scope_key: string }) => entry.scope_key).sort()).toEqual([
      'industry:education',
      'industry:education',
      `merchant:${world.merchantId}`,
    ])
  })
})
