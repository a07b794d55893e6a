/**
 * Kysely's SQLite compiler, writing integer `limit` and `offset` counts into the SQL text
 * instead of binding them. SQLite's planner reads a bound LIMIT's value, so every rebind
 * expires the statement and each run prepares it again: measured on the pay path's key lookup,
 * 12–16 µs with `limit ?` against 2.5–3 µs with `limit 6` (ADR 0015). Only a safe integer
 * (or bigint) becomes text, so nothing a caller passes can reach the SQL as anything else;
 * any other count (an expression, a prepared query's placeholder) is compiled as before.
 *
 * @example
 * db.selectFrom('app_keys').selectAll().limit(6) // compiles to `… limit 6` on SQLite
 */
import { LimitNode, OffsetNode, SqliteQueryCompiler, ValueNode, type OperationNode } from 'kysely'

export class SqliteLiteralCountCompiler extends SqliteQueryCompiler {
  protected override visitLimit(node: LimitNode): void {
    super.visitLimit(LimitNode.create(literalCount(node.limit)))
  }

  protected override visitOffset(node: OffsetNode): void {
    super.visitOffset(OffsetNode.create(literalCount(node.offset)))
  }
}

function literalCount(node: OperationNode): OperationNode {
  if (!ValueNode.is(node) || node.immediate === true) return node
  const { value } = node
  const integer = (typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'bigint'
  return integer ? ValueNode.createImmediate(value) : node
}
