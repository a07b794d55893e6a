import crypto from 'node:crypto'
import util from 'node:util'
import { describe, expect, it } from 'vitest'
import { ConfigError, knownVariables, parseConfig, withoutPassword } from './config.js'

function problems(env: Record<string, string>): readonly string[] {
  try {
    parseConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

describe('config', () => {
  it('defaults to embedded SQLite on 127.0.0.1:8080 and freezes the result', () => {
    const config = parseConfig({}, { cwd: '/srv/bp' })
    expect(config).toMatchObject({ host: '127.0.0.1', port: 8080, dataDir: '/srv/bp/data', databaseUrl: null })
    expect(Object.isFrozen(config)).toBe(true)
  })

  it('honours PORT and DATABASE_URL', () => {
    const config = parseConfig({ PORT: '9001', DATABASE_URL: 'postgres://db.internal/bp' })
    expect(config.port).toBe(9001)
    expect(config.databaseUrl).toBe('postgres://db.internal/bp')
  })

  it('keeps the database password for the driver but never shows it', () => {
    const config = parseConfig({
      DATABASE_URL: 'postgres://bp:s3cr%40t@db.internal:5432/bp?sslmode=require',
      BASEPLATE_TEST_DATABASE_URL: 'postgresql://bp@db.internal/test?password=hunter2&sslpassword=k3y',
    })
    expect(config.databaseUrl).toBe('postgres://bp:s3cr%40t@db.internal:5432/bp?sslmode=require')
    for (const text of [JSON.stringify(config), util.inspect(config, { depth: 5 })]) {
      expect(text).not.toMatch(/s3cr|hunter2|k3y/)
      expect(text).toContain('bp:%5Bredacted%5D@db.internal:5432/bp?sslmode=require')
      expect(text).toContain('password=%5Bredacted%5D')
    }
    expect(JSON.parse(JSON.stringify(parseConfig({}))).databaseUrl).toBeNull()
    expect(withoutPassword('postgres://db.internal/bp')).toBe('postgres://db.internal/bp')
  })

  it('names an unknown BASEPLATE_ variable and ignores other variables', () => {
    expect(problems({ BASEPLATE_POTR: '1', HOME: '/root' })).toEqual([
      expect.stringContaining('BASEPLATE_POTR is not a known variable'),
    ])
  })

  it('reports every problem at once', () => {
    const found = problems({
      PORT: 'eighty',
      DATABASE_URL: 'mysql://x',
      BASEPLATE_LOG_LEVEL: 'loud',
      BASEPLATE_SIGNATURE_WINDOW_S: '0',
      BASEPLATE_TEST_PG: 'maybe',
    })
    expect(found).toHaveLength(5)
    expect(found.join('\n')).toMatch(/PORT.*whole number/)
    expect(found.join('\n')).toMatch(/DATABASE_URL must use postgres/)
  })

  it('checks how fields relate', () => {
    expect(problems({ BASEPLATE_IDEMPOTENCY_LOCK_S: '3600', BASEPLATE_IDEMPOTENCY_TTL_S: '600' })).toEqual([
      expect.stringContaining('must be shorter'),
    ])
    expect(problems({ PORT: '80', BASEPLATE_PORT: '81' })).toEqual([expect.stringContaining('disagree')])
  })

  it('takes the secret key from the environment or a file, and never shows it', () => {
    expect(parseConfig({}, { cwd: '/srv/bp' }).secretKey).toEqual({
      kind: 'file',
      path: '/srv/bp/data/secret.key',
      named: false,
    })
    expect(parseConfig({ BASEPLATE_SECRET_KEY_FILE: 'keys/bp.key' }, { cwd: '/srv/bp' }).secretKey).toEqual({
      kind: 'file',
      path: '/srv/bp/keys/bp.key',
      named: true,
    })
    const secret = crypto.randomBytes(32)
    const config = parseConfig({ BASEPLATE_SECRET_KEY: secret.toString('base64') })
    expect(config.secretKey.kind).toBe('value')
    expect(config.secretKey.kind === 'value' && config.secretKey.value.reveal().equals(secret)).toBe(true)
    const shown = [JSON.stringify(config), util.inspect(config, { depth: 5 }), String(config.secretKey)]
    for (const text of shown) {
      expect(text).not.toContain(secret.toString('base64'))
      expect(text).not.toContain(secret.toString('hex'))
    }
    expect(JSON.stringify(config)).toContain('[redacted]')
  })

  it('refuses a secret key of the wrong size without echoing it, and two sources at once', () => {
    const short = crypto.randomBytes(16).toString('base64')
    const [problem] = problems({ BASEPLATE_SECRET_KEY: short })
    expect(problem).toMatch(/BASEPLATE_SECRET_KEY must be 32 bytes in base64.*got 16 bytes/)
    expect(problem).not.toContain(short)
    expect(problems({ BASEPLATE_SECRET_KEY: 'not base64 at all!' })).toEqual([expect.stringContaining('got 0 bytes')])
    const both = { BASEPLATE_SECRET_KEY: crypto.randomBytes(32).toString('base64'), BASEPLATE_SECRET_KEY_FILE: 'k' }
    expect(problems(both)).toEqual([expect.stringContaining('set only one')])
  })

  it('documents every variable it knows', () => {
    for (const description of Object.values(knownVariables)) expect(description.length).toBeGreaterThan(10)
  })
})
