// options.coalesceMs: after a quiet spell the receive thread waits before it
// receives, so the spell's datagrams share one wakeup. Counts and payloads,
// not timings: a trickle far slower than the coalescing window must arrive in
// far fewer batches than datagrams, every byte intact and every count
// reconciled; close during the wait loses nothing silently.
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Batch } from '../../dist/index.js';
import { Worker } from 'node:worker_threads';
import { fairBytes, fairSlot } from '../fixtures/fair-sender.mjs';
import { checkDatagram, fillDatagram, spreadSize, waitUntil } from '../helpers.js';

const host = '127.0.0.1';

/** Sends datagrams first .. first+count-1, one every `gapMs` (a timer each), and returns how many were sent. */
async function trickle(tx: UdpSender, count: number, gapMs: number, first = 0): Promise<number> {
  const data = new Uint8Array(1500);
  for (let seq = first; seq < first + count; seq++) {
    const size = spreadSize(seq, 1400);
    fillDatagram(data, 0, seq, size);
    tx.send(data.subarray(0, size));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return count;
}

/** Consumes rx with onBatch, counting datagrams and any out of order, of the wrong size or corrupt. */
function checkInOrder(rx: UdpReceiver, size: number): { delivered: number; bad: number; done: Promise<void> } {
  let last = -1;
  const seen = { delivered: 0, bad: 0, done: Promise.resolve() };
  seen.done = rx.onBatch((batch: Batch) => {
    for (let i = 0; i < batch.length; i++, seen.delivered++) {
      const seq = batch.view.getUint32(batch.offset(i), true);
      if (seq <= last || batch.size(i) !== size || checkDatagram(batch.bytes, batch.offset(i), seq, size) !== -1) seen.bad++;
      last = seq;
    }
  });
  return seen;
}

describe('options.coalesceMs', () => {
  it('is checked: a number from 0 to 1000', async () => {
    for (const bad of [-1, 1000.5, Number.NaN, Infinity]) {
      await expect(UdpReceiver.open({ host, coalesceMs: bad })).rejects.toMatchObject({
        code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.coalesceMs'),
      });
    }
    for (const bad of ['5', 'Auto', null]) {
      await expect(UdpReceiver.open({ host, coalesceMs: bad as never })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining("\"options.coalesceMs\" option must be of type number or 'auto'"),
      });
    }
    for (const good of [0, 0.25, 1000, 'auto'] as const) {
      const rx = await UdpReceiver.open({ host, coalesceMs: good });
      await rx.close();
    }
  });

  // On the event loop (windows of a libuv timer, the thread watching) and on the receive thread.
  it.each([true, false])('a trickle arrives in far fewer batches than datagrams, byte for byte, counts reconciled (eventLoopReceive: %s)', async (eventLoopReceive) => {
    const rx = await UdpReceiver.open({ host, coalesceMs: 250, eventLoopReceive });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    let seq = 0;
    let bad = 0;
    let batches = 0;
    const done = rx.onBatch((batch: Batch) => {
      batches++;
      for (let i = 0; i < batch.length; i++, seq++) {
        if (batch.size(i) !== spreadSize(seq, 1400) || checkDatagram(batch.bytes, batch.offset(i), seq, batch.size(i)) !== -1) bad++;
      }
    });
    // The first datagram: received once the thread has prepared the ring (it may take it itself).
    const warm = new Uint8Array(spreadSize(0, 1400));
    fillDatagram(warm, 0, 0, warm.length);
    tx.send(warm);
    await waitUntil(() => seq === 1, 10_000, 'the first datagram');
    const before = rx.stats();
    // 60 more, 2 ms apart: ~120 ms of traffic on an idle machine, a few windows of 250 ms on a slow one.
    const sent = 1 + await trickle(tx, 60, 2, 1);
    await waitUntil(() => seq === sent, 10_000, 'every datagram delivered');
    const s = rx.stats();
    expect({ seq, bad }).toEqual({ seq: sent, bad: 0 });
    expect(s.packets).toBe(sent);
    expect(s.ringDrops + s.kernelDrops + s.truncated).toBe(0);
    // Without coalescing each datagram goes alone (the gap is far longer than a receive).
    expect(batches - before.batches).toBeLessThanOrEqual(60 / 5);
    // Each of those batches waited a window, counted (the loop's timer or the thread's wait).
    expect(s.windows - before.windows).toBeGreaterThan(0);
    // (With eventLoopReceive the loop's windows take the socket, but a window the thread opened, when
    // the loop found it busy, runs to its end first: who receives is timing, the window is not.)
    if (!eventLoopReceive) expect(s.directBatches).toBe(0);
    await rx.close();
    await done;
    tx.close();
  });

  it.each([true, false])('close during a window: the datagram it waited for is counted, not lost silently (eventLoopReceive: %s)', async (eventLoopReceive) => {
    const rx = await UdpReceiver.open({ host, coalesceMs: 1000, eventLoopReceive });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    let delivered = 0;
    const done = rx.onBatch((batch) => {
      delivered += batch.length;
    });
    // A first datagram, taken once the thread has prepared the ring (the first receive does not wait).
    tx.send(new Uint8Array(100));
    await waitUntil(() => delivered === 1, 10_000, 'the first datagram');
    // The second opens a window of a second (the loop's timer or the thread's wait); close inside it.
    tx.send(new Uint8Array(100));
    await new Promise((r) => setTimeout(r, 50));
    expect(delivered).toBe(1);
    await rx.close();
    await done;
    const s = rx.stats();
    expect(delivered + s.discarded + s.kernelDrops + s.ringDrops).toBe(2);
    tx.close();
  });

  // 'auto': windows only while busy. stats().windows counts them: a trickle must open none, a
  // flood must open some, and once the flood is over a trickle opens none again. Rates, not
  // timings: the trickle is at most 0.33 datagrams a millisecond however slow the machine (the
  // threshold is 32), the flood far above it. A flood may overrun an unprivileged, capped kernel
  // buffer: every datagram is then delivered intact and in order, or counted as a kernel drop.
  it.each([true, false])("'auto': a trickle is received at once, a flood in windows, then at once again (eventLoopReceive: %s)", async (eventLoopReceive) => {
    const size = 200;
    const rx = await UdpReceiver.open({ host, coalesceMs: 'auto', eventLoopReceive, recvBufferSize: 8 * 1024 * 1024 });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    const seen = checkInOrder(rx, size);
    const data = new Uint8Array(16 * size);
    let sent = 0;
    const trickle = async (count: number) => {
      for (const end = sent + count; sent < end; sent++) {
        fillDatagram(data, 0, sent, size);
        tx.send(data.subarray(0, size));
        await new Promise((r) => setTimeout(r, 3));
      }
    };
    const settled = () => seen.delivered + rx.stats().kernelDrops === sent;
    await trickle(20);
    await waitUntil(settled, 10_000, 'the first trickle');
    expect(rx.stats().windows).toBe(0);
    // A flood: 16 datagrams a turn of the event loop (this loop also receives) for 150 ms.
    const until = performance.now() + 150;
    while (performance.now() < until) {
      for (let k = 0; k < 16; k++) fillDatagram(data, k * size, sent + k, size);
      sent += tx.sendBatch(data, size, 16);
      await new Promise((r) => setImmediate(r));
    }
    await waitUntil(settled, 10_000, 'the flood delivered or counted');
    const busy = rx.stats().windows;
    expect(busy).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 30));
    const calm = rx.stats().windows;
    // The windows end with the flood: at most the few that judged it over, and none for a new trickle.
    expect(calm - busy).toBeLessThanOrEqual(3);
    await trickle(10);
    await waitUntil(settled, 10_000, 'the second trickle');
    expect(rx.stats().windows).toBe(calm);
    const s = rx.stats();
    expect({ bad: seen.bad, delivered: seen.delivered + s.kernelDrops, packets: s.packets }).toEqual({ bad: 0, delivered: sent, packets: seen.delivered });
    expect(s.ringDrops + s.truncated).toBe(0);
    await rx.close();
    await seen.done;
    tx.close();
  });

  // A steady 10k/s (a light load 'auto' promises to leave alone) from a sender of its own (a worker
  // thread, paced by the clock, not by the receiving event loop), with a burst of 40 datagrams every
  // 50 ms: what a sender or a receiver that was descheduled for 4 ms catches up with. Windows start
  // only at 32 a millisecond or more judged over 4 ms, so such a burst in such a stream starts none
  // (40 + 40 in 4 ms), and one that did would end at the first window (below 16 a millisecond).
  // When a rate was judged over 1 ms, every burst started windows and 10k/s kept them going.
  // Counts, not timings: a machine too slow to send on time bunches the stream, which can only
  // start a stray window or two.
  it.each([true, false])("'auto': a 10k/s stream with catch-up bursts is received at once (eventLoopReceive: %s)", async (eventLoopReceive) => {
    const size = 200;
    const rx = await UdpReceiver.open({ host, coalesceMs: 'auto', eventLoopReceive, recvBufferSize: 8 * 1024 * 1024 });
    const seen = checkInOrder(rx, size);
    const shared = new SharedArrayBuffer(fairBytes);
    const state = new Int32Array(shared);
    const stream = { rate: 10_000, seconds: 0.05, chunk: 1 };
    const bursts = 20;
    const phases = [{ ...stream, seconds: 0.1 }];
    for (let k = 0; k < bursts; k++) phases.push({ rate: 1e6, seconds: 40e-6, chunk: 40 }, stream);
    const worker = new Worker(new URL('../fixtures/fair-sender.mjs', import.meta.url),
      { workerData: { fairSender: true, port: rx.address().port, host, size, shared, phases } });
    const finished = new Promise<{ sent: number }>((resolve, reject) => {
      worker.on('message', (m) => m.done && resolve(m));
      worker.once('error', reject);
    });
    await new Promise((r) => worker.once('message', r));
    Atomics.store(state, fairSlot.go, 1);
    Atomics.notify(state, fairSlot.go);
    const { sent } = await finished;
    await waitUntil(() => seen.delivered + rx.stats().kernelDrops === sent, 10_000, 'everything delivered or counted');
    expect(sent).toBe(1000 + bursts * 540);
    expect(rx.stats().windows).toBeLessThan(bursts / 2);
    const s = rx.stats();
    expect({ bad: seen.bad, delivered: seen.delivered + s.kernelDrops, packets: s.packets }).toEqual({ bad: 0, delivered: sent, packets: seen.delivered });
    expect(s.ringDrops + s.truncated).toBe(0);
    await rx.close();
    await seen.done;
  });

  it("the dgram backend delivers at once and ignores it", async () => {
    const rx = await UdpReceiver.open({ host, coalesceMs: 50, backend: 'dgram' });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    let seq = 0;
    let bad = 0;
    const done = rx.onBatch((batch) => {
      for (let i = 0; i < batch.length; i++, seq++) if (checkDatagram(batch.bytes, batch.offset(i), seq, batch.size(i)) !== -1) bad++;
    });
    const sent = await trickle(tx, 10, 1);
    await waitUntil(() => seq === sent, 10_000, 'every datagram delivered');
    expect(bad).toBe(0);
    await rx.close();
    await done;
    tx.close();
  });
});
