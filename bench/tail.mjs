#!/usr/bin/env node
// Where the latency tail at light load goes: node:dgram and udp-ring (onBatch, the iterator)
// at 10k/s (100 B, one datagram per 0.1 ms burst, as the latency table), udp-ring with kernel
// receive timestamps so that each datagram's latency splits into send -> kernel (the sender's
// process and loopback) and kernel -> handler (the receiver). Datagrams over 1 ms are counted by
// the side that took most of their time; thread wakeups of the event loop and GC pauses beside.
//   node bench/tail.mjs [--rounds 3] [--ms 3000] [--rate 10000] [--kinds dgram-default,ring-fast,ring]
//     [--variant name='{"option":value}' | '{"env":{...}}']...  udp-ring kinds again with those options
import { hasOption, option, variantOptions } from './script-args.mjs';
import { loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { startReceiver, startSender } from './processes.mjs';

const rounds = Number(option('--rounds', 3));
const durationMs = Number(option('--ms', 3000));
const rate = Number(option('--rate', 10_000));
const size = 100;
// --nice N: every thread of the sender and of each receiver at that nice level (root for < 0),
// so that other work on the machine disturbs the measurement less.
const nice = hasOption('--nice') ? Number(option('--nice', 0)) : null;
function renice(pid) {
  if (nice === null) return;
  for (const tid of readdirSync(`/proc/${pid}/task`)) execFileSync('renice', ['-n', String(nice), '-p', tid], { stdio: 'ignore' });
}
const variants = variantOptions();
const kinds = [];
for (const kind of option('--kinds', 'dgram-default,ring-fast,ring').split(',')) {
  const ring = kind.startsWith('ring');
  kinds.push({ label: kind, config: { kind, latency: true, timestamps: ring } });
  if (ring) {
    for (const { name, options: { env, ...ringOptions } } of variants) {
      kinds.push({ label: `${kind}+${name}`, config: { kind, latency: true, timestamps: true, ringOptions, env } });
    }
  }
}
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

const sender = await startSender();
renice(sender.pid);
const rows = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const { label, config } of kinds) {
      process.stderr.write(`round ${round + 1}/${rounds} ${label}\n`);
      const receiver = await startReceiver(config);
      renice(receiver.pid);
      try {
        const port = receiver.info.port;
        let expected = (await sender.call('send', { port, size, rate: 50_000, durationMs: 200 })).sent;
        expected += (await sender.call('send', { port, size, rate, durationMs: 1000, burstMs: 0.1 })).sent;
        await receiver.call('warmup', { expected });
        await receiver.call('mark');
        const sent = await sender.call('send', { port, size, rate, durationMs, burstMs: 0.1 });
        const got = await receiver.call('settle', { expected: sent.sent });
        rows.push({ round, label, sent: sent.sent, ...got });
      } finally {
        await receiver.stop();
      }
    }
  }
} finally {
  await sender.stop();
}

console.log(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${rounds} rounds of ${durationMs} ms at ${rate / 1000}k/s, ${size} B; medians (max: the largest)`);
console.log('| receiver | p50 | p99 | p99.9 | max | kernel -> handler p99 / p99.9 / max | send -> kernel p99.9 / max | over 1 ms: all / receiver side / sender side | loop woken by thread | thread wakeups | GCs, longest pause µs |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const { label } of kinds) {
  const mine = rows.filter((r) => r.label === label);
  const m = (f) => median(mine.map(f));
  const max = (f) => Math.max(...mine.map(f).filter(Number.isFinite));
  const split = mine[0]?.latencySplit;
  const sum = (f) => mine.reduce((total, r) => total + (f(r) ?? 0), 0);
  console.log(`| ${label} | ${m((r) => r.latencyUs.p50)} | ${m((r) => r.latencyUs.p99)} | ${m((r) => r.latencyUs.p999)} | ${max((r) => r.latencyUs.max)} | ${split
    ? `${m((r) => r.latencySplit.kernelToHandler.p99)} / ${m((r) => r.latencySplit.kernelToHandler.p999)} / ${max((r) => r.latencySplit.kernelToHandler.max)}` : '-'} | ${split
    ? `${m((r) => r.latencySplit.sendToKernel.p999)} / ${max((r) => r.latencySplit.sendToKernel.max)}` : '-'} | ${split
    ? `${sum((r) => r.latencySplit.slow.total)} / ${sum((r) => r.latencySplit.slow.receiverSide)} / ${sum((r) => r.latencySplit.slow.senderSide)}` : '-'} | ${mine[0]?.ring
    ? sum((r) => r.ring.during.wakeups) : '-'} | ${mine[0]?.ring ? sum((r) => r.ring.during.threadWakeups) : '-'} | ${sum((r) => r.gcCount)}, ${max((r) => r.gcMaxPauseUs).toFixed(0)} |`);
}
for (const r of rows) {
  console.log(`${r.label} round ${r.round}: main thread ran ${r.mainThread?.cpuMs.toFixed(0)} ms, waited for a CPU ${r.mainThread?.waitMs.toFixed(0)} ms; GCs: ${r.gcs.map((g) => `${g.type} ${g.us} µs`).join(', ')}`);
  const events = r.latencySplit?.slowEvents ?? [];
  // Runs of slow datagrams: [start ms, datagrams, longest µs].
  const runs = [];
  for (const [atMs, us] of events) {
    const last = runs[runs.length - 1];
    if (last && atMs - last[0] <= 20) { last[1]++; last[2] = Math.max(last[2], us); } else runs.push([atMs, 1, us]);
  }
  if (runs.length) console.log(`  slow on the receiver side (at ms, datagrams, longest µs): ${runs.map((x) => x.join(' ')).join('; ')}`);
}
console.log(`\nraw: ${JSON.stringify(rows.map(({ round, label, latencyUs, latencySplit, ring, gcCount, gcMaxPauseUs }) => ({ round, label, latencyUs, latencySplit, during: ring?.during, gcCount, gcMaxPauseUs })))}`);
