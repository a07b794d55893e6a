/**
 * The proposal lifecycle over HTTP, on both databases, with a clock the test moves: each
 * voting method from draft to its end, quorum and threshold edges, pinned rules, frozen
 * content, the veto's window and reason, stale detection by compare-and-set, notifications,
 * accountability records, and an audit chain that shows a tampered row.
 */
import crypto from 'node:crypto'
import { sql } from 'kysely'
import { beforeAll, expect, it } from 'vitest'
import { verifyAuditLog } from '../src/platform/audit/audit-log.js'
import { json, session, type Tenant } from './fixtures.js'
import {
  admit,
  content,
  elapse,
  expectCode,
  expectStatus,
  feeAction,
  governanceTestConfig,
  hourMs,
  operatorToken,
  proposeAndOpen,
  putType,
  readProposal,
  signUpIsvs,
  vote,
} from './governance-helpers.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

const minuteMs = 60_000
const industry = 'education'

forEachDialect('governance lifecycle', (dialect) => {
  const clock = manualClock(Date.now())
  let operatorLogin: { email: string; password: string } | undefined
  const bp = useTestPlatform(dialect, {
    clock,
    config: governanceTestConfig,
    onOperatorCreated: (login) => {
      operatorLogin = login
    },
  })
  const app = () => bp().app
  let operator: string
  let p: Tenant[]

  beforeAll(async () => {
    operator = await operatorToken(app(), operatorLogin!)
    p = await signUpIsvs(app(), 4)
    await admit(app(), operator, p, [industry], clock.now())
    await putType(app(), operator, industry, 'quick')
  })

  const create = async (proposer: Tenant, body: Record<string, unknown>) =>
    expectStatus(
      await session(
        app(),
        'POST',
        `/v1/organizations/${proposer.organizationId}/governance/proposals`,
        proposer.token,
        {
          industry,
          ...body,
        },
      ),
      201,
    )
  const post = (token: string, url: string, body?: unknown) => session(app(), 'POST', url, token, body)
  const inbox = async (tenant: Tenant) =>
    json(
      await session(
        app(),
        'GET',
        `/v1/organizations/${tenant.organizationId}/governance/inbox?limit=100`,
        tenant.token,
      ),
    ).data as Array<{ type: string; payload: { proposal_id?: string } }>

  it('runs a majority proposal from draft to enactment with amendments, comments, reminders, notices', async () => {
    const [a, b, c, d] = p as [Tenant, Tenant, Tenant, Tenant]
    const draft = await create(a, {
      type: 'quick',
      ...content('Raise the ISV commission share'),
      actions: [{ parameter: 'payment.isv_commission_share_bps', scope: 'industry', op: 'set', value: 2400 }],
    })
    expect(draft).toMatchObject({
      state: 'draft',
      version: 1,
      rules_version: 1,
      proposer: { organization_id: a.organizationId },
    })
    // Drafts are the authors' own: the public does not see them.
    expectCode(
      await app().inject({ method: 'GET', url: `/v1/governance/proposals/${draft.id}` }),
      'GOV_PROPOSAL_NOT_FOUND',
    )
    // Someone else's owner cannot steer it.
    expectCode(await post(b.token, `/v1/governance/proposals/${draft.id}/submit`), 'AUTH_FORBIDDEN')

    expectStatus(await post(a.token, `/v1/governance/proposals/${draft.id}/submit`), 200)
    const amended = expectStatus(
      await post(a.token, `/v1/governance/proposals/${draft.id}/versions`, {
        ...content('Raise the ISV commission share'),
        actions: [{ parameter: 'payment.isv_commission_share_bps', scope: 'industry', op: 'set', value: 2500 }],
        note: 'Rounder figure after discussion',
      }),
      201,
    )
    expect(amended.version).toBe(2)
    expect(amended.content_hash).not.toBe(draft.content_hash)
    expect(amended.diff[0]).toMatchObject({ old_value: 2000, new_value: 2500, old_source: 'default' })
    const versions = json(await app().inject({ method: 'GET', url: `/v1/governance/proposals/${draft.id}/versions` }))
    expect(versions.data.map((version: { note: string }) => version.note)).toEqual([
      'Initial version',
      'Rounder figure after discussion',
    ])
    expect(versions.data[1].diff[0].summary.en).toContain('2000 → 2500')

    expectStatus(
      await post(b.token, `/v1/organizations/${b.organizationId}/governance/proposals/${draft.id}/comments`, {
        body: '支持',
      }),
      201,
    )
    // The operator reads every organisation but cannot speak for one.
    expectCode(
      await post(operator, `/v1/organizations/${b.organizationId}/governance/proposals/${draft.id}/comments`, {
        body: 'as b',
      }),
      'IDENTITY_ORGANIZATION_NOT_FOUND',
    )
    // Comments are ordered by time; two in the same millisecond would be ordered by id.
    clock.advance(1)
    expectStatus(
      await post(operator, `/v1/governance/proposals/${draft.id}/comments`, { body: 'Noted by the operator' }),
      201,
    )
    const comments = json(await app().inject({ method: 'GET', url: `/v1/governance/proposals/${draft.id}/comments` }))
    expect(comments.data.map((comment: { operator: boolean }) => comment.operator)).toEqual([false, true])

    const opened = expectStatus(await post(a.token, `/v1/governance/proposals/${draft.id}/open-voting`), 200)
    expect([...opened.electorate].sort()).toEqual(p.map((tenant) => tenant.organizationId).sort())
    expectStatus(await vote(app(), a, opened, { vote: 'yes' }), 200)
    expectStatus(await vote(app(), b, opened, { vote: 'yes' }), 200)
    expectStatus(await vote(app(), c, opened, { vote: 'no', reason: 'Too generous' }), 200)
    // Public ballots: the running tally and each choice are visible.
    expect((await readProposal(app(), opened.id)).tally).toMatchObject({ counts: { yes: 2, no: 1 }, passed: true })

    // Ten minutes before the close, the undecided seat is reminded; the others are not.
    await elapse(bp(), clock, 51 * minuteMs)
    expect((await inbox(d)).some((item) => item.type === 'governance.proposal.closing_soon')).toBe(true)
    expect((await inbox(a)).some((item) => item.type === 'governance.proposal.closing_soon')).toBe(false)
    expectStatus(await vote(app(), d, opened, { vote: 'abstain' }), 200)

    await elapse(bp(), clock, 10 * minuteMs)
    const queued = await readProposal(app(), opened.id)
    expect(queued).toMatchObject({ state: 'queued', tally: { counts: { yes: 2, no: 1, abstain: 1 }, passed: true } })
    await elapse(bp(), clock, 10 * minuteMs)
    const enacted = await readProposal(app(), opened.id)
    expect(enacted.state).toBe('enacted')
    const value = await bp().registry.policy.get(bp().storage.db, 'payment.isv_commission_share_bps', {
      industry,
      at: clock.now(),
    })
    expect(value).toMatchObject({ value: 2500, version: enacted.policy_versions[0] })

    const votes = json(await app().inject({ method: 'GET', url: `/v1/governance/proposals/${opened.id}/votes` }))
    expect(
      votes.data.find((ballot: { organization_id: string }) => ballot.organization_id === c.organizationId),
    ).toMatchObject({ choice: { vote: 'no' }, reason: 'Too generous', via_proxy: false })
    // Each partner heard of every step, in the app and through the outbox.
    const types = (await inbox(b)).filter((item) => item.payload.proposal_id === opened.id).map((item) => item.type)
    expect(types.sort()).toEqual([
      'governance.proposal.discussion_opened',
      'governance.proposal.result',
      'governance.proposal.result',
      'governance.proposal.voting_opened',
    ])
    const outbox = await bp()
      .storage.db.selectFrom('outbox_events')
      .select(['type'])
      .where('organization_id', '=', b.organizationId)
      .where('type', 'like', 'governance.proposal.%')
      .execute()
    expect(outbox.length).toBeGreaterThanOrEqual(4)
  })

  it('fails exactly at the threshold, counts abstentions for quorum only, and records commitments', async () => {
    const [a, b, c] = p as [Tenant, Tenant, Tenant, Tenant]
    await putType(app(), operator, industry, 'edges', { quorum_bps: 5000, threshold_bps: 5000 })
    const tie = await proposeAndOpen(app(), a, { industry, type: 'edges', ...content('Tie'), actions: [feeAction(58)] })
    const abstained = await proposeAndOpen(app(), b, {
      industry,
      type: 'edges',
      ...content('Publish a service standard'),
    })
    const thin = await proposeAndOpen(app(), c, {
      industry,
      type: 'edges',
      ...content('Thin'),
      actions: [feeAction(57)],
    })
    // Tie: 2 of 4 seats vote (quorum exactly met), 1 yes 1 no (exactly 50%, not above it).
    expectStatus(await vote(app(), p[0]!, tie, { vote: 'yes' }), 200)
    expectStatus(await vote(app(), p[1]!, tie, { vote: 'no' }), 200)
    // 1 yes and 1 abstention: quorum met by the abstention, 100% of the decisive ballots.
    expectStatus(await vote(app(), p[0]!, abstained, { vote: 'yes' }), 200)
    expectStatus(await vote(app(), p[1]!, abstained, { vote: 'abstain' }), 200)
    // One ballot of four: below quorum.
    expectStatus(await vote(app(), p[0]!, thin, { vote: 'yes' }), 200)
    await elapse(bp(), clock, hourMs)

    const tied = await readProposal(app(), tie.id)
    expect(tied).toMatchObject({ state: 'defeated', tally: { quorum_met: true, passed: false } })
    expect(tied.closed_reason).toContain('not above the 50% threshold')
    expect(await readProposal(app(), thin.id)).toMatchObject({ state: 'defeated', tally: { quorum_met: false } })
    expect((await readProposal(app(), abstained.id)).state).toBe('queued')

    // A decision with nothing to execute is enacted as a commitment with an outcome record.
    await elapse(bp(), clock, 10 * minuteMs)
    expect((await readProposal(app(), abstained.id)).state).toBe('enacted')
    const outcomes = json(await app().inject({ method: 'GET', url: '/v1/governance/outcomes' }))
    const outcome = outcomes.data.find((entry: { proposal_id: string }) => entry.proposal_id === abstained.id)
    expect(outcome).toMatchObject({ status: 'not_started', owner: null, progress_bps: 0 })
    expectCode(
      await session(app(), 'PATCH', `/v1/governance/outcomes/${outcome.id}`, a.token, { owner: 'me' }),
      'AUTH_FORBIDDEN',
    )
    const updated = expectStatus(
      await session(app(), 'PATCH', `/v1/governance/outcomes/${outcome.id}`, operator, {
        owner: 'Partner success team',
        status: 'in_progress',
        progress_bps: 4000,
        milestones: [{ title: 'Draft the standard', due_on: new Date(clock.now() + 7 * 24 * hourMs).toISOString() }],
      }),
      200,
    )
    expect(updated).toMatchObject({ owner: 'Partner success team', status: 'in_progress', progress_bps: 4000 })
    expect(updated.milestones).toHaveLength(1)
  })

  it('keeps the rules a proposal was created with when its type changes later', async () => {
    const [a] = p as [Tenant]
    await putType(app(), operator, industry, 'pinned', { quorum_bps: 2500, voting_period_s: 3600 })
    const before = await create(a, { type: 'pinned', ...content('Pinned'), actions: [feeAction(59)] })
    const changed = await putType(app(), operator, industry, 'pinned', { quorum_bps: 10_000, voting_period_s: 7200 })
    expect(changed.rules_version).toBe(2)
    const after = await create(p[1]!, { type: 'pinned', ...content('Under new rules') })
    expect(after).toMatchObject({ rules_version: 2, rules: { quorum_bps: 10_000, voting_period_s: 7200 } })
    expect(before).toMatchObject({ rules_version: 1, rules: { quorum_bps: 2500, voting_period_s: 3600 } })

    expectStatus(await post(a.token, `/v1/governance/proposals/${before.id}/submit`), 200)
    const opened = expectStatus(await post(a.token, `/v1/governance/proposals/${before.id}/open-voting`), 200)
    expect(Date.parse(opened.timeline.voting_closes_at) - clock.now()).toBe(hourMs)
    expectStatus(await vote(app(), a, opened, { vote: 'yes' }), 200)
    await elapse(bp(), clock, hourMs)
    // One seat of four met the pinned 25% quorum; the new 100% would have failed it.
    expect(await readProposal(app(), before.id)).toMatchObject({ state: 'queued', rules: { quorum_bps: 2500 } })
    expectStatus(
      await post(p[1]!.token, `/v1/governance/proposals/${after.id}/withdraw`, { reason: 'not needed' }),
      200,
    )
    await elapse(bp(), clock, 10 * minuteMs)
    expect((await readProposal(app(), before.id)).state).toBe('enacted')
  })

  it('freezes the content once voting opens and binds each ballot to its hash', async () => {
    const [a, b] = p as [Tenant, Tenant]
    await putType(app(), operator, industry, 'slow', { discussion_min_s: 3600 })
    const slow = await create(a, { type: 'slow', ...content('Slow'), actions: [feeAction(56)] })
    expectStatus(await post(a.token, `/v1/governance/proposals/${slow.id}/submit`), 200)
    expectCode(await post(a.token, `/v1/governance/proposals/${slow.id}/open-voting`), 'GOV_DISCUSSION_TOO_SHORT')
    expectStatus(await post(a.token, `/v1/governance/proposals/${slow.id}/withdraw`, { reason: 'testing' }), 200)

    const opened = await proposeAndOpen(app(), a, {
      industry,
      type: 'quick',
      ...content('Frozen'),
      actions: [feeAction(55)],
    })
    const edit = await post(a.token, `/v1/governance/proposals/${opened.id}/versions`, {
      ...content('Frozen'),
      actions: [feeAction(1)],
      note: 'sneaky change',
    })
    expect(edit.statusCode).toBe(409)
    expectCode(edit, 'GOV_PROPOSAL_NOT_EDITABLE')
    expect((await readProposal(app(), opened.id)).version).toBe(1)
    expectCode(
      await vote(app(), b, { ...opened, content_hash: '0'.repeat(64) }, { vote: 'yes' }),
      'GOV_CONTENT_HASH_MISMATCH',
    )
    expectCode(await vote(app(), b, opened, { approve: ['x'] }), 'GOV_VOTE_INVALID')
    expectCode(await vote(app(), b, opened, { vote: 'object' }), 'GOV_VOTE_INVALID')
    expectStatus(await vote(app(), b, opened, { vote: 'yes' }), 200)
    expectStatus(
      await post(a.token, `/v1/governance/proposals/${opened.id}/withdraw`, { reason: 'changed our mind' }),
      200,
    )
    expectCode(await vote(app(), b, opened, { vote: 'no' }), 'GOV_PROPOSAL_STATE_INVALID')
    expect((await readProposal(app(), opened.id)).state).toBe('withdrawn')
  })

  it('lets only the operator veto, only while queued and within the window, only with a public reason', async () => {
    const [a, b] = p as [Tenant, Tenant]
    const first = await proposeAndOpen(app(), a, {
      industry,
      type: 'quick',
      ...content('Veto me'),
      actions: [feeAction(40)],
    })
    const second = await proposeAndOpen(app(), b, { industry, type: 'quick', ...content('Keep me') })
    expectCode(
      await post(operator, `/v1/governance/proposals/${first.id}/veto`, { reason: 'Too early to veto this one' }),
      'GOV_PROPOSAL_STATE_INVALID',
    )
    for (const proposal of [first, second]) {
      expectStatus(await vote(app(), a, proposal, { vote: 'yes' }), 200)
      expectStatus(await vote(app(), b, proposal, { vote: 'yes' }), 200)
    }
    await elapse(bp(), clock, hourMs)
    expect((await readProposal(app(), first.id)).state).toBe('queued')

    expectCode(
      await post(a.token, `/v1/governance/proposals/${first.id}/veto`, { reason: 'A partner cannot veto anything' }),
      'AUTH_FORBIDDEN',
    )
    expectCode(await post(operator, `/v1/governance/proposals/${first.id}/veto`, {}), 'REQUEST_VALIDATION_FAILED')
    expectCode(
      await post(operator, `/v1/governance/proposals/${first.id}/veto`, { reason: '   no   ' }),
      'GOV_VETO_REASON_REQUIRED',
    )
    const reason = 'A fee of 0.40% is below the cost of the payment channel'
    const vetoed = expectStatus(await post(operator, `/v1/governance/proposals/${first.id}/veto`, { reason }), 200)
    expect(vetoed).toMatchObject({ state: 'vetoed', veto: { reason } })

    // The second one's window ends; before the job runs, a veto is already too late.
    clock.advance(10 * minuteMs)
    expectCode(await post(operator, `/v1/governance/proposals/${second.id}/veto`, { reason }), 'GOV_VETO_WINDOW_CLOSED')
    await elapse(bp(), clock, 0)
    expect((await readProposal(app(), second.id)).state).toBe('enacted')
    expect((await readProposal(app(), first.id)).state).toBe('vetoed')
    expectCode(await post(operator, `/v1/governance/proposals/${second.id}/veto`, { reason }), 'GOV_VETO_WINDOW_CLOSED')
    const fee = await bp().registry.policy.get<number>(bp().storage.db, 'payment.fee_rate_bps', {
      industry,
      at: clock.now(),
    })
    expect(fee.value).not.toBe(40)
  })

  it('makes a proposal stale when its parameter moved since it was written, and enacts nothing of it', async () => {
    const [a, b, c] = p as [Tenant, Tenant, Tenant]
    const left = await proposeAndOpen(app(), a, {
      industry,
      type: 'quick',
      ...content('Fee 51'),
      actions: [feeAction(51)],
    })
    const right = await proposeAndOpen(app(), b, {
      industry,
      type: 'quick',
      ...content('Fee 52 and settlement'),
      actions: [
        feeAction(52),
        { parameter: 'payment.settlement_delay_seconds', scope: 'industry', op: 'set', value: 3600 },
      ],
    })
    expect(right.content.actions[0].base_version).toBe(left.content.actions[0].base_version)
    const waiting = await create(c, { type: 'quick', ...content('Fee 53'), actions: [feeAction(53)] })
    for (const proposal of [left, right]) {
      for (const voter of [a, b, c]) expectStatus(await vote(app(), voter, proposal, { vote: 'yes' }), 200)
    }
    await elapse(bp(), clock, hourMs)
    await elapse(bp(), clock, 10 * minuteMs)
    const states = [(await readProposal(app(), left.id)).state, (await readProposal(app(), right.id)).state].sort()
    expect(states).toEqual(['enacted', 'stale'])
    const stale = (await readProposal(app(), left.id)).state === 'stale' ? left : right
    const staleView = await readProposal(app(), stale.id)
    expect(staleView.closed_reason).toMatch(/industry:education moved from version \d+ to \d+/)
    expect(staleView.policy_versions).toEqual([])
    // Nothing of the stale one applies, not even its other action.
    const delay = await bp().registry.policy.get<number>(bp().storage.db, 'payment.settlement_delay_seconds', {
      industry,
      at: clock.now(),
    })
    expect(delay.value === 3600).toBe(stale.id === left.id)

    // A draft written against the old version cannot go to a vote until rebased.
    expectStatus(await post(c.token, `/v1/governance/proposals/${waiting.id}/submit`), 200)
    expectCode(await post(c.token, `/v1/governance/proposals/${waiting.id}/open-voting`), 'GOV_PROPOSAL_BASE_OUTDATED')
    const oldBase = waiting.content.actions[0].base_version
    expectCode(
      await post(c.token, `/v1/governance/proposals/${waiting.id}/versions`, {
        ...content('Fee 53'),
        actions: [feeAction(53, { base_version: oldBase })],
        note: 'explicitly on the old base',
      }),
      'GOV_PROPOSAL_BASE_OUTDATED',
    )
    const rebased = expectStatus(
      await post(c.token, `/v1/governance/proposals/${waiting.id}/versions`, {
        ...content('Fee 53'),
        actions: [feeAction(53)],
        note: 'rebased',
      }),
      201,
    )
    expect(rebased.content.actions[0].base_version).toBe(oldBase + 1)
    expectStatus(await post(c.token, `/v1/governance/proposals/${waiting.id}/open-voting`), 200)
    expectStatus(
      await post(c.token, `/v1/governance/proposals/${waiting.id}/withdraw`, { reason: 'done testing' }),
      200,
    )
  })

  it('decides by consent: silence passes, one reasoned objection blocks', async () => {
    const [a, b, c] = p as [Tenant, Tenant, Tenant]
    await putType(app(), operator, industry, 'consent', { method: 'consent', quorum_bps: 0, threshold_bps: 0 })
    const quiet = await proposeAndOpen(app(), a, { industry, type: 'consent', ...content('Refund within 7 days') })
    const contested = await proposeAndOpen(app(), b, { industry, type: 'consent', ...content('Share customer data') })
    expectStatus(await vote(app(), a, quiet, { vote: 'consent' }), 200)
    expectCode(await vote(app(), c, contested, { vote: 'yes' }), 'GOV_VOTE_INVALID')
    expectCode(await vote(app(), c, contested, { vote: 'object', reason: 'no' }), 'GOV_VOTE_INVALID')
    expectStatus(await vote(app(), c, contested, { vote: 'object', reason: 'Consumers have not agreed to this' }), 200)
    expectStatus(await vote(app(), a, contested, { vote: 'consent' }), 200)
    await elapse(bp(), clock, hourMs)
    await elapse(bp(), clock, 10 * minuteMs)
    expect((await readProposal(app(), quiet.id)).state).toBe('enacted')
    expect(await readProposal(app(), contested.id)).toMatchObject({
      state: 'defeated',
      tally: { counts: { object: 1 } },
    })
  })

  it('chooses by approval with secret ballots and enacts the winning option', async () => {
    const [a, b, c] = p as [Tenant, Tenant, Tenant]
    await putType(app(), operator, industry, 'approval', {
      method: 'approval',
      quorum_bps: 5000,
      threshold_bps: 0,
      ballots: 'secret',
    })
    const options = [
      { key: 'fifty', title: { en: '0.50%', zh: '0.50%' }, actions: [feeAction(50)] },
      { key: 'fifty-five', title: { en: '0.55%', zh: '0.55%' }, actions: [feeAction(55)] },
      { key: 'keep', title: { en: 'Keep', zh: '不变' }, actions: [] },
    ]
    expectCode(
      await session(app(), 'POST', `/v1/organizations/${a.organizationId}/governance/proposals`, a.token, {
        industry,
        type: 'approval',
        ...content('Options missing'),
        actions: [feeAction(50)],
      }),
      'GOV_ACTION_INVALID',
    )
    const opened = await proposeAndOpen(app(), a, { industry, type: 'approval', ...content('Pick a fee'), options })
    expect(opened.diff.map((line: { option: string }) => line.option)).toEqual(['fifty', 'fifty-five'])
    expectCode(await vote(app(), a, opened, { approve: ['nope'] }), 'GOV_VOTE_INVALID')
    expectStatus(await vote(app(), a, opened, { approve: ['fifty', 'fifty-five'] }), 200)
    expectStatus(await vote(app(), b, opened, { approve: ['fifty-five'] }), 200)
    expectStatus(await vote(app(), c, opened, { approve: ['fifty-five', 'keep'] }), 200)
    // Secret: who voted is public, what they chose is not, nor a running tally.
    const ballots = json(await app().inject({ method: 'GET', url: `/v1/governance/proposals/${opened.id}/votes` }))
    expect(ballots.data).toHaveLength(3)
    expect(ballots.data.every((ballot: { choice: unknown }) => ballot.choice === null)).toBe(true)
    const recorded = await bp()
      .storage.db.selectFrom('audit_log')
      .select('data')
      .where('action', '=', 'governance.vote.cast')
      .where('target', '=', opened.id)
      .execute()
    expect(recorded).toHaveLength(3)
    expect(recorded.every((entry) => !('choice' in JSON.parse(entry.data)))).toBe(true)
    expect((await readProposal(app(), opened.id)).tally).toBeNull()
    await elapse(bp(), clock, hourMs)
    expect(await readProposal(app(), opened.id)).toMatchObject({
      state: 'queued',
      winner: 'fifty-five',
      tally: { counts: { fifty: 1, 'fifty-five': 3, keep: 1 } },
    })
    await elapse(bp(), clock, 10 * minuteMs)
    expect((await readProposal(app(), opened.id)).state).toBe('enacted')
    const fee = await bp().registry.policy.get(bp().storage.db, 'payment.fee_rate_bps', { industry, at: clock.now() })
    expect(fee.value).toBe(55)
  })

  it('chooses by ranked choice in rounds and enacts the winner', async () => {
    const [a, b, c, d] = p as [Tenant, Tenant, Tenant, Tenant]
    await putType(app(), operator, industry, 'ranked', { method: 'ranked', quorum_bps: 5000, threshold_bps: 0 })
    const share = (value: number) => [
      { parameter: 'payment.royalty_share_max_bps', scope: 'industry', op: 'set', value },
    ]
    const opened = await proposeAndOpen(app(), b, {
      industry,
      type: 'ranked',
      ...content('Profit-sharing cap'),
      options: [
        { key: 'x', title: { en: '35%', zh: '35%' }, actions: share(3500) },
        { key: 'y', title: { en: '40%', zh: '40%' }, actions: share(4000) },
        { key: 'z', title: { en: 'Keep', zh: '不变' }, actions: [] },
      ],
    })
    expectCode(await vote(app(), a, opened, { ranking: ['x', 'x'] }), 'GOV_VOTE_INVALID')
    expectStatus(await vote(app(), a, opened, { ranking: ['x', 'y'] }), 200)
    expectStatus(await vote(app(), b, opened, { ranking: ['y', 'x'] }), 200)
    expectStatus(await vote(app(), c, opened, { ranking: ['z', 'y'] }), 200)
    expectStatus(await vote(app(), d, opened, { ranking: ['x'] }), 200)
    await elapse(bp(), clock, hourMs)
    const decided = await readProposal(app(), opened.id)
    // Round 1: x 2, y 1, z 1, no majority; y and z tie for last and go out together.
    expect(decided.tally.rounds).toEqual([{ x: 2, y: 1, z: 1 }, { x: 3 }])
    expect(decided).toMatchObject({ state: 'queued', winner: 'x' })
    await elapse(bp(), clock, 10 * minuteMs)
    const cap = await bp().registry.policy.get(bp().storage.db, 'payment.royalty_share_max_bps', {
      industry,
      at: clock.now(),
    })
    expect(cap.value).toBe(3500)
  })

  it('expires a discussion that never reaches a vote', async () => {
    const stalled = await create(p[3]!, { type: 'quick', ...content('Stalled') })
    expectStatus(await post(p[3]!.token, `/v1/governance/proposals/${stalled.id}/submit`), 200)
    await elapse(bp(), clock, 25 * hourMs)
    expect(await readProposal(app(), stalled.id)).toMatchObject({
      state: 'expired',
      closed_reason: 'not brought to a vote in time',
    })
  })

  it('publishes the governance audit trail and detects a tampered row', async () => {
    const db = bp().storage.db
    expect((await verifyAuditLog(db)).ok).toBe(true)
    const feed = json(await app().inject({ method: 'GET', url: '/v1/governance/audit?limit=100' }))
    const actions = new Set(feed.data.map((entry: { action: string }) => entry.action))
    for (const action of [
      'governance.proposal.created',
      'governance.proposal.amended',
      'governance.proposal.voting_opened',
      'governance.vote.cast',
      'governance.proposal.passed',
      'governance.proposal.enacted',
      'governance.policy.version_created',
    ]) {
      expect(actions.has(action), action).toBe(true)
    }
    // Anyone can recompute an entry's hash from what the feed publishes.
    const entry = feed.data[0]
    const hashed = JSON.stringify([entry.seq, entry.at_ms, entry.actor, entry.action, entry.target, entry.data])
    const recomputed = crypto.createHash('sha256').update(`${entry.prev_hash}\n${hashed}`).digest('hex')
    expect(recomputed).toBe(entry.hash)

    const ballot = await db
      .selectFrom('audit_log')
      .select(['seq', 'data'])
      .where('action', '=', 'governance.vote.cast')
      .orderBy('seq')
      .executeTakeFirstOrThrow()
    const forged = ballot.data.replace('"yes"', '"no"')
    expect(forged).not.toBe(ballot.data)
    await sql`update audit_log set data = ${forged} where seq = ${ballot.seq}`.execute(db)
    const verification = await verifyAuditLog(db)
    expect(verification.ok).toBe(false)
    expect(verification.problems).toContainEqual({
      seq: ballot.seq,
      problem: 'row content does not match its hash (edited)',
    })
  })
})
