// Stale views: a Batch read after the iterator moved on must throw, never
// silently return datagrams the receive thread has since written.
import { describe, expect, it } from 'vitest';
import { UdpSender, type Batch } from '../../dist/index.js';
import { checkDatagram, fillDatagram, openLoopback } from '../helpers.js';

async function sendNumbered(port: number, first: number, count: number, size = 32): Promise<void> {
  const tx = await UdpSender.open({ port });
  const data = new Uint8Array(size * count);
  for (let k = 0; k < count; k++) fillDatagram(data, k * size, first + k, size);
  expect(tx.sendBatch(data, size)).toBe(count);
  tx.close();
}

describe('stale batches', () => {
  it('a batch kept past its iteration throws ERR_UDP_RING_STALE_BATCH from every accessor', async () => {
    const rx = await openLoopback();
    const port = rx.address().port;
    await sendNumbered(port, 0, 10);
    const iterator = rx[Symbol.asyncIterator]();
    const first = (await iterator.next()).value as Batch;
    expect(first.current).toBe(true);
    expect(first.generation).toBe(1);
    expect(checkDatagram(first.bytes, first.offset(0), 0, 32)).toBe(-1);
    const seen = first.length;
    first.assertCurrent();

    await sendNumbered(port, 100, 10);
    const second = (await iterator.next()).value as Batch;
    expect(second).not.toBe(first);
    expect(second.generation).toBe(first.generation + 1);
    expect(first.current).toBe(false);
    expect(first.length).toBe(0);
    for (const read of [
      () => first.offset(0), () => first.size(0), () => first.wireSize(0), () => first.port(0),
      () => first.family(0), () => first.truncated(0), () => first.addressOffset(0), () => first.address(0),
      () => first.payload(0), () => first.copy(0), () => first.assertCurrent(),
    ]) {
      expect(read).toThrow(expect.objectContaining({ code: 'ERR_UDP_RING_STALE_BATCH' }));
    }
    // The new batch continues where the old one ended, byte for byte.
    const expected = seen < 10 ? seen : 100;
    expect(checkDatagram(second.bytes, second.offset(0), expected, 32)).toBe(-1);
    await iterator.return!();
    expect(() => second.size(0)).toThrow(/moved on/);
  });

  it('a batch read from a callback after the loop went on throws instead of reading refilled slots', async () => {
    const rx = await openLoopback({ ringBytes: 1 << 20, maxMessageSize: 2048, batchSize: 8 });
    const port = rx.address().port;
    const deferred: Array<Promise<unknown>> = [];
    let batches = 0;
    const sending = sendNumbered(port, 0, 400, 200);
    for await (const batch of rx) {
      batches++;
      // A read scheduled for later (a timer, an await elsewhere) sees a retired batch.
      deferred.push(new Promise((resolve) => setImmediate(() => {
        try {
          resolve(batch.size(0));
        } catch (error) {
          resolve(error);
        }
      })));
      const s = rx.stats();
      if (s.packets + s.kernelDrops + s.ringDrops >= 400 && s.ringDatagrams === batch.length) break;
    }
    await sending;
    const results = await Promise.all(deferred);
    expect(results.length).toBe(batches);
    for (const result of results) expect(result).toMatchObject({ code: 'ERR_UDP_RING_STALE_BATCH' });
  });

  it('an index outside a current batch is still a RangeError', async () => {
    const rx = await openLoopback();
    await sendNumbered(rx.address().port, 0, 1);
    for await (const batch of rx) {
      expect(() => batch.size(batch.length)).toThrow(RangeError);
      expect(() => batch.size(-1)).toThrow(RangeError);
      expect(() => batch.size(0.5)).toThrow(RangeError);
      break;
    }
  });
});
