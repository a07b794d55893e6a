import { describe, expect, it } from 'vitest'
import { isForeignSchemaGone } from './migrate.js'

describe('isForeignSchemaGone', () => {
  const gone = (schema: string) => Object.assign(new Error(`schema "${schema}" does not exist`), { code: '3F000' })

  const tableGone = (qualified: string) =>
    Object.assign(new Error(`relation "${qualified}" does not exist`), { code: '42P01' })

  it('is another schema dropped during the listing: retried', () => {
    expect(isForeignSchemaGone(gone('bp_test_other'), 'bp_test_ours')).toBe(true)
    expect(isForeignSchemaGone(tableGone('bp_test_other.gov_training_sessions'), 'bp_test_ours')).toBe(true)
  })

  it('is a column another session is creating or altering while the listing reads it: retried', () => {
    const columnRace = Object.assign(new Error('column "industry" of relation "gov_proposal_types" does not exist'), {
      code: '42703',
      routine: 'pg_get_serial_sequence',
    })
    expect(isForeignSchemaGone(columnRace, 'bp_test_ours')).toBe(true)
    // The same code from a statement of ours (a migration naming a wrong column) is a real error.
    const ours = Object.assign(new Error('column "nope" of relation "apps" does not exist'), { code: '42703' })
    expect(isForeignSchemaGone(ours, 'bp_test_ours')).toBe(false)
  })

  it('is not our own schema missing, another error, or SQLite', () => {
    expect(isForeignSchemaGone(gone('bp_test_ours'), 'bp_test_ours')).toBe(false)
    expect(isForeignSchemaGone(Object.assign(new Error('x'), { code: '42P01' }), 'bp_test_ours')).toBe(false)
    expect(isForeignSchemaGone(tableGone('bp_test_ours.apps'), 'bp_test_ours')).toBe(false)
    // An unqualified table is one of ours (on our search path): a real error.
    expect(isForeignSchemaGone(tableGone('apps'), 'bp_test_ours')).toBe(false)
    expect(isForeignSchemaGone(gone('bp_test_other'), undefined)).toBe(false)
    expect(isForeignSchemaGone(undefined, 'bp_test_ours')).toBe(false)
  })
})
