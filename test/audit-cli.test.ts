import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCli } from '../src/cli/commands.js'
import { cliEnvironment, runCli } from './cli-harness.js'
import { parseConfig } from '../src/config.js'
import { verifyAuditLog } from '../src/platform/audit/audit-log.js'
import { session, signUp } from './fixtures.js'
import { forEachDialect, freshTarget, useTestPlatform, type TestTarget } from './harness.js'

forEachDialect('audit chain', (dialect) => {
  const bp = useTestPlatform(dialect)

  beforeAll(async () => {
    const tenant = await signUp(bp().app, 'isv')
    for (let i = 0; i < 3; i += 1) {
      await session(bp().app, 'POST', `/v1/organizations/${tenant.organizationId}/apps`, tenant.token, {
        name: `app ${i}`,
        environment: 'sandbox',
      })
    }
  })

  it('verifies an intact chain', async () => {
    const result = await verifyAuditLog(bp().storage.db)
    expect(result.ok, JSON.stringify(result.problems)).toBe(true)
    expect(result.entries).toBeGreaterThanOrEqual(6)
  })

  it('detects an edited row, then a deleted row, a cut-off tail and two rows reordered', async () => {
    const db = bp().storage.db
    const rows = await db.selectFrom('audit_log').selectAll().orderBy('seq').execute()
    const victim = rows[2]!
    await db.updateTable('audit_log').set({ data: '{"forged":true}' }).where('seq', '=', victim.seq).execute()
    let result = await verifyAuditLog(db)
    expect(result.ok).toBe(false)
    expect(result.problems.some((p) => p.seq === victim.seq && p.problem.includes('edited'))).toBe(true)
    await db.updateTable('audit_log').set({ data: victim.data }).where('seq', '=', victim.seq).execute()
    expect((await verifyAuditLog(db)).ok).toBe(true)

    await db.deleteFrom('audit_log').where('seq', '=', victim.seq).execute()
    result = await verifyAuditLog(db)
    expect(result.problems.some((p) => p.problem.includes('missing'))).toBe(true)
    await db.insertInto('audit_log').values(victim).execute()
    expect((await verifyAuditLog(db)).ok).toBe(true)

    const last = rows[rows.length - 1]!
    await db.deleteFrom('audit_log').where('seq', '=', last.seq).execute()
    result = await verifyAuditLog(db)
    expect(result.problems.some((p) => p.problem.includes('cut off'))).toBe(true)
    await db.insertInto('audit_log').values(last).execute()
    expect((await verifyAuditLog(db)).ok).toBe(true)

    // Reordered: two rows trade places, each under the other's sequence number.
    const [first, second] = [rows[1]!, rows[2]!]
    const place = (row: typeof first, seq: number) => {
      const { seq: _seq, ...content } = row
      return db.updateTable('audit_log').set(content).where('seq', '=', seq).execute()
    }
    await place(second, first.seq)
    await place(first, second.seq)
    result = await verifyAuditLog(db)
    expect(result.ok).toBe(false)
    expect(result.problems.map((p) => p.seq)).toContain(first.seq)
    await place(first, first.seq)
    await place(second, second.seq)
    expect((await verifyAuditLog(db)).ok).toBe(true)
  })

  it('keeps the chain intact under concurrent appends', async () => {
    const tenant = await signUp(bp().app, 'isv')
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        session(bp().app, 'POST', `/v1/organizations/${tenant.organizationId}/apps`, tenant.token, {
          name: `c${i}`,
          environment: 'live',
        }),
      ),
    )
    const result = await verifyAuditLog(bp().storage.db)
    expect(result.ok, JSON.stringify(result.problems)).toBe(true)
  })
})

forEachDialect('baseplate CLI', (dialect) => {
  let target: TestTarget
  let env: Record<string, string>

  beforeAll(async () => {
    target = await freshTarget(dialect)
    env = cliEnvironment(target.target)
  })
  afterAll(async () => target.dispose())

  it('migrates, prints the operator login once, and verifies the audit log', async () => {
    const first = await runCli(['migrate'], env)
    expect(first.out).toContain('Operator account created: operator@baseplate.local')
    const second = await runCli(['migrate'], env)
    expect(second.out).not.toContain('Operator account created')
    const verify = await runCli(['audit', 'verify', '--json'], env)
    expect(JSON.parse(verify.out)).toMatchObject({ ok: true, entries: 1 })
    expect(verify.exitCode).toBe(0)
  })

  it('exits 1 when the audit log was tampered with', async () => {
    const { openStorage } = await import('../src/storage/database.js')
    const storage = await openStorage(target.target)
    await storage.db.updateTable('audit_log').set({ actor: 'mallory' }).execute()
    await storage.close()
    const verify = await runCli(['audit', 'verify'], env)
    expect(verify.exitCode).toBe(1)
    expect(verify.err).toContain('BROKEN')
  })
})

describe('baseplate CLI without a database', () => {
  it('has --help for every command', async () => {
    for (const command of [[], ['serve'], ['migrate'], ['keys', 'generate'], ['audit', 'verify']]) {
      const result = await runCli([...command, '--help'], {})
      expect(result.out, command.join(' ')).toMatch(/Usage: baseplate/)
    }
  })

  it('generates key pairs the platform accepts', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-keys-'))
    const result = await runCli(['keys', 'generate', '--type', 'ed25519', '--out', dir], {})
    expect(result.out).toContain('private.pem')
    expect(fs.statSync(path.join(dir, 'private.pem')).mode & 0o777).toBe(0o600)
    const { parsePublicKey } = await import('../src/platform/apps/public-keys.js')
    expect(parsePublicKey(fs.readFileSync(path.join(dir, 'public.pem'), 'utf8')).algorithm).toBe('Ed25519')
    const rsa = await runCli(['keys', 'generate', '--bits', '1024'], {})
    expect(rsa.err).toContain('2048')
    fs.rmSync(dir, { recursive: true })
  })

  it('reports a configuration error that names the variable', async () => {
    const result = await runCli(['migrate'], { BASEPLATE_PROT: '1' })
    expect(String(result.thrown)).toContain('BASEPLATE_PROT is not a known variable')
  })

  it('serves on the configured port and answers /healthz', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-serve-'))
    let stop!: () => void
    const stopped = new Promise<void>((resolve) => {
      stop = resolve
    })
    let out = ''
    const cli = createCli({
      out: (text) => {
        out += text
      },
      err: () => undefined,
      config: (overrides) =>
        parseConfig({ BASEPLATE_LOG_LEVEL: 'silent', BASEPLATE_DATA_DIR: dir, PORT: '0', ...overrides }),
      waitForStop: () => stopped,
    })
    const running = cli.parseAsync(['node', 'baseplate', 'serve'])
    for (let i = 0; i < 100 && !out.includes('listening'); i += 1) await new Promise((r) => setTimeout(r, 50))
    const address = /listening on (http:\/\/\S+)/.exec(out)?.[1]
    const health = await fetch(`${address}/healthz`)
    expect(await health.json()).toEqual({ status: 'ok', database: 'sqlite' })
    stop()
    await running
    fs.rmSync(dir, { recursive: true })
  })
})
