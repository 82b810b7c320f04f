import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['services/src/**/*.test.ts', 'tests/**/*.test.ts'],
    // Each integration file boots its own embedded engine / redis-server; the
    // engine binds one data directory per process, so files run in forks.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
})
