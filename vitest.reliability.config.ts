import { defineConfig } from 'vitest/config'

/**
 * `npm run test:reliability`: the full reliability suite (test/reliability), one file at a
 * time, since each drives real server processes at full load. `npm test` runs the same files
 * in their short version (BASEPLATE_TEST_RELIABILITY=short, the default).
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    testTimeout: 900_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
})
