#!/usr/bin/env node
// The floor of the cost table: what any receiver that wakes per burst pays.
// The bench's sender (0.5 ms bursts, 200 B) at each rate, into, alternating within
// each round: node:dgram (tuned buffer), udp-ring's onBatch and iterator, udp-ring
// with an onBatch handler that only counts (the bare wakeup of a Node process),
// and a plain C epoll + recvmmsg loop (bench/recvmmsg-loop.c with 'epoll', no
// JavaScript at all). CPU per datagram of the whole receiving process, context
// switches per M datagrams (by thread), wakeups and datagrams per receive call.
//   node bench/floor.mjs [--rates 100000,10000] [--rounds 3] [--ms 2000]
//     [--kinds dgram-tuned,ring-fast,ring,ring-empty,c-epoll]
//     [--variant name='{"option":value}']...  udp-ring kinds again with those receiver options
//                                              ("env": {...}: environment of that receiver process)
import { option, variantOptions } from './script-args.mjs';
import { startReceiver, startSender } from './processes.mjs';
import { loadavg } from 'node:os';
import { buildWakeupAddon } from './wakeup-alloc.mjs';

const rates = option('--rates', '100000,10000').split(',').map(Number);
const rounds = Number(option('--rounds', 3));
const durationMs = Number(option('--ms', 2000));
const size = 200;
const baseKinds = option('--kinds', 'dgram-tuned,ring-fast,ring,ring-empty,c-epoll').split(',');
const variants = variantOptions();
const kinds = [];
for (const kind of baseKinds) {
  // c-epoll-linger<N>: the C loop re-checking the socket for N µs before it sleeps.
  const linger = kind.match(/^c-epoll-linger(\d+)$/);
  const config = kind === 'c-epoll' || linger ? { kind: 'c-recvmmsg', epoll: true, statsEveryMs: 20, lingerUs: linger ? Number(linger[1]) : 0 } : { kind };
  kinds.push({ label: kind, config });
  if (kind.startsWith('ring')) {
    for (const { name, options: { env, ...ringOptions } } of variants) kinds.push({ label: `${kind}+${name}`, config: { kind, ringOptions, env } });
  }
}
const recvBufferSize = 64 * 1024 * 1024;
// The event loop's iterations per phase (Node allocates 56 B in each: bench/wakeup-alloc.mjs), where
// the test-only addon builds (it needs a C++ compiler and Node's headers).
let loopCount = null;
try {
  loopCount = buildWakeupAddon();
} catch (error) {
  process.stderr.write(`loop iterations not counted: ${error.message.split('\n')[0]}\n`);
}
const warmup = { rate: 50_000, durationMs: 200 };

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

const sender = await startSender();
const rows = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const rate of rates) {
      for (const { label, config } of kinds) {
        process.stderr.write(`round ${round + 1}/${rounds} ${rate / 1000}k/s ${label}\n`);
        const receiver = await startReceiver({ ...config, recvBufferSize, loopCount: config.kind === 'c-recvmmsg' ? null : loopCount });
        try {
          const port = receiver.info.port;
          let expected = (await sender.call('send', { port, size, ...warmup })).sent;
          expected += (await sender.call('send', { port, size, rate, durationMs: 1000 })).sent;
          await receiver.call('warmup', { expected });
          await receiver.call('mark');
          const sent = await sender.call('send', { port, size, rate, durationMs });
          const got = await receiver.call('settle', { expected: sent.sent });
          const perM = 1e6 / Math.max(1, got.received);
          rows.push({
            round, rate, label,
            sent: sent.sent, received: got.received, kernelDrops: got.kernelDrops, ringDrops: got.ringDrops, gaps: got.gaps,
            loop: got.loop ?? null, ring: got.ring?.during ?? null,
            delivered: got.received / sent.sent,
            cpu: (got.cpuNs / 1e9) * perM,
            switches: got.switches.total * perM,
            mainSwitches: got.switches.main * perM,
            receiveSwitches: got.switches.receive * perM,
            // Event-loop receive wakeups (udp-ring: direct batches + thread wakeups of the loop) or the C loop's.
            wakeups: got.loop ? got.loop.wakeups * perM : got.ring ? got.ring.during.batches * perM : NaN,
            directShare: got.ring ? got.ring.during.directBatches / got.ring.during.batches : NaN,
            loopWakeupsByThread: got.ring ? got.ring.during.wakeups * perM : NaN,
            perCall: got.loop ? got.received / got.loop.calls : got.ring ? got.ring.during.packets / got.ring.during.receiveCalls : NaN,
            threadWakeups: got.ring ? got.ring.threadWakeupsDuring * perM : NaN,
            gcs: got.gcCount * perM,
            allocated: got.allocatedBytes * perM,
            iterations: got.loopIterations === null ? NaN : got.loopIterations * perM,
            bytesPerIteration: got.loopIterations ? got.allocatedBytes / got.loopIterations : NaN,
          });
        } finally {
          await receiver.stop();
        }
      }
    }
  }
} finally {
  await sender.stop();
}

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const k = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(0)}k` : '-');
console.log(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${rounds} rounds, ${durationMs} ms, ${size} B, medians`);
for (const rate of rates) {
  console.log(`\n${rate / 1000}k/s`);
  console.log('| receiver | delivered | CPU s / M | x dgram | ctx switches / M (main / receive) | batches or wakeups / M | datagrams / call | thread wakeups / M | GCs / M | allocated MiB / M | loop iterations / M | allocated B / iteration |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const base = median(rows.filter((r) => r.rate === rate && r.label === 'dgram-tuned').map((r) => r.cpu));
  for (const { label } of kinds) {
    const mine = rows.filter((r) => r.rate === rate && r.label === label);
    const m = (key) => median(mine.map((r) => r[key]));
    console.log(`| ${label} | ${fmt(100 * m('delivered'), 1)} % | ${fmt(m('cpu'))} | ${fmt(m('cpu') / base)} | ${k(m('switches'))} (${k(m('mainSwitches'))} / ${k(m('receiveSwitches'))}) | ${k(m('wakeups'))} | ${fmt(m('perCall'), 1)} | ${k(m('threadWakeups'))} | ${fmt(m('gcs'), 0)} | ${fmt(m('allocated') / 2 ** 20, 1)} | ${k(m('iterations'))} | ${fmt(m('bytesPerIteration'), 0)} |`);
  }
}
console.log(`\nraw: ${JSON.stringify(rows)}`);
