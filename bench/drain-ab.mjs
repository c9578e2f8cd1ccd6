#!/usr/bin/env node
// A same-run A/B of udp-ring's drain: the kernel scenario's drain (a held
// receiver, the queue filled, then drained through an 8 MiB ring; the
// iterator reads every sequence number) for udp-ring as built against the
// same build with other receiver options or environment, alternating within
// each round and reversing the order every other round. Per size: the median
// rate and receive-thread CPU per datagram of each variant, and the median of
// the per-round ratios against the first variant.
//   node bench/drain-ab.mjs [--sizes 1400,8192,mix,100] [--rounds 5] [--mb 300] [--small-count 1000000]
//     [--variant name='{"env":{...}}' | name='{"landingOnly":true}']...
// 'mix' is the kernel scenario's 60-1400 B; a size below 512 B drains --small-count
// datagrams, a larger one --mb megabytes. Without --variant: udp-ring against its
// landing-zone copy path (UDP_RING_INTERNAL_LANDING_ONLY), the kernel scenario's pair.
import { loadavg } from 'node:os';
import { drainVariants } from './scenarios.mjs';
import { startSender } from './processes.mjs';
import { numberOption, option, variantOptions } from './script-args.mjs';

const sizes = option('--sizes', '1400,8192,mix,100').split(',');
const rounds = numberOption('--rounds', 5);
const largeBytes = numberOption('--mb', 300) * 1e6;
const smallCount = numberOption('--small-count', 1_000_000);
const mix = { min: 60, max: 1400 };
const variants = { 'udp-ring': { kind: 'ring' } };
const extra = variantOptions();
if (extra.length === 0) extra.push({ name: 'landing zone only', options: { landingOnly: true } });
for (const { name, options } of extra) variants[name] = { kind: 'ring', ...options };

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const threadNs = (r) => (r.receiveThread ? (r.receiveThread.cpuMs * 1e6) / r.received : NaN);
const progress = { set: (text) => process.stderr.write(`${text}\n`), tick() {} };
const preset = { warmup: { rate: 50_000, durationMs: 200 } };

const sender = await startSender();
const results = [];
try {
  for (const size of sizes) {
    const count = size === 'mix' ? Math.round(largeBytes / ((mix.min + mix.max) / 2)) : Number(size) < 512 ? smallCount : Math.round(largeBytes / Number(size));
    const rows = await drainVariants({ sender, preset, progress }, 'drain-ab',
      size === 'mix' ? { mix, count, rounds, variants } : { size: Number(size), count, rounds, variants });
    results.push({ size, rows });
  }
} finally {
  await sender.stop();
}

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
console.log(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${rounds} rounds; medians`);
console.log('| size | variant | datagrams/s | thread ns / datagram | rate ratio to udp-ring (per round) | thread CPU ratio | lost |');
console.log('|---|---|---|---|---|---|---|');
for (const { size, rows } of results) {
  for (const variant of Object.keys(variants)) {
    const mine = rows.filter((r) => r.variant === variant);
    const ratios = [];
    const cpuRatios = [];
    for (const r of mine) {
      const base = rows.find((b) => b.round === r.round && b.variant === 'udp-ring');
      if (!base) continue;
      ratios.push(r.rate / base.rate);
      cpuRatios.push(threadNs(r) / threadNs(base));
    }
    const lost = mine.reduce((a, r) => a + r.kernelDrops + r.ringDrops + (r.sent - r.received - r.kernelDrops - r.ringDrops), 0);
    console.log(`| ${size} | ${variant} | ${Math.round(median(mine.map((r) => r.rate))).toLocaleString('en')} | ${fmt(median(mine.map(threadNs)), 0)} | ` +
      `${fmt(median(ratios))} (${ratios.map((x) => fmt(x)).join(' ')}) | ${fmt(median(cpuRatios))} | ${lost} |`);
  }
}
console.log(`\nraw: ${JSON.stringify(results.map(({ size, rows }) => ({ size, rows: rows.map((r) => ({ round: r.round, variant: r.variant, rate: r.rate, threadNs: threadNs(r), sent: r.sent, received: r.received })) })))}`);
