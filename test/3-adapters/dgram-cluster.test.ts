// cluster: workers that bind one UDP port. node:dgram shares the primary's socket; the facade
// binds one per worker with SO_REUSEPORT. Either way the primary sees each worker listen, every
// datagram reaches a worker, and a worker binding with exclusive: true gets EADDRINUSE.
import { execFileSync } from 'node:child_process';
import * as nodeDgram from 'node:dgram';
import { once } from 'node:events';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const primary = join(import.meta.dirname, '..', 'fixtures', 'cluster', 'primary.cjs');

async function freePort(): Promise<number> {
  const probe = nodeDgram.createSocket('udp4');
  probe.bind(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  probe.close();
  return port;
}

const run = (side: string, port: number) =>
  JSON.parse(execFileSync(process.execPath, [primary, side, String(port)], { encoding: 'utf8', timeout: 30_000 }).trim());

it('cluster workers share a UDP port as with node:dgram; the load spreads across them', async () => {
  const expected = run('node', await freePort());
  expect(expected.listening).toHaveLength(2);
  expect(expected.received).toBe(400);
  const facade = run('facade', await freePort());
  expect(facade).toEqual({ ...expected, bothWorkersReceived: true });
});
