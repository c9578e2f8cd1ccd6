// GRO receive (options.gro) fed by a GSO sender on loopback: the kernel hands
// over coalesced buffers of up to 64 segments, and the receive thread splits
// each into one ring entry per datagram. Checked byte for byte, with a short
// last segment, truncation, both overflow modes and every counter per datagram.
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Batch } from '../../dist/index.js';
import { checkDatagram, fillDatagram, stall } from '../helpers.js';

/** Runs of `run` datagrams of `size` bytes, each run ending with one of `last` bytes: what GSO coalesces. */
function traffic(runs: number, run: number, size: number, last: number) {
  const sizes: number[] = [];
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < run; k++) sizes.push(size);
    sizes.push(last);
  }
  const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  sizes.forEach((n, seq) => {
    fillDatagram(data, at, seq, n);
    at += n;
  });
  return { data, sizes: Uint32Array.from(sizes) };
}

interface Seen { bad: string[]; count: number }

function check(batch: Batch, sizes: Uint32Array, seen: Seen, maxMessageSize: number, port: number): void {
  for (let i = 0; i < batch.length; i++, seen.count++) {
    const seq = seen.count;
    const wire = sizes[seq];
    const held = Math.min(wire, maxMessageSize);
    const why = batch.wireSize(i) !== wire ? `wireSize ${batch.wireSize(i)} != ${wire}`
      : batch.size(i) !== held ? `size ${batch.size(i)} != ${held}`
        : batch.truncated(i) !== wire > maxMessageSize ? `truncated ${batch.truncated(i)}`
          : checkDatagram(batch.bytes, batch.offset(i), seq, held) !== -1 ? 'bytes differ'
            : batch.port(i) !== port || batch.address(i) !== '127.0.0.1' ? `source ${batch.address(i)}:${batch.port(i)}` : '';
    if (why && seen.bad.length < 5) seen.bad.push(`datagram ${seq}: ${why}`);
  }
}

async function receiveAll(rx: UdpReceiver, sizes: Uint32Array, maxMessageSize: number, port: number, stallMs = 0) {
  const seen: Seen = { bad: [], count: 0 };
  const iterator = rx[Symbol.asyncIterator]();
  while (seen.count < sizes.length) {
    const { value: batch } = await iterator.next();
    if (stallMs > 0) stall(stallMs);
    check(batch!, sizes, seen, maxMessageSize, port);
  }
  await iterator.return!();
  return seen;
}

describe('GRO receive from a GSO sender', () => {
  it('splits every coalesced buffer into its datagrams, byte for byte, short last segments included', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', gro: true });
    const tx = await UdpSender.open({ port: rx.address().port, gso: true });
    expect(tx.gso).toBe(true);
    const { data, sizes } = traffic(200, 40, 1200, 700);
    expect(tx.sendBatch(data, sizes)).toBe(sizes.length);
    const seen = await receiveAll(rx, sizes, 65535, tx.address().port);
    expect(seen.bad).toEqual([]);
    const s = rx.stats();
    expect({ packets: s.packets, bytes: s.bytes, kernelDrops: s.kernelDrops, ringDrops: s.ringDrops, truncated: s.truncated })
      .toEqual({ packets: sizes.length, bytes: data.length, kernelDrops: 0, ringDrops: 0, truncated: 0 });
    // Coalesced buffers arrived (else GRO or GSO did nothing) and were split: far fewer receives than datagrams.
    expect(s.coalesced).toBeGreaterThan(sizes.length / 2);
    tx.close();
  });

  it('a buffer of one long and one short segment, then a lone datagram, arrive as they are', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', gro: true });
    const tx = await UdpSender.open({ port: rx.address().port, gso: true });
    // One call: [1200, 5] go as one GSO message (a shorter last segment ends a run), 300 alone.
    const sizes = Uint32Array.from([1200, 5, 300]);
    const data = new Uint8Array(1505);
    fillDatagram(data, 0, 0, 1200);
    fillDatagram(data, 1200, 1, 5);
    fillDatagram(data, 1205, 2, 300);
    expect(tx.sendBatch(data, sizes)).toBe(3);
    expect((await receiveAll(rx, sizes, 65535, tx.address().port, 0, false)).bad).toEqual([]);
    expect(rx.stats().coalesced).toBe(2);
    expect(rx.stats().packets).toBe(3);
    tx.close();
    await rx.close();
  });

  // A kernel limit, pinned so that a change shows: the socket's drop counter (SO_RXQ_OVFL,
  // SK_MEMINFO_DROPS) counts a dropped coalesced buffer once, however many datagrams it held.
  // With gro, kernelDrops therefore counts drop events, and sent = delivered + drops holds
  // only while the kernel drops nothing (README: "GRO and kernel drops").
  it('kernel drops of coalesced buffers count once per buffer (kernel limit): kernelDrops > 0 whenever the kernel lost any', async () => {
    // A small kernel buffer and a stalled consumer behind a small ring: the kernel must drop.
    const rx = await UdpReceiver.open({ host: '127.0.0.1', gro: true, maxMessageSize: 1200, batchSize: 4,
      ringBytes: 32 * 1024, recvBufferSize: 256 * 1024 });
    const tx = await UdpSender.open({ port: rx.address().port, gso: true });
    const { data, sizes } = traffic(100, 63, 1000, 1000);
    expect(tx.sendBatch(data, sizes)).toBe(sizes.length);
    let delivered = 0;
    const iterator = rx[Symbol.asyncIterator]();
    // Until the socket has been quiet for 300 ms (the drop counter is read when it goes quiet).
    let pending: Promise<IteratorResult<Batch>> | null = null;
    for (let quiet = 0; quiet < 15;) {
      pending ??= iterator.next();
      const result = await Promise.race([pending, new Promise<null>((resolve) => setTimeout(() => resolve(null), 20))]);
      if (result === null) {
        quiet++;
        continue;
      }
      quiet = 0;
      pending = null;
      delivered += result.value!.length;
    }
    const s = rx.stats();
    const lost = sizes.length - delivered;
    await iterator.return!();
    const { discarded } = rx.stats();
    expect({ ringDrops: s.ringDrops, ringDatagrams: s.ringDatagrams, discarded }).toEqual({ ringDrops: 0, ringDatagrams: 0, discarded: 0 });
    expect(lost).toBeGreaterThan(0);
    // Lost whole: the ring never split a buffer it could not place.
    expect(lost % 64).toBe(0);
    // Counted: at least one drop, and never more than one per buffer lost (on this kernel, 6.18,
    // a buffer or two of a hundred lost go uncounted even by the socket's own counter).
    expect(s.kernelDrops).toBeGreaterThan(0);
    expect(s.kernelDrops).toBeLessThanOrEqual(lost / 64);
    await iterator.return!();
    tx.close();
  });

  it('segments longer than maxMessageSize are cut and flagged one by one', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', gro: true, maxMessageSize: 1000 });
    const tx = await UdpSender.open({ port: rx.address().port, gso: true });
    const { data, sizes } = traffic(50, 30, 1200, 700);
    expect(tx.sendBatch(data, sizes)).toBe(sizes.length);
    const seen = await receiveAll(rx, sizes, 1000, tx.address().port);
    expect(seen.bad).toEqual([]);
    const s = rx.stats();
    expect({ packets: s.packets, truncated: s.truncated, bytes: s.bytes })
      .toEqual({ packets: sizes.length, truncated: 50 * 30, bytes: 50 * 30 * 1000 + 50 * 700 });
    expect(s.coalesced).toBeGreaterThan(0);
    tx.close();
  });

  for (const overflow of ['block', 'drop'] as const) {
    it(`a small ring with a slow consumer ('${overflow}'): a buffer split across waits, every datagram counted`, async () => {
      // Room for about 25 datagrams of 1200 bytes: a buffer of 41 never fits whole.
      const rx = await UdpReceiver.open({ host: '127.0.0.1', gro: true, overflow, maxMessageSize: 1200, batchSize: 4,
        ringBytes: 32 * 1024, recvBufferSize: 64 * 1024 * 1024 });
      const tx = await UdpSender.open({ port: rx.address().port, gso: true });
      const { data, sizes } = traffic(100, 40, 1200, 700);
      expect(tx.sendBatch(data, sizes)).toBe(sizes.length);
      const seen: Seen = { bad: [], count: 0 };
      const iterator = rx[Symbol.asyncIterator]();
      let delivered = 0;
      let expectedSeq = 0;
      let gaps = 0;
      // The last datagrams may all be dropped, and then no batch comes: wait
      // for one or for the counters to account for everything, whichever is first.
      let pending: Promise<IteratorResult<Batch>> | null = null;
      for (;;) {
        const s = rx.stats();
        if (delivered + s.ringDrops + s.kernelDrops >= sizes.length) break;
        pending ??= iterator.next();
        const result = await Promise.race([pending, new Promise<null>((resolve) => setTimeout(() => resolve(null), 20))]);
        if (result === null) continue;
        pending = null;
        const batch = result.value;
        stall(1);
        for (let i = 0; i < batch!.length; i++) {
          const seq = batch!.view.getUint32(batch!.offset(i), true);
          if (seq !== expectedSeq) gaps++;
          expectedSeq = seq + 1;
          if (checkDatagram(batch!.bytes, batch!.offset(i), seq, sizes[seq]) !== -1 || batch!.size(i) !== sizes[seq]) {
            seen.bad.push(`datagram ${seq} differs`);
          }
        }
        delivered += batch!.length;
      }
      const s = rx.stats();
      expect(seen.bad).toEqual([]);
      expect(delivered + s.ringDrops + s.kernelDrops).toBe(sizes.length);
      if (overflow === 'block') expect({ delivered, gaps, producerStalls: s.producerStalls > 0 })
        .toEqual({ delivered: sizes.length, gaps: 0, producerStalls: true });
      else expect(s.ringDrops).toBeGreaterThan(0);
      await iterator.return!();
      tx.close();
    });
  }

  it('without gro the same traffic arrives as plain datagrams, nothing coalesced', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ port: rx.address().port, gso: true });
    const { data, sizes } = traffic(20, 40, 1200, 700);
    expect(tx.sendBatch(data, sizes)).toBe(sizes.length);
    const seen = await receiveAll(rx, sizes, 65535, tx.address().port);
    expect(seen.bad).toEqual([]);
    expect(rx.stats().coalesced).toBe(0);
    tx.close();
  });
});
