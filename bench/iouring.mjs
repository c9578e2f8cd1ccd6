#!/usr/bin/env node
// io_uring, measured (issue 13): the C recvmmsg loop against the C io_uring
// loop (bench/iouring-loop.c) in its variants, fed by the same sender in the
// same run, with no JavaScript in either receive path.
//   drain: `count` datagrams queued while the loop is held, then drained (as the
//          drain table does); datagrams/s and the loop's CPU per datagram.
//   rate:  datagrams at a rate both loops hold (--rate); the loop's CPU per
//          datagram when it sleeps between arrivals.
// Usage: node bench/iouring.mjs [--sizes 64,200,1400] [--rounds 3] [--pin 1]
//   [--variants recvmmsg,iouring,...] [--rate 200000 --seconds 2] [--quick] [--out file]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { startReceiver, startSender } from './processes.mjs';
import { median } from './report.mjs';
import { drainVariants } from './scenarios.mjs';
import { machine } from './system.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

// The loops compared. 'iouring' is the straight port (no setup flags, the CQ
// head and each recycled buffer published one completion at a time); the rest
// add what io_uring offers to make completions cheaper.
export const iouringVariants = {
  recvmmsg: { kind: 'c-recvmmsg' },
  iouring: { kind: 'c-iouring', iouring: [] },
  'iouring batch': { kind: 'c-iouring', iouring: ['batch'] },
  'iouring batch coop': { kind: 'c-iouring', iouring: ['batch', 'coop'] },
  'iouring batch defer': { kind: 'c-iouring', iouring: ['batch', 'defer'] },
  'iouring batch defer wait=32': { kind: 'c-iouring', iouring: ['batch', 'defer', 'wait=32'] },
  'iouring batch defer 1024 buffers': { kind: 'c-iouring', iouring: ['batch', 'defer', 'buffers=1024'] },
  // As many buffers as recvmmsg-loop has slots (64): the same memory to cycle through.
  'iouring batch coop 64 buffers': { kind: 'c-iouring', iouring: ['batch', 'coop', 'buffers=64'] },
  'iouring batch defer 64 buffers': { kind: 'c-iouring', iouring: ['batch', 'defer', 'buffers=64'] },
  // Not udp-ring's case (maxMessageSize 65535), to see what the buffers' size costs: 2 KiB each.
  'iouring batch defer 2 KiB buffers': { kind: 'c-iouring', iouring: ['batch', 'defer', 'size=1900'] },
};

const program = new Command()
  .name('node bench/iouring.mjs')
  .description('the C recvmmsg loop against the C io_uring loop, same sender, same run')
  .option('--sizes <list>', 'datagram sizes in bytes', '64,200,1400')
  .option('--rounds <n>', 'rounds (the median is reported)', '3')
  .option('--count <n>', 'datagrams per drain (default: 1M, at most 300 MB)')
  .option('--variants <list>', `a comma-separated subset of: ${Object.keys(iouringVariants).join(', ')}`)
  .option('--pin <cpu>', 'pin each loop to this CPU (taskset)')
  .option('--nice <n>', 'run each loop at this nice level (negative: root; a busy shared machine then takes less from it)')
  .option('--rate <n>', 'also measure CPU per datagram at this rate (datagrams/s)')
  .option('--seconds <n>', 'duration of each --rate run', '2')
  .option('--quick', 'one round of 200k datagrams')
  .option('--out <file>', 'where to write the JSON results', `${root}bench/results/iouring.json`)
  .parse();
const options = program.opts();
const rounds = options.quick ? 1 : Number(options.rounds);
const sizes = options.sizes.split(',').map(Number);
const chosen = options.variants ? options.variants.split(',') : ['recvmmsg', 'iouring', 'iouring batch coop', 'iouring batch defer'];
for (const name of chosen) if (!iouringVariants[name]) program.error(`unknown variant '${name}'`);
const variants = Object.fromEntries(chosen.map((name) => [name, { ...iouringVariants[name],
  ...(options.pin === undefined ? {} : { cpu: Number(options.pin) }),
  ...(options.nice === undefined ? {} : { nice: Number(options.nice) }) }]));

const progress = {
  set(text) {
    process.stderr.write(`${text}\n`);
  },
  tick() {},
};
const preset = { warmup: { rate: 50_000, durationMs: 200 } };
const system = machine();
const sender = await startSender();
const results = { command: `node bench/iouring.mjs ${process.argv.slice(2).join(' ')}`.trim(), date: new Date().toISOString(),
  machine: system, pin: options.pin ?? null, nice: options.nice ?? null, drain: [], rate: [] };
try {
  for (const size of sizes) {
    const count = Number(options.count ?? (options.quick ? 200_000 : Math.min(1_000_000, Math.round(300e6 / size))));
    results.drain.push(...await drainVariants({ sender, preset, progress }, 'io_uring drain', { variants, size, count, rounds }));
  }
  if (options.rate) {
    const rate = Number(options.rate);
    const durationMs = Number(options.seconds) * 1000;
    for (const size of sizes) {
      for (let round = 0; round < rounds; round++) {
        for (const [variant, config] of Object.entries(variants)) {
          progress.set(`io_uring rate: ${variant}, ${size} B at ${rate}/s, round ${round + 1}/${rounds}`);
          const receiver = await startReceiver({ ...config, recvBufferSize: 2 ** 26 });
          try {
            if (receiver.info.unavailable) continue;
            const warm = await sender.call('send', { port: receiver.info.port, size, ...preset.warmup });
            await receiver.call('warmup', { expected: warm.sent });
            await receiver.call('mark');
            const sent = await sender.call('send', { port: receiver.info.port, size, rate, durationMs });
            const got = await receiver.call('settle', { expected: sent.sent });
            results.rate.push({ round, variant, size, rate, ...got, sent: sent.sent, achievedRate: sent.achievedRate });
          } finally {
            await receiver.stop();
          }
        }
      }
    }
  }
} finally {
  await sender.stop();
}
results.loadAverageAtEnd = machine().loadAverage;

const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : '-');
const rows = [];
for (const [mode, list] of [['drain', results.drain], ['rate', results.rate]]) {
  for (const size of sizes) {
    const baseRate = median(list.filter((r) => r.size === size && r.variant === 'recvmmsg').map((r) => r.rate));
    const baseCpu = median(list.filter((r) => r.size === size && r.variant === 'recvmmsg').map((r) => r.cpuNs / r.received));
    for (const variant of chosen) {
      const mine = list.filter((r) => r.size === size && r.variant === variant);
      if (mine.length === 0) continue;
      if (mine[0].unavailable) {
        rows.push([mode, `${size} B`, variant, `refused: ${mine[0].unavailable}`, '', '', '', '', '']);
        continue;
      }
      const rate = median(mine.map((r) => (mode === 'drain' ? r.rate : r.achievedRate)));
      const cpu = median(mine.map((r) => r.cpuNs / r.received));
      const perEnter = median(mine.map((r) => (r.loop?.enters ? r.received / r.loop.enters : NaN)));
      const lost = mine.reduce((n, r) => n + r.kernelDrops, 0);
      const unaccounted = mine.reduce((n, r) => n + r.sent - r.received - r.kernelDrops - r.ringDrops, 0);
      rows.push([mode, `${size} B`, variant, `${fixed(rate / 1e3, 0)}k`,
        mode === 'drain' ? `${fixed(rate / baseRate, 2)}x` : '-',
        fixed(cpu, 0), `${fixed(cpu / baseCpu, 2)}x`, fixed(perEnter, 1), `${lost}${unaccounted ? ` (${unaccounted} unaccounted)` : ''}`]);
    }
  }
}
const header = ['mode', 'size', 'loop', 'datagrams/s', 'vs recvmmsg', 'CPU ns / datagram', 'vs recvmmsg', 'datagrams / io_uring_enter', 'lost'];
const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => String(r[k]).length)));
const line = (cells) => `| ${cells.map((cell, k) => String(cell).padEnd(widths[k])).join(' | ')} |`;
process.stdout.write(`${[line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')}\n`);
process.stdout.write(`median of ${rounds} round(s); load average ${system.loadAverage.join(' ')} at start, ` +
  `${results.loadAverageAtEnd.join(' ')} at end; ${system.cores} cores, ${system.kernel}` +
  `${options.pin === undefined ? '' : `; loops pinned to CPU ${options.pin}`}` +
  `${options.nice === undefined ? '' : `; loops at nice ${options.nice}`}\n`);
mkdirSync(dirname(options.out), { recursive: true });
writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`results: ${options.out}\n`);
