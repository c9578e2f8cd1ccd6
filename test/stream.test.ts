// udp-ring/stream: a receiver in stream.pipeline; a slow consumer's
// backpressure reaches the ring and its overflow policy.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../dist/index.js';
import { createReadStream, type CopiedBatch, type Datagram } from '../dist/adapters/stream.js';
import { checkDatagram, fillDatagram, waitUntil } from './helpers.js';

function traffic(count: number, size: number): Uint8Array {
  const data = new Uint8Array(count * size);
  for (let s = 0; s < count; s++) fillDatagram(data, s * size, s, size);
  return data;
}

describe('stream: a receiver as an object-mode Readable', () => {
  for (const backend of ['native', 'dgram'] as const) {
    it(`pipeline delivers every datagram in order, byte for byte (datagrams mode, ${backend})`, async () => {
      const rx = await UdpReceiver.open({ host: '127.0.0.1', backend });
      const tx = await UdpSender.open({ port: rx.address().port });
      const count = 5000;
      const size = 100;
      let seen = 0;
      let bad = 0;
      const stream = createReadStream(rx);
      const sink = new Writable({
        objectMode: true,
        write(d: Datagram, _encoding, done) {
          if (checkDatagram(d.data, 0, seen, size) !== -1 || d.port !== tx.address().port || d.address !== '127.0.0.1') bad++;
          seen++;
          // Ending the source ends the pipeline: destroying it closes the receiver.
          if (seen === count) stream.destroy();
          done();
        },
      });
      expect(tx.sendBatch(traffic(count, size), size)).toBe(count);
      await pipeline(stream, sink).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw e;
      });
      tx.close();
      expect(seen).toBe(count);
      expect(bad).toBe(0);
      expect(rx.closed).toBe(true);
      expect(rx.stats().backend).toBe(backend);
    });
  }

  it('buffers and batches modes carry the same bytes', async () => {
    for (const mode of ['buffers', 'batches'] as const) {
      const rx = await UdpReceiver.open({ host: '127.0.0.1' });
      const tx = await UdpSender.open({ port: rx.address().port });
      const count = 300;
      const size = 40;
      tx.sendBatch(traffic(count, size), size);
      let seen = 0;
      for await (const chunk of createReadStream(rx, { mode })) {
        if (mode === 'buffers') {
          expect(checkDatagram(chunk as Buffer, 0, seen++, size)).toBe(-1);
        } else {
          const b = chunk as CopiedBatch;
          for (let i = 0; i < b.length; i++) {
            expect(checkDatagram(b.data, b.offsets[i], seen++, b.sizes[i])).toBe(-1);
            expect(b.ports[i]).toBe(tx.address().port);
            expect(b.address(i)).toBe('127.0.0.1');
          }
        }
        if (seen >= count) break;
      }
      expect(seen).toBe(count);
      expect(rx.closed).toBe(true);
      tx.close();
    }
  });

  for (const overflow of ['drop', 'block'] as const) {
    it(`a stalled consumer's backpressure reaches overflow '${overflow}': sent = delivered + ringDrops + kernelDrops`, async () => {
      const rx = await UdpReceiver.open({
        host: '127.0.0.1', overflow, ringBytes: 1 << 20, maxMessageSize: 1024, batchSize: 64, recvBufferSize: 256 * 1024,
      });
      const tx = await UdpSender.open({ port: rx.address().port });
      const size = 1000;
      const count = 20_000;
      const data = traffic(count, size);
      let delivered = 0;
      let release: (() => void) | null = null;
      const stalled = new Promise<void>((resolve) => { release = resolve; });
      let last = -1;
      let ordered = true;
      const stream = createReadStream(rx, { highWaterMark: 16 });
      const sink = new Writable({
        objectMode: true,
        highWaterMark: 1,
        write(d: Datagram, _encoding, done) {
          const seq = d.data.readUInt32LE(0);
          if (seq <= last) ordered = false;
          last = seq;
          delivered++;
          // The first write waits until the sender is done: everything else backs up.
          if (delivered === 1) stalled.then(() => done());
          else done();
        },
      });
      const piping = pipeline(stream, sink).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw e;
      });
      let sent = tx.sendBatch(data.subarray(0, size), size);
      await waitUntil(() => delivered === 1, 30_000, 'the first datagram');
      for (let at = 1; at < count; at += 1000) {
        const end = Math.min(count, at + 1000);
        sent += tx.sendBatch(data.subarray(at * size, end * size), size);
      }
      tx.close();
      expect(sent).toBe(count);
      await waitUntil(() => rx.stats().ringDrops + rx.stats().kernelDrops > 0, 30_000, 'the overflow policy to act');
      release!();
      await waitUntil(() => {
        const s = rx.stats();
        return delivered + s.ringDrops + s.kernelDrops === sent;
      }, 60_000, 'every datagram to be accounted for');
      stream.destroy();
      await piping;
      const stats = rx.stats();
      expect(ordered).toBe(true);
      if (overflow === 'drop') expect(stats.ringDrops).toBeGreaterThan(0);
      else expect(stats.ringDrops).toBe(0);
      expect(delivered + stats.ringDrops + stats.kernelDrops).toBe(sent);
    });
  }
});
