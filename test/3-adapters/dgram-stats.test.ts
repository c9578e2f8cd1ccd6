// socket.stats() on udp-ring/dgram has no hole: while node:dgram still receives on the event loop
// it counts what arrived, what the kernel dropped (the socket's SO_MEMINFO) and what close() throws
// away; after the move to the thread the ring's counters go on from those.
import { once } from 'node:events';
import { expect, it } from 'vitest';
import { UdpSender } from '../../dist/index.js';
import * as facade from '../../dist/adapters/dgram/index.js';
import { checkDatagram, fillDatagram, waitUntil } from '../helpers.js';

const size = 200;

// The datagram's sequence number, once its bytes are checked against the pattern.
function sequence(msg: Buffer): number {
  const seq = msg.readUInt32LE(0);
  if (msg.length !== size || checkDatagram(msg, 0, seq, size) !== -1) throw new Error(`datagram ${seq} is corrupt`);
  return seq;
}

function datagram(seq: number): Uint8Array {
  const bytes = new Uint8Array(size);
  fillDatagram(bytes, 0, seq, size);
  return bytes;
}

it('on the event loop: delivered, kernel drops and what close() discards add up to what was sent', async () => {
  // A small kernel buffer, so a burst overflows it; connected, so the socket stays on the event loop.
  const socket = facade.createSocket({ type: 'udp4', recvBufferSize: 8192 });
  const seen: number[] = [];
  socket.on('message', (msg: Buffer) => seen.push(sequence(msg)));
  expect(socket.stats()).toBeNull();
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const tx = await UdpSender.open({ port: socket.address().port, localAddress: '127.0.0.1', localPort: 0 });
  socket.connect(tx.address().port, '127.0.0.1');
  await once(socket, 'connect');
  const empty = socket.stats()!;
  expect(empty).toMatchObject({ backend: 'dgram', packets: 0, delivered: 0, kernelDrops: 0, discarded: 0, ringBytes: 0 });
  expect(empty.kernelQueueBytes).toBe(0);
  expect(empty.recvBufferSize).toBe(socket.getRecvBufferSize());

  let sent = 0;
  for (; sent < 10; sent++) tx.send(datagram(sent));
  await waitUntil(() => socket.stats()!.delivered === 10, 10_000, '10 delivered');
  expect(socket.stats()).toMatchObject({ packets: 10, delivered: 10, bytes: 10 * size, kernelDrops: 0 });

  // A burst in one tick: the 16 KiB buffer holds a few dozen, the kernel drops the rest.
  for (; sent < 510; sent++) tx.send(datagram(sent));
  const queued = socket.stats()!;
  expect(queued.kernelDrops).toBeGreaterThan(0);
  expect(queued.kernelQueueBytes).toBeGreaterThan(0);
  await waitUntil(() => {
    const s = socket.stats()!;
    return s.delivered + s.kernelDrops === sent;
  }, 10_000, 'every datagram delivered or counted as dropped');
  expect(socket.receivingOn()).toBe('eventLoop');
  const afterBurst = socket.stats()!;
  expect(afterBurst.delivered).toBe(seen.length);
  expect(afterBurst.kernelDrops).toBe(queued.kernelDrops);
  // Delivered in order; what is missing is what the kernel dropped.
  expect(seen.every((seq, i) => i === 0 || seq > seen[i - 1])).toBe(true);

  // Sent and closed in one tick: node:dgram never reads these; close() counts them as discarded.
  for (let i = 0; i < 5; i++, sent++) tx.send(datagram(sent));
  socket.close();
  const final = socket.stats()!;
  expect(final.discarded).toBe(5);
  expect(final.delivered + final.kernelDrops + final.discarded).toBe(sent);
  await once(socket, 'close');
  expect(socket.stats()).toEqual(final);
  tx.close();
});

it('moving to the thread: the counts go on from what the event loop received', async () => {
  const socket = facade.createSocket('udp4');
  const seen: number[] = [];
  socket.on('message', (msg: Buffer) => seen.push(sequence(msg)));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const tx = await UdpSender.open({ port: socket.address().port });
  let sent = 0;
  // Slow at first (stays on the event loop), then bursts that move it.
  for (; sent < 20; sent++) {
    tx.send(datagram(sent));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await waitUntil(() => seen.length === 20, 10_000, '20 on the event loop');
  expect(socket.receivingOn()).toBe('eventLoop');
  expect(socket.stats()).toMatchObject({ backend: 'dgram', delivered: 20, packets: 20 });
  for (; sent < 3000; sent++) {
    tx.send(datagram(sent));
    if (sent % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  await waitUntil(() => {
    const s = socket.stats()!;
    return s.delivered + s.kernelDrops + s.ringDrops === sent;
  }, 10_000, 'every datagram delivered or counted');
  expect(socket.receivingOn()).toBe('thread');
  const stats = socket.stats()!;
  expect(stats.backend).toBe('native');
  expect(stats.delivered).toBe(seen.length);
  expect(stats.packets).toBe(stats.delivered);
  expect(stats.bytes).toBe(stats.delivered * size);
  socket.close();
  await once(socket, 'close');
  const final = socket.stats()!;
  expect(final.delivered + final.kernelDrops + final.ringDrops + final.discarded).toBe(sent);
  tx.close();
});

it('a client that moves at a modest rate gets the 1 MiB ring; one that proves busy gets the full ring', async () => {
  const open = async () => {
    const socket = facade.createSocket('udp4');
    let got = 0;
    socket.on('message', () => got++);
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const tx = await UdpSender.open({ port: socket.address().port });
    return { socket, tx, got: () => got };
  };
  // 100 datagrams at least 3 ms apart: about 300/s, each in its own event-loop turn.
  const modest = await open();
  for (let seq = 0; seq < 100; seq++) {
    modest.tx.send(datagram(seq));
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  await waitUntil(() => modest.got() === 100, 10_000, '100 delivered');
  expect([modest.socket.receivingOn(), modest.socket.stats()]).toMatchObject(['thread', {}]);
  expect(modest.socket.stats()!.ringBytes).toBe(1024 * 1024);
  // 200 in one tick: libuv's read loop takes 32 at once (and the default kernel buffer may drop some).
  const busy = await open();
  for (let seq = 0; seq < 200; seq++) busy.tx.send(datagram(seq));
  await waitUntil(() => busy.socket.receivingOn() === 'thread', 10_000, 'the move');
  expect(busy.socket.stats()!.ringBytes).toBe(32 * 1024 * 1024);
  for (const { socket, tx } of [modest, busy]) {
    tx.close();
    socket.close();
  }
});

it("coalesceMs: 'auto' on a facade socket: a flood shares wakeups (windows), every message intact, in order, counted", async () => {
  const socket = facade.createSocket({ type: 'udp4', receive: 'thread', coalesceMs: 'auto', recvBufferSize: 8 * 1024 * 1024 });
  let delivered = 0;
  let last = -1;
  let disorder = 0;
  socket.on('message', (msg: Buffer) => {
    const seq = sequence(msg);
    if (seq <= last) disorder++;
    last = seq;
    delivered++;
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const tx = await UdpSender.open({ port: socket.address().port });
  const data = new Uint8Array(16 * size);
  let sent = 0;
  // 150 ms of 16 datagrams a turn of this event loop: far above the 32 a millisecond that opens windows.
  const until = performance.now() + 150;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) fillDatagram(data, k * size, sent + k, size);
    sent += tx.sendBatch(data, size, 16);
    await new Promise((r) => setImmediate(r));
  }
  await waitUntil(() => delivered + socket.stats()!.kernelDrops === sent, 10_000, 'every datagram delivered or counted');
  const s = socket.stats()!;
  expect(s.windows).toBeGreaterThan(0);
  expect({ disorder, delivered: s.delivered, ringDrops: s.ringDrops }).toEqual({ disorder: 0, delivered, ringDrops: 0 });
  socket.close();
  tx.close();
});
