#!/usr/bin/env node
// Soak: datagrams at the highest rate this machine sends, through both
// overflow policies, IPv4 and IPv6, with random consumer stalls. Every
// delivered payload is checked byte for byte and in order; counters must
// reconcile exactly (sent = delivered + ringDrops + kernelDrops + discarded); RSS must
// stay flat after warm-up. The sender runs in a worker thread.
//
//   node --expose-gc soak/soak.mjs [--short] [--seconds N] [--json FILE] [--seed N] [--plant-leak]
//   npm run soak            (about 4 minutes)
//   npm run soak -- --short (about 40 seconds, for CI)
import { Worker } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { UdpReceiver } from '../dist/index.js';
import { checkPayload, sizeFor, TINY_PERIOD, TINY_PHASE } from './pattern.mjs';

// RSS says what is leaked only if freed memory goes back to the system. glibc
// by default raises its mmap threshold each time a large block is freed, so
// later rings and worker heaps come from arenas that keep what they had; RSS
// then rises in steps of about 20 MiB at a phase of its choosing (seen after
// phase 3, after phase 4, or not at all, with no leak). A fixed threshold and
// two arenas keep RSS within about a MiB from one phase to the next, so the
// soak runs itself under them. Set UDP_RING_SOAK_ALLOCATOR=default to see the
// steps.
if (process.env.UDP_RING_SOAK_ALLOCATOR === undefined) {
  const { spawnSync } = await import('node:child_process');
  const env = { ...process.env, UDP_RING_SOAK_ALLOCATOR: 'pinned', MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env });
  process.exit(child.status ?? 1);
}

const args = process.argv.slice(2);
const short = args.includes('--short');
const secondsArg = args.indexOf('--seconds');
const totalSeconds = secondsArg >= 0 ? Number(args[secondsArg + 1]) : short ? 40 : 240;
const jsonArg = args.indexOf('--json');
const jsonPath = jsonArg >= 0 ? args[jsonArg + 1] : null;
// --plant-leak: keep 4 MiB (a ring's worth) alive after every phase, as a
// receiver that never freed its ring would; the memory check must catch it.
const plantLeak = args.includes('--plant-leak');
const planted = [];
const maxMessageSize = 1500;
const MiB = 1024 * 1024;
const gc = globalThis.gc ?? (() => {});
// Under AddressSanitizer freed memory sits in its quarantine, so RSS is not
// judged there (scripts/test-asan.sh sets UDP_RING_SANITIZED); it is reported.
const judgeMemory = !process.env.UDP_RING_SANITIZED;

// Each family under each policy, twice: the first round is the warm-up (JIT,
// heap, allocators), the second must leave nothing behind.
const kinds = [
  { type: 'udp4', host: '127.0.0.1', overflow: 'block' },
  { type: 'udp6', host: '::1', overflow: 'drop' },
  { type: 'udp4', host: '127.0.0.1', overflow: 'drop' },
  { type: 'udp6', host: '::1', overflow: 'block' },
];
const phases = [...kinds, ...kinds];
const warmUpPhases = kinds.length;
const phaseSeconds = totalSeconds / phases.length;

// A seeded generator, so a failing run can be replayed with --seed.
const seedArg = args.indexOf('--seed');
let seed = seedArg >= 0 ? Number(args[seedArg + 1]) >>> 0 : (Date.now() >>> 0);
const initialSeed = seed;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function stallFor(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a synchronous stall, as a slow serializer would cause */ }
}

const rssMiB = () => process.memoryUsage.rss() / MiB;

async function runPhase(phase, index) {
  const rx = await UdpReceiver.open({
    host: phase.host, port: 0, overflow: phase.overflow, maxMessageSize, ringBytes: 4 * MiB, batchSize: 64,
  });
  const port = rx.address().port;
  const worker = new Worker(new URL('./sender.mjs', import.meta.url), {
    workerData: { port, host: phase.host, type: phase.type, seconds: phaseSeconds, maxMessageSize },
  });
  let sent = null;
  let senderError = null;
  const senderDone = new Promise((resolve) => {
    worker.on('message', (m) => { sent = m.sent; resolve(); });
    worker.on('error', (e) => { senderError = e; resolve(); });
    worker.on('exit', () => resolve());
  });

  const failures = [];
  const fail = (what) => { if (failures.length < 20) failures.push(what); };
  let delivered = 0;
  let truncatedSeen = 0;
  let skipped = 0; // datagrams missing from the sequence: must equal ringDrops + kernelDrops
  let last = -1;
  let stalls = 0;
  const start = performance.now();
  const warmUpEnd = start + phaseSeconds * 250;
  let rssWarm = 0;
  let rssPeakAfterWarmUp = 0;
  let nextSample = start;
  const rssSamples = [];

  // Closes the receiver once everything sent is accounted for (or never will be).
  let settleLimit = 0;
  const settled = () => {
    if (sent === null) return false;
    const s = rx.stats();
    if (s.packets + s.ringDrops + s.kernelDrops === sent && s.ringDatagrams === 0) return true;
    if (settleLimit === 0) settleLimit = performance.now() + 60_000;
    if (performance.now() > settleLimit) {
      fail(`counters never reconciled: sent ${sent}, packets ${s.packets}, ringDrops ${s.ringDrops}, kernelDrops ${s.kernelDrops}`);
      return true;
    }
    return false;
  };
  const watcher = setInterval(() => { if (settled()) void rx.close(); }, 50);
  senderDone.then(() => { if (senderError) { fail(`sender failed: ${senderError.message}`); void rx.close(); } });

  for await (const batch of rx) {
    const bytes = batch.bytes;
    for (let i = 0; i < batch.length; i++) {
      const wire = batch.wireSize(i);
      const size = batch.size(i);
      const at = batch.offset(i);
      let seq;
      if (wire >= 4) {
        seq = bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
      } else {
        // Too short to carry its number: the next tiny datagram whose size and bytes match.
        // It lies at most as far ahead as the drops not yet seen as gaps: the counters
        // published with this batch include every drop before it. (A fixed window of
        // 64 candidates was too short for a drop burst during a long stall.)
        seq = -1;
        const s = rx.stats();
        const furthest = last + 1 + (s.ringDrops + s.kernelDrops - skipped);
        let candidate = last + 1 + ((TINY_PHASE - ((last + 1) % TINY_PERIOD) + TINY_PERIOD) % TINY_PERIOD);
        for (; candidate <= furthest; candidate += TINY_PERIOD) {
          if (sizeFor(candidate, maxMessageSize) === wire && checkPayload(bytes, at, candidate, size) === -1) {
            seq = candidate;
            break;
          }
        }
        if (seq < 0) { fail(`tiny datagram of ${wire} bytes after #${last} matches none expected`); continue; }
      }
      if (seq <= last) fail(`out of order: #${seq} after #${last}`);
      skipped += seq - last - 1;
      last = seq;
      const expectedWire = sizeFor(seq, maxMessageSize);
      if (wire !== expectedWire) fail(`#${seq}: wire size ${wire}, sent ${expectedWire}`);
      if (size !== Math.min(expectedWire, maxMessageSize)) fail(`#${seq}: ${size} bytes kept of ${expectedWire}`);
      if (batch.truncated(i) !== expectedWire > maxMessageSize) fail(`#${seq}: truncated flag wrong`);
      if (batch.truncated(i)) truncatedSeen++;
      const bad = checkPayload(bytes, at, seq, size);
      if (bad >= 0) fail(`#${seq}: byte ${bad} of ${size} corrupted`);
      const family = batch.family(i);
      if (family !== (phase.type === 'udp6' ? 6 : 4)) fail(`#${seq}: family ${family}`);
      delivered++;
    }
    const now = performance.now();
    if (now >= nextSample) {
      nextSample = now + 500;
      const rss = rssMiB();
      rssSamples.push(Math.round(rss));
      if (now >= warmUpEnd) {
        if (rssWarm === 0) rssWarm = rss;
        rssPeakAfterWarmUp = Math.max(rssPeakAfterWarmUp, rss);
      }
    }
    // Random consumer stalls: a blocked event loop, or an idle one; now and then
    // one long enough to fill the ring and the kernel queue behind it.
    const dice = random();
    if (dice < 0.002) { stalls++; stallFor(1 + random() * 40); }
    else if (dice < 0.004) { stalls++; await new Promise((r) => setTimeout(r, 1 + random() * 20)); }
    else if (dice < 0.0042) { stalls++; stallFor(100 + random() * 300); }
    if (settled()) break;
  }
  clearInterval(watcher);
  await senderDone;
  await worker.terminate();
  const stats = rx.stats();
  const seconds = (performance.now() - start) / 1000;
  if (sent === null) fail('sender reported no total');
  else {
    if (delivered + stats.ringDrops + stats.kernelDrops + stats.discarded !== sent) {
      fail(`sent ${sent} != delivered ${delivered} + ringDrops ${stats.ringDrops} + kernelDrops ${stats.kernelDrops} + ` +
        `discarded ${stats.discarded}`);
    }
    // Datagrams never seen after the last one delivered were lost too.
    skipped += sent - 1 - last;
  }
  if (delivered !== stats.delivered) fail(`delivered ${delivered} != stats.delivered ${stats.delivered}`);
  if (delivered + stats.discarded < stats.packets) fail(`delivered ${delivered} + discarded < stats.packets ${stats.packets}`);
  if (skipped !== stats.ringDrops + stats.kernelDrops + stats.discarded) {
    fail(`gaps in the sequence ${skipped} != ringDrops + kernelDrops + discarded ` +
      `${stats.ringDrops + stats.kernelDrops + stats.discarded}`);
  }
  // stats.truncated counts every cut datagram the thread received, including
  // ones the ring then dropped ('drop'), so it can exceed what was delivered.
  if (truncatedSeen > stats.truncated || (stats.ringDrops === 0 && truncatedSeen !== stats.truncated)) {
    fail(`truncated seen ${truncatedSeen}, stats.truncated ${stats.truncated}`);
  }
  if (phase.overflow === 'block' && stats.ringDrops !== 0) fail(`ringDrops ${stats.ringDrops} under 'block'`);
  const growth = rssWarm === 0 ? 0 : rssPeakAfterWarmUp - rssWarm;
  // Growth inside a phase is judged only after the warm-up round.
  if (judgeMemory && index >= warmUpPhases && growth > 24) fail(`RSS grew ${growth.toFixed(1)} MiB after warm-up`);
  const result = {
    phase: index + 1, type: phase.type, overflow: phase.overflow, seconds: +seconds.toFixed(1), sent,
    delivered, ringDrops: stats.ringDrops, kernelDrops: stats.kernelDrops, discarded: stats.discarded, truncated: stats.truncated,
    deliveredPerSecond: Math.round(delivered / seconds), sentPerSecond: Math.round((sent ?? 0) / phaseSeconds),
    meanBatchSize: +stats.meanBatchSize.toFixed(1), producerStalls: stats.producerStalls, consumerStalls: stalls,
    recvBufferSize: stats.recvBufferSize, rssWarmMiB: +rssWarm.toFixed(1), rssGrowthMiB: +growth.toFixed(1),
    failures,
  };
  return result;
}

// A collection, a pause for the finalizers it queued (they release the closed
// receivers' rings), and another collection.
async function settleHeap() {
  gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
}

await settleHeap();
const rssStart = rssMiB();
const results = [];
const started = performance.now();
for (let k = 0; k < phases.length; k++) {
  const result = await runPhase(phases[k], k);
  if (plantLeak) planted.push(new Uint8Array(4 * MiB).fill(k + 1));
  await settleHeap();
  const memory = process.memoryUsage();
  result.rssAfterMiB = +(memory.rss / MiB).toFixed(1);
  result.heapTotalAfterMiB = +(memory.heapTotal / MiB).toFixed(1);
  result.arrayBuffersAfterMiB = +(memory.arrayBuffers / MiB).toFixed(1);
  results.push(result);
  console.log(
    `phase ${result.phase} ${result.type} ${result.overflow}: sent ${result.sent} in ${result.seconds} s ` +
      `(${result.sentPerSecond}/s), delivered ${result.delivered} (${result.deliveredPerSecond}/s), ` +
      `ringDrops ${result.ringDrops}, kernelDrops ${result.kernelDrops}, truncated ${result.truncated}, ` +
      `mean batch ${result.meanBatchSize}, stalls ${result.consumerStalls}, RSS +${result.rssGrowthMiB} MiB after warm-up, ${result.rssAfterMiB} MiB after the phase (V8 heap ${result.heapTotalAfterMiB}, ArrayBuffers ${result.arrayBuffersAfterMiB})` +
      (result.failures.length ? `\n  FAILURES:\n  ${result.failures.join('\n  ')}` : ''),
  );
}
await settleHeap();
const rssEnd = rssMiB();
const total = results.reduce((a, r) => ({
  sent: a.sent + (r.sent ?? 0), delivered: a.delivered + r.delivered, ringDrops: a.ringDrops + r.ringDrops,
  kernelDrops: a.kernelDrops + r.kernelDrops,
}), { sent: 0, delivered: 0, ringDrops: 0, kernelDrops: 0 });
const seconds = (performance.now() - started) / 1000;
// Judged over the second round: every kind of phase has run once by then,
// with its receiver, its receive thread and its sender worker, and the second
// round opens and closes them all again. Two measures, each the median growth
// from one phase to the next across that round and the growth over all of it:
// - ArrayBuffers (process.memoryUsage().arrayBuffers, after collection): exact.
//   A receiver's ring is one, so a ring kept alive grows it by 4 MiB a phase.
// - RSS, for what only it shows (native memory the addon would not free). It
//   is noisy: even with the pinned allocator (the top of this file), worker
//   heaps and thread stacks move it by up to ~20 MiB from one phase to the
//   next, either way (a planted 4 MiB a phase once showed as steps of +0.6,
//   +0.5, +5.7 and +2.1 under a full test suite's load), so it judges only a
//   steady climb: a median step over 2 MiB and, in all, more than two rings'
//   worth (8 MiB); one noisy phase has moved the median past 2 with 4.7 MiB
//   in all.
function growth(values) {
  const steps = values.slice(1).map((v, k) => v - values[k]);
  const sorted = [...steps].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, total: values[values.length - 1] - values[0] };
}
const rssWarm = results[warmUpPhases - 1].rssAfterMiB;
const judged = results.slice(warmUpPhases - 1);
const rssGrowth = { ...growth(judged.map((r) => r.rssAfterMiB)), total: rssEnd - rssWarm };
const buffersGrowth = growth(judged.map((r) => r.arrayBuffersAfterMiB));
const grew = (what, g) => `${what} ${g.median.toFixed(1)} MiB per phase (median), ${g.total.toFixed(1)} MiB in all`;
const climbing = (g) => g.median > 2 && g.total > 8;
const memoryGrew = [
  ...(climbing(buffersGrowth) ? [grew('ArrayBuffers', buffersGrowth)] : []),
  ...(judgeMemory && climbing(rssGrowth) ? [grew('RSS', rssGrowth)] : []),
];
const memoryFailure = memoryGrew.length > 0
  ? `memory grew over phases ${warmUpPhases + 1}-${phases.length}: ${memoryGrew.join('; ')} ` +
    `(RSS ${rssWarm} MiB after phase ${warmUpPhases}, ${rssEnd.toFixed(1)} at the end)`
  : null;
if (memoryFailure) results[results.length - 1].failures.push(memoryFailure);
const failed = results.some((r) => r.failures.length > 0);
const summary = {
  ok: !failed, seed: initialSeed, seconds: +seconds.toFixed(1), ...total,
  rate: Math.round(total.sent / seconds), rssStartMiB: +rssStart.toFixed(1), rssWarmMiB: rssWarm, rssEndMiB: +rssEnd.toFixed(1),
  rssAfterPhasesMiB: results.map((r) => r.rssAfterMiB), rssMedianStepMiB: +rssGrowth.median.toFixed(1),
  arrayBuffersMedianStepMiB: +buffersGrowth.median.toFixed(1), allocator: process.env.UDP_RING_SOAK_ALLOCATOR,
  machine: `${cpus().length} cores, Linux ${release()}, Node ${process.version}`, uid: process.getuid?.(), phases: results,
};
if (memoryFailure) console.log(`FAILURE: ${memoryFailure}`);
console.log(
  `${failed ? 'FAIL' : 'OK'}: ${total.sent} datagrams sent in ${summary.seconds} s (${summary.rate}/s), ` +
    `${total.delivered} delivered and checked, ${total.ringDrops} ring drops + ${total.kernelDrops} kernel drops, ` +
    `${failed ? '' : 'all accounted for; '}RSS ${summary.rssStartMiB} MiB at start, ${rssWarm} MiB after warm-up ` +
    `(phases 1-${warmUpPhases}), ${summary.rssEndMiB} MiB at end; after each phase ${summary.rssAfterPhasesMiB.join(', ')} ` +
    `(seed ${initialSeed}, ${summary.allocator} allocator)`,
);
if (jsonPath) writeFileSync(jsonPath, JSON.stringify(summary, null, 2));
process.exitCode = failed ? 1 : 0;
