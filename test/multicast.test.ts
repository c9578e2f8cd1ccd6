// Multicast on the core receiver and the dgram facade, for real: a network
// namespace (made here, removed after) whose loopback carries multicast
// routes, and a veth pair for IPv6. Needs root (CAP_NET_ADMIN) and `ip`; skipped otherwise.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const namespace = `udpring-mc-${process.pid}`;
const fixture = fileURLToPath(new URL('./fixtures/multicast.mjs', import.meta.url));

function ip(...args: string[]) {
  return spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
}

const ready = (() => {
  if (process.getuid?.() !== 0) return false;
  if (ip('netns', 'add', namespace).status !== 0) return false;
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
  return setup.every((args) => ip('netns', 'exec', namespace, 'ip', ...args).status === 0);
})();

afterAll(() => {
  ip('netns', 'del', namespace);
});

describe.skipIf(!ready)('multicast: join and leave groups, IPv4 and IPv6, in a network namespace', () => {
  beforeAll(() => expect(ready).toBe(true));

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
