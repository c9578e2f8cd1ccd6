// The event loop gets its turn (issue 9): a consumer slower than the arrival
// rate used to run in one unbroken chain of microtasks while a batch was
// always waiting, and timers, I/O and signals waited until the traffic
// stopped. Delivery now yields a macrotask turn after a budget of datagrams
// or time (options.yieldEvery). Counts and invariants, not timings: an
// interval timer keeps firing while the sender runs, the overflow policy does
// what it says, and sent = delivered + ringDrops + kernelDrops + discarded.
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, type Overflow, type ReceiverStats } from '../dist/index.js';
import { createSocket } from '../dist/adapters/dgram/index.js';
import { createReadStream } from '../dist/adapters/stream.js';
import { fairBytes, fairSlot, fairTimes } from './fixtures/fair-sender.mjs';

const host = '127.0.0.1';
const senderUrl = new URL('./fixtures/fair-sender.mjs', import.meta.url);
// 40k/s for 1.5 s against a consumer that spends 50 µs per datagram (20k/s at best).
const rate = 40_000;
const seconds = 1.5;
const size = 200;
const costUs = 50;
const tickMs = 20;

const epochNow = () => performance.timeOrigin + performance.now();

function spin(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end) { /* the handler's work */ }
}

interface Load {
  state: Int32Array;
  times: Float64Array;
  done: () => boolean;
  exited: Promise<number>;
  go: () => void;
}

async function startSender(port: number): Promise<Load> {
  const shared = new SharedArrayBuffer(fairBytes);
  const worker = new Worker(senderUrl, { workerData: { fairSender: true, port, host, rate, seconds, size, shared } });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve());
  });
  const state = new Int32Array(shared);
  return {
    state, times: new Float64Array(shared), exited,
    done: () => Atomics.load(state, fairSlot.done) === 1,
    go: () => {
      Atomics.store(state, fairSlot.go, 1);
      Atomics.notify(state, fairSlot.go);
    },
  };
}

/** Ticks of an interval timer while the sender ran (after a first 100 ms). */
function ticksDuring(ticks: number[], load: Load): number {
  const from = load.times[fairTimes.started] + 100;
  const to = load.times[fairTimes.ended];
  return ticks.filter((t) => t >= from && t <= to).length;
}

function expectPolicy(s: ReceiverStats, overflow: Overflow, sent: number, delivered: number): void {
  expect(delivered).toBe(s.delivered);
  expect(s.delivered + s.ringDrops + s.kernelDrops + s.discarded, JSON.stringify(s)).toBe(sent);
  // The consumer fell behind: something was lost, by the policy's own rule.
  expect(s.ringDrops + s.kernelDrops).toBeGreaterThan(0);
  if (overflow === 'block') {
    expect(s.ringDrops).toBe(0);
    expect(s.producerStalls).toBeGreaterThan(0);
  } else {
    expect(s.ringDrops).toBeGreaterThan(0);
  }
}

// A ring of about 4,500 such datagrams, a kernel buffer of about 1,000: both fill within the run.
const small = { ringBytes: 1 << 20, maxMessageSize: 256, recvBufferSize: 128 * 1024 };
const expectedTicks = ((seconds * 1000 - 100) / tickMs);

describe('fairness: a consumer slower than the arrival rate', () => {
  for (const backend of ['native', 'dgram'] as const) {
    for (const overflow of ['block', 'drop'] as Overflow[]) {
      it(`iterator (${backend}, '${overflow}'): timers keep firing, the policy holds, every datagram counted`, async () => {
        const rx = await UdpReceiver.open({ host, port: 0, overflow, backend, ...small });
        const load = await startSender(rx.address().port);
        const ticks: number[] = [];
        const timer = setInterval(() => ticks.push(epochNow()), tickMs);
        load.go();
        let delivered = 0;
        for await (const batch of rx) {
          for (let i = 0; i < batch.length; i++) spin(costUs);
          delivered += batch.length;
          // Read through shared memory: works however starved the event loop is.
          if (load.done()) break;
        }
        clearInterval(timer);
        await load.exited;
        const s = rx.stats();
        const during = ticksDuring(ticks, load);
        // Without a budget: 0 or 1. With it, nearly every tick (generous bound).
        expect(during, `ticks while sending (of ~${expectedTicks})`).toBeGreaterThanOrEqual(expectedTicks / 5);
        const sent = Atomics.load(load.state, fairSlot.sent);
        if (backend === 'native') expectPolicy(s, overflow, sent, delivered);
        else {
          // The dgram backend receives on the event loop, 32 datagrams a turn:
          // behind a slow consumer the kernel queue overflows before its areas do.
          expect(delivered).toBe(s.delivered);
          expect(s.delivered + s.ringDrops + s.kernelDrops + s.discarded, JSON.stringify(s)).toBe(sent);
        }
      });
    }
  }

  it("udp-ring/dgram ('drop'): timers keep firing between 'message' events", async () => {
    const socket = createSocket({ type: 'udp4', overflow: 'drop', ...small });
    await new Promise<void>((resolve) => socket.bind(0, host, resolve));
    const load = await startSender(socket.address().port);
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(epochNow()), tickMs);
    let messages = 0;
    const closed = new Promise<void>((resolve) => {
      socket.on('message', () => {
        spin(costUs);
        messages++;
        if (load.done() && messages % 64 === 0) socket.close(resolve);
      });
    });
    load.go();
    await closed;
    clearInterval(timer);
    await load.exited;
    expect(ticksDuring(ticks, load)).toBeGreaterThanOrEqual(expectedTicks / 5);
    expectPolicy(socket.stats()!, 'drop', Atomics.load(load.state, fairSlot.sent), messages);
  });

  it("udp-ring/stream ('block'): timers keep firing between 'data' events", async () => {
    const rx = await UdpReceiver.open({ host, port: 0, overflow: 'block', ...small });
    const stream: Readable = createReadStream(rx, { mode: 'buffers', highWaterMark: 256 });
    const load = await startSender(rx.address().port);
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(epochNow()), tickMs);
    let chunks = 0;
    const ended = new Promise<void>((resolve) => {
      stream.on('data', () => {
        spin(costUs);
        chunks++;
        if (load.done() && !stream.destroyed) stream.destroy();
      });
      stream.on('close', resolve);
    });
    load.go();
    await ended;
    clearInterval(timer);
    await load.exited;
    expect(ticksDuring(ticks, load)).toBeGreaterThanOrEqual(expectedTicks / 5);
    const s = rx.stats();
    // The stream had taken some datagrams into its buffer that 'data' never saw: delivered counts what left the ring.
    expect(s.delivered).toBeGreaterThanOrEqual(chunks);
    expectPolicy(s, 'block', Atomics.load(load.state, fairSlot.sent), s.delivered);
  });
});

describe('a turn ends near yieldEvery.ms, whatever the batch sizes', () => {
  // 6,000 datagrams waiting, a handler spending 50 µs on each, a time budget of
  // 10 ms and no datagram budget: a turn should deliver about 200 datagrams.
  // Counted, not timed: the most datagrams handled between two turns of the
  // event loop, after the first turn (which has no measure of the handler yet).
  // A machine short of CPU only makes the handler slower and the count smaller.
  for (const path of ['iterator', 'onBatch', 'onBatch, async handler'] as const) {
    it(`${path}: batches are sized by the handler's pace, not only by the datagram budget`, async () => {
      const { UdpSender } = await import('../dist/index.js');
      const { waitUntil } = await import('./helpers.js');
      const rx = await UdpReceiver.open({ host, port: 0, yieldEvery: { datagrams: Infinity, ms: 10 } });
      const tx = await UdpSender.open({ host, port: rx.address().port });
      const count = 6000;
      for (let sent = 0; sent < count; sent += 500) tx.sendBatch(new Uint8Array(500 * 16), 16, 500);
      tx.close();
      await waitUntil(() => rx.stats().packets === count, 10_000, 'the datagrams in the ring');
      let turns = 0;
      let sinceTurn = 0;
      let turnSeen = 0;
      let windows = 0;
      let most = 0;
      let read = 0;
      const probe = () => {
        turns++;
        if (read < count) setImmediate(probe);
      };
      setImmediate(probe);
      const handle = (length: number) => {
        if (turns !== turnSeen) {
          // The first turn that delivered is left out: nothing had measured the handler yet.
          if (windows++ > 1) most = Math.max(most, sinceTurn);
          turnSeen = turns;
          sinceTurn = 0;
        }
        for (let i = 0; i < length; i++) spin(50);
        sinceTurn += length;
        read += length;
      };
      if (path === 'iterator') {
        for await (const batch of rx) {
          handle(batch.length);
          if (read === count) break;
        }
      } else if (path === 'onBatch') {
        await new Promise<void>((resolve) => {
          void rx.onBatch((batch) => {
            handle(batch.length);
            if (read === count) resolve();
          });
        });
        await rx.close();
      } else {
        // An async handler whose promise settles at once (it never waits on I/O):
        // its continuation is a microtask, not a turn of the event loop.
        await new Promise<void>((resolve) => {
          void rx.onBatch(async (batch) => {
            await null;
            handle(batch.length);
            if (read === count) resolve();
          });
        });
        await rx.close();
      }
      expect(read).toBe(count);
      expect(turns).toBeGreaterThan(5);
      // About 200 expected; the whole backlog (or a 4096-datagram batch) without pacing.
      expect(most).toBeLessThanOrEqual(1000);
    });
  }
});

describe('options.yieldEvery', () => {
  it('is checked: TypeError for a wrong type, RangeError for a wrong value, each naming the option', async () => {
    const bad: Array<[unknown, ErrorConstructor, RegExp]> = [
      [5, TypeError, /options\.yieldEvery/],
      [null, TypeError, /options\.yieldEvery/],
      [{ datagrams: '8' }, TypeError, /options\.yieldEvery\.datagrams/],
      [{ datagrams: 0 }, RangeError, /options\.yieldEvery\.datagrams/],
      [{ datagrams: 1.5 }, RangeError, /options\.yieldEvery\.datagrams/],
      [{ ms: -1 }, RangeError, /options\.yieldEvery\.ms/],
      [{ ms: Number.NaN }, RangeError, /options\.yieldEvery\.ms/],
      [{ ms: '1' }, TypeError, /options\.yieldEvery\.ms/],
      [{ datagram: 8 }, TypeError, /options\.yieldEvery\.datagram/],
    ];
    for (const [value, Kind, message] of bad) {
      await expect(UdpReceiver.open({ host, port: 0, yieldEvery: value } as never), String(value)).rejects.toThrow(Kind);
      await expect(UdpReceiver.open({ host, port: 0, yieldEvery: value } as never)).rejects.toThrow(message);
    }
    const rx = await UdpReceiver.open({ host, port: 0, yieldEvery: { datagrams: 32, ms: Infinity } });
    await rx.close();
  });

  it('no batch is longer than the datagram budget, and the budget yields a turn even with no time limit', async () => {
    const rx = await UdpReceiver.open({ host, port: 0, yieldEvery: { datagrams: 32, ms: Infinity } });
    const { UdpSender } = await import('../dist/index.js');
    const tx = await UdpSender.open({ host, port: rx.address().port });
    tx.sendBatch(new Uint8Array(1000 * 8), 8, 1000);
    tx.close();
    const { waitUntil } = await import('./helpers.js');
    await waitUntil(() => rx.stats().packets === 1000, 10_000, 'the datagrams in the ring');
    let immediates = 0;
    let longest = 0;
    let read = 0;
    const count = () => {
      immediates++;
      if (read < 1000) setImmediate(count);
    };
    setImmediate(count);
    for await (const batch of rx) {
      longest = Math.max(longest, batch.length);
      read += batch.length;
      if (read === 1000) break;
    }
    expect(longest).toBeLessThanOrEqual(32);
    // 1000 datagrams in budgets of 32: the loop had about 31 turns while they were read.
    expect(immediates).toBeGreaterThanOrEqual(25);
  });
});
