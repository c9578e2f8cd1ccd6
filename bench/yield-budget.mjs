#!/usr/bin/env node
// What the event loop's turn costs (options.yieldEvery), to choose its default:
// the cost of one setImmediate turn, and the drain rate of a prefilled ring
// with several budgets, the consumer reading each datagram's first word.
//   node bench/yield-budget.mjs [--count N] [--rounds N]
import { numberOption } from './script-args.mjs';
import { cpus, release } from 'node:os';
import { prefilledReceiver } from './prefill.mjs';

const count = numberOption('--count', 1_000_000);
const rounds = numberOption('--rounds', 5);
const size = 100;

// One setImmediate turn on an otherwise idle loop, and with 50 timers and a socket pending.
async function turnCost(busy) {
  const timers = busy ? Array.from({ length: 50 }, () => setInterval(() => {}, 1000)) : [];
  const n = 100_000;
  const start = performance.now();
  for (let k = 0; k < n; k++) await new Promise((resolve) => setImmediate(resolve));
  const us = ((performance.now() - start) * 1000) / n;
  for (const t of timers) clearInterval(t);
  return us;
}

function work(us) {
  if (us === 0) return;
  const end = performance.now() + us / 1000;
  while (performance.now() < end) { /* the consumer's per-datagram work */ }
}

async function drain(yieldEvery, count, workUs) {
  const rx = await prefilledReceiver({ yieldEvery }, count, size);
  const packets = rx.stats().packets;
  let read = 0;
  let sum = 0;
  let batches = 0;
  const start = performance.now();
  for await (const batch of rx) {
    const { view } = batch;
    for (let i = 0; i < batch.length; i++) {
      sum ^= view.getUint32(batch.offset(i), true);
      work(workUs);
    }
    read += batch.length;
    batches++;
    if (read >= packets) break;
  }
  const ms = performance.now() - start;
  return { rate: read / (ms / 1000), sum, batches };
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}, Linux ${release()}, Node ${process.version}`);
for (const busy of [false, true]) {
  const costs = [];
  for (let r = 0; r < rounds; r++) costs.push(await turnCost(busy));
  console.log(`setImmediate turn (${busy ? '50 timers pending' : 'idle loop'}): ${costs.map((c) => c.toFixed(2)).join(', ')} µs`);
}
const budgets = [
  ['none (Infinity)', { datagrams: Infinity, ms: Infinity }],
  ['4096 / 10 ms', { datagrams: 4096, ms: 10 }],
  ['1024 / 10 ms', { datagrams: 1024, ms: 10 }],
  ['1024 / 5 ms', { datagrams: 1024, ms: 5 }],
  ['256 / 10 ms', { datagrams: 256, ms: 10 }],
  ['64 / 10 ms', { datagrams: 64, ms: 10 }],
  ['32 / 10 ms', { datagrams: 32, ms: 10 }],
];
// The machine is shared and noisy: a drain takes tens of milliseconds, and one
// preemption changes it several-fold. Best of the rounds (least disturbed), and the median.
for (const [workUs, n] of [[0, count], [1, Math.round(count / 5)]]) {
  console.log(`drain of ${n} prefilled datagrams of ${size} B, consumer work ${workUs} µs each ` +
    `(M datagrams/s; best and median of ${rounds} rounds, budgets alternating):`);
  const rates = new Map(budgets.map(([name]) => [name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, budget] of budgets) rates.get(name).push((await drain(budget, n, workUs)).rate / 1e6);
  }
  const best = (xs) => Math.max(...xs);
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const base = rates.get('none (Infinity)');
  for (const [name] of budgets) {
    const xs = rates.get(name);
    console.log(`  ${name.padEnd(16)} best ${best(xs).toFixed(2)} (${((best(xs) / best(base) - 1) * 100).toFixed(1)} %), ` +
      `median ${median(xs).toFixed(2)} (${((median(xs) / median(base) - 1) * 100).toFixed(1)} %)`);
  }
}
