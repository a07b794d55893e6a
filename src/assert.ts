/**
 * Programmer-error assertions. An assertion failing means the code is wrong, not the input:
 * nothing catches {@link AssertionFailure}; the request aborts with INTERNAL_ERROR and the
 * failure is logged. Expected failures are {@link AppError}s instead (see `errors.ts`).
 *
 * @example
 * assert(debit === credit, 'posting must balance')
 */
export class AssertionFailure extends Error {
  override readonly name = 'AssertionFailure'
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionFailure(message)
}

/** Marks a branch the type system proves unreachable. */
export function unreachable(value: never): never {
  throw new AssertionFailure(`unreachable: ${String(value)}`)
}
