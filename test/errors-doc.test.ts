/**
 * Codes are forever, and so is their documentation (STYLE.md rule 9): docs/errors.md and the
 * SDK's generated union must list exactly the codes of the merged error table, no more and no
 * fewer, with the status and transient flag the table gives them. No database is involved.
 */
import fs from 'node:fs'
import path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { errorCodes } from '../sdk/src/generated/error-codes.js'
import { capabilities } from '../src/capabilities/index.js'
import { loadRegistry } from '../src/capabilities/registry.js'
import { parseConfig } from '../src/config.js'
import { errorTable, type ErrorSpec } from '../src/errors.js'

interface DocumentedCode {
  readonly status: number
  readonly transient: boolean
  readonly line: number
}

const docPath = path.join(import.meta.dirname, '..', 'docs', 'errors.md')
// A table row: | `CODE` | 404 | no | meaning |
const rowPattern = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|\s*(.*)\|\s*$/

function documentedCodes(): Map<string, DocumentedCode> {
  const codes = new Map<string, DocumentedCode>()
  const lines = fs.readFileSync(docPath, 'utf8').split('\n')
  lines.forEach((text, index) => {
    if (!/^\|\s*`[A-Z]/.test(text)) return // other tables (the body's members) are lower case
    const match = rowPattern.exec(text)
    expect(match, `docs/errors.md:${index + 1} is not "| \`CODE\` | status | yes/no | meaning |"`).not.toBeNull()
    const [, code, status, transient, meaning] = match!
    expect(meaning!.trim().length, `docs/errors.md:${index + 1} explains ${code}`).toBeGreaterThan(10)
    expect(codes.has(code!), `docs/errors.md lists ${code} twice`).toBe(false)
    codes.set(code!, { status: Number(status), transient: transient === 'yes', line: index + 1 })
  })
  return codes
}

describe('docs/errors.md and the SDK list exactly the error table', () => {
  let table: ReadonlyMap<string, ErrorSpec>
  let documented: Map<string, DocumentedCode>

  beforeAll(() => {
    // Loading the registry merges each capability's codes (STORES_*) into the table.
    loadRegistry(capabilities, parseConfig({}))
    table = errorTable()
    documented = documentedCodes()
  })

  it('has capability codes merged in', () => {
    expect([...table.keys()].some((code) => code.startsWith('STORES_'))).toBe(true)
  })

  it('documents every code that exists', () => {
    const missing = [...table.keys()].filter((code) => !documented.has(code))
    expect(missing, 'codes missing from docs/errors.md').toEqual([])
  })

  it('documents no code that does not exist', () => {
    const unknown = [...documented.keys()].filter((code) => !table.has(code))
    expect(unknown, 'codes in docs/errors.md that src/errors.ts does not define').toEqual([])
  })

  it('gives each code the status and transient flag of the table', () => {
    const wrong: string[] = []
    for (const [code, entry] of documented) {
      const spec = table.get(code)
      if (spec === undefined) continue
      if (entry.status !== spec.status) {
        wrong.push(`${code} (line ${entry.line}): documented ${entry.status}, table ${spec.status}`)
      }
      if (entry.transient !== (spec.transient === true)) {
        wrong.push(
          `${code} (line ${entry.line}): documented transient=${entry.transient}, ` +
            `table ${spec.transient === true}`,
        )
      }
    }
    expect(wrong).toEqual([])
  })

  it('matches the SDK error code union (run npm run sdk:generate when it differs)', () => {
    expect([...errorCodes].sort()).toEqual([...table.keys()].sort())
  })
})
