import { defineConfig } from 'vitest/config';

// Test files that need more than Node, npm and a C++ toolchain run in named CI
// stages (.ci/run provisions them; README, Development), never in `npm test`,
// and never skip there: a missing tool fails them, saying what to install.
export const stages = {
  // Zig (fetched by the prebuild script with npm) and musl's loader (apt: musl).
  prebuilds: ['test/6-package/prebuild-musl.test.ts', 'test/6-package/prebuild-cross.test.ts'],
  // redis-server (apt: redis-server); root and `ip` (apt: iproute2) for a network namespace.
  // nats-server (apt: nats-server) for the JetStream cluster; statsd 0.9.0 and its test tools
  // from the npm registry for dgram-statsd; root, ip and tc for dgram-eagain.
  system: ['test/3-adapters/ingest-redis.test.ts', 'test/3-adapters/jetstream.test.ts',
    'test/1-receive/multicast.test.ts', 'test/1-receive/scope-id.test.ts',
    'test/3-adapters/dgram-eagain.test.ts', 'test/3-adapters/dgram-statsd.test.ts'],
  // Run by vitest under Bun (fetched through npm by scripts/bun.mjs): the core receive files, and
  // test/6-package/bun.test.ts, which also runs the musl prebuild in Bun's musl build (apt: musl).
  bun: ['test/6-package/bun.test.ts', 'test/1-receive/smoke.test.ts', 'test/1-receive/receive.test.ts',
    'test/2-overflow-and-stats/overflow.test.ts', 'test/1-receive/truncation.test.ts',
    'test/2-overflow-and-stats/stale.test.ts'],
  // Run by vitest under Node 22 (fetched through npm by scripts/node22.mjs): the dgram facade's files,
  // compared with Node 22's node:dgram, and test/6-package/node22.test.ts, which checks the stage runs there.
  node22: ['test/6-package/node22.test.ts', 'test/1-receive/smoke.test.ts', 'test/3-adapters/dgram-conformance.test.ts',
    'test/3-adapters/dgram-register.test.ts', 'test/3-adapters/dgram.test.ts', 'test/3-adapters/dgram-cheap.test.ts',
    'test/3-adapters/dgram-stats.test.ts', 'test/3-adapters/dgram-reply-source.test.ts',
    'test/3-adapters/dgram-connected.test.ts', 'test/3-adapters/dgram-fd.test.ts', 'test/3-adapters/dgram-cluster.test.ts'],
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
const stageOnly = [...stages.prebuilds, ...stages.system, 'test/6-package/bun.test.ts', 'test/6-package/node22.test.ts'];

export default defineConfig({
  test: {
    ...base,
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...stageOnly],
  },
});
