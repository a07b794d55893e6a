import { describe, expect, it } from 'vitest'
import { isForeignSchemaGone } from './migrate.js'

describe('isForeignSchemaGone', () => {
  const gone = (schema: string) => Object.assign(new Error(`schema "${schema}" does not exist`), { code: '3F000' })

  it('is another schema dropped during the listing: retried', () => {
    expect(isForeignSchemaGone(gone('bp_test_other'), 'bp_test_ours')).toBe(true)
  })

  it('is not our own schema missing, another error, or SQLite', () => {
    expect(isForeignSchemaGone(gone('bp_test_ours'), 'bp_test_ours')).toBe(false)
    expect(isForeignSchemaGone(Object.assign(new Error('x'), { code: '42P01' }), 'bp_test_ours')).toBe(false)
    expect(isForeignSchemaGone(gone('bp_test_other'), undefined)).toBe(false)
    expect(isForeignSchemaGone(undefined, 'bp_test_ours')).toBe(false)
  })
})
