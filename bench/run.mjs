#!/usr/bin/env node
// udp-ring against node:dgram. Usage: npm run bench [-- --quick | --smoke]
// Writes bench/results/latest.json and, for full runs, docs/benchmark.md and
// docs/benchmark.svg. See docs/benchmark.md for what each scenario measures.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { startSender } from './processes.mjs';
import { cost, costLight, drain, kernel, lag, latency, lossless, stalls } from './scenarios.mjs';
import { formatTable, summarize, writeDocs } from './report.mjs';
import { machine, stealSample } from './system.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

const presets = {
  full: {
    warmup: { rate: 50_000, durationMs: 200 },
    drain: { count: 1_000_000, rounds: 3 },
    stalls: { rate: 200_000, size: 200, durationMs: 5000, stallsMs: [0, 20, 50], everyMs: 100, rounds: 1 },
    lossless: { rates: [10e3, 20e3, 50e3, 100e3, 150e3, 200e3, 300e3, 400e3, 500e3, 700e3, 1e6, 1.4e6],
      size: 200, stepMs: 1000, maxLoss: 0.001, rounds: 1 },
    latency: { rates: [10_000, 100_000], size: 100, durationMs: 2000, sliceMs: 250, warmupMs: 1000, rounds: 5 },
    cost: { rate: 100_000, size: 200, durationMs: 2000, warmupMs: 1000, rounds: 3 },
    costLight: { rate: 10_000, size: 200, durationMs: 3000, warmupMs: 1000, rounds: 3 },
    lag: { rate: 100_000, size: 200, durationMs: 3000, costUs: 20, rounds: 2 },
    kernel: { size: 1200, sendCount: 300_000, count: 300_000, largeSizes: [1400, 8192], largeBytes: 300e6, smallSize: 200, smallCount: 500_000,
      mix: { min: 60, max: 1400 }, mixCount: 500_000, rounds: 3, largeRounds: 5, infoRounds: 5 },
  },
  quick: {
    warmup: { rate: 50_000, durationMs: 100 },
    // More than the ring holds (~250k of these), so the socket, not only the ring, is drained.
    drain: { count: 400_000, rounds: 1 },
    stalls: { rate: 200_000, size: 200, durationMs: 400, stallsMs: [0, 20, 50], everyMs: 100, rounds: 1 },
    lossless: { rates: [10e3, 50e3, 100e3, 200e3, 400e3, 700e3, 1.2e6], size: 200, stepMs: 150, maxLoss: 0.001, rounds: 1 },
    latency: { rates: [10_000, 100_000], size: 100, durationMs: 300, sliceMs: 100, warmupMs: 300, rounds: 1 },
    cost: { rate: 100_000, size: 200, durationMs: 300, warmupMs: 300, rounds: 1 },
    costLight: { rate: 10_000, size: 200, durationMs: 500, warmupMs: 300, rounds: 1 },
    lag: { rate: 100_000, size: 200, durationMs: 1000, costUs: 20, rounds: 1 },
    kernel: { size: 1200, sendCount: 200_000, count: 200_000, largeSizes: [1400, 8192], largeBytes: 200e6, smallSize: 200, smallCount: 300_000,
      mix: { min: 60, max: 1400 }, mixCount: 300_000, rounds: 1, largeRounds: 3, infoRounds: 3 },
  },
  smoke: {
    warmup: { rate: 20_000, durationMs: 50 },
    drain: { count: 20_000, rounds: 1 },
    stalls: { rate: 50_000, size: 200, durationMs: 200, stallsMs: [0, 50], everyMs: 100, rounds: 1 },
    lossless: { rates: [20e3, 50e3], size: 200, stepMs: 100, maxLoss: 0.001, rounds: 1 },
    latency: { rates: [10_000], size: 100, durationMs: 100, sliceMs: 100, warmupMs: 100, rounds: 1 },
    cost: { rate: 50_000, size: 200, durationMs: 100, warmupMs: 100, rounds: 1 },
    costLight: { rate: 10_000, size: 200, durationMs: 100, warmupMs: 100, rounds: 1 },
    lag: { rate: 50_000, size: 200, durationMs: 300, costUs: 20, rounds: 1 },
    kernel: { size: 1200, sendCount: 20_000, count: 10_000, largeSizes: [1400, 8192], largeBytes: 10e6, smallSize: 200, smallCount: 10_000,
      mix: { min: 60, max: 1400 }, mixCount: 10_000, rounds: 1, largeRounds: 1, infoRounds: 1 },
  },
};

const program = new Command()
  .name('npm run bench --')
  .description('udp-ring against node:dgram on loopback, each receiver in its own process')
  .option('--quick', 'a shorter run (under 30 s)')
  .option('--smoke', 'the smallest run, to check the harness works (10-20 s)')
  .option('--out <file>', 'where to write the JSON results', `${root}bench/results/latest.json`)
  .option('--docs', 'write docs/benchmark.md and docs/benchmark.svg (default for full runs)')
  .option('--no-docs', 'do not write the docs')
  .option('--rounds <n>', 'rounds for every scenario (default: 3 for drain and cost, 5 for latency, 2 for lag, 1 for the rest)')
  .option('--only <scenarios>', 'a comma-separated subset of drain,stalls,lossless,latency,cost,costLight,lag,kernel')
  .option('--kernel-parts <parts>', 'with the kernel scenario: a comma-separated subset of send,gro,large,mixed,info')
  .option('--render <results.json>', 'only render the table and the docs again from a results file')
  .option('--note <text>', 'a line for docs/benchmark.md about the conditions of the run')
  .option('--jetstream', 'then the socket into a 3-replica NATS JetStream stream, udp-ring + udp-ring/jetstream vs ' +
    'node:dgram + the same client (bench/jetstream.mjs; needs nats-server, see docs/jetstream.md)')
  .parse();
const options = program.opts();
const mode = options.smoke ? 'smoke' : options.quick ? 'quick' : 'full';
const writeDocsToo = options.docs ?? (mode === 'full' && !options.only);
const preset = presets[mode];
if (options.rounds !== undefined) {
  const rounds = Number(options.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) program.error('--rounds must be a whole number >= 1');
  for (const scenario of Object.values(preset)) {
    if (scenario.rounds !== undefined) scenario.rounds = rounds;
    // The kernel scenario's paired comparisons keep at least 3 rounds (their medians need them), unless --smoke.
    if (scenario.largeRounds !== undefined) scenario.largeRounds = Math.max(rounds, mode === 'smoke' ? 1 : 3);
    if (scenario.infoRounds !== undefined) scenario.infoRounds = Math.max(rounds, mode === 'smoke' ? 1 : 3);
  }
}
if (options.kernelParts) {
  preset.kernel.parts = options.kernelParts.split(',');
  const known = ['send', 'gro', 'large', 'mixed', 'info'];
  for (const part of preset.kernel.parts) if (!known.includes(part)) program.error(`unknown kernel part '${part}' (${known.join(', ')})`);
}
const scenarios = { drain, stalls, lossless, latency, cost, costLight, lag, kernel };
const chosen = options.only ? options.only.split(',') : Object.keys(scenarios);
for (const name of chosen) if (!scenarios[name]) program.error(`unknown scenario '${name}'`);
if (options.only && options.docs) program.error('the docs need every scenario: drop --only');

const progress = {
  started: performance.now(),
  measurements: 0,
  set(text) {
    const seconds = ((performance.now() - this.started) / 1000).toFixed(0);
    const line = `[${seconds} s] ${text}`;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  },
  tick() {
    this.measurements++;
  },
  done() {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  },
};

if (options.render) {
  const saved = JSON.parse(readFileSync(options.render, 'utf8'));
  saved.summary = summarize(saved);
  process.stdout.write(formatTable(saved));
  if (options.docs !== false) writeDocs(saved, `${root}docs`);
  process.exit(0);
}

const flags = [mode === 'full' ? '' : ` --${mode}`, options.rounds ? ` --rounds ${options.rounds}` : '',
  options.only ? ` --only ${options.only}` : '', options.kernelParts ? ` --kernel-parts ${options.kernelParts}` : ''].join('');
const command = `npm run bench${flags ? ` --${flags}` : ''}`;
const startedAt = new Date();
const system = machine();
const sender = await startSender();
const steal = stealSample();
const results = { mode, command, date: startedAt.toISOString(), machine: system, note: options.note ?? null, preset };
try {
  for (const name of chosen) results[name] = await scenarios[name]({ sender, preset, progress });
} finally {
  await sender.stop();
  progress.done();
}
results.durationSeconds = (performance.now() - progress.started) / 1000;
results.loadAverageAtEnd = machine().loadAverage;
results.stealShare = steal.share();
results.summary = summarize(results);

mkdirSync(dirname(options.out), { recursive: true });
writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(formatTable(results));
process.stdout.write(`\nresults: ${options.out}\n`);
if (writeDocsToo) {
  writeDocs(results, `${root}docs`);
  process.stdout.write(`docs: ${root}docs/benchmark.md, ${root}docs/benchmark.svg\n`);
}
if (options.jetstream) {
  // Its own cluster and processes; its table follows this one (docs/jetstream.md records a run).
  const { execFileSync } = await import('node:child_process');
  execFileSync(process.execPath, [`${root}bench/jetstream.mjs`, '--seconds', mode === 'full' ? '10' : '3'], { stdio: 'inherit' });
}
