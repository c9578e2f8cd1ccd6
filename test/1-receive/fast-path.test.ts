// rx.onBatch(handler): the fast path. One Batch object, reused; no promise
// and (nearly) no allocation per batch; the event loop still gets its turn.
import { AsyncLocalStorage } from 'node:async_hooks';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram, spawnAsync, spreadSize, waitUntil } from '../helpers.js';

describe('onBatch', () => {
  it('delivers every datagram byte for byte and in order, then resolves when closed', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
    const count = 50_000;
    let seq = 0;
    let bad = 0;
    const generations = new Set<number>();
    let batchObject: unknown = null;
    let sameObject = true;
    const done = rx.onBatch((batch) => {
      if (batchObject === null) batchObject = batch;
      else if (batchObject !== batch) sameObject = false;
      generations.add(batch.generation);
      for (let i = 0; i < batch.length; i++, seq++) {
        if (batch.size(i) !== spreadSize(seq, 1400) || checkDatagram(batch.bytes, batch.offset(i), seq, batch.size(i)) !== -1) bad++;
      }
    });
    const buffer = new Uint8Array(1400 * 64);
    const sizes = new Uint32Array(64);
    for (let sent = 0; sent < count;) {
      let at = 0;
      const n = Math.min(64, count - sent);
      for (let k = 0; k < n; k++) {
        sizes[k] = spreadSize(sent + k, 1400);
        fillDatagram(buffer, at, sent + k, sizes[k]);
        at += sizes[k];
      }
      sent += tx.sendBatch(buffer, sizes, n);
      if (sent - seq > 20_000) await waitUntil(() => sent - seq < 5_000);
    }
    await waitUntil(() => seq === count);
    expect({ seq, bad, sameObject }).toEqual({ seq: count, bad: 0, sameObject: true });
    expect(generations.size).toBeGreaterThan(1);
    const stats = rx.stats();
    expect(stats.packets).toBe(count);
    expect(stats.kernelDrops + stats.ringDrops).toBe(0);
    await rx.close();
    await expect(done).resolves.toBeUndefined();
    tx.close();
  });

  it('a batch kept past its handler throws ERR_UDP_RING_STALE_BATCH, though the object is reused', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
    let kept: { size(i: number): number; generation: number } | null = null;
    let keptGeneration = -1;
    void rx.onBatch((batch) => {
      if (kept === null) {
        kept = batch;
        keptGeneration = batch.generation;
      }
    });
    tx.send(new Uint8Array(10));
    await waitUntil(() => kept !== null);
    expect(() => kept!.size(0)).toThrow(expect.objectContaining({ code: 'ERR_UDP_RING_STALE_BATCH' }));
    tx.send(new Uint8Array(10));
    await waitUntil(() => kept!.generation > keptGeneration);
    await rx.close();
    tx.close();
  });

  it('an async handler holds its batch until its promise settles; a throw rejects and closes', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
    const seen: number[] = [];
    const done = rx.onBatch(async (batch) => {
      await new Promise((r) => setTimeout(r, 5));
      for (let i = 0; i < batch.length; i++) seen.push(batch.bytes[batch.offset(i)]);
      if (seen.length >= 3) throw new Error('enough');
    });
    const outcome = done.then(() => null, (error: unknown) => error);
    for (let k = 1; k <= 3; k++) {
      tx.send(new Uint8Array([k]));
      await waitUntil(() => seen.length >= k);
    }
    expect(await outcome).toMatchObject({ message: 'enough' });
    expect(seen).toEqual([1, 2, 3]);
    expect(rx.closed).toBe(true);
    tx.close();
  });

  it('one consumer at a time, a function only, not after close', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    expect(() => rx.onBatch(42 as unknown as () => void)).toThrow(TypeError);
    const done = rx.onBatch(() => {});
    expect(() => rx.onBatch(() => {})).toThrow(expect.objectContaining({ code: 'ERR_UDP_RING_ALREADY_ITERATING' }));
    expect(() => rx[Symbol.asyncIterator]()).toThrow(expect.objectContaining({ code: 'ERR_UDP_RING_ALREADY_ITERATING' }));
    await rx.close();
    await done;
    const closed = await UdpReceiver.open({ host: '127.0.0.1' });
    await closed.close();
    expect(() => closed.onBatch(() => {})).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
  });

  it('close({ drain: true }) delivers what the ring holds to the handler, then resolves', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
    expect(tx.sendBatch(new Uint8Array(100 * 1000), 100)).toBe(1000);
    await waitUntil(() => rx.stats().packets === 1000);
    let delivered = 0;
    const done = rx.onBatch((batch) => {
      delivered += batch.length;
    });
    await rx.close({ drain: true });
    await done;
    expect(delivered).toBe(1000);
    expect(rx.stats().discarded).toBe(0);
    tx.close();
  });
});

describe('allocation, one datagram at a time', () => {
  type Trickle = { bytesPerDatagram: number; gcsDuring: number; batches: number; allocated: number; batchesDuring: number;
    loopIterations: number | null };
  const semiSpace = ['--min-semi-space-size=64', '--max-semi-space-size=64'];
  const bench = fileURLToPath(new URL('../../bench/wakeup-alloc.mjs', import.meta.url));

  // Each mode in a child process whose young generation is large enough that
  // no GC runs while it measures, so the heap's growth is what was allocated.
  async function trickle(mode: string, burst = 1, loopCount?: string): Promise<Trickle> {
    const fixture = fileURLToPath(new URL('../fixtures/alloc-trickle.mjs', import.meta.url));
    const result = await spawnAsync(process.execPath, [...semiSpace, fixture, mode, '20000', String(burst)],
      { timeout: 120_000, env: { ...process.env, ...(loopCount ? { LOOP_COUNT: loopCount } : {}) } });
    expect(result.status, result.stderr).toBe(0);
    return JSON.parse(result.stdout.trim().split('\n').pop()!);
  }

  it('onBatch allocates a small, bounded amount per quiet-time datagram; node:dgram and the iterator far more', async () => {
    const fast = await trickle('onBatch');
    const iterator = await trickle('iterator');
    const dgram = await trickle('dgram');
    console.log(`heap bytes per datagram, one at a time: onBatch ${fast.bytesPerDatagram.toFixed(1)}, ` +
      `iterator ${iterator.bytesPerDatagram.toFixed(1)}, node:dgram ${dgram.bytesPerDatagram.toFixed(1)}`);
    for (const r of [fast, iterator, dgram]) expect(r.gcsDuring).toBe(0);
    // Per datagram delivered one at a time (a batch each), measured on Node 20: onBatch 56.4 B, all but
    // a fraction of a byte Node's own: each event-loop iteration's check phase allocates an empty object
    // (56 B) whether or not any JavaScript runs (the next case measures it). node:dgram ~330 B (a Buffer
    // and an rinfo); the iterator ~546 B (the async-iteration protocol ~400 B per wait, a Batch ~96 B of
    // five fields, the ring's views shared, Node's 56 B; 602 B while each Batch held its own copy of the
    // ring's views and offsets): at one datagram per batch it allocates more than dgram, which is what
    // onBatch is for.
    expect(fast.bytesPerDatagram * 1e6).toBeLessThan(96e6);
    expect(fast.bytesPerDatagram * 4).toBeLessThan(dgram.bytesPerDatagram);
    expect(iterator.bytesPerDatagram).toBeLessThan(590);
  });

  it("adds nothing per batch to what Node allocates per event-loop iteration, one datagram or several per batch", async () => {
    // bench/wakeup-alloc.cc: a test-only addon that counts the loop's iterations (libuv's metrics)
    // and, in its 'recv' mode, takes one datagram per wakeup with no Node-API or V8 call at all:
    // Node's own bytes per iteration, the floor every receiver on the event loop pays.
    const built = await spawnAsync(process.execPath, [bench, '--build'], { timeout: 120_000 });
    expect(built.status, built.stderr).toBe(0);
    const addon = built.stdout.trim().split('\n').pop()!;
    const bare = await spawnAsync(process.execPath, [...semiSpace, bench, '--child', 'recv', '20000'], { timeout: 120_000 });
    expect(bare.status, bare.stderr).toBe(0);
    const floor = JSON.parse(bare.stdout.trim().split('\n').pop()!) as { bytesPerWakeup: number; gcsDuring: number };
    expect(floor.gcsDuring).toBe(0);
    expect(floor.bytesPerWakeup).toBeGreaterThan(0);
    // One datagram per batch (no clock read), then bursts of 4 (batches of several: the turn's clock
    // is read at every wakeup whose batch holds more than one, as under load).
    for (const burst of [1, 4]) {
      const r = await trickle('onBatch', burst, addon);
      expect(r.gcsDuring).toBe(0);
      expect(r.batchesDuring).toBeGreaterThan(20000 / burst / 2);
      // (A wake can take more than one batch: the re-check before waiting again receives directly.)
      expect(r.loopIterations!).toBeGreaterThan(r.batchesDuring / 2);
      const ownPerBatch = (r.allocated - floor.bytesPerWakeup * r.loopIterations!) / r.batchesDuring;
      console.log(`burst ${burst}: ${r.batchesDuring} batches, ${r.loopIterations} loop iterations, Node ` +
        `${floor.bytesPerWakeup.toFixed(1)} B each; udp-ring's own ${ownPerBatch.toFixed(2)} B per batch`);
      // Measured 0.2-0.7 B (one-off compilation spread over the run). Below any object made per batch:
      // a number read from performance.now() was 32 B at every wakeup of more than one datagram.
      expect(ownPerBatch).toBeLessThan(8);
    }
  });
});

describe('onBatch runs as a callback of its own, as node:dgram\'s \'message\' does', () => {
  // Side by side, one datagram each into a waiting receiver: after the handler returns, the
  // process.nextTick callbacks and microtasks it queued run before the event loop goes on (before a
  // setImmediate it queued), and AsyncLocalStorage inside the handler holds the store that was current
  // when the socket was opened (the receiver's async context, made at open), not onBatch()'s.
  it('ticks and microtasks it queued run before the loop goes on; the store is the one at open', async () => {
    const als = new AsyncLocalStorage<string>();
    async function order(kind: 'dgram' | 'onBatch'): Promise<string[]> {
      const log: string[] = [];
      let handled!: () => void;
      const immediate = new Promise<void>((resolve) => (handled = resolve));
      let first = true;
      const handler = (): void => {
        if (!first) return;
        first = false;
        log.push(`handler in ${als.getStore()}`);
        setImmediate(() => {
          log.push('immediate');
          handled();
        });
        Promise.resolve().then(() => log.push('promise'));
        process.nextTick(() => log.push('tick'));
        queueMicrotask(() => log.push('microtask'));
      };
      let port: number;
      let close: () => void;
      if (kind === 'dgram') {
        const socket = await als.run('open', async () => {
          const s = createSocket('udp4');
          await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
          return s;
        });
        socket.on('message', handler);
        port = socket.address().port;
        close = () => socket.close();
      } else {
        const rx = await als.run('open', () => UdpReceiver.open({ host: '127.0.0.1' }));
        const done = als.run('onBatch', () => rx.onBatch(handler));
        // Waiting (the event loop polls the socket) before the datagram comes.
        await new Promise((resolve) => setTimeout(resolve, 50));
        port = rx.address().port;
        close = () => {
          rx.close();
          void done;
        };
      }
      const tx = createSocket('udp4');
      tx.send(new Uint8Array(8), port, '127.0.0.1');
      await immediate;
      tx.close();
      close();
      return log;
    }
    const dgram = await order('dgram');
    const fast = await order('onBatch');
    expect(dgram).toEqual(['handler in open', 'tick', 'promise', 'microtask', 'immediate']);
    expect(fast).toEqual(dgram);
  });
});
