// udp-ring/jetstream against a real 3-node nats-server cluster with JetStream
// on loopback (Debian package nats-server, which .ci/run installs for the
// `npm run test:system` stage; its absence fails this file, never skips it).
// Each test checks the accounting exactly:
//   sent = acked + failed + skipped + ringDrops + kernelDrops + discarded
// and reads the stream back, byte for byte, each datagram at most once.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { JetStreamPublisher, type JetStreamPublisherStats } from '../../dist/adapters/jetstream.js';
import { NatsCluster, natsServerVersion } from '../fixtures/nats-cluster.mjs';
import { checkDatagram, fillDatagram, waitUntil } from '../helpers.js';

const version = natsServerVersion();
let cluster: NatsCluster;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

// Datagram seq: 8..207 bytes, seq in its first 4 bytes; every 1000th is a "heartbeat" map() skips.
const sizeOf = (seq: number) => 8 + ((seq * 2654435761) >>> 0) % 200;
const skipped = (seq: number) => seq % 1000 === 999;

function mapper(batch: { bytes: Uint8Array; offset(i: number): number; size(i: number): number; payload(i: number): Uint8Array }, i: number) {
  const at = batch.offset(i);
  const b = batch.bytes;
  const seq = b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24);
  if (skipped(seq)) return null;
  // One "source" per subject: seq mod 4 stands for the sender's address.
  return { suffix: `src${seq & 3}`, payload: batch.payload(i) };
}

/**
 * JetStream's API answers "temporarily unavailable" while its meta group elects a leader (after
 * a pause or a restart, seen in CI): try again, for up to 30 s.
 */
async function jsApi<T>(call: () => Promise<T>): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!/temporarily unavailable/i.test(String((error as Error)?.message)) || Date.now() - start > 30_000) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function stream(name: string): Promise<void> {
  await jsApi(() => jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: 3, duplicate_window: 120e9 }));
}

interface Sending { sent: () => number; done: Promise<void> }

/**
 * Sends datagrams 0..total-1 in batches of 64. `ahead` bounds how far sending runs ahead of
 * what the publisher has settled (closed loop: nothing need be lost); Infinity sends at `rate`.
 */
function send(port: number, total: number, publisher: () => JetStreamPublisher | null, ahead: number, rate = 20_000): Sending {
  let seq = 0;
  const buf = new Uint8Array(64 * 256);
  const sizes = new Uint32Array(64);
  const done = (async () => {
    const tx = await UdpSender.open({ port });
    const start = performance.now();
    while (seq < total) {
      const p = publisher();
      if (p !== null && Number.isFinite(ahead)) {
        const s = p.stats();
        if (seq - (s.acked + s.failed + s.skipped) > ahead) { await new Promise((r) => setTimeout(r, 2)); continue; }
      } else if (seq > (performance.now() - start) * rate / 1000) { await new Promise((r) => setTimeout(r, 2)); continue; }
      let n = 0;
      let at = 0;
      for (; n < 64 && seq + n < total; n++) {
        const size = sizeOf(seq + n);
        fillDatagram(buf, at, seq + n, size);
        sizes[n] = size;
        at += size;
      }
      const accepted = tx.sendBatch(buf, sizes, n);
      seq += accepted;
      if (accepted < n) await new Promise((r) => setTimeout(r, 1));
      else await new Promise((r) => setImmediate(r));
    }
    tx.close();
  })();
  return { sent: () => seq, done };
}

/** Reads stream `name` back: per seq how many copies, and how many were wrong. */
async function readBack(name: string, total: number): Promise<{ stored: number; copies: Uint8Array; wrong: number }> {
  const info = await jsApi(() => jsm.streams.info(name));
  const stored = info.state.messages;
  const copies = new Uint8Array(total);
  let wrong = 0;
  let read = 0;
  if (stored > 0) {
    const consumer = await jsApi(() => js.consumers.get(name));
    const messages = await jsApi(() => consumer.consume({ max_messages: 4096 }));
    for await (const m of messages) {
      const d = m.data;
      const seq = d.length >= 4 ? (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) : -1;
      if (seq < 0 || seq >= total || d.length !== sizeOf(seq) || checkDatagram(d, 0, seq, d.length) !== -1 ||
          m.subject !== `${name}.src${seq & 3}`) wrong++;
      else copies[seq]++;
      if (++read === stored) break;
    }
    await messages.close();
  }
  return { stored, copies, wrong };
}

function lossTotal(s: JetStreamPublisherStats): number {
  return s.receiver.ringDrops + s.receiver.kernelDrops + s.receiver.discarded;
}

// A receiver, and a publisher forwarding what it receives to `subject` while
// send() sends it `total` numbered datagrams (see send() for the pacing).
async function startPublishing(total: number, receiverOptions: Parameters<typeof UdpReceiver.open>[0],
  options: Omit<ConstructorParameters<typeof JetStreamPublisher>[2], 'map'>, ahead: number, rate?: number, paced = true) {
  const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, ...receiverOptions });
  let publisher: JetStreamPublisher | null = null;
  const sending = send(rx.address().port, total, () => (paced ? publisher : null), ahead, rate);
  publisher = new JetStreamPublisher(rx, js, { ...options, map: mapper });
  return { rx, publisher, sending };
}

// Waits until each of `total` datagrams is acked, failed, skipped or (`lost`)
// counted as lost, closes the publisher and returns its stats.
async function settle(publisher: JetStreamPublisher, total: number, timeoutMs: number, lost = false): Promise<JetStreamPublisherStats> {
  await waitUntil(() => {
    const s = publisher.stats();
    return s.acked + s.failed + s.skipped + (lost ? lossTotal(s) : 0) >= total;
  }, timeoutMs, 'every datagram settled');
  await publisher.close();
  return publisher.stats();
}

// What the stream holds: each datagram once, but for those the mapper skips.
function expectEachOnce(back: { copies: Uint8Array }, total: number): void {
  let missing = 0;
  let twice = 0;
  for (let seq = 0; seq < total; seq++) {
    if (back.copies[seq] > 1) twice++;
    if (back.copies[seq] !== (skipped(seq) ? 0 : 1)) missing++;
  }
  expect({ missing, twice }).toEqual({ missing: 0, twice: 0 });
}

beforeAll(async () => {
  if (version === null) return;
  cluster = await NatsCluster.start();
  nc = await connect({ servers: cluster.servers, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
});

afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
});

describe('udp-ring/jetstream against a 3-node JetStream cluster', () => {
  it('nats-server is installed', () => {
    expect(version, 'nats-server is missing: apt-get install nats-server (.ci/run does)').not.toBeNull();
  });

  it('200,000 datagrams arrive in a 3-replica stream byte for byte, each once, every one counted', async () => {
    await stream('all');
    const total = 200_000;
    const { publisher, sending } = await startPublishing(total, {}, { subject: 'all' }, 20_000);
    await sending.done;
    const s = await settle(publisher, total, 120_000);
    const skips = total / 1000;
    expect(s).toMatchObject({ acked: total - skips, failed: 0, skipped: skips, inFlight: 0, unaccounted: 0 });
    expect(s.receiver).toMatchObject({ kernelDrops: 0, ringDrops: 0, discarded: 0, delivered: total });
    expect(s.inFlightHighWater).toBeLessThanOrEqual(512);
    const back = await readBack('all', total);
    expect(back.wrong).toBe(0);
    expect(back.stored).toBe(total - skips);
    expectEachOnce(back, total);
    console.log('200k:', JSON.stringify({ ...s, receiver: undefined, meanBatchSize: s.receiver.meanBatchSize }));
  });

  it('a server SIGKILLed mid-stream and restarted: nothing lost, nothing stored twice', async () => {
    await stream('kill');
    const total = 60_000;
    const { publisher, sending } = await startPublishing(total, {}, { subject: 'kill', ackTimeout: 1000, retries: 30 }, 20_000);
    await waitUntil(() => publisher.stats().acked > 15_000, 60_000, '15k acks');
    // The server this connection is on: its in-flight publishes lose their acks, the client reconnects.
    const victim = cluster.nodes.findIndex((n) => n.name === nc.info?.server_name);
    expect(victim).toBeGreaterThanOrEqual(0);
    await cluster.kill(victim);
    await new Promise((r) => setTimeout(r, 2000));
    await cluster.restart(victim);
    await sending.done;
    const s = await settle(publisher, total, 120_000, true);
    console.log('kill:', JSON.stringify({ ...s, receiver: undefined, kernelDrops: s.receiver.kernelDrops }));
    expect(s.acked + s.failed + s.skipped + lossTotal(s)).toBe(total);
    expect(s.unaccounted).toBe(0);
    expect(s.failed).toBe(0);
    expect(lossTotal(s)).toBe(0);
    const back = await readBack('kill', total);
    expect(back.wrong).toBe(0);
    expectEachOnce(back, total);
  });

  it.each(['drop', 'block'] as const)('all servers SIGSTOPped: the ring fills, overflow %s acts, the accounting is exact', async (overflow) => {
    const name = `pause_${overflow}`;
    await stream(name);
    const total = 60_000;
    // A small ring, and with 'block' a small kernel buffer, so 3 s of stall overflows them.
    const { publisher, sending } = await startPublishing(total, { overflow, ringBytes: 1 << 20, maxMessageSize: 1024,
      recvBufferSize: 256 << 10 }, { subject: name, maxInFlight: 256, ackTimeout: 1000, retries: 30 }, Infinity, 15_000, false);
    await waitUntil(() => publisher.stats().acked > 5000, 60_000, '5k acks');
    cluster.pauseAll();
    await waitUntil(() => publisher!.stats().inFlight === 256, 10_000, 'the bound reached');
    await new Promise((r) => setTimeout(r, 3000));
    const during = publisher.stats();
    cluster.resumeAll();
    await cluster.waitHealthy();
    await sending.done;
    const s = await settle(publisher, total, 120_000, true);
    console.log(`pause ${overflow}:`, JSON.stringify({ ...s, receiver: undefined, ringDrops: s.receiver.ringDrops,
      kernelDrops: s.receiver.kernelDrops, discarded: s.receiver.discarded }));
    expect(s.acked + s.failed + s.skipped + lossTotal(s)).toBe(total);
    expect(s.unaccounted).toBe(0);
    expect(during.backpressureWaits).toBeGreaterThan(0);
    expect(s.inFlightHighWater).toBe(256);
    if (overflow === 'drop') expect(s.receiver.ringDrops).toBeGreaterThan(0);
    else expect(s.receiver.ringDrops).toBe(0);
    expect(s.receiver.kernelDrops + s.receiver.ringDrops).toBeGreaterThan(0);
    const back = await readBack(name, total);
    expect(back.wrong).toBe(0);
    // Stored: everything acked, once (a duplicate ack means an earlier attempt, whose ack was
    // lost, was stored); a failed one may or may not be.
    let stored = 0;
    let twice = 0;
    for (let seq = 0; seq < total; seq++) { if (back.copies[seq] > 1) twice++; if (back.copies[seq] > 0) stored++; }
    expect(twice).toBe(0);
    expect(stored).toBeGreaterThanOrEqual(s.acked);
    expect(stored).toBeLessThanOrEqual(s.acked + s.failed);
    expect(back.stored).toBe(stored);
  });

  it('a message the stream refuses is counted as failed with the server\'s reason, not retried', async () => {
    await jsApi(() => jsm.streams.add({ name: 'small', subjects: ['small.>'], num_replicas: 3, max_msg_size: 100 }));
    const total = 2000;
    const { publisher, sending } = await startPublishing(total, {}, { subject: 'small' }, 1000);
    await sending.done;
    const s = await settle(publisher, total, 60_000);
    // The limit counts the headers (Nats-Msg-Id) too, so it refuses payloads somewhat under 100 bytes.
    let large = 0;
    for (let seq = 0; seq < total; seq++) if (!skipped(seq) && sizeOf(seq) > 100) large++;
    expect(s.failed).toBeGreaterThanOrEqual(large);
    expect(s).toMatchObject({ acked: total - 2 - s.failed, skipped: 2, retried: 0, unaccounted: 0 });
    expect(Object.keys(s.failures)).toHaveLength(1);
    expect(Object.keys(s.failures)[0]).toMatch(/message size exceeds maximum/i);
    expect((await readBack('small', total)).stored).toBe(s.acked);
  });

  it('udp-ring listen --jetstream publishes and shows the same accounting', async () => {
    await jsApi(() => jsm.streams.add({ name: 'cli', subjects: ['cli'], num_replicas: 3 }));
    const cli = fileURLToPath(new URL('../../dist/tools/cli/index.js', import.meta.url));
    const child = spawn(process.execPath, [cli, 'listen', '-p', '0', '-H', '127.0.0.1', '--json', '--jetstream', cluster.servers.join(','),
      '--subject', 'cli'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const lines: string[] = [];
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    await waitUntil(() => lines.length > 0, 30_000, 'listening');
    const { port } = JSON.parse(lines[0]) as { port: number };
    const total = 5000;
    await send(port, total, () => null, Infinity, 20_000).done;
    await waitUntil(() => lines.some((l) => (JSON.parse(l) as { jetstream?: { acked: number } }).jetstream?.acked === total), 60_000, 'all acked');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const summary = JSON.parse(lines[lines.length - 1]) as { type: string; packets: number; kernelDrops: number; ringDrops: number;
      discarded: number; jetstream: { acked: number; failed: number; skipped: number } };
    expect(summary.type).toBe('summary');
    expect(summary.jetstream).toMatchObject({ acked: total, failed: 0, skipped: 0 });
    expect(summary.packets + summary.kernelDrops).toBe(total);
    expect(summary.jetstream.acked + summary.jetstream.failed + summary.jetstream.skipped + summary.kernelDrops + summary.ringDrops +
      summary.discarded).toBe(total);
    expect((await jsApi(() => jsm.streams.info('cli'))).state.messages).toBe(total);
  });

  it('examples/ingest-jetstream.mjs: statsd datagrams into the cluster, the same report as the Redis example', async () => {
    const service = fileURLToPath(new URL('../../examples/ingest-jetstream.mjs', import.meta.url));
    const child = spawn(process.execPath, [service, '0', cluster.servers.join(','), 'STATSD'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const lines: string[] = [];
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    await waitUntil(() => lines.length > 0, 30_000, 'ready');
    const { port } = JSON.parse(lines[0]) as { port: number };
    const tx = await UdpSender.open({ port });
    const encoder = new TextEncoder();
    for (let k = 0; k < 1000; k++) tx.send(encoder.encode(`m.${k}:${k}|c\nm.${k}.t:${k}|ms`));
    tx.send(encoder.encode('not a metric'));
    tx.close();
    // Polls the stream (the limit only catches a hang).
    const start = Date.now();
    while ((await jsm.streams.info('STATSD').catch(() => null))?.state.messages !== 1000 && Date.now() - start < 60_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const report = JSON.parse(lines[lines.length - 1]) as Record<string, number>;
    expect(report).toMatchObject({ datagrams: 1001, acked: 1000, failed: 0, skipped: 1, metrics: 2000, malformed: 1,
      kernelDrops: 0, ringDrops: 0, discarded: 0 });
    const subjects = await jsApi(() => jsm.streams.info('STATSD', { subjects_filter: '>' }));
    expect(Object.keys(subjects.state.subjects ?? {})).toHaveLength(1);
  });

  it('close() drains: the ring is published and outstanding acks awaited, even while the cluster stalls', async () => {
    await stream('drain');
    const total = 20_000;
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, ringBytes: 16 << 20 });
    const publisher = new JetStreamPublisher(rx, js, { subject: 'drain', map: mapper, maxInFlight: 128, ackTimeout: 1000, retries: 30 });
    await waitUntil(() => true, 10);
    cluster.pauseAll();
    // The burst goes into the ring while nothing is acked.
    const sending = send(rx.address().port, total, () => null, Infinity, 1e9);
    await sending.done;
    await waitUntil(() => rx.stats().packets === total, 30_000, 'the burst in the ring');
    expect(publisher.stats().inFlight).toBe(128);
    let closed = 0;
    const closing = publisher.close().then(() => { closed = Date.now(); });
    await new Promise((r) => setTimeout(r, 1500));
    expect(closed).toBe(0);
    const resumed = Date.now();
    cluster.resumeAll();
    await closing;
    expect(closed).toBeGreaterThanOrEqual(resumed);
    const s = publisher.stats();
    console.log('drain:', JSON.stringify({ ...s, receiver: undefined }));
    expect(s).toMatchObject({ failed: 0, inFlight: 0, skipped: total / 1000, acked: total - total / 1000, unaccounted: 0 });
    expect(lossTotal(s)).toBe(0);
    const back = await readBack('drain', total);
    expect(back.wrong).toBe(0);
    expect(back.stored).toBe(total - total / 1000);
  });
});
