// options.coalesceMs: after a quiet spell the receive thread waits before it
// receives, so the spell's datagrams share one wakeup. Counts and payloads,
// not timings: a trickle far slower than the coalescing window must arrive in
// far fewer batches than datagrams, every byte intact and every count
// reconciled; close during the wait loses nothing silently.
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Batch } from '../../dist/index.js';
import { checkDatagram, fillDatagram, spreadSize, waitUntil } from '../helpers.js';

const host = '127.0.0.1';

/** Sends datagrams 0 .. count-1, one every `gapMs` (a timer each), and returns how many were sent. */
async function trickle(tx: UdpSender, count: number, gapMs: number): Promise<number> {
  const data = new Uint8Array(1500);
  for (let seq = 0; seq < count; seq++) {
    const size = spreadSize(seq, 1400);
    fillDatagram(data, 0, seq, size);
    tx.send(data.subarray(0, size));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return count;
}

describe('options.coalesceMs', () => {
  it('is checked: a number from 0 to 1000, not with eventLoopReceive: true', async () => {
    for (const bad of [-1, 1000.5, Number.NaN, Infinity]) {
      await expect(UdpReceiver.open({ host, coalesceMs: bad })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    }
    await expect(UdpReceiver.open({ host, coalesceMs: '5' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(UdpReceiver.open({ host, coalesceMs: 5, eventLoopReceive: true }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('coalesceMs') });
    for (const good of [0, 0.25, 1000]) {
      const rx = await UdpReceiver.open({ host, coalesceMs: good, eventLoopReceive: good === 0 ? true : undefined });
      await rx.close();
    }
  });

  it('a trickle arrives in far fewer batches than datagrams, byte for byte, counts reconciled, the thread receiving', async () => {
    const rx = await UdpReceiver.open({ host, coalesceMs: 250 });
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
    // 60 datagrams 2 ms apart: ~120 ms of traffic on an idle machine, a few windows of 250 ms on a slow one.
    const sent = await trickle(tx, 60, 2);
    await waitUntil(() => seq === sent, 10_000, 'every datagram delivered');
    const s = rx.stats();
    expect({ seq, bad }).toEqual({ seq: sent, bad: 0 });
    expect(s.packets).toBe(sent);
    expect(s.ringDrops + s.kernelDrops + s.truncated).toBe(0);
    // Without coalescing each datagram goes alone (the gap is far longer than a receive).
    expect(batches).toBeLessThanOrEqual(sent / 5);
    expect(s.directBatches).toBe(0);
    await rx.close();
    await done;
    tx.close();
  });

  it('close while the thread waits to receive: the datagram it waited for is counted, not lost silently', async () => {
    const rx = await UdpReceiver.open({ host, coalesceMs: 1000 });
    const tx = await UdpSender.open({ host, port: rx.address().port });
    let delivered = 0;
    const done = rx.onBatch((batch) => {
      delivered += batch.length;
    });
    tx.send(new Uint8Array(100));
    await waitUntil(() => rx.stats().threadWakeups > 0, 10_000, 'the thread to wake for the datagram');
    await rx.close();
    await done;
    const s = rx.stats();
    expect(delivered + s.discarded + s.kernelDrops + s.ringDrops).toBe(1);
    tx.close();
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
