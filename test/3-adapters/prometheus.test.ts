// udp-ring/prometheus: a receiver's stats on a prom-client registry, read at
// scrape time; and examples/metrics-server.mjs scraped over HTTP while
// traffic flows, until the numbers add up to what was sent.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { UdpSender } from '../../dist/index.js';
import { registerReceiverMetrics } from '../../dist/adapters/prometheus.js';
import { openLoopback, waitUntil } from '../helpers.js';

/** Parses the text exposition format into `name{labels}` -> value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const expectedMetrics: Record<string, 'counter' | 'gauge'> = {
  udp_ring_datagrams_received_total: 'counter',
  udp_ring_bytes_received_total: 'counter',
  udp_ring_kernel_drops_total: 'counter',
  udp_ring_ring_drops_total: 'counter',
  udp_ring_discarded_total: 'counter',
  udp_ring_truncated_total: 'counter',
  udp_ring_receive_batches_total: 'counter',
  udp_ring_receive_calls_total: 'counter',
  udp_ring_direct_batches_total: 'counter',
  udp_ring_coalescing_windows_total: 'counter',
  udp_ring_wakeups_total: 'counter',
  udp_ring_thread_wakeups_total: 'counter',
  udp_ring_producer_stalls_total: 'counter',
  udp_ring_ring_bytes: 'gauge',
  udp_ring_ring_bytes_used: 'gauge',
  udp_ring_ring_datagrams: 'gauge',
  udp_ring_ring_high_water_bytes: 'gauge',
  udp_ring_recv_buffer_bytes: 'gauge',
  udp_ring_recv_buffer_capped: 'gauge',
  udp_ring_kernel_queue_bytes: 'gauge',
  udp_ring_queue_delay_p50_seconds: 'gauge',
  udp_ring_queue_delay_p99_seconds: 'gauge',
  udp_ring_queue_delay_p999_seconds: 'gauge',
  udp_ring_queue_delay_max_seconds: 'gauge',
};

describe('udp-ring/prometheus', () => {
  it('reports the queueing delay of a receiver with timestamps, in seconds, as stats() has it in µs', async () => {
    const registry = new Registry();
    const rx = await openLoopback({ timestamps: true });
    const { port } = rx.address();
    registerReceiverMetrics(rx, { registry });
    const tx = await UdpSender.open({ port });
    expect(tx.sendBatch(new Uint8Array(10 * 50), 10)).toBe(50);
    let seen = 0;
    for await (const batch of rx) if ((seen += batch.length) === 50) break;
    const samples = parse(await registry.metrics());
    const delay = rx.stats().queueDelay!;
    expect(delay.count).toBe(50);
    const label = `{socket="127.0.0.1:${port}"}`;
    expect(samples.get(`udp_ring_queue_delay_p50_seconds${label}`)).toBeCloseTo(delay.p50 / 1e6, 9);
    expect(samples.get(`udp_ring_queue_delay_max_seconds${label}`)).toBeCloseTo(delay.max / 1e6, 9);
    tx.close();
  });

  it('registers counters and gauges in Prometheus style, each with help text and a socket label', async () => {
    const registry = new Registry();
    const rx = await openLoopback({ maxMessageSize: 100 });
    const { port } = rx.address();
    const metrics = registerReceiverMetrics(rx, { registry });
    expect(metrics.socket).toBe(`127.0.0.1:${port}`);
    const json = await registry.getMetricsAsJSON();
    expect(Object.fromEntries(json.map((m) => [m.name, m.type]))).toEqual(expectedMetrics);
    for (const m of json) {
      expect(m.help.length, m.name).toBeGreaterThan(10);
      // Queueing delay needs timestamps: true, which this receiver does not keep.
      const expected = m.name.startsWith('udp_ring_queue_delay_') ? [] : [{ socket: `127.0.0.1:${port}` }];
      expect(m.values.map((v) => v.labels), m.name).toEqual(expected);
    }
    const label = `{socket="127.0.0.1:${port}"}`;
    expect(parse(await registry.metrics()).get(`udp_ring_datagrams_received_total${label}`)).toBe(0);
    // Values come from stats() when scraped: send, read, scrape again.
    const tx = await UdpSender.open({ port });
    const data = new Uint8Array(150 * 30);
    expect(tx.sendBatch(data, 150)).toBe(30);
    let seen = 0;
    for await (const batch of rx) if ((seen += batch.length) === 30) break;
    const samples = parse(await registry.metrics());
    const stats = rx.stats();
    expect(samples.get(`udp_ring_datagrams_received_total${label}`)).toBe(30);
    expect(samples.get(`udp_ring_bytes_received_total${label}`)).toBe(stats.bytes);
    expect(samples.get(`udp_ring_truncated_total${label}`)).toBe(30);
    expect(samples.get(`udp_ring_receive_batches_total${label}`)).toBe(stats.batches);
    expect(samples.get(`udp_ring_ring_bytes${label}`)).toBe(stats.ringBytes);
    expect(samples.get(`udp_ring_ring_high_water_bytes${label}`)).toBe(stats.ringHighWater);
    expect(samples.get(`udp_ring_recv_buffer_bytes${label}`)).toBe(stats.recvBufferSize);
    tx.close();
    metrics.remove();
    expect(parse(await registry.metrics()).has(`udp_ring_datagrams_received_total${label}`)).toBe(false);
  });

  it('reports several receivers on one registry, and refuses a second receiver with the same label', async () => {
    const registry = new Registry();
    const a = await openLoopback();
    const b = await openLoopback({ type: 'udp6', host: '::1' });
    registerReceiverMetrics(a, { registry });
    const mb = registerReceiverMetrics(b, { registry });
    expect(mb.socket).toBe(`[::1]:${b.address().port}`);
    const named = registerReceiverMetrics(a, { registry, socket: 'ingest' });
    expect(() => registerReceiverMetrics(b, { registry, socket: 'ingest' })).toThrow(/already registered/);
    const tx = await UdpSender.open({ port: b.address().port, host: '::1' });
    tx.sendBatch(new Uint8Array(50), 10);
    await waitUntil(() => b.stats().packets === 5, 30_000, 'datagrams on b');
    const samples = parse(await registry.metrics());
    expect(samples.get(`udp_ring_datagrams_received_total{socket="127.0.0.1:${a.address().port}"}`)).toBe(0);
    expect(samples.get(`udp_ring_datagrams_received_total{socket="ingest"}`)).toBe(0);
    expect(samples.get(`udp_ring_datagrams_received_total{socket="[::1]:${b.address().port}"}`)).toBe(5);
    named.remove();
    tx.close();
    await a.close();
    await b.close();
    // A closed receiver has no address to name it by; an explicit label still works.
    expect(() => registerReceiverMetrics(a, { registry: new Registry() })).toThrow();
    expect(registerReceiverMetrics(a, { registry: new Registry(), socket: 'closed' }).socket).toBe('closed');
  });

  it('shows what close discarded unread: received = delivered + discarded', async () => {
    const registry = new Registry();
    const rx = await openLoopback();
    const { port } = rx.address();
    registerReceiverMetrics(rx, { registry });
    const tx = await UdpSender.open({ host: '127.0.0.1', port });
    tx.sendBatch(new Uint8Array(100 * 10), 10, 100);
    tx.close();
    await waitUntil(() => rx.stats().packets === 100, 10_000, 'the datagrams in the ring');
    await rx.close();
    const label = `{socket="127.0.0.1:${port}"}`;
    const samples = parse(await registry.metrics());
    expect(samples.get(`udp_ring_datagrams_received_total${label}`)).toBe(100);
    expect(samples.get(`udp_ring_discarded_total${label}`)).toBe(100);
  });

  it('is the only module that imports prom-client', () => {
    const dist = fileURLToPath(new URL('../../dist/', import.meta.url));
    const files = (readdirSync(dist, { recursive: true }) as string[]).filter((f) => f.endsWith('.js'));
    const importers = files.filter((f) => /from ['"]prom-client['"]|import\(['"]prom-client['"]\)|require\(['"]prom-client['"]\)/.test(readFileSync(join(dist, f), 'utf8')));
    // The ESM build and its CommonJS twin (dist/cjs).
    expect(importers.sort()).toEqual([join('adapters', 'prometheus.js'), join('cjs', 'adapters', 'prometheus.js')]);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(pkg.exports['./prometheus']).toEqual({
      import: { types: './dist/adapters/prometheus.d.ts', default: './dist/adapters/prometheus.js' },
      require: { types: './dist/cjs/adapters/prometheus.d.ts', default: './dist/cjs/adapters/prometheus.js' },
    });
    expect(pkg.peerDependencies['prom-client']).toBeDefined();
    expect(pkg.peerDependenciesMeta['prom-client']).toEqual({ optional: true });
  });
});

describe('examples/metrics-server.mjs', () => {
  it('serves /metrics while traffic flows; received + drops = sent', async () => {
    const example = fileURLToPath(new URL('../../examples/metrics-server.mjs', import.meta.url));
    const child = spawn(process.execPath, [example, '0', '0'], { timeout: 60_000 });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await waitUntil(() => stdout.includes('\n') || child.exitCode !== null, 30_000, 'the example to start');
      const ready = JSON.parse(stdout.split('\n')[0]);
      const port = Number(ready.socket.split(':').at(-1));
      const label = `{socket="${ready.socket}"}`;
      const scrape = async () => {
        const response = await fetch(ready.metrics);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toContain('text/plain');
        return parse(await response.text());
      };

      const tx = await UdpSender.open({ port });
      const size = 200;
      const burst = new Uint8Array(size * 500);
      let sent = 0;
      let previous = -1;
      let scrapes = 0;
      // Send in bursts and scrape between them: counters only grow.
      for (let round = 0; round < 40; round++) {
        sent += tx.sendBatch(burst, size);
        const samples = await scrape();
        scrapes++;
        const received = samples.get(`udp_ring_datagrams_received_total${label}`)!;
        expect(received).toBeGreaterThanOrEqual(previous);
        expect(received).toBeLessThanOrEqual(sent);
        previous = received;
      }
      tx.close();
      expect(sent).toBe(20_000);
      // Once drained, every datagram is either received or counted as dropped.
      let last = new Map<string, number>();
      const start = Date.now();
      for (;;) {
        last = await scrape();
        scrapes++;
        if (accounted(last, label) === sent || Date.now() - start > 30_000) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(accounted(last, label)).toBe(sent);
      expect(last.get(`udp_ring_bytes_received_total${label}`)).toBe(last.get(`udp_ring_datagrams_received_total${label}`)! * size);
      expect(last.get('process_cpu_seconds_total')).toBeGreaterThan(0); // default metrics share the registry
      expect(scrapes).toBeGreaterThan(40);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(summary.stopped).toBe(true);
  });
});

function accounted(samples: Map<string, number>, label: string): number {
  return (samples.get(`udp_ring_datagrams_received_total${label}`) ?? 0) +
    (samples.get(`udp_ring_kernel_drops_total${label}`) ?? 0) +
    (samples.get(`udp_ring_ring_drops_total${label}`) ?? 0);
}
