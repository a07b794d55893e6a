/**
 * A seeded generator (mulberry32), so that every random choice of a reliability run (kill
 * times, mutations, amounts) can be replayed from the seed the run prints.
 *
 * @example
 * const random = seeded(20261125)
 * const killAfterMs = 300 + Math.floor(random() * 1500)
 */
export function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A whole number in [min, max], from the generator. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}
