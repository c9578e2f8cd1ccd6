// Multicast on the core receiver and the dgram facade, for real: a network
// namespace (made here, removed after) whose loopback carries multicast
// routes, and a veth pair for IPv6. Needs root (CAP_NET_ADMIN) and `ip` (iproute2):
// the `npm run test:system` stage, which .ci/run provisions; without them it fails, never skips.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const namespace = `udpring-mc-${process.pid}`;
const fixture = fileURLToPath(new URL('../fixtures/multicast.mjs', import.meta.url));

function ip(...args: string[]) {
  return spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
}

// Why the namespace could not be made, or null when it was.
const unready = (() => {
  if (process.getuid?.() !== 0) return 'not root: making a network namespace needs CAP_NET_ADMIN';
  const added = ip('netns', 'add', namespace);
  if (added.error) return '`ip` is missing: apt-get install iproute2 (.ci/run does)';
  if (added.status !== 0) return `ip netns add failed: ${added.stderr.trim()}`;
  const setup = [
    ['link', 'set', 'lo', 'up'],
    ['link', 'set', 'lo', 'multicast', 'on'],
    ['route', 'add', '224.0.0.0/4', 'dev', 'lo'],
    // IPv6 multicast is not looped back over lo: a veth pair carries it.
    ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
    ['link', 'set', 'v0', 'up'],
    ['link', 'set', 'v1', 'up'],
    ['-6', 'addr', 'add', 'fd00::1/64', 'dev', 'v0', 'nodad'],
    ['-6', 'addr', 'add', 'fd00::2/64', 'dev', 'v0', 'nodad'],
  ];
  for (const args of setup) {
    const step = ip('netns', 'exec', namespace, 'ip', ...args);
    if (step.status !== 0) return `ip ${args.join(' ')} in the namespace failed: ${step.stderr.trim()}`;
  }
  return null;
})();

afterAll(() => {
  ip('netns', 'del', namespace);
});

describe('multicast: join and leave groups, IPv4 and IPv6, in a network namespace', () => {
  beforeAll(() => expect(unready, unready ?? '').toBeNull());

  for (const backend of ['native', 'dgram']) {
    it(`receives while joined, nothing after leaving, only the chosen source with SSM (${backend} backend)`, () => {
      const run = spawnSync('ip', ['netns', 'exec', namespace, process.execPath, fixture, backend], {
        encoding: 'utf8', timeout: 60_000,
      });
      expect(run.status, run.stderr).toBe(0);
      const seen = JSON.parse(run.stdout.trim().split('\n').pop()!);
      expect(seen.udp4).toEqual({
        joined: [0, 1, 2, 3, 4].map((k) => `joined ${k}@127.0.0.1`),
        left: [],
        sourceSpecific: ['from the source@127.0.0.1'],
      });
      expect(seen.udp6).toEqual({
        joined: [0, 1, 2, 3, 4].map((k) => `joined ${k}@fd00::1`),
        left: [],
        sourceSpecific: ['from the source@fd00::1'],
      });
      expect(seen.facade).toBe('to the group');
    });
  }
});
