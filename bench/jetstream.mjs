#!/usr/bin/env node
// Datagrams per second from the socket into a 3-replica JetStream stream with
// nothing lost: udp-ring + udp-ring/jetstream against node:dgram + the same
// client, the same cluster (3 nats-server on loopback, apt: nats-server), in one run.
// Each receiver runs in its own process (bench/jetstream-receiver.mjs); the sender
// here paces 200-byte datagrams at rising rates for `--seconds` each; a rate
// counts as lossless when every datagram sent was acknowledged by the stream.
// Usage: node bench/jetstream.mjs [--seconds 3] [--rates 4000,6000,...]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { UdpSender } from '../dist/index.js';
import { NatsCluster, natsServerVersion } from '../test/fixtures/nats-cluster.mjs';
import { machine } from './system.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' },
  rates: { type: 'string', default: '4000,6000,8000,10000,12000,14000,17000,20000' } } });
const seconds = Number(values.seconds);
const rates = values.rates.split(',').map(Number);
const child = fileURLToPath(new URL('./jetstream-receiver.mjs', import.meta.url));
const size = 200;

async function step(cluster, jsm, mode, rate, n) {
  const subject = `bench.${mode.replace('-', '')}.${n}`;
  const proc = spawn(process.execPath, [child, mode, cluster.servers.join(','), subject], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (c) => lines.push(...c.split('\n').filter(Boolean)));
  const exited = new Promise((r) => proc.once('exit', r));
  while (lines.length === 0) await new Promise((r) => setTimeout(r, 10));
  const { port } = JSON.parse(lines[0]);
  const tx = await UdpSender.open({ port });
  const data = new Uint8Array(size * 64);
  const total = Math.round(rate * seconds);
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    while (sent < due) {
      const n = Math.min(64, due - sent);
      for (let k = 0; k < n; k++) new DataView(data.buffer).setUint32(k * size, sent + k, true);
      sent += tx.sendBatch(data, size, n);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  tx.close();
  // Wait until the stream holds them all, or 10 s more.
  const deadline = performance.now() + 10_000;
  let stored = 0;
  while (performance.now() < deadline) {
    stored = (await jsm.streams.info('BENCH', { subjects_filter: subject })).state.subjects?.[subject] ?? 0;
    if (stored >= sent) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const settled = (performance.now() - start) / 1000;
  proc.kill('SIGTERM');
  await exited;
  const report = JSON.parse(lines[lines.length - 1]);
  return { mode, rate, sent, ...report, stored, lost: sent - report.acked, seconds: settled };
}

const version = natsServerVersion();
if (!version) throw new Error('nats-server is missing: apt-get install nats-server');
const cluster = await NatsCluster.start();
try {
  const nc = await connect({ servers: cluster.servers });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], num_replicas: 3, duplicate_window: 120e9 });
  const best = {};
  const rows = [];
  let n = 0;
  // Interleaved, the same rate for both before the next, so both see the same machine.
  const alive = new Set(['udp-ring', 'dgram']);
  for (const rate of rates) {
    for (const mode of ['udp-ring', 'dgram']) {
      if (!alive.has(mode)) continue;
      const r = await step(cluster, jsm, mode, rate, n++);
      rows.push(r);
      console.error(JSON.stringify(r));
      if (r.lost === 0 && r.failed === 0) best[mode] = rate; else alive.delete(mode);
    }
    if (alive.size === 0) break;
  }
  await nc.close();
  const m = machine();
  console.log(`\n${m.cpu}, ${m.cores} cores, ${m.kernel}, node ${process.version}, load ${m.loadAverage.join(" ")}, ${version}, ${seconds} s per rate, ${size}-byte datagrams, 512 in flight\n`);
  // The lossless rate can exceed what the stream takes for a while: the ring (or dgram's queue)
  // holds the difference. The acked rate, sent to last ack, is what the stream took.
  const buffers = Object.fromEntries(['udp-ring', 'dgram'].map((mode) => [mode, rows.find((r) => r.mode === mode)?.recvBufferSize]));
  console.log(`kernel receive buffers granted: ${JSON.stringify(buffers)}\n`);
  console.log('| receiver → 3-replica JetStream stream | highest lossless offered rate (datagrams/s) | acked/s at that rate, first send to last ack |');
  console.log('| --- | --- | --- |');
  for (const mode of ['udp-ring', 'dgram']) {
    const row = rows.find((r) => r.mode === mode && r.rate === best[mode]);
    console.log(`| ${mode === 'udp-ring' ? 'udp-ring + udp-ring/jetstream' : 'node:dgram + the same client'} | ${best[mode] ?? `< ${rates[0]}`} | ` +
      `${row ? Math.round(row.acked / row.seconds) : '-'} |`);
  }
  console.log(`\nsteps: ${JSON.stringify(rows.map(({ mode, rate, sent, acked, failed, dropped, lost }) => ({ mode, rate, sent, acked, failed, dropped, lost })))}`);
} finally {
  await cluster.stop();
}
