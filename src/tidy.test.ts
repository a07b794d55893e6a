/**
 * Style rules enforced by code rather than review (STYLE.md rule 20). Each rule names what
 * broke it, so the fix is obvious.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const roots = ['src', 'sdk/src', 'test', 'scripts']
const lineLengthMax = 120

function sourceFiles(): string[] {
  const files: string[] = []
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith('.ts') && !full.includes(`${path.sep}generated${path.sep}`)) files.push(full)
    }
  }
  for (const root of roots) walk(root)
  return files
}

describe('tidy', () => {
  const files = sourceFiles().map((file) => ({ file, text: fs.readFileSync(file, 'utf8') }))

  it('reads process.env only in src/config.ts', () => {
    const offenders = files
      .filter(
        ({ file, text }) =>
          file !== path.join('src', 'config.ts') &&
          file !== path.join('src', 'tidy.test.ts') &&
          /process\.env/.test(text),
      )
      .map(({ file }) => file)
    expect(offenders).toEqual([])
  })

  it('never parses or formats money with floats', () => {
    const offenders = files
      .filter(
        ({ file, text }) =>
          file.startsWith('src') && file !== path.join('src', 'tidy.test.ts') && /\b(parseFloat|toFixed)\(/.test(text),
      )
      .map(({ file }) => file)
    expect(offenders).toEqual([])
  })

  it(`keeps lines within ${lineLengthMax} columns`, () => {
    const offenders = files
      .flatMap(({ file, text }) =>
        text
          .split('\n')
          .map((line, index) => ({ file, line: index + 1, length: line.length }))
          .filter((entry) => entry.length > lineLengthMax),
      )
      .map((entry) => `${entry.file}:${entry.line} (${entry.length})`)
    expect(offenders).toEqual([])
  })

  it('keeps migrations frozen: they import nothing from the application', () => {
    const offenders = files
      .filter(({ file, text }) => file.includes(`${path.sep}migrations${path.sep}`) && /from '\.\.?\//.test(text))
      .map(({ file }) => file)
    expect(offenders).toEqual([])
  })
})
