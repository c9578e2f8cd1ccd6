// Kernel receive timestamps (options.timestamps): one per datagram, from the
// kernel's clock, and the queueing delay they give in stats().
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';

describe('kernel receive timestamps', () => {
  it('every datagram has one, in order, between the send and the delivery', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', timestamps: true });
    const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
    const count = 20_000;
    const data = new Uint8Array(64 * 100);
    const sentFrom = Date.now() * 1000;
    let sent = 0;
    let seen = 0;
    let last = 0;
    let outOfWindow = 0;
    let backwards = 0;
    let worstBackwardUs = 0;
    const iterator = rx[Symbol.asyncIterator]();
    while (seen < count) {
      if (sent < count) sent += tx.sendBatch(data, 64, Math.min(100, count - sent));
      const { value: batch } = await iterator.next();
      const deliveredAt = Date.now() * 1000;
      for (let i = 0; i < batch!.length; i++, seen++) {
        const at = batch!.timestamp(i);
        // Two vCPUs' clocks may disagree by a few µs when the sender moves between them.
        if (at < last - 10) backwards++;
        if (at < last) worstBackwardUs = Math.max(worstBackwardUs, last - at);
        last = at;
        // Date.now() has millisecond steps: allow two either side.
        if (at < sentFrom - 2000 || at > deliveredAt + 2000) outOfWindow++;
      }
    }
    expect({ seen, backwards, outOfWindow }, `worst step backwards ${worstBackwardUs} µs`).toEqual({ seen: count, backwards: 0, outOfWindow: 0 });
    const { queueDelay, packets, kernelDrops, ringDrops } = rx.stats();
    expect({ packets, kernelDrops, ringDrops }).toEqual({ packets: count, kernelDrops: 0, ringDrops: 0 });
    expect(queueDelay!.count).toBe(count);
    expect(queueDelay!.p50).toBeGreaterThanOrEqual(0);
    expect(queueDelay!.p99).toBeLessThanOrEqual(queueDelay!.max);
    await iterator.return!();
    tx.close();
  });

  it('are off by default: timestamp(i) says how to turn them on, and stats().queueDelay is null', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
    tx.send(new Uint8Array([1]));
    for await (const batch of rx) {
      expect(() => batch.timestamp(0)).toThrow(expect.objectContaining({ code: 'ERR_UDP_RING_NO_TIMESTAMPS' }));
      expect(() => batch.timestamp(0)).toThrow(/timestamps: true/);
      break;
    }
    expect(rx.stats().queueDelay).toBeNull();
    tx.close();
  });

  it('a wrong type for the option is a TypeError naming it', async () => {
    await expect(UdpReceiver.open({ timestamps: 'yes' as unknown as boolean })).rejects.toMatchObject({
      name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.timestamps'),
    });
  });
});
