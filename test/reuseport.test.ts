// Receivers in several worker threads share one port with SO_REUSEPORT: all
// together receive every datagram, sent from many source ports, exactly once.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { UdpSender } from '../dist/index.js';
import { startReceiverWorkers } from '../dist/adapters/workers.js';
import { fillDatagram, waitUntil } from './helpers.js';

describe('reuseport: receivers in worker threads share a port', () => {
  it('N workers together receive every datagram from 64 source ports exactly once', { timeout: 120_000 }, async () => {
    const workers = 3;
    const sources = 64;
    const perSource = 1500;
    const count = sources * perSource;
    const size = 64;
    const counts = new SharedArrayBuffer(count * 4);
    const total = new SharedArrayBuffer(4);
    const group = await startReceiverWorkers(new URL('./fixtures/reuseport-worker.mjs', import.meta.url), workers, {
      host: '127.0.0.1', data: { counts, total },
    });
    expect(group.workers.length).toBe(workers);
    // Every listener before 'stop': a worker that reports first can exit before
    // the slowest one reports, and 'exit' is emitted once, not buffered (this hung).
    const reports = group.workers.map((w) => once(w, 'message') as Promise<[{ mine: number; stats: { packets: number; kernelDrops: number; ringDrops: number } }]>);
    const exits = group.workers.map((w) => new Promise((resolve) => w.once('exit', resolve)));
    try {
      let sent = 0;
      const data = new Uint8Array(perSource * size);
      for (let source = 0; source < sources; source++) {
        const tx = await UdpSender.open({ port: group.port });
        for (let k = 0; k < perSource; k++) fillDatagram(data, k * size, source * perSource + k, size);
        sent += tx.sendBatch(data, size);
        tx.close();
      }
      expect(sent).toBe(count);
      const received = new Int32Array(total);
      await waitUntil(() => Atomics.load(received, 0) >= count, 60_000, 'every datagram to arrive');
      for (const w of group.workers) w.postMessage('stop');
      const results = (await Promise.all(reports)).map(([r]) => r);
      await Promise.all(exits);

      const perSeq = new Int32Array(counts);
      let missing = 0;
      let duplicated = 0;
      for (let s = 0; s < count; s++) {
        if (perSeq[s] === 0) missing++;
        else if (perSeq[s] > 1) duplicated++;
      }
      console.log(`reuseport: ${workers} workers received ${results.map((r) => r.mine).join(' + ')} = ${count}`);
      expect({ missing, duplicated }).toEqual({ missing: 0, duplicated: 0 });
      expect(results.reduce((a, r) => a + r.mine, 0)).toBe(count);
      for (const r of results) expect(r.stats.kernelDrops + r.stats.ringDrops).toBe(0);
      // With 64 flows hashed over 3 sockets, more than one socket gets traffic.
      expect(results.filter((r) => r.mine > 0).length).toBeGreaterThan(1);
    } finally {
      await Promise.all(group.workers.map((w) => w.terminate()));
    }
  });
});
