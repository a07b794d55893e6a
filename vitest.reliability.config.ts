import { defineConfig } from 'vitest/config'

/**
 * The reliability suite (test/reliability), one file at a time, since each drives real server
 * processes at full load: beside another test file, a load test measures the other file too
 * (an overload's recovery on PostgreSQL failed that way). `npm run test:reliability` runs the
 * full version; `npm test` runs the short one (BASEPLATE_TEST_RELIABILITY=short, the default)
 * after the rest of the suite.
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
