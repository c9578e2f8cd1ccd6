import { defineConfig } from 'vitest/config';

// Tests of a native addon run in processes, not worker threads: a crash then
// fails one file, not the runner. Files run one at a time, since they share
// two cores with receive threads and load generators.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
