// The ingest example against a real redis-server (Debian package redis-server,
// which .ci/run installs for the `npm run test:system` stage; its absence fails
// this file, never skips it): a known set of statsd
// metrics sent over UDP arrives in the Redis Stream exactly once, with the
// receiver's loss counters at zero.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import { UdpSender } from '../../dist/index.js';
import { waitUntil } from '../helpers.js';

const haveRedis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;
const service = fileURLToPath(new URL('../../examples/ingest-redis.mjs', import.meta.url));
const children: ChildProcess[] = [];
let scratch = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('ingest: statsd over udp-ring into a Redis Stream', () => {
  it('redis-server is installed', () => {
    expect(haveRedis, 'redis-server is missing: apt-get install redis-server (.ci/run does)').toBe(true);
  });

  it('every metric of a known set arrives once; kernelDrops and ringDrops are zero', async () => {
    scratch = mkdtempSync(join(tmpdir(), 'udp-ring-redis-'));
    const redisPort = await freePort();
    const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', scratch], { stdio: 'ignore' });
    children.push(redis);
    const url = `redis://127.0.0.1:${redisPort}`;
    const client = createClient({ url, socket: { reconnectStrategy: (retries) => (retries > 100 ? new Error('no redis') : 50) } });
    client.on('error', () => {});
    await client.connect();

    const ingest = spawn(process.execPath, [service, '0', url, 'statsd', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(ingest);
    // Listened for from the start: 'exit' is emitted once, and a service that died early must fail the test, not hang it.
    const exited = new Promise<[number | null]>((resolve) => ingest.once('exit', (code) => resolve([code])));
    const lines: string[] = [];
    ingest.stdout!.setEncoding('utf8');
    ingest.stdout!.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    await waitUntil(() => lines.length > 0, 30_000, 'the service to be ready');
    const { port } = JSON.parse(lines[0]) as { port: number };

    // 3,000 metrics: one per datagram, or three per datagram separated by newlines; plus malformed lines.
    const metrics = 3000;
    const tx = await UdpSender.open({ port });
    const encoder = new TextEncoder();
    let datagrams = 0;
    for (let seq = 0; seq < metrics; ) {
      const group = seq % 2 === 0 ? 3 : 1;
      const text = Array.from({ length: Math.min(group, metrics - seq) }, (_, k) =>
        `test.metric.${seq + k}:${seq + k}|${(seq + k) % 3 === 0 ? 'c' : 'ms'}${(seq + k) % 5 === 0 ? '|@0.5' : ''}`).join('\n');
      seq += Math.min(group, metrics - seq);
      tx.send(encoder.encode(text));
      datagrams++;
    }
    tx.send(encoder.encode('not a metric\nbroken:|c'));
    datagrams++;
    tx.close();

    // Polls the stream's length (the limit only catches a hang).
    const start = Date.now();
    while ((await client.xLen('statsd')) < metrics && Date.now() - start < 60_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    ingest.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    const report = JSON.parse(lines[lines.length - 1]) as Record<string, number | string>;

    const entries = await client.xRange('statsd', '-', '+');
    const seen = new Map<string, number>();
    let wrong = 0;
    for (const { message } of entries) {
      seen.set(message.name, (seen.get(message.name) ?? 0) + 1);
      const seq = Number(message.name.slice('test.metric.'.length));
      if (message.value !== String(seq) || message.type !== (seq % 3 === 0 ? 'c' : 'ms') ||
          (seq % 5 === 0 ? message.rate !== '0.5' : message.rate !== undefined)) wrong++;
    }
    await client.quit();
    redis.kill('SIGTERM');

    expect(entries.length).toBe(metrics);
    expect(seen.size).toBe(metrics);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(wrong).toBe(0);
    expect(report).toMatchObject({
      datagrams, metrics, published: metrics, malformed: 2, kernelDrops: 0, ringDrops: 0, truncated: 0, backend: 'native',
      acked: datagrams - 1, failed: 0, skipped: 1, discarded: 0,
    });
    // The accounting udp-ring/jetstream keeps: sent = acked + failed + skipped + kernelDrops + ringDrops + discarded.
    const n = (k: string) => report[k] as number;
    expect(n('acked') + n('failed') + n('skipped') + n('kernelDrops') + n('ringDrops') + n('discarded')).toBe(datagrams);
  });
});
