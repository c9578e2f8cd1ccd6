// The scenarios. Each measurement gets a fresh receiver process (the latency
// scenario keeps its receivers for all the rounds of a rate, taking turns
// among them); one sender process serves them all. Receivers of a scenario
// alternate within each round, so drift on the machine touches every receiver alike.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startReceiver } from './processes.mjs';
import { stealSample } from './system.mjs';

// The coalescing window of the 'ring-coalesce' rows (options.coalesceMs): a collector that can wait
// this long per datagram (statsd, syslog) in exchange for fewer wakeups at light load.
export const coalesceMs = 5;

export const labels = {
  'dgram-default': 'node:dgram, default buffer',
  'dgram-tuned': 'node:dgram, recvBufferSize = rmem_max',
  ring: 'udp-ring, defaults (for await)',
  'ring-fast': 'udp-ring, onBatch',
  'ring-coalesce': `udp-ring, onBatch, coalesceMs: ${coalesceMs}`,
  'ring-auto': "udp-ring, onBatch, coalesceMs: 'auto'",
  'ring-iter-auto': "udp-ring, for await, coalesceMs: 'auto'",
  'ring-ceiling': 'udp-ring, native ceiling',
  'ring-dgram': 'udp-ring/dgram',
  'c-recvmmsg': 'plain C recvmmsg loop (outside ceiling)',
  'ring-empty': 'udp-ring, onBatch doing nothing (floor: a bare Node wakeup)',
  'c-epoll': 'plain C epoll + recvmmsg loop (floor: no JavaScript)',
  'c-iouring': 'C io_uring loop (multishot recvmsg, provided buffers)',
};

// The io_uring loop's options in the drain tables (bench/iouring-loop.c; bench/iouring.mjs
// compares them all): SINGLE_ISSUER | DEFER_TASKRUN with batched reaping, what io_uring
// recommends for one thread; the lowest CPU per datagram at 64 B in two runs of three
// (docs/architecture.md, "io_uring: measured, not kept").
export const iouringOptions = ['batch', 'defer'];

// Large enough for the whole drain queue: a 100-byte datagram costs about
// 1 KiB of kernel memory (its skb), so 1M of them need about 1 GiB.
const drainRecvBufferSize = 2 ** 30 - 1;

// A service under test is warm: before measuring, every receiver (and the
// sender) runs the same short load, so JIT compilation is not what is measured.
// `light`: then the measured rate itself for a while. A light load runs other
// code than the first warm-up's large batches (batches of one, a wait between
// datagrams), which would otherwise be compiled during the measurement (its
// CPU and its page faults counted there).
// A receiver that could not run (the kernel refused io_uring) measures nothing: { unavailable: why }.
async function measure(config, progress, run, { sender, size, warmup, light }) {
  const receiver = await startReceiver(config);
  try {
    if (receiver.info.unavailable) return { unavailable: receiver.info.unavailable };
    await warm(receiver, { sender, size, warmup, light });
    return await run(receiver);
  } finally {
    await receiver.stop();
    progress.tick();
  }
}

async function warm(receiver, { sender, size, warmup, light }) {
  const sent = await sender.call('send', { port: receiver.info.port, size, ...warmup });
  let expected = sent.sent;
  if (light && light.durationMs > 0) expected += (await sender.call('send', { port: receiver.info.port, size, ...light })).sent;
  await receiver.call('warmup', { expected });
}

export async function drain({ sender, preset, progress }) {
  const kinds = ['dgram-default', 'ring', 'ring-ceiling', 'c-recvmmsg', 'c-iouring'];
  const rounds = [];
  const refused = new Set();
  const dir = mkdtempSync(join(tmpdir(), 'udp-ring-bench-'));
  try {
    for (let round = 0; round < preset.drain.rounds; round++) {
      for (const kind of kinds) {
        if (refused.has(kind)) continue;
        progress.set(`drain: ${kind}, round ${round + 1}/${preset.drain.rounds}`);
        const gate = join(dir, `gate-${round}-${kind}`);
        const result = await measure(
          { kind, timing: true, recvBufferSize: drainRecvBufferSize, gate, ...(kind === 'c-iouring' ? { iouring: iouringOptions } : {}) },
          progress, async (receiver) => {
            await receiver.call('mark');
            const sent = await sender.call('send', { port: receiver.info.port, size: 100, count: preset.drain.count, rate: 0 });
            // The receiver waits for this file to exist: the end of its stall.
            writeFileSync(gate, '');
            const got = await receiver.call('settle', { expected: sent.sent });
            return { ...got, sent: sent.sent, rate: got.received / (got.activeMs / 1000) };
          }, { sender, size: 100, warmup: preset.warmup });
        // The kernel refused io_uring: one row says why, the bench goes on.
        if (result.unavailable) {
          refused.add(kind);
          rounds.push({ round, kind, unavailable: result.unavailable, sent: 0, received: 0, kernelDrops: 0, ringDrops: 0, gaps: 0 });
          continue;
        }
        rounds.push({ round, kind, ...result });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { kinds, count: preset.drain.count, size: 100, recvBufferSize: drainRecvBufferSize, rounds };
}

// Drain of `count` datagrams of `size` bytes by each receiver variant (a kind
// and options), queued while the receiver is held, as drain() does. The
// variants take turns within each round, in reverse order every other round,
// so drift on a shared machine touches each alike (the report pairs them by round).
// With `mix: { min, max }` the sizes spread over that range and rows carry size `${min}-${max}`.
export async function drainVariants({ sender, preset, progress }, name, { variants, size, count, gso = false, rounds, mix = null }) {
  const sendSize = mix ? mix.max : size;
  if (mix) size = `${mix.min}-${mix.max}`;
  const results = [];
  variants = { ...variants };
  const dir = mkdtempSync(join(tmpdir(), 'udp-ring-bench-'));
  try {
    for (let round = 0; round < rounds; round++) {
      const order = Object.entries(variants);
      if (round % 2 === 1) order.reverse();
      for (const [variant, config] of order) {
        progress.set(`${name}: ${variant}, ${size} B, round ${round + 1}/${rounds}`);
        const gate = join(dir, `gate-${name}-${round}-${variant}`);
        // A small ring: most of the queue is drained from the kernel, not from what the thread took during the hold.
        const result = await measure({ ...config, ringBytes: 8 * 2 ** 20, timing: true, recvBufferSize: drainRecvBufferSize, gate }, progress,
          async (receiver) => {
            await receiver.call('mark');
            const sent = await sender.call('send', { port: receiver.info.port, size: sendSize, count, rate: 0, gso, mix });
            writeFileSync(gate, '');
            const got = await receiver.call('settle', { expected: sent.sent });
            return { ...got, sent: sent.sent, rate: got.received / (got.activeMs / 1000) };
          }, { sender, size: sendSize, warmup: preset.warmup });
        // Refused (io_uring): one row that says why, and not tried again.
        if (result.unavailable) {
          results.push({ round, variant, size, unavailable: result.unavailable, sent: 0, received: 0, kernelDrops: 0, ringDrops: 0 });
          delete variants[variant];
          continue;
        }
        results.push({ round, variant, size, ...result });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

// What the kernel offers past recvmmsg (issue 13): GSO send against sendmmsg,
// GRO receive from a GSO sender against a plain C recvmmsg loop, large
// datagrams, and the cost of packet info and TOS.
export async function kernel(args) {
  const { sender, preset, progress } = args;
  const k = preset.kernel;
  // Parts to run (--kernel-parts): all by default.
  const part = (name) => !k.parts || k.parts.includes(name);
  // Send rate: the same datagrams with and without GSO, into a held C loop (the kernel queues them).
  const send = [];
  for (let round = 0; round < (part('send') ? k.rounds : 0); round++) {
    for (const gso of [false, true]) {
      progress.set(`kernel: send ${k.sendCount} x ${k.size} B, gso ${gso}, round ${round + 1}/${k.rounds}`);
      const dir = mkdtempSync(join(tmpdir(), 'udp-ring-bench-'));
      try {
        // Held and with GRO: the queue takes each GSO message whole, so the sender's own cost is what is timed.
        await measure({ kind: 'c-recvmmsg-gro', recvBufferSize: drainRecvBufferSize, gate: join(dir, 'never') },
          progress, async (receiver) => {
            await receiver.call('mark');
            const sent = await sender.call('send', { port: receiver.info.port, size: k.size, count: k.sendCount, rate: 0, gso });
            send.push({ round, gso, sent: sent.sent, calls: sent.calls, rate: sent.achievedRate });
          }, { sender, size: k.size, warmup: preset.warmup });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const gro = !part('gro') ? [] : await drainVariants(args, 'kernel gro', { size: k.size, count: k.count, gso: true, rounds: k.rounds,
    variants: { 'udp-ring, gro': { kind: 'ring', gro: true }, 'udp-ring': { kind: 'ring' },
      'C recvmmsg loop': { kind: 'c-recvmmsg' }, 'C recvmmsg loop, gro': { kind: 'c-recvmmsg-gro' } } });
  // Large datagrams: udp-ring against its own landing-zone copy path (every datagram into the landing
  // zone, then copied into the ring: what it did before receiving into ring space; the switch also keeps the
  // producer sweeping the whole ring, as before it started an empty ring again at its beginning), same run.
  const large = [];
  for (const size of part('large') ? k.largeSizes : []) {
    large.push(...await drainVariants(args, 'kernel large', { size, count: Math.round(k.largeBytes / size), rounds: k.largeRounds ?? k.rounds,
      variants: { 'udp-ring': { kind: 'ring' }, 'udp-ring, landing zone only': { kind: 'ring', landingOnly: true },
        'C recvmmsg loop': { kind: 'c-recvmmsg' }, 'C io_uring loop': { kind: 'c-iouring', iouring: iouringOptions } } }));
  }
  // Mixed sizes (syslog / statsd: 60-1400 B at random): datagrams after a shorter one in a receive are moved
  // down in the ring; against the landing-zone copy path, which copies every one.
  const mixed = k.mix && part('mixed') ? await drainVariants(args, 'kernel mixed', { mix: k.mix, count: k.mixCount, rounds: k.largeRounds ?? k.rounds,
    variants: { 'udp-ring': { kind: 'ring' }, 'udp-ring, landing zone only': { kind: 'ring', landingOnly: true },
      'C recvmmsg loop': { kind: 'c-recvmmsg' } } }) : [];
  // Packet info and TOS off and on, for udp-ring and for the C loop (the kernel's own cost of the cmsgs: the floor).
  const info = !part('info') ? [] : await drainVariants(args, 'kernel info', { size: k.smallSize, count: k.smallCount, rounds: k.infoRounds ?? k.rounds,
    variants: { 'udp-ring': { kind: 'ring' }, 'udp-ring, pktinfo + tos': { kind: 'ring', pktinfo: true, tos: true },
      'C recvmmsg loop': { kind: 'c-recvmmsg' }, 'C recvmmsg loop, pktinfo + tos': { kind: 'c-recvmmsg', pktinfo: true, tos: true } } });
  return { ...k, send, gro, large, mixed, info };
}

export async function stalls({ sender, preset, progress }) {
  const kinds = ['dgram-default', 'dgram-tuned', 'ring'];
  const { rate, size, durationMs, stallsMs, everyMs } = preset.stalls;
  const rounds = [];
  for (let round = 0; round < preset.stalls.rounds; round++) {
    for (const stallMs of stallsMs) {
      for (const kind of kinds) {
        progress.set(`stalls: ${kind}, ${stallMs} ms every ${everyMs} ms, round ${round + 1}/${preset.stalls.rounds}`);
        const result = await measure({ kind, stallMs, stallEveryMs: everyMs }, progress, async (receiver) => {
          await receiver.call('mark');
          const sent = await sender.call('send', { port: receiver.info.port, size, rate, durationMs });
          const got = await receiver.call('settle', { expected: sent.sent });
          return { ...got, sent: sent.sent, achievedRate: sent.achievedRate, delivered: got.received / sent.sent };
        }, { sender, size, warmup: preset.warmup });
        rounds.push({ round, kind, stallMs, ...result });
      }
    }
  }
  return { kinds, rate, size, durationMs, stallsMs, everyMs, rounds };
}

export async function lossless({ sender, preset, progress }) {
  const kinds = ['dgram-default', 'dgram-tuned', 'ring', 'ring-ceiling'];
  const { rates, size, stepMs, maxLoss } = preset.lossless;
  const results = [];
  for (let round = 0; round < preset.lossless.rounds; round++) {
    for (const kind of kinds) {
      const steps = [];
      let held = 0;
      let limitedBySender = false;
      await measure({ kind }, progress, async (receiver) => {
        for (const rate of rates) {
          progress.set(`lossless: ${kind} at ${rate / 1000}k/s, round ${round + 1}/${preset.lossless.rounds}`);
          await receiver.call('mark');
          const sent = await sender.call('send', { port: receiver.info.port, size, rate, durationMs: stepMs });
          const got = await receiver.call('settle', { expected: sent.sent });
          const loss = 1 - got.received / sent.sent;
          steps.push({ rate, achievedRate: sent.achievedRate, sent: sent.sent, received: got.received,
            kernelDrops: got.kernelDrops, ringDrops: got.ringDrops, loss });
          if (loss > maxLoss) break;
          held = sent.achievedRate;
          // The sender could not keep up: the receiver was never pushed past this.
          if (sent.achievedRate < 0.9 * rate) {
            limitedBySender = true;
            break;
          }
        }
      }, { sender, size, warmup: preset.warmup });
      results.push({ round, kind, held, limitedBySender, steps });
    }
  }
  return { kinds, rates, size, stepMs, maxLoss, rounds: results };
}

export async function latency({ sender, preset, progress }) {
  const kinds = ['dgram-default', 'ring', 'ring-fast', 'ring-dgram', 'ring-coalesce', 'ring-auto', 'ring-iter-auto'];
  const { rates, size, durationMs, sliceMs } = preset.latency;
  // The receivers of a rate run side by side, and the sender takes turns among them in slices of
  // sliceMs (the first receiver of each slice rotating), so that a spell of noise on the machine
  // (a neighbour on the host taking the CPU: steal) falls on every receiver alike instead of on
  // the one whose run it was. Each receiver's run is its slices of the round, durationMs in all.
  const slices = Math.max(1, Math.round(durationMs / sliceMs));
  const rounds = [];
  for (const rate of rates) {
    const receivers = [];
    try {
      for (const kind of kinds) {
        progress.set(`latency: starting ${kind} at ${rate / 1000}k/s`);
        const receiver = await startReceiver({ kind, latency: true, ...ringOptionsOf(kind) });
        receivers.push({ kind, receiver });
        await warm(receiver, { sender, size, warmup: preset.warmup, light: { rate, durationMs: preset.latency.warmupMs, burstMs: 0.1 } });
      }
      for (let round = 0; round < preset.latency.rounds; round++) {
        progress.set(`latency: ${kinds.length} receivers in turns of ${sliceMs} ms at ${rate / 1000}k/s, round ${round + 1}/${preset.latency.rounds}`);
        for (const { receiver } of receivers) await receiver.call('mark');
        const sent = new Map(kinds.map((kind) => [kind, { sent: 0, seconds: 0 }]));
        const steal = stealSample();
        for (let slice = 0; slice < slices; slice++) {
          for (let k = 0; k < receivers.length; k++) {
            const { kind, receiver } = receivers[(k + slice) % receivers.length];
            // Bursts of 0.1 ms: at 10k/s every datagram goes alone.
            const part = await sender.call('send', { port: receiver.info.port, size, rate, durationMs: durationMs / slices, burstMs: 0.1 });
            const total = sent.get(kind);
            total.sent += part.sent;
            total.seconds += part.sent / Math.max(1, part.achievedRate);
          }
        }
        const stealShare = steal.share();
        for (const { kind, receiver } of receivers) {
          const { sent: count, seconds } = sent.get(kind);
          const got = await receiver.call('settle', { expected: count });
          rounds.push({ round, kind, rate, ...got, sent: count, achievedRate: count / Math.max(1e-9, seconds), stealShare });
        }
      }
    } finally {
      for (const { receiver } of receivers) {
        await receiver.stop();
        progress.tick();
      }
    }
  }
  return { kinds, rates, size, durationMs, sliceMs, rounds };
}

// The receiver options a kind stands for, beyond its consumption path.
function ringOptionsOf(kind) {
  if (kind === 'ring-coalesce') return { ringOptions: { coalesceMs } };
  if (kind === 'ring-auto' || kind === 'ring-iter-auto') return { ringOptions: { coalesceMs: 'auto' } };
  return {};
}

export async function cost(args) {
  return costAt(args, args.preset.cost);
}

// The same at light load, where a batch is one datagram and the hand-off's cost per batch is paid per datagram.
export async function costLight(args) {
  return costAt(args, args.preset.costLight);
}

async function costAt({ sender, progress, preset: { warmup } }, settings) {
  // The tuned buffer so that node:dgram holds the rate too; the buffer does not change its cost per datagram.
  // 'ring-empty' and 'c-epoll' are the floor any receiver pays for this traffic (docs/cost-floor.md): a Node
  // process that only wakes, and a C loop with no JavaScript; the coalescing rows (a fixed window, and
  // 'auto' for onBatch and the iterator) pay latency for fewer wakeups, 'auto' only while busy. The
  // targets compare node:dgram with the udp-ring rows.
  const kinds = ['dgram-tuned', 'ring', 'ring-fast', 'ring-empty', 'c-epoll', 'ring-coalesce', 'ring-auto', 'ring-iter-auto'];
  const { rate, size, durationMs } = settings;
  const preset = { warmup, cost: settings };
  const rounds = [];
  for (let round = 0; round < preset.cost.rounds; round++) {
    for (const kind of kinds) {
      progress.set(`cost: ${kind} at ${rate / 1000}k/s, round ${round + 1}/${preset.cost.rounds}`);
      // The C loop forces a large buffer, as udp-ring does (node:dgram-tuned takes rmem_max).
      const config = kind === 'c-epoll' ? { kind, recvBufferSize: 64 * 1024 * 1024 } : { kind, ...ringOptionsOf(kind) };
      const result = await measure(config, progress, async (receiver) => {
        await receiver.call('mark');
        const sent = await sender.call('send', { port: receiver.info.port, size, rate, durationMs });
        const got = await receiver.call('settle', { expected: sent.sent });
        const perMillion = 1e6 / Math.max(1, got.received);
        // The C loop's CPU is its own process's (cpuNs); it has no V8 heap (this process only relays its counters).
        const isLoop = kind.startsWith('c-');
        return {
          ...got, sent: sent.sent, achievedRate: sent.achievedRate,
          cpuSecondsPerMillion: (got.cpuNs / 1e9) * perMillion,
          gcsPerMillion: isLoop ? NaN : got.gcCount * perMillion,
          allocatedBytesPerMillion: isLoop ? NaN : got.allocatedBytes * perMillion,
        };
      }, { sender, size, warmup: preset.warmup, light: { rate, durationMs: settings.warmupMs } });
      rounds.push({ round, kind, ...result });
    }
  }
  return { kinds, rate, size, durationMs, rounds };
}

export async function lag({ sender, preset, progress }) {
  // A handler slower than the arrival rate, and a 50 ms interval timer beside
  // it: how long the event loop goes without a turn (options.yieldEvery).
  const kinds = ['dgram-default', 'ring', 'ring-fast', 'ring-dgram'];
  const { rate, size, durationMs, costUs } = preset.lag;
  const rounds = [];
  for (let round = 0; round < preset.lag.rounds; round++) {
    for (const kind of kinds) {
      progress.set(`lag: ${kind}, ${costUs} µs per datagram at ${rate / 1000}k/s, round ${round + 1}/${preset.lag.rounds}`);
      const result = await measure({ kind, costUs, lagTimer: true }, progress, async (receiver) => {
        await receiver.call('mark');
        const sent = await sender.call('send', { port: receiver.info.port, size, rate, durationMs });
        const got = await receiver.call('settle', { expected: sent.sent });
        return { ...got, sent: sent.sent, achievedRate: sent.achievedRate };
      }, { sender, size, warmup: preset.warmup });
      rounds.push({ round, kind, ...result });
    }
  }
  return { kinds, rate, size, durationMs, costUs, everyMs: 50, rounds };
}
