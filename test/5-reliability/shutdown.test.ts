// Nothing lost at shutdown (issue 10): whatever way a receiver ends, every
// datagram the socket took is delivered or counted, so
// sent = delivered + ringDrops + kernelDrops + discarded holds exactly; and
// close({ drain: true }) lets the consumer read what the ring holds first.
// Real sockets on loopback; the sender is synchronous (sendmmsg), so once it
// returns every datagram is in the kernel queue, the ring, or counted.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type ReceiverStats } from '../../dist/index.js';
import { createSocket } from '../../dist/adapters/dgram/index.js';
import { createReadStream, type Datagram } from '../../dist/adapters/stream.js';
import { checkDatagram, fillDatagram, waitUntil } from '../helpers.js';

const host = '127.0.0.1';
const sizeOf = (seq: number) => 4 + ((seq * 2654435761) >>> 0) % 300;

/** Sends datagrams first .. first+count-1 (checkable by seq); returns how many the kernel took. */
function send(tx: UdpSender, first: number, count: number): number {
  const chunk = 64;
  const data = new Uint8Array(chunk * 304);
  const sizes = new Uint32Array(chunk);
  let sent = 0;
  while (sent < count) {
    const n = Math.min(chunk, count - sent);
    let at = 0;
    for (let k = 0; k < n; k++) {
      const size = sizeOf(first + sent + k);
      fillDatagram(data, at, first + sent + k, size);
      sizes[k] = size;
      at += size;
    }
    const accepted = tx.sendBatch(data, sizes, n);
    if (accepted !== n) throw new Error(`sendBatch took ${accepted} of ${n}`);
    sent += n;
  }
  return sent;
}

const lost = (s: ReceiverStats) => s.ringDrops + s.kernelDrops + s.discarded;

/** A receiver with `options` holding datagrams 0 .. count-1 (or counting them as kernel drops), its sender, and how many were sent. */
async function filled(options: Parameters<typeof UdpReceiver.open>[0], count: number) {
  const rx = await UdpReceiver.open({ host, port: 0, ...options });
  const tx = await UdpSender.open({ host, port: rx.address().port });
  const sent = send(tx, 0, count);
  await waitUntil(() => rx.stats().packets + rx.stats().kernelDrops === sent, 30_000, 'every datagram in the ring');
  return { rx, tx, sent };
}

for (const backend of ['native', 'dgram'] as const) {
  describe(`shutdown (${backend} backend)`, () => {
    it('datagrams unread at close are counted in discarded, exactly', async () => {
      const { rx, tx, sent } = await filled({ backend }, 10_000);
      expect(rx.stats().discarded).toBe(0);
      await rx.close();
      const s = rx.stats();
      expect(s.delivered).toBe(0);
      expect(s.discarded).toBe(s.packets);
      expect(s.discarded).toBeGreaterThan(0);
      expect(s.ringDatagrams).toBe(0);
      expect(s.delivered + lost(s)).toBe(sent);
      tx.close();
    });

    it('break out of for await: the unread rest of the ring is discarded and counted', async () => {
      const { rx, tx, sent } = await filled({ backend, maxBatchLength: 100 }, 5_000);
      let seen = 0;
      for await (const batch of rx) {
        seen += batch.length;
        if (seen >= 300) break;
      }
      const s = rx.stats();
      expect(seen).toBe(300);
      expect(s.delivered).toBe(300);
      expect(s.discarded).toBe(s.packets - 300);
      expect(s.delivered + lost(s)).toBe(sent);
      tx.close();
    });

    it('close({ drain: true }): the consumer gets everything the ring holds, byte for byte, then done', async () => {
      const { rx, tx, sent } = await filled({ backend, maxBatchLength: 500 }, 10_000);
      let drained: Promise<void> | null = null;
      let drainedSettled = false;
      let next = 0;
      const problems: string[] = [];
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++, next++) {
          const at = batch.offset(i);
          const seq = batch.view.getUint32(at, true);
          if (seq !== next) problems.push(`datagram ${next}: seq ${seq}`);
          else if (batch.size(i) !== sizeOf(seq) || checkDatagram(batch.bytes, at, seq, batch.size(i)) !== -1) {
            problems.push(`seq ${seq}: content differs`);
          }
        }
        if (drained === null) {
          // As a SIGTERM handler would: stop receiving, finish what is there.
          drained = rx.close({ drain: true });
          void drained.then(() => { drainedSettled = true; });
          expect(rx.closed).toBe(true);
          expect(() => rx.address()).toThrow();
          await new Promise((r) => setTimeout(r, 20));
          expect(drainedSettled).toBe(false);
        }
      }
      await drained;
      expect(problems).toEqual([]);
      const s = rx.stats();
      expect(next).toBe(s.packets);
      expect(s.delivered).toBe(s.packets);
      expect(s.discarded).toBe(0);
      expect(s.delivered + lost(s)).toBe(sent);
      tx.close();
    });

    it('a drain nobody reads: a later close() discards the rest, counts it and settles the drain', async () => {
      const { rx, tx, sent } = await filled({ backend }, 1_000);
      let settled = false;
      const drained = rx.close({ drain: true }).then(() => { settled = true; });
      await new Promise((r) => setTimeout(r, 20));
      expect(settled).toBe(false);
      await rx.close();
      await drained;
      const s = rx.stats();
      expect(s.delivered).toBe(0);
      expect(s.delivered + lost(s)).toBe(sent);
      expect(s.discarded).toBe(s.packets);
      tx.close();
    });

    it('close({ drain: true }) with nothing unread resolves at once; a drain started before iterating is read', async () => {
      const empty = await UdpReceiver.open({ host, port: 0, backend });
      await empty.close({ drain: true });
      expect(empty.stats().discarded).toBe(0);

      const { rx, tx, sent } = await filled({ backend }, 2_000);
      const drained = rx.close({ drain: true });
      let read = 0;
      for await (const batch of rx) read += batch.length;
      await drained;
      const s = rx.stats();
      expect(read).toBe(s.packets);
      expect(read + lost(s)).toBe(sent);
      expect(() => rx[Symbol.asyncIterator]()).toThrow();
      tx.close();
    });

    it('a drain started while the loop body awaits leaves the batch in hand readable', async () => {
      const { rx, tx, sent } = await filled({ backend, maxBatchLength: 10 }, 10);
      let read = 0;
      let drained: Promise<void> | null = null;
      for await (const batch of rx) {
        // A signal handler runs while the body awaits (a database write, say).
        drained ??= rx.close({ drain: true });
        await new Promise((r) => setTimeout(r, 5));
        for (let i = 0; i < batch.length; i++, read++) expect(batch.view.getUint32(batch.offset(i), true)).toBe(read);
      }
      await drained;
      const s = rx.stats();
      expect(read).toBe(s.packets);
      expect(s.discarded).toBe(0);
      expect(read + lost(s)).toBe(sent);
      tx.close();
    });

    it('onBatch: a drain started while an async handler awaits leaves its batch readable', async () => {
      const { rx, tx, sent } = await filled({ backend, maxBatchLength: 10 }, 10);
      let read = 0;
      let drained: Promise<void> | null = null;
      const problems: string[] = [];
      const done = rx.onBatch(async (batch) => {
        drained ??= rx.close({ drain: true });
        await new Promise((r) => setTimeout(r, 5));
        try {
          for (let i = 0; i < batch.length; i++, read++) {
            if (batch.view.getUint32(batch.offset(i), true) !== read) problems.push(`datagram ${read}`);
          }
        } catch (error) {
          problems.push(String(error));
        }
      });
      await done;
      await drained;
      const s = rx.stats();
      expect(problems).toEqual([]);
      expect(read).toBe(s.packets);
      expect(s.discarded).toBe(0);
      expect(read + lost(s)).toBe(sent);
      tx.close();
    });

    it('options of close() are checked', async () => {
      const rx = await UdpReceiver.open({ host, port: 0, backend });
      expect(() => rx.close({ drain: 'yes' } as never)).toThrow(TypeError);
      expect(() => rx.close(7 as never)).toThrow(TypeError);
      await rx.close();
    });
  });
}

describe('shutdown: what the ring never got', () => {
  // Native: the thread stops at the first datagram that does not fit, leaves
  // the rest of its batch in the landing zone and the remainder in the kernel
  // queue. The dgram backend: the kernel queue it stopped reading.
  it.each(['native', 'dgram'] as const)("'block' with a full ring (%s backend): what never reached the ring is counted at close", async (backend) => {
    const rx = await UdpReceiver.open({
      host, port: 0, overflow: 'block', maxMessageSize: 512, batchSize: 64, ringBytes: 128 * 1024, backend,
    });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    const sent = send(tx, 0, 20_000);
    await waitUntil(() => rx.stats().producerStalls > 0, 30_000, 'reading to stop');
    const before = rx.stats();
    expect(before.packets + before.kernelDrops).toBeLessThan(sent);
    await rx.close();
    const s = rx.stats();
    expect(s.delivered).toBe(0);
    expect(s.discarded).toBeGreaterThan(s.packets);
    expect(s.delivered + lost(s), JSON.stringify(s)).toBe(sent);
    tx.close();
  });

  it("'block' with a full ring, drained: the ring's content delivered in order, the rest counted", async () => {
    const rx = await UdpReceiver.open({ host, port: 0, overflow: 'block', maxMessageSize: 512, batchSize: 64, ringBytes: 128 * 1024 });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    const sent = send(tx, 0, 20_000);
    await waitUntil(() => rx.stats().producerStalls > 0, 30_000, 'the thread to wait for space');
    const drained = rx.close({ drain: true });
    let next = 0;
    let bad = 0;
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++, next++) {
        const at = batch.offset(i);
        if (batch.view.getUint32(at, true) !== next || checkDatagram(batch.bytes, at, next, batch.size(i)) !== -1) bad++;
      }
    }
    await drained;
    const s = rx.stats();
    expect(bad).toBe(0);
    expect(next).toBe(s.packets);
    expect(s.delivered).toBe(next);
    expect(next + lost(s)).toBe(sent);
    tx.close();
  });
});

describe('shutdown through udp-ring/dgram', () => {
  async function filled(count: number): Promise<{ socket: ReturnType<typeof createSocket>; sent: number; messages: Buffer[]; tx: UdpSender }> {
    // On the thread from bind on: these cases are about what the ring holds at close.
    const socket = createSocket({ type: 'udp4', receive: 'thread' });
    const messages: Buffer[] = [];
    socket.on('message', (msg) => messages.push(msg));
    await new Promise<void>((resolve) => socket.bind(0, host, resolve));
    const tx = await UdpSender.open({ host, port: socket.address().port });
    const sent = send(tx, 0, count);
    // The event loop stays blocked until the thread has placed them all: the
    // pump has emitted nothing yet.
    const end = Date.now() + 30_000;
    while (socket.stats()!.packets + socket.stats()!.kernelDrops < sent && Date.now() < end) { /* spin */ }
    return { socket, sent, messages, tx };
  }

  it("close() behaves as node:dgram's: no 'message' after it; what the ring held is counted in discarded", async () => {
    const { socket, sent, messages, tx } = await filled(5_000);
    await new Promise<void>((resolve) => socket.close(resolve));
    await new Promise((r) => setTimeout(r, 20));
    expect(messages.length).toBe(0);
    const s = socket.stats()!;
    expect(s.discarded).toBe(s.packets);
    expect(messages.length + lost(s)).toBe(sent);
    tx.close();
  });

  it("close({ drain: true }): every datagram the ring holds is a 'message' before 'close'", async () => {
    const { socket, sent, messages, tx } = await filled(5_000);
    let messagesAtClose = -1;
    await new Promise<void>((resolve) => socket.close({ drain: true }, () => {
      messagesAtClose = messages.length;
      resolve();
    }));
    const s = socket.stats()!;
    expect(messagesAtClose).toBe(s.packets);
    expect(s.discarded).toBe(0);
    expect(messages.length + lost(s)).toBe(sent);
    messages.forEach((m, seq) => {
      expect(m.readUInt32LE(0)).toBe(seq);
      expect(checkDatagram(m, 0, seq, m.length)).toBe(-1);
    });
    tx.close();
  });
});

describe('shutdown through udp-ring/stream', () => {
  it('close({ drain: true }) on the receiver: the stream delivers what the ring held, then ends', async () => {
    const rx = await UdpReceiver.open({ host, port: 0 });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    const stream: Readable = createReadStream(rx, { mode: 'datagrams', highWaterMark: 64 });
    const sent = send(tx, 0, 5_000);
    await waitUntil(() => rx.stats().packets + rx.stats().kernelDrops === sent, 30_000, 'every datagram in the ring');
    const drained = rx.close({ drain: true });
    const got: Datagram[] = [];
    for await (const d of stream) got.push(d as Datagram);
    await drained;
    const s = rx.stats();
    expect(got.length).toBe(s.packets);
    got.forEach((d, seq) => {
      expect(d.data.readUInt32LE(0)).toBe(seq);
      expect(checkDatagram(d.data, 0, seq, d.data.length)).toBe(-1);
    });
    expect(got.length + lost(s)).toBe(sent);
    tx.close();
  });

  it('destroying the stream discards the rest of the ring, counted', async () => {
    const rx = await UdpReceiver.open({ host, port: 0 });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    const stream = createReadStream(rx, { mode: 'buffers', highWaterMark: 16 });
    const sent = send(tx, 0, 3_000);
    await waitUntil(() => rx.stats().packets + rx.stats().kernelDrops === sent, 30_000, 'every datagram in the ring');
    let got = 0;
    for await (const _ of stream) {
      if (++got === 100) break;
    }
    await waitUntil(() => rx.closed, 5_000, 'the receiver to close');
    const s = rx.stats();
    // Delivered to the stream (some still in its buffer when it was destroyed) + counted losses = sent.
    expect(s.delivered).toBeGreaterThanOrEqual(100);
    expect(s.delivered + lost(s)).toBe(sent);
    tx.close();
  });
});
