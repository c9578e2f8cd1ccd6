// A bound socket whose kernel send buffer is full: libuv queues the datagram (getSendQueueCount
// counts it) and sends it when there is room; the facade must too, not fail with EAGAIN.
// Needs root: two network namespaces joined by a veth pair, with a slow qdisc on the sending side.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';

const suffix = String(process.pid);
const [a, b] = [`udpring-tx-${suffix}`, `udpring-rx-${suffix}`];
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

beforeAll(() => {
  ip('netns', 'add', a);
  ip('netns', 'add', b);
  ip('link', 'add', `va${suffix}`, 'netns', a, 'type', 'veth', 'peer', 'name', `vb${suffix}`, 'netns', b);
  ip('-n', a, 'addr', 'add', '10.99.0.1/24', 'dev', `va${suffix}`);
  ip('-n', b, 'addr', 'add', '10.99.0.2/24', 'dev', `vb${suffix}`);
  ip('-n', a, 'link', 'set', `va${suffix}`, 'up');
  ip('-n', b, 'link', 'set', `vb${suffix}`, 'up');
  // 8 Mbit/s with a deep queue: datagrams wait in the qdisc, charged to the socket's send buffer.
  execFileSync('ip', ['netns', 'exec', a, 'tc', 'qdisc', 'add', 'dev', `va${suffix}`, 'root', 'tbf', 'rate', '8mbit',
    'burst', '1600', 'limit', '1000000']);
});

afterAll(() => {
  for (const ns of [a, b]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
});

const run = (side: string) => JSON.parse(execFileSync('ip', ['netns', 'exec', a, process.execPath,
  join(import.meta.dirname, '..', 'fixtures', 'eagain.mjs'), side], { encoding: 'utf8', timeout: 30_000 })) as string[];

it('a full send buffer queues sends as node:dgram does', () => {
  const expected = run('node');
  expect(expected).toContain('queued at some point: true');
  expect(expected).toContain('callbacks in order, all sent: true');
  expect(run('facade')).toEqual(expected);
  expect(run('thread')).toEqual(expected);
});
