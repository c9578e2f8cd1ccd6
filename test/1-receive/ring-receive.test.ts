// Large datagrams are received straight into ring space (receive_batch.cc's
// ArmMessages): each message's first `stride` bytes (the largest datagram of
// the receive before) go to free ring space before the wrap, only a longer
// datagram's tail to the landing zone. This drives every case of that through
// a small ring that wraps every few batches and fills, in both overflow
// policies: runs of one size (placed where they landed), datagrams that grow
// past the stride (split: head in the ring, tail in the landing zone, the
// messages after them moved out first), ones that shrink (moved down), random
// sizes, and partial reservations at the wrap. Every datagram is checked byte
// for byte and in order; sent = delivered + ringDrops + kernelDrops.
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Overflow } from '../../dist/index.js';
import { checkDatagram, fillDatagram, stall } from '../helpers.js';

const maxSize = 9000;

/** Runs of 40 datagrams: one size, growth past the stride, shrinking, random, and alternating. */
function sizeOf(seq: number): number {
  const random = (((seq * 2654435761) >>> 0) % (maxSize - 600)) + 600;
  switch (Math.floor(seq / 40) % 7) {
    case 0: return 1400;
    case 1: return 8192;
    case 2: return random;
    case 3: return maxSize;
    case 4: return 520;
    case 5: return seq % 3 === 0 ? maxSize : 1400;
    default: return seq % 5 === 0 ? 100 : 4096;
  }
}

// Datagrams first .. first + n - 1, each sizeOf() long, packed into data; their sizes into sizes.
function fillBurst(data: Uint8Array, sizes: Uint32Array, first: number, n: number): void {
  let at = 0;
  for (let k = 0; k < n; k++) {
    sizes[k] = sizeOf(first + k);
    fillDatagram(data, at, first + k, sizes[k]);
    at += sizes[k];
  }
}

describe('large datagrams received into the ring at the wrap', () => {
  for (const overflow of ['block', 'drop'] as Overflow[]) {
    it(`'${overflow}': split receives, byte for byte, sent = delivered + ringDrops + kernelDrops`, async () => {
      const total = 6000;
      const burst = 150;
      // About 220 KiB of payload: a burst (~600 KiB) fills it and wraps it several times. The consumer holds
      // a batch now and then (below), of at most 16 datagrams, so that the ring has room on both sides of it.
      const rx = await UdpReceiver.open({
        host: '127.0.0.1', port: 0, overflow, maxMessageSize: maxSize, batchSize: 16, ringBytes: 256 * 1024,
        recvBufferSize: 64 * 2 ** 20, maxBatchLength: 16,
      });
      const tx = await UdpSender.open({ port: rx.address().port });
      const data = new Uint8Array(burst * maxSize);
      const sizes = new Uint32Array(burst);
      let sent = 0;
      let delivered = 0;
      let lastSeq = -1;
      const problems: string[] = [];
      const note = (p: string) => {
        if (problems.length < 10) problems.push(p);
      };
      let reconciled = false;
      let wraps = 0;
      let held = 0;
      const started = Date.now();
      // A burst, then the event loop stalls while the thread fills the ring (and, with 'block', waits).
      const pump = setInterval(() => {
        if (sent < total) {
          const n = Math.min(burst, total - sent);
          fillBurst(data, sizes, sent, n);
          const taken = tx.sendBatch(data, sizes, n);
          if (taken !== n) note(`the sender took ${taken} of ${n}`);
          sent += n;
          stall(15);
          return;
        }
        const s = rx.stats();
        if (s.packets + s.ringDrops + s.kernelDrops === sent && delivered === s.packets) {
          reconciled = true;
          void rx.close();
        } else if (Date.now() - started > 60_000) {
          void rx.close();
        }
      }, 5);
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++, delivered++) {
          const at = batch.offset(i);
          const size = batch.size(i);
          // Lower than the one before in the same batch (both unreleased when it was placed): the wrap, not an
          // empty ring started again at its beginning.
          if (i > 0 && at < batch.offset(i - 1)) wraps++;
          const seq = batch.view.getUint32(at, true);
          if (seq <= lastSeq) note(`datagram ${delivered}: seq ${seq} after ${lastSeq}`);
          if (overflow === 'block' && rx.stats().kernelDrops === 0 && seq !== lastSeq + 1) note(`gap before ${seq}`);
          lastSeq = seq;
          if (size !== sizeOf(seq) || batch.wireSize(i) !== size || batch.truncated(i)) note(`seq ${seq}: size ${size}`);
          else if (checkDatagram(batch.bytes, at, seq, size) !== -1) note(`seq ${seq} (${size} B): content differs`);
        }
        // Every fifth batch is held over the next burst: the ring is not empty, so the thread goes on past
        // the held datagrams and wraps, rather than starting the empty ring again at its beginning.
        if (++held % 5 === 0) {
          await new Promise((resolve) => setTimeout(resolve, 8));
          for (let i = 0; i < batch.length; i++) {
            const seq = batch.view.getUint32(batch.offset(i), true);
            if (checkDatagram(batch.bytes, batch.offset(i), seq, batch.size(i)) !== -1) note(`seq ${seq}: written over while held`);
          }
        }
      }
      clearInterval(pump);
      tx.close();
      const s = rx.stats();
      console.log(`'${overflow}': sent ${sent}, delivered ${delivered}, ringDrops ${s.ringDrops}, ` +
        `kernelDrops ${s.kernelDrops}, producerStalls ${s.producerStalls}, batches ${s.batches}, wraps seen ${wraps}`);
      expect(problems).toEqual([]);
      expect(wraps).toBeGreaterThan(0);
      expect(reconciled).toBe(true);
      expect(sent).toBe(total);
      expect(delivered).toBe(s.packets);
      expect(s.packets + s.ringDrops + s.kernelDrops).toBe(sent);
      expect(s.bytes).toBeGreaterThan(0);
      if (overflow === 'block') {
        expect(s.ringDrops).toBe(0);
        expect(s.producerStalls).toBeGreaterThan(0);
      } else {
        expect(s.ringDrops).toBeGreaterThan(0);
        expect(s.producerStalls).toBe(0);
      }
    });
  }
});

describe('coalesced (GRO) buffers received into the ring', () => {
  it('aligned segments stay where they landed, unaligned ones are moved out first: byte for byte, in a ring that wraps', async () => {
    // Runs of 1200 B (8-byte aligned: split in place), 1001 B (unaligned: the buffer and the ones after it are
    // moved to the landing zone first) and 4000 B, each ending with a short segment.
    const sizes: number[] = [];
    for (let r = 0; r < 60; r++) {
      const size = [1200, 1001, 4000][r % 3];
      for (let k = 0; k < 12; k++) sizes.push(size);
      sizes.push(1 + (r * 37) % 300);
    }
    const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    sizes.forEach((n, seq) => {
      fillDatagram(data, at, seq, n);
      at += n;
    });
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, gro: true, batchSize: 8, ringBytes: 2 * 2 ** 20,
      recvBufferSize: 64 * 2 ** 20 });
    const tx = await UdpSender.open({ port: rx.address().port, gso: true });
    expect(tx.gso).toBe(true);
    const problems: string[] = [];
    let seq = 0;
    const iterator = rx[Symbol.asyncIterator]();
    // Sent in four parts with the consumer between, so the ring (about 2 MiB) wraps with a buffer in it.
    for (let part = 0; part < 4; part++) {
      const from = (sizes.length * part) / 4;
      const to = (sizes.length * (part + 1)) / 4;
      const start = sizes.slice(0, from).reduce((a, b) => a + b, 0);
      const length = sizes.slice(from, to).reduce((a, b) => a + b, 0);
      expect(tx.sendBatch(data.subarray(start, start + length), Uint32Array.from(sizes.slice(from, to)))).toBe(to - from);
      while (seq < to) {
        const { value: batch } = await iterator.next();
        for (let i = 0; i < batch!.length; i++, seq++) {
          const wire = sizes[seq];
          if (batch!.size(i) !== wire || batch!.wireSize(i) !== wire) problems.push(`${seq}: size ${batch!.size(i)}, sent ${wire}`);
          else if (checkDatagram(batch!.bytes, batch!.offset(i), seq, wire) !== -1) problems.push(`${seq} (${wire} B): bytes differ`);
        }
      }
    }
    await iterator.return!();
    tx.close();
    const s = rx.stats();
    expect(problems.slice(0, 5)).toEqual([]);
    expect(seq).toBe(sizes.length);
    expect({ packets: s.packets, kernelDrops: s.kernelDrops, ringDrops: s.ringDrops, truncated: s.truncated })
      .toEqual({ packets: sizes.length, kernelDrops: 0, ringDrops: 0, truncated: 0 });
    expect(s.coalesced).toBeGreaterThan(sizes.length / 2);
  });
});

// 'block' with a consumer that releases a little at a time: the ring stays
// nearly full, so before most receives less than a batch of strides is free.
// ArmMessages then points only the messages that fit at ring space and lands
// the rest; a receive that does not fit waits (WaitForSpace) and resumes on
// the next release. Each batch is checked when it arrives and again just
// before it is released (the producer must never write into space the
// consumer still holds); nothing is lost or dropped, and the run ends (a lost
// wakeup would leave both sides waiting: the deadline then fails it).
describe("a nearly full ring in 'block' mode", () => {
  it('a consumer releasing two datagrams at a time: byte for byte, no ring drops, no lost wakeup', async () => {
    const total = 3000;
    const rx = await UdpReceiver.open({
      host: '127.0.0.1', port: 0, overflow: 'block', maxMessageSize: maxSize, batchSize: 16, ringBytes: 256 * 1024,
      maxBatchLength: 2, recvBufferSize: 128 * 2 ** 20,
    });
    const tx = await UdpSender.open({ port: rx.address().port });
    // Everything is sent up front, in bursts: the kernel queue holds what the ring cannot.
    const burst = 100;
    const data = new Uint8Array(burst * maxSize);
    const sizes = new Uint32Array(burst);
    let sent = 0;
    while (sent < total) {
      const n = Math.min(burst, total - sent);
      fillBurst(data, sizes, sent, n);
      expect(tx.sendBatch(data, sizes, n)).toBe(n);
      sent += n;
      await new Promise((r) => setImmediate(r));
    }
    tx.close();
    const problems: string[] = [];
    const note = (p: string) => {
      if (problems.length < 10) problems.push(p);
    };
    const check = (batch: { length: number; offset(i: number): number; size(i: number): number; bytes: Uint8Array }, when: string) => {
      for (let i = 0; i < batch.length; i++) {
        const at = batch.offset(i);
        const size = batch.size(i);
        const seq = size >= 4 ? new DataView(batch.bytes.buffer, batch.bytes.byteOffset).getUint32(at, true) : -1;
        if (size !== sizeOf(seq)) note(`${when}: seq ${seq}: size ${size}`);
        else if (checkDatagram(batch.bytes, at, seq, size) !== -1) note(`${when}: seq ${seq} (${size} B): content differs`);
      }
    };
    let delivered = 0;
    let lastSeq = -1;
    let turns = 0;
    const iterator = rx[Symbol.asyncIterator]();
    const deadline = Date.now() + 60_000;
    let timedOut = false;
    while (delivered < total) {
      let timer: NodeJS.Timeout | undefined;
      const next = await Promise.race([
        iterator.next(),
        new Promise<null>((r) => (timer = setTimeout(() => r(null), Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
      if (next === null || next.done) {
        timedOut = next === null;
        break;
      }
      const batch = next.value;
      check(batch, 'on arrival');
      for (let i = 0; i < batch.length; i++) {
        const seq = batch.view.getUint32(batch.offset(i), true);
        if (seq !== lastSeq + 1) note(`seq ${seq} after ${lastSeq}`);
        lastSeq = seq;
      }
      delivered += batch.length;
      // Held a while: the thread fills what is free and waits for more.
      if (++turns % 4 === 0) await new Promise((r) => setTimeout(r, 1));
      else await new Promise((r) => setImmediate(r));
      check(batch, 'before release');
    }
    const s = rx.stats();
    await iterator.return!();
    console.log(`nearly full 'block': delivered ${delivered}, producerStalls ${s.producerStalls}, batches ${s.batches}, ` +
      `ringHighWater ${s.ringHighWater}, kernelDrops ${s.kernelDrops}`);
    expect(timedOut ? `no datagram for 60 s after ${delivered} (packets ${s.packets}, stalls ${s.producerStalls})` : '').toBe('');
    expect(problems).toEqual([]);
    expect({ delivered, packets: s.packets, ringDrops: s.ringDrops, kernelDrops: s.kernelDrops })
      .toEqual({ delivered: total, packets: total, ringDrops: 0, kernelDrops: 0 });
    // The ring was full again and again: the thread waited for space, and what it received went in a little at a time.
    expect(s.producerStalls).toBeGreaterThan(10);
  }, 90_000);
});
