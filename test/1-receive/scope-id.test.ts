// The IPv6 scope id of a link-local source (issue 10): kept in the descriptor,
// printed as node:dgram prints it (fe80::2%v0), and enough for a reply to
// reach the peer. Needs root and `ip` (apt: iproute2) for a network namespace
// with a veth pair: it runs in the system CI stage (npm run test:system).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const namespace = `udpring-scope-${process.pid}`;
function ip(...args: string[]) {
  return spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
}
const setupError = (() => {
  if (process.getuid?.() !== 0) return 'needs root for a network namespace';
  const add = ip('netns', 'add', namespace);
  if (add.status !== 0) return `cannot create a network namespace (\`ip netns add\`; apt: iproute2): ${add.error ?? add.stderr}`;
  const setup = [
    ['link', 'set', 'lo', 'up'],
    ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
    ['link', 'set', 'v0', 'up'],
    ['link', 'set', 'v1', 'up'],
    ['-6', 'addr', 'add', 'fe80::1/64', 'dev', 'v0', 'nodad'],
    ['-6', 'addr', 'add', 'fe80::2/64', 'dev', 'v0', 'nodad'],
  ];
  return setup.every((args) => ip('netns', 'exec', namespace, 'ip', ...args).status === 0) ? null : 'namespace setup failed';
})();
afterAll(() => {
  ip('netns', 'del', namespace);
});

describe('IPv6 scope ids', () => {
  it('a link-local source keeps its %interface, as node:dgram reports it, and a reply to it arrives', () => {
    expect(setupError).toBeNull();
    const run = spawnSync('ip', ['netns', 'exec', namespace, process.execPath,
      fileURLToPath(new URL('../fixtures/scope-id.mjs', import.meta.url))], { encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(result.nodeDgram).toBe('fe80::2%v0');
    expect(result.facade).toBe(result.nodeDgram);
    for (const backend of ['native', 'dgram']) {
      expect(result[backend].address, backend).toBe('fe80::2%v0');
      expect(result[backend].scopeId, backend).toBeGreaterThan(0);
      expect(result[backend].port, backend).toBe(result.peerPort);
    }
    expect(result.native.scopeId).toBe(result.dgram.scopeId);
    expect(result.replies.sort()).toEqual(['re:hello', 're:hello']);
  });
});
