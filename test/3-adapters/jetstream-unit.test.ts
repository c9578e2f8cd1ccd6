// udp-ring/jetstream without a server (part of `npm test`): a fake JetStream
// client whose acks the test hands out, to pin down the bound on publishes in
// flight, retries with the same message id, failure reasons, skips, options,
// and the CommonJS twin. The real cluster is in test/3-adapters/jetstream.test.ts.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { JetStreamPublisher } from '../../dist/adapters/jetstream.js';
import { checkDatagram, fillDatagram, waitUntil } from '../helpers.js';

interface Call { subject: string; payload: Uint8Array; msgID: string; resolve: (duplicate?: boolean) => void; reject: (e: Error) => void }

function fakeJetStream() {
  const calls: Call[] = [];
  return {
    calls,
    publish(subject: string, payload: Uint8Array, options: { msgID: string }) {
      return new Promise<{ stream: string; seq: number; duplicate: boolean }>((resolve, reject) => {
        calls.push({ subject, payload, msgID: options.msgID, reject,
          resolve: (duplicate = false) => resolve({ stream: 'S', seq: calls.length, duplicate }) });
      });
    },
  };
}

async function sendAll(port: number, datagrams: Uint8Array[]): Promise<void> {
  const tx = await UdpSender.open({ port });
  for (const d of datagrams) tx.send(d);
  tx.close();
}

const timeout = () => Object.assign(new Error('timeout'), { name: 'TimeoutError' });

describe('udp-ring/jetstream with a fake client', () => {
  it('keeps at most maxInFlight publishes out; the rest waits in the ring, not in JavaScript', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', maxInFlight: 8 });
    await sendAll(rx.address().port, Array.from({ length: 100 }, (_, i) => new Uint8Array([i])));
    await waitUntil(() => rx.stats().packets === 100, 10_000, 'all in the ring');
    await new Promise((r) => setTimeout(r, 50));
    expect(js.calls.length).toBe(8);
    expect(publisher.stats()).toMatchObject({ inFlight: 8, acked: 0 });
    expect(rx.stats().ringDatagrams).toBeGreaterThan(0);
    let settled = 0;
    while (settled < 100) {
      await waitUntil(() => js.calls.length > settled, 5_000, 'the next publish');
      js.calls[settled++].resolve();
      expect(publisher.stats().inFlight).toBeLessThanOrEqual(8);
    }
    await publisher.close();
    expect(js.calls.map((c) => c.payload[0])).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(js.calls.every((c) => c.subject === 'udp')).toBe(true);
    expect(new Set(js.calls.map((c) => c.msgID)).size).toBe(100);
    expect(publisher.stats()).toMatchObject({ acked: 100, failed: 0, inFlight: 0, inFlightHighWater: 8, unaccounted: 0 });
    expect(publisher.stats().backpressureWaits).toBeGreaterThan(0);
  });

  it('retries a timeout with the same message id; gives up after `retries`, counting the reason', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', retries: 2, retryDelay: 1,
      map: (batch, i) => (batch.bytes[batch.offset(i)] === 9 ? null : { suffix: `k${batch.bytes[batch.offset(i)]}`, payload: batch.payload(i) }) });
    await sendAll(rx.address().port, [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([9]), new Uint8Array([3])]);
    await waitUntil(() => js.calls.length === 3, 5_000, 'three publishes');
    js.calls[0].reject(timeout());
    js.calls[1].reject(Object.assign(new Error('maximum messages exceeded'), { name: 'JetStreamApiError' }));
    js.calls[2].resolve();
    await waitUntil(() => js.calls.length === 4, 5_000, 'the retry');
    expect(js.calls[3].msgID).toBe(js.calls[0].msgID);
    expect(js.calls[3].subject).toBe('udp.k1');
    js.calls[3].reject(timeout());
    await waitUntil(() => js.calls.length === 5, 5_000, 'the second retry');
    js.calls[4].reject(timeout());
    await publisher.close();
    expect(publisher.stats()).toMatchObject({
      acked: 1, failed: 2, skipped: 1, retried: 2, inFlight: 0, unaccounted: 0,
      failures: { timeout: 1, 'maximum messages exceeded': 1 },
    });
  });

  it('a retry acknowledged as a duplicate counts once, as acked and as a duplicate', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', retryDelay: 0, idPrefix: 'host-a' });
    await sendAll(rx.address().port, [new Uint8Array([1])]);
    await waitUntil(() => js.calls.length === 1, 5_000, 'the publish');
    expect(js.calls[0].msgID).toBe('host-a-0');
    js.calls[0].reject(timeout());
    await waitUntil(() => js.calls.length === 2, 5_000, 'the retry');
    js.calls[1].resolve(true);
    await publisher.close();
    expect(publisher.stats()).toMatchObject({ acked: 1, duplicates: 1, retried: 1, failed: 0 });
  });

  it('a throw in map() fails that datagram, counted, and the rest goes on', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', map: (batch, i) => {
      if (batch.bytes[batch.offset(i)] === 2) throw new Error('bad record');
      return { suffix: '', payload: batch.payload(i) };
    } });
    await sendAll(rx.address().port, [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
    await waitUntil(() => js.calls.length === 2, 5_000, 'two publishes');
    for (const c of js.calls) c.resolve();
    await publisher.close();
    expect(publisher.stats()).toMatchObject({ acked: 2, failed: 1, failures: { 'map: bad record': 1 } });
  });

  it('udp-ring/prometheus reports the publisher, failures by reason', async () => {
    const { Registry } = await import('prom-client');
    const { registerJetStreamMetrics } = await import('../../dist/adapters/prometheus.js');
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', retries: 0 });
    const registry = new Registry();
    const metrics = registerJetStreamMetrics(publisher, { registry, socket: 'a' });
    await sendAll(rx.address().port, [new Uint8Array([1]), new Uint8Array([2])]);
    await waitUntil(() => js.calls.length === 2, 5_000, 'two publishes');
    js.calls[0].resolve();
    js.calls[1].reject(new Error('insufficient resources'));
    await publisher.close();
    const text = await registry.metrics();
    expect(text).toContain('udp_ring_jetstream_acked_total{socket="a"} 1');
    expect(text).toContain('udp_ring_jetstream_failed_total{socket="a",reason="insufficient resources"} 1');
    expect(text).toContain('udp_ring_jetstream_in_flight{socket="a"} 0');
    metrics.remove();
    expect(await registry.metrics()).not.toContain('socket="a"');
  });

  it('rx.close() without a drain while a batch is held: its unpublished datagrams are counted', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', maxInFlight: 2 });
    const tx = await UdpSender.open({ port: rx.address().port });
    tx.sendBatch(new Uint8Array(10), 1, 10);
    tx.close();
    await waitUntil(() => js.calls.length === 2 && rx.stats().packets === 10, 5_000, 'two publishes');
    await rx.close();
    for (const c of js.calls) c.resolve();
    await publisher.close();
    const s = publisher.stats();
    expect(s.acked).toBe(2);
    expect(s.unaccounted).toBe(0);
    expect(s.acked + s.failed + s.skipped + s.receiver.discarded + s.receiver.ringDrops + s.receiver.kernelDrops).toBe(10);
  });

  // The client may hold a payload long after the batch is gone (nats.js queues it; a retry sends
  // it again): the publisher must hand over a copy, not a view of ring memory that the receive
  // thread writes over once the ring wraps. Buffer's slice() is a view, so it once was one.
  for (const map of [false, true]) {
    it(`payloads outlive their batch while the ring wraps${map ? ' (map() returning batch.payload(i))' : ''}`, async () => {
      const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, ringBytes: 64 * 1024, maxMessageSize: 300 });
      const js = fakeJetStream();
      const publisher = new JetStreamPublisher(rx, js, { subject: 'udp', maxInFlight: 100_000,
        map: map ? (batch, i) => ({ suffix: 'm', payload: batch.payload(i) }) : undefined });
      const tx = await UdpSender.open({ port: rx.address().port });
      // 3,000 datagrams of 300 bytes: the ring wraps more than ten times, paced so none is dropped.
      const total = 3000;
      const size = 300;
      const data = new Uint8Array(100 * size);
      for (let sent = 0; sent < total; sent += 100) {
        for (let k = 0; k < 100; k++) fillDatagram(data, k * size, sent + k, size);
        expect(tx.sendBatch(data, size, 100)).toBe(100);
        await waitUntil(() => js.calls.length >= sent + 100 || rx.stats().kernelDrops + rx.stats().ringDrops > 0,
          10_000, 'the batch published');
      }
      tx.close();
      expect(rx.stats()).toMatchObject({ kernelDrops: 0, ringDrops: 0 });
      const bad = js.calls.map((c, seq) => checkDatagram(c.payload, 0, seq, size) === -1 && c.payload.length === size ? -1 : seq)
        .filter((seq) => seq !== -1);
      expect({ published: js.calls.length, bad: bad.slice(0, 5) }).toEqual({ published: total, bad: [] });
      for (const c of js.calls) c.resolve();
      await publisher.close();
      expect(publisher.stats()).toMatchObject({ acked: total, failed: 0, unaccounted: 0 });
    });
  }

  it('checks its arguments', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const js = fakeJetStream();
    expect(() => new JetStreamPublisher(rx, {} as never, { subject: 'a' })).toThrow(TypeError);
    expect(() => new JetStreamPublisher(rx, js, { subject: 'a.>' })).toThrow(/options.subject/);
    expect(() => new JetStreamPublisher(rx, js, { subject: 'a', maxInFlight: 0 })).toThrow(RangeError);
    expect(() => new JetStreamPublisher(rx, js, { subject: 'a', ackTimeout: 1.5 })).toThrow(/options.ackTimeout/);
    await rx.close();
  });

  it('loads through require() too', () => {
    const require = createRequire(import.meta.url);
    const cjs = require('../../dist/cjs/adapters/jetstream.js') as typeof import('../../dist/adapters/jetstream.js');
    expect(typeof cjs.JetStreamPublisher).toBe('function');
    expect(typeof cjs.publishToJetStream).toBe('function');
  });
});
