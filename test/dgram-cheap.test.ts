// Cheap sockets: a facade socket on a port of its own choosing starts on the event loop (no ring,
// no thread) and moves to the receive thread when traffic calls for it, without losing or
// reordering a datagram. 200 short-lived client sockets start no thread and cost node:dgram's memory
// within 2x (their time per query is measured by bench/dgram-clients.mjs, not asserted here).
import * as nodeDgram from 'node:dgram';
import { once } from 'node:events';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { spawnAsync } from './helpers.js';
import * as facade from '../dist/adapters/dgram/index.js';

it('a client socket receives on the event loop, then moves to the thread under load, losing nothing', async () => {
  const socket = facade.createSocket('udp4');
  const received: number[] = [];
  socket.on('message', (msg) => received.push(msg.readUInt32BE(0)));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  expect(socket.receivingOn()).toBe('eventLoop');
  // Counted on the event loop too (test/dgram-stats.test.ts has the rest).
  expect(socket.stats()).toMatchObject({ backend: 'dgram', delivered: 0 });

  const sender = nodeDgram.createSocket('udp4');
  const total = 3000;
  for (let i = 0; i < total; i++) {
    const msg = Buffer.alloc(4);
    msg.writeUInt32BE(i);
    sender.send(msg, port, '127.0.0.1');
    if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  const deadline = Date.now() + 5000;
  while (received.length < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(socket.receivingOn()).toBe('thread');
  expect(socket.address().port).toBe(port);
  expect(received.length).toBe(total);
  expect(received.every((n, i) => n === i)).toBe(true);
  expect(socket.stats()?.backend).toBe('native');
  sender.close();
  socket.close();
  await once(socket, 'close');
});

it('a server on a port you name starts its thread once the loop has polled, and receives on the event loop until the ring is ready', async () => {
  const probe = nodeDgram.createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const port = probe.address().port;
  probe.close();
  const server = facade.createSocket('udp4');
  server.bind(port, '127.0.0.1');
  await once(server, 'listening');
  const forced = facade.createSocket({ type: 'udp4', receive: 'thread' });
  forced.bind(0, '127.0.0.1');
  await once(forced, 'listening');
  // The server opens its thread after the event loop has polled once (two check phases), not within 'listening'.
  expect([server.receivingOn(), forced.receivingOn()]).toEqual(['eventLoop', 'thread']);
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  expect([server.receivingOn(), forced.receivingOn()]).toEqual(['thread', 'thread']);
  // The first datagram after 'listening' does not wait for the ring's prefault (node:dgram still receives).
  const sender = nodeDgram.createSocket('udp4');
  // (How soon it arrives is bench/dgram-first-datagram.mjs's to measure; here: it arrives, intact.)
  sender.send('first', port, '127.0.0.1');
  const [msg] = await once(server, 'message');
  expect(msg.toString()).toBe('first');
  sender.close();
  server.close();
  forced.close();
});

it('200 short-lived client sockets: no thread each, memory within 2x of node:dgram (time per query: the bench)', async () => {
  const bench = join(import.meta.dirname, '..', 'bench', 'dgram-clients.mjs');
  type Run = { msPerQuery: number; rssGrowthMiB: number; threadGrowth: number };
  const run = async (side: string): Promise<Run> => {
    const child = await spawnAsync(process.execPath, ['--expose-gc', bench, side, '200', '50'], { timeout: 60_000 });
    expect(child.status, child.stderr).toBe(0);
    return JSON.parse(child.stdout) as Run;
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[1];
  const node: Run[] = [];
  const ours: Run[] = [];
  // Alternating runs, medians of three: the machine is shared.
  for (let i = 0; i < 3; i++) {
    node.push(await run('node'));
    ours.push(await run('facade'));
  }
  const time = { node: median(node.map((r) => r.msPerQuery)), facade: median(ours.map((r) => r.msPerQuery)) };
  const memory = { node: median(node.map((r) => r.rssGrowthMiB)), facade: median(ours.map((r) => r.rssGrowthMiB)) };
  console.log(JSON.stringify({ time, memory }));
  // 50 open client sockets that each received one reply start no thread (a ring would come with one).
  expect(ours.map((r) => r.threadGrowth)).toEqual(node.map((r) => r.threadGrowth));
  // RSS growth for 50 open sockets; node:dgram's is about 0, so 2x gets 2 MiB of measurement slack.
  expect(memory.facade).toBeLessThanOrEqual(2 * Math.max(memory.node, 0) + 2);
}, 120_000);

it('unref() on the event loop still lets the process exit after the move (server and client)', async () => {
  const script = `
    import dgram from 'node:dgram';
    const facade = (await import(${JSON.stringify(join(import.meta.dirname, '..', 'dist', 'adapters', 'dgram', 'index.js'))})).default;
    const sender = dgram.createSocket('udp4');
    for (const port of [0, 'named']) {
      const socket = facade.createSocket('udp4');
      let named = 0;
      if (port === 'named') {
        const probe = dgram.createSocket('udp4');
        await new Promise((r) => probe.bind(0, '127.0.0.1', r));
        named = probe.address().port;
        await new Promise((r) => probe.close(r));
      }
      await new Promise((r) => socket.bind(named, '127.0.0.1', r));
      socket.unref(); // while a client still receives on the event loop
      let got = 0;
      socket.on('message', () => got++);
      for (let i = 0; i < 200; i++) sender.send('x', socket.address().port, '127.0.0.1');
      const until = Date.now() + 5000;
      while (got < 200 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      if (got < 200) throw new Error(port + ': ' + got + ' of 200, on ' + socket.receivingOn());
      if (socket.receivingOn() !== 'thread') throw new Error('did not move');
    }
    sender.close();
    console.log('done');
  `;
  const child = await spawnAsync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 });
  expect(child.stderr).toBe('');
  expect(child.stdout.trim()).toBe('done');
});
