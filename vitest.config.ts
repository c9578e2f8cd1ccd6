import { defineConfig } from 'vitest/config';

// Test files that need more than Node, npm and a C++ toolchain run in named CI
// stages (.ci/run provisions them; README, Development), never in `npm test`,
// and never skip there: a missing tool fails them, saying what to install.
export const stages = {
  // Zig (fetched by the prebuild script with npm) and musl's loader (apt: musl).
  prebuilds: ['test/prebuild-musl.test.ts', 'test/prebuild-cross.test.ts'],
  // redis-server (apt: redis-server); root and `ip` (apt: iproute2) for a network namespace.
  // nats-server (apt: nats-server) for the JetStream cluster; statsd 0.9.0 and its test tools
  // from the npm registry for test/dgram-statsd.test.ts; root, ip and tc for test/dgram-eagain.test.ts.
  system: ['test/ingest-redis.test.ts', 'test/jetstream.test.ts', 'test/multicast.test.ts', 'test/scope-id.test.ts',
    'test/dgram-eagain.test.ts', 'test/dgram-statsd.test.ts'],
  // Run by vitest under Bun (fetched through npm by scripts/bun.mjs): the core receive files, and
  // test/bun.test.ts, which also runs the musl prebuild in Bun's musl build (apt: musl).
  bun: ['test/bun.test.ts', 'test/smoke.test.ts', 'test/receive.test.ts', 'test/overflow.test.ts',
    'test/truncation.test.ts', 'test/stale.test.ts'],
  // Run by vitest under Node 22 (fetched through npm by scripts/node22.mjs): the dgram facade's files,
  // compared with Node 22's node:dgram, and test/node22.test.ts, which checks the stage runs there.
  node22: ['test/node22.test.ts', 'test/smoke.test.ts', 'test/dgram-conformance.test.ts', 'test/dgram-register.test.ts',
    'test/dgram.test.ts', 'test/dgram-cheap.test.ts', 'test/dgram-stats.test.ts', 'test/dgram-reply-source.test.ts',
    'test/dgram-connected.test.ts', 'test/dgram-fd.test.ts', 'test/dgram-cluster.test.ts'],
};

// Tests of a native addon run in processes, not worker threads: a crash then
// fails one file, not the runner. Files run one at a time, since they share
// two cores with receive threads and load generators.
export const base = {
  pool: 'forks' as const,
  fileParallelism: false,
  testTimeout: 120_000,
  hookTimeout: 60_000,
};

// Files that run only in a stage (the Bun and Node 22 stages also re-run some of npm test's).
const stageOnly = [...stages.prebuilds, ...stages.system, 'test/bun.test.ts', 'test/node22.test.ts'];

export default defineConfig({
  test: {
    ...base,
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...stageOnly],
  },
});
