import { describe, expect, it } from 'vitest';
import { UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram, openLoopback } from '../helpers.js';

describe('smoke', () => {
  it('receives datagrams in order, byte for byte, with their source', async () => {
    const rx = await openLoopback();
    const tx = await UdpSender.open({ port: rx.address().port });
    const size = 64;
    const data = new Uint8Array(size * 100);
    for (let s = 0; s < 100; s++) fillDatagram(data, s * size, s, size);
    expect(tx.sendBatch(data, size)).toBe(100);
    let seen = 0;
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++, seen++) {
        expect(batch.size(i)).toBe(size);
        expect(checkDatagram(batch.bytes, batch.offset(i), seen, size)).toBe(-1);
        expect(batch.port(i)).toBe(tx.address().port);
        expect(batch.family(i)).toBe(4);
        expect(batch.address(i)).toBe('127.0.0.1');
      }
      if (seen === 100) break;
    }
    expect(rx.closed).toBe(true);
    const stats = rx.stats();
    expect(stats.packets).toBe(100);
    expect(stats.kernelDrops + stats.ringDrops).toBe(0);
    tx.close();
  });
});
