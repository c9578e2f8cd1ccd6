// A consumer that stalls: the event loop is blocked synchronously while load
// keeps arriving from another thread. Each overflow policy must account for
// every datagram exactly (sent = delivered + ringDrops + kernelDrops) and
// deliver the survivors intact and in order; with the defaults, a burst the
// kernel buffer alone could not hold must be absorbed by the ring.
import { readFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Overflow } from '../../dist/index.js';
import { sharedBytes, sizeFor, slot } from '../fixtures/core-traffic.mjs';
import { checkDatagram, fillDatagram, stall } from '../helpers.js';

const senderUrl = new URL('../fixtures/core-sender.mjs', import.meta.url);

/** Spins (the event loop stays blocked) until `check` holds; throws after `limitMs`, which only catches hangs. */
function spinUntil(check: () => boolean, limitMs: number, what: string): void {
  const end = performance.now() + limitMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out (blocked) waiting for ${what}`);
  }
}

async function startSender(workerData: Record<string, unknown>): Promise<{ worker: Worker; port: number; exited: Promise<number> }> {
  const worker = new Worker(senderUrl, { workerData });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (m: { port: number }) => resolve(m.port));
  });
  return { worker, port, exited };
}

describe('overflow: a stalled consumer under load from another thread', () => {
  for (const overflow of ['block', 'drop'] as Overflow[]) {
    it(`'${overflow}': sent = delivered + ringDrops + kernelDrops, survivors intact and in order`, async () => {
      const count = 200_000;
      const minSize = 16;
      const maxSize = 1024;
      const rx = await UdpReceiver.open({
        host: '127.0.0.1', port: 0, overflow, maxMessageSize: maxSize, ringBytes: 1 << 20, recvBufferSize: 256 * 1024,
      });
      const shared = new SharedArrayBuffer(sharedBytes);
      const state = new Int32Array(shared);
      const sender = await startSender({ port: rx.address().port, host: '127.0.0.1', count, minSize, maxSize, shared });

      Atomics.store(state, slot.go, 1);
      Atomics.notify(state, slot.go);
      // The consumer is stuck (as behind a long synchronous task) for the first third of the load.
      spinUntil(() => Atomics.load(state, slot.sent) >= count / 3, 60_000, 'the sender to send a third');

      const problems: string[] = [];
      const note = (p: string) => {
        if (problems.length < 10) problems.push(p);
      };
      let delivered = 0;
      let lastSeq = -1;
      let batches = 0;
      let reconciled = false;
      const started = Date.now();
      // Ends the loop once the worker is done and every datagram is accounted for.
      const watcher = setInterval(() => {
        const s = rx.stats();
        const sent = Atomics.load(state, slot.sent);
        if (Atomics.load(state, slot.done) === 1 && s.packets + s.ringDrops + s.kernelDrops === sent && delivered === s.packets) {
          reconciled = true;
          void rx.close();
        } else if (Date.now() - started > 60_000) {
          void rx.close();
        }
      }, 10);
      for await (const batch of rx) {
        const { bytes, view } = batch;
        for (let i = 0; i < batch.length; i++, delivered++) {
          const at = batch.offset(i);
          const size = batch.size(i);
          const seq = size >= 4 ? view.getUint32(at, true) : -1;
          if (seq <= lastSeq) note(`datagram ${delivered}: seq ${seq} after ${lastSeq}`);
          if (size !== sizeFor(seq, minSize, maxSize)) note(`seq ${seq}: size ${size}`);
          else if (checkDatagram(bytes, at, seq, size) !== -1) note(`seq ${seq}: content differs`);
          lastSeq = seq;
        }
        // Keep stalling now and then while the load goes on.
        if (++batches % 16 === 0 && Atomics.load(state, slot.done) === 0) stall(5);
      }
      clearInterval(watcher);
      await sender.exited;

      const sent = Atomics.load(state, slot.sent);
      const s = rx.stats();
      console.log(`'${overflow}': sent ${sent}, delivered ${delivered}, ringDrops ${s.ringDrops}, ` +
        `kernelDrops ${s.kernelDrops}, producerStalls ${s.producerStalls}, ringHighWater ${s.ringHighWater}`);
      expect(reconciled).toBe(true);
      expect(problems).toEqual([]);
      expect(sent).toBe(count);
      expect(delivered).toBe(s.packets);
      expect(s.packets + s.ringDrops + s.kernelDrops).toBe(sent);
      expect(delivered).toBeGreaterThan(0);
      if (overflow === 'block') {
        expect(s.ringDrops).toBe(0);
        expect(s.kernelDrops).toBeGreaterThan(0);
        expect(s.producerStalls).toBeGreaterThan(0);
      } else {
        expect(s.ringDrops).toBeGreaterThan(0);
        expect(s.producerStalls).toBe(0);
      }
    });
  }
});

/**
 * Kernel memory one datagram of `size` bytes costs in a socket's receive
 * queue on loopback (its skb truesize), measured on a node:dgram socket that
 * cannot read because this thread is blocked: rx_queue in /proc/net/udp.
 */
async function queuedBytesPerDatagram(size: number): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  const tx = await UdpSender.open({ port });
  const probes = 32;
  tx.sendBatch(new Uint8Array(size * probes), size, probes);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  // Fields: sl, local_address (0100007F:PORT), rem_address, st, tx_queue:rx_queue, ...
  const fields = readFileSync('/proc/net/udp', 'utf8').split('\n').map((l) => l.trim().split(/\s+/))
    .find((f) => f[1] === `0100007F:${hexPort}`);
  tx.close();
  socket.close();
  if (!fields) throw new Error('socket not found in /proc/net/udp');
  const queue = Number.parseInt(fields[4].split(':')[1], 16);
  if (!(queue > probes * size)) throw new Error(`unexpected rx_queue ${queue} for ${probes} datagrams`);
  return queue / probes;
}

describe('the seed scenario: a blocked event loop loses nothing', () => {
  for (const recvBufferSize of [undefined, 0]) {
    const label = recvBufferSize === undefined ? 'default options' : 'recvBufferSize 0 (system default buffer)';
    it(`${label}: a burst larger than the kernel buffer is held by the ring`, async () => {
      const size = 200;
      const perDatagram = await queuedBytesPerDatagram(size);
      const rx = await UdpReceiver.open(recvBufferSize === undefined
        ? { host: '127.0.0.1', port: 0 }
        : { host: '127.0.0.1', port: 0, recvBufferSize });
      const kernelHolds = Math.floor(rx.stats().recvBufferSize / perDatagram);
      const count = Math.max(60_000, Math.ceil(kernelHolds * 1.5));
      expect(count).toBeGreaterThan(kernelHolds);
      const tx = await UdpSender.open({ port: rx.address().port });
      // Never more in flight than half what the kernel buffer holds: any loss
      // would then be the ring's, and the ring is what must hold the burst.
      const window = Math.max(16, Math.floor(kernelHolds / 2));
      const chunk = Math.min(64, window);
      const data = new Uint8Array(chunk * size);

      // From here to the first next() the event loop never turns.
      let sent = 0;
      const blockedFrom = performance.now();
      while (sent < count) {
        spinUntil(() => {
          const s = rx.stats();
          if (s.kernelDrops + s.ringDrops > 0) throw new Error(`lost datagrams: ${JSON.stringify(s)}`);
          return sent - s.packets < window;
        }, 30_000, 'the receive thread');
        const n = Math.min(chunk, count - sent);
        for (let k = 0; k < n; k++) fillDatagram(data, k * size, sent + k, size);
        sent += tx.sendBatch(data, size, n);
      }
      spinUntil(() => rx.stats().packets === count, 30_000, 'the last datagrams');
      const blockedMs = performance.now() - blockedFrom;
      const held = rx.stats();
      expect(held.ringDatagrams).toBe(count);

      let delivered = 0;
      let bad = 0;
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++, delivered++) {
          if (batch.size(i) !== size || checkDatagram(batch.bytes, batch.offset(i), delivered, size) !== -1) bad++;
        }
        if (delivered >= count) break;
      }
      tx.close();
      const s = rx.stats();
      console.log(`${label}: ${count} datagrams held while blocked ${blockedMs.toFixed(0)} ms; kernel buffer ` +
        `${held.recvBufferSize} B holds ~${kernelHolds} (${perDatagram.toFixed(0)} B each); ` +
        `ring used ${held.ringUsed} of ${held.ringBytes}`);
      expect(bad).toBe(0);
      expect(delivered).toBe(count);
      expect(s.kernelDrops + s.ringDrops).toBe(0);
    });
  }
});
