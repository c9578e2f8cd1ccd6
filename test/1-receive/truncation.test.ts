// Datagrams longer than maxMessageSize: cut to maxMessageSize, flagged,
// counted, and never confused with overflow; their neighbours stay intact.
import { describe, expect, it } from 'vitest';
import { minimumRingBytes, UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram } from '../helpers.js';

const maxMessageSize = 100;
const longest = 9000;
const oversized = longest - maxMessageSize; // sizes 101..9000, one each

/** Even seqs fit (4..100 bytes, 100 included), odd seqs are 101, 102, ... 9000 bytes. */
function wireSizeOf(seq: number): number {
  const k = seq >>> 1;
  return seq % 2 === 0 ? 4 + (k % 97) : maxMessageSize + 1 + k;
}

describe('truncation', () => {
  for (const ring of ['default', 'minimal'] as const) {
    it(`datagrams of 101..9000 bytes with maxMessageSize 100 are cut, flagged and counted (${ring} ring)`, async () => {
      const batchSize = 8;
      const rx = await UdpReceiver.open({
        host: '127.0.0.1', port: 0, maxMessageSize, batchSize,
        ...(ring === 'minimal' ? { ringBytes: minimumRingBytes(batchSize, maxMessageSize) } : {}),
      });
      const tx = await UdpSender.open({ port: rx.address().port });
      const count = 2 * oversized;
      const window = 64;
      const data = new Uint8Array(window * longest);
      const sizes = new Uint32Array(window);
      let sent = 0;
      let delivered = 0;
      const pump = () => {
        const n = Math.min(window - (sent - delivered), count - sent);
        if (n <= 0) return;
        let at = 0;
        for (let k = 0; k < n; k++) {
          sizes[k] = wireSizeOf(sent + k);
          fillDatagram(data, at, sent + k, sizes[k]);
          at += sizes[k];
        }
        expect(tx.sendBatch(data, sizes, n)).toBe(n);
        sent += n;
      };
      const watchdog = setInterval(() => {
        const s = rx.stats();
        if (s.kernelDrops + s.ringDrops > 0) void rx.close();
      }, 200);

      const problems: string[] = [];
      const note = (p: string) => {
        if (problems.length < 10) problems.push(p);
      };
      let flagged = 0;
      pump();
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++, delivered++) {
          const wire = wireSizeOf(delivered);
          const kept = Math.min(wire, maxMessageSize);
          if (batch.truncated(i)) flagged++;
          if (batch.truncated(i) !== wire > maxMessageSize) note(`seq ${delivered} (${wire} B): truncated ${batch.truncated(i)}`);
          if (batch.size(i) !== kept) note(`seq ${delivered}: size ${batch.size(i)}, expected ${kept}`);
          if (batch.wireSize(i) !== wire) note(`seq ${delivered}: wireSize ${batch.wireSize(i)}, expected ${wire}`);
          if (checkDatagram(batch.bytes, batch.offset(i), delivered, kept) !== -1) note(`seq ${delivered}: content differs`);
          if (batch.payload(i).byteLength !== kept) note(`seq ${delivered}: payload view of ${batch.payload(i).byteLength}`);
        }
        if (delivered >= count) break;
        pump();
      }
      clearInterval(watchdog);
      tx.close();
      const s = rx.stats();
      expect(problems).toEqual([]);
      expect(delivered).toBe(count);
      expect(flagged).toBe(oversized);
      expect(s.truncated).toBe(oversized);
      expect(s.packets).toBe(count);
      expect(s.kernelDrops + s.ringDrops).toBe(0);
      // Only what was kept is counted and stored.
      let keptBytes = 0;
      for (let seq = 0; seq < count; seq++) keptBytes += Math.min(wireSizeOf(seq), maxMessageSize);
      expect(s.bytes).toBe(keptBytes);
    });
  }

  it("'drop': stats().truncated counts the truncated datagrams delivered, not those the full ring dropped", async () => {
    const size = 200;
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize, batchSize: 4, overflow: 'drop',
      ringBytes: minimumRingBytes(4, maxMessageSize) });
    const tx = await UdpSender.open({ port: rx.address().port });
    const count = 5000;
    const data = new Uint8Array(16 * size);
    // The event loop stays blocked while the thread fills the ring and drops the rest;
    // the sender waits on the thread so the kernel drops nothing.
    let sent = 0;
    const limit = performance.now() + 30_000;
    while (sent < count) {
      let s = rx.stats();
      while (sent - (s.packets + s.ringDrops) >= 16) {
        if (performance.now() > limit) throw new Error('receive thread stuck');
        s = rx.stats();
      }
      for (let k = 0; k < 16; k++) fillDatagram(data, k * size, sent + k, size);
      sent += tx.sendBatch(data, size, Math.min(16, count - sent));
    }
    while (rx.stats().packets + rx.stats().ringDrops < count) {
      if (performance.now() > limit) throw new Error('receive thread stuck');
    }
    const held = rx.stats();
    expect(held.ringDrops).toBeGreaterThan(0);
    let flagged = 0;
    let delivered = 0;
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++, delivered++) if (batch.truncated(i)) flagged++;
      if (delivered >= held.packets) break;
    }
    tx.close();
    const s = rx.stats();
    expect(s.kernelDrops).toBe(0);
    expect(s.packets + s.ringDrops).toBe(count);
    expect(flagged).toBe(delivered);
    expect(s.truncated).toBe(flagged);
  });

  it('a datagram of exactly maxMessageSize is whole, one byte more is cut', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize });
    const tx = await UdpSender.open({ port: rx.address().port });
    const wire = [maxMessageSize - 1, maxMessageSize, maxMessageSize + 1, 65_507];
    const data = new Uint8Array(wire.reduce((a, b) => a + b, 0));
    let at = 0;
    wire.forEach((size, seq) => {
      fillDatagram(data, at, seq, size);
      at += size;
    });
    expect(tx.sendBatch(data, Uint32Array.from(wire))).toBe(wire.length);
    const seen: Array<[number, number, boolean, boolean]> = [];
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++) {
        const seq = seen.length;
        seen.push([batch.size(i), batch.wireSize(i), batch.truncated(i),
          checkDatagram(batch.bytes, batch.offset(i), seq, batch.size(i)) === -1]);
      }
      if (seen.length >= wire.length) break;
    }
    tx.close();
    expect(seen).toEqual([[99, 99, false, true], [100, 100, false, true], [100, 101, true, true], [100, 65_507, true, true]]);
    expect(rx.stats().truncated).toBe(2);
  });
});
