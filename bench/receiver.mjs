// One receiver under test, alone in its own process. argv[2] is its JSON
// config; the parent drives it over IPC:
//   warmup -> wait for the warm-up load (the first traffic) to arrive
//   mark   -> start a phase: reset counters and the GC profiler, start stalls,
//             or (drain) block the event loop until the gate file appears
//   settle -> wait until every datagram sent is received or counted as
//             dropped, then report what the phase cost
//   exit
// Kinds: 'dgram-default', 'dgram-tuned' (recvBufferSize = rmem_max),
// 'ring' (defaults, reads every sequence number), 'ring-ceiling' (releases
// batches without touching them), 'ring-dgram' (udp-ring/dgram's 'message'),
// 'c-recvmmsg' (a plain C recvmmsg loop in a child process, bench/recvmmsg-loop.c:
// the outside ceiling; this process only relays its counters), 'c-iouring' (the
// same job with io_uring's multishot recvmsg, bench/iouring-loop.c, its options
// in config.iouring; when the kernel refuses io_uring, the ready message says
// so in `unavailable` and the receiver measures nothing).
// 'ring-empty': onBatch with a handler that only counts (the bare wakeup, bench/floor.mjs).
// 'c-epoll': the C recvmmsg loop waiting in epoll_wait, asked for its counters every 20 ms (the cost tables' floor).
// config.epoll: the C recvmmsg loop waits in epoll_wait (as libuv does) instead of poll;
// config.statsEveryMs: how often the C loop is asked for its counters (default 5 ms; each ask wakes it).
// config.landingOnly (ring kinds): every datagram lands in the landing zone and is copied into the
// ring, and an empty ring is not started again at its beginning, as before large datagrams were
// received into ring space (UDP_RING_INTERNAL_LANDING_ONLY).
// config.pktinfo + config.tos with 'c-recvmmsg': the C loop reads IP_PKTINFO and IP_RECVTOS too.
// config.cpu: the C loop runs pinned to that CPU (taskset); config.nice: at that nice level.
// config.loopCount (the path of bench/wakeup-alloc.cc's addon, built by the parent): the event
// loop's iterations per phase, from libuv's metrics (Node allocates 56 B in each, bench/wakeup-alloc.mjs).
// config.costUs: a deliberate cost per datagram (a spin). config.lagTimer: a
// 50 ms interval timer runs during each phase; its longest gap is reported.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { nowNs, sleepSync, stall } from './clock.mjs';
import { contextSwitches, forceRecvBuffer, processTimes, rmemMax, socketFd, threadTimes, udpSocketRow } from './system.mjs';

const config = JSON.parse(process.argv[2]);
// Environment for this receiver only (a bench script comparing a native setting read from the environment).
Object.assign(process.env, config.env ?? {});
const { kind } = config;
// 'ring-fast' is udp-ring's onBatch (the fast path); 'ring' its async iterator; 'ring-coalesce' onBatch
// with options.coalesceMs (config.ringOptions: the window trades latency for CPU); 'ring-auto' and
// 'ring-iter-auto' onBatch and the iterator with coalesceMs 'auto' (windows only while busy).
const loopCounter = config.loopCount ? createRequire(import.meta.url)(config.loopCount) : null;
const isRing = ['ring', 'ring-fast', 'ring-coalesce', 'ring-auto', 'ring-iter-auto', 'ring-ceiling', 'ring-empty'].includes(kind);

let received = 0;
let gaps = 0;
let expectedSeq = 0;
let lastSeenMs = 0;
// Latencies below zero would mean the clocks of the two processes disagree.
let negativeLatencies = 0;
// Imported only where used: process start-up is part of every measurement's wait.
const hdr = config.latency ? (await import('hdr-histogram-js')).default : null;
const histogram = hdr
  ? hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  : null;

// config.timestamps with latency (bench/tail.mjs): each datagram's latency split at the kernel's
// receive timestamp: send -> kernel (the sender and loopback) and kernel -> handler (this receiver).
const realtime = config.timestamps && histogram ? (await import('../dist/backends/native/addon.js')).native : null;
const makeHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
const inKernel = realtime ? makeHistogram() : null;
const inReceiver = realtime ? makeHistogram() : null;
// Datagrams over 1 ms in all, by where most of their time went.
let slow = { total: 0, receiverSide: 0, senderSide: 0 };
// The first datagrams over 1 ms on the receiver's side: [ms into the phase, µs kernel -> handler, batch length].
let slowEvents = [];

// Counting the sequence numbers that were not the next one keeps the read honest.
function noteSeq(seq) {
  if (seq !== expectedSeq) gaps++;
  expectedSeq = seq + 1;
}

// The handler's own work per datagram, when the scenario asks for one.
const costMs = (config.costUs ?? 0) / 1000;
function work() {
  const end = performance.now() + costMs;
  while (performance.now() < end) { /* busy: the cost of handling one datagram */ }
}

let socket = null;
let rx = null;
// udp-ring/dgram's socket: receives like 'ring', handled like 'dgram'.
let facade = null;
let port = 0;
let recvBufferSize = 0;
let recvBufferForced = false;
// The C loop: its process, and its counters as last reported.
let loop = null;
let loopStats = { kernelDrops: 0, startNs: 0, lastNs: 0, extra: {} };
// Why the C loop would not run (the kernel refused io_uring), or null.
let unavailable = null;
let statsTimer = null;
// When the C loop last answered 'stats'. recvmmsg-loop answers only once its socket is empty, so
// while it drains a long queue on a busy machine it is silent: busy, not idle.
let lastStatsMs = 0;

if (kind === 'c-epoll') {
  config.epoll = true;
  config.statsEveryMs ??= 20;
}
if (kind === 'c-recvmmsg' || kind === 'c-recvmmsg-gro' || kind === 'c-iouring' || kind === 'c-epoll') {
  const { buildIouringLoop, buildNativeLoop } = await import('./native-loop.mjs');
  const binary = kind === 'c-iouring' ? buildIouringLoop() : buildNativeLoop();
  const args = [String(config.recvBufferSize ?? 0), ...(kind === 'c-recvmmsg-gro' ? ['gro'] : []),
    ...(config.epoll && kind !== 'c-iouring' ? ['epoll'] : []),
    ...(config.lingerUs && kind !== 'c-iouring' ? [`linger=${config.lingerUs}`] : []),
    // IP_PKTINFO + IP_RECVTOS read per datagram: the floor of what udp-ring's pktinfo + tos can cost.
    ...(kind === 'c-recvmmsg' && config.pktinfo && config.tos ? ['info'] : []),
    ...(kind === 'c-iouring' ? config.iouring ?? [] : [])];
  // Pinned (taskset) and/or favoured by the scheduler (nice, negative needs root), when asked:
  // each wrapper execs the next, so loop.pid is the loop's own.
  const command = [...(config.nice === undefined ? [] : ['nice', '-n', String(config.nice)]),
    ...(config.cpu === undefined ? [] : ['taskset', '-c', String(config.cpu)]), binary, ...args];
  loop = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: loop.stdout });
  const ready = await new Promise((resolve, reject) => {
    loop.once('exit', (code) => reject(new Error(`${kind} loop exited (${code})`)));
    lines.once('line', resolve);
  });
  loop.removeAllListeners('exit');
  if (ready.startsWith('refused ')) {
    unavailable = ready.slice('refused '.length);
    loop = null;
  } else {
    [, port, recvBufferSize, recvBufferForced] = ready.split(' ').map(Number);
    recvBufferForced = recvBufferForced === 1;
  }
  lines.on('line', (line) => {
    const [word, got, kernelDrops, gapCount, startNs, lastNs, ...fields] = line.split(' ');
    if (word !== 'stats') return;
    received = Number(got);
    gaps = Number(gapCount);
    // iouring-loop's own counters (key=value): enters, cqes, enobufs, rearms...
    const extra = Object.fromEntries(fields.map((field) => field.split('=')).map(([key, value]) => [key, Number(value)]));
    loopStats = { kernelDrops: Number(kernelDrops), startNs: Number(startNs), lastNs: Number(lastNs), extra };
    if (loopStats.lastNs > 0) lastSeenMs = loopStats.lastNs / 1e6;
    lastStatsMs = performance.now();
    if (phase && config.gate && loopStats.startNs > 0) phase.startMs = loopStats.startNs / 1e6;
  });
  // Counters every few ms: the phases below read them as they read their own.
  if (loop) statsTimer = setInterval(() => loop.stdin.write('stats\n'), config.statsEveryMs ?? 5).unref();
} else if (isRing) {
  const { UdpReceiver } = await import('../dist/index.js');
  const options = { host: '127.0.0.1', port: 0 };
  if (config.recvBufferSize) options.recvBufferSize = config.recvBufferSize;
  // The kernel scenario's variants: GRO, packet info, TOS.
  for (const key of ['gro', 'pktinfo', 'tos', 'timestamps']) if (config[key]) options[key] = true;
  if (config.ringBytes) options.ringBytes = config.ringBytes;
  // Any other receiver options a bench script compares (bench/floor.mjs --variant).
  Object.assign(options, config.ringOptions ?? {});
  // The path before large datagrams went straight into ring space (every datagram received into the
  // landing zone, then copied into the ring), for a before/after in one run: an internal switch the
  // addon reads at open, not an option (receive_loop.cc).
  if (config.landingOnly) process.env.UDP_RING_INTERNAL_LANDING_ONLY = '1';
  rx = await UdpReceiver.open(options);
  port = rx.address().port;
  const stats = rx.stats();
  recvBufferSize = stats.recvBufferSize;
  recvBufferForced = stats.recvBufferForced;
  void consumeRing(rx);
} else if (kind === 'ring-dgram') {
  const { createSocket } = await import('../dist/adapters/dgram/index.js');
  facade = createSocket({ type: 'udp4', ...(config.recvBufferSize ? { recvBufferSize: config.recvBufferSize } : {}) });
  facade.on('message', dgramHandler());
  await new Promise((resolve, reject) => {
    facade.once('error', reject);
    facade.bind(0, '127.0.0.1', resolve);
  });
  port = facade.address().port;
  // While the socket still receives on the event loop (udp-ring/dgram's cheap start): node:dgram's buffer.
  const stats = facade.stats();
  recvBufferSize = stats?.recvBufferSize ?? 0;
  recvBufferForced = stats?.recvBufferForced ?? false;
} else {
  const options = { type: 'udp4' };
  if (kind === 'dgram-tuned') options.recvBufferSize = rmemMax() ?? 4 * 1024 * 1024;
  socket = dgram.createSocket(options);
  socket.on('message', dgramHandler());
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', resolve);
  });
  port = socket.address().port;
  if (config.recvBufferSize) {
    const fd = socketFd(udpSocketRow(port)?.inode);
    const granted = fd >= 0 ? forceRecvBuffer(fd, config.recvBufferSize) : null;
    recvBufferForced = granted !== null;
    // Unprivileged: as much as net.core.rmem_max allows, as udp-ring gets.
    if (!recvBufferForced) socket.setRecvBufferSize(Math.min(config.recvBufferSize, rmemMax() ?? 0) || 212992);
  }
  recvBufferSize = socket.getRecvBufferSize();
}

function dgramHandler() {
  if (histogram) {
    return (message) => {
      const latencyUs = Math.round((nowNs() - message.readDoubleLE(8)) / 1000);
      if (latencyUs < 0) negativeLatencies++;
      histogram.recordValue(latencyUs > 0 ? latencyUs : 1);
      noteSeq(message.readUInt32LE(0));
      received++;
    };
  }
  if (config.timing) {
    return (message) => {
      noteSeq(message.readUInt32LE(0));
      received++;
      lastSeenMs = performance.now();
    };
  }
  if (costMs > 0) {
    return (message) => {
      work();
      noteSeq(message.readUInt32LE(0));
      received++;
    };
  }
  return (message) => {
    noteSeq(message.readUInt32LE(0));
    received++;
  };
}

async function consumeRing(receiver) {
  if (kind === 'ring-ceiling') {
    for await (const batch of receiver) {
      received += batch.length;
      if (config.timing) lastSeenMs = performance.now();
    }
    return;
  }
  if (kind === 'ring-fast' || kind === 'ring-coalesce' || kind === 'ring-auto') {
    await receiver.onBatch(onRingBatch);
    return;
  }
  if (kind === 'ring-empty') {
    await receiver.onBatch((batch) => { received += batch.length; });
    return;
  }
  for await (const batch of receiver) onRingBatch(batch);
}

// One batch, however it came (onBatch or the iterator).
function onRingBatch(batch) {
  const { view, length } = batch;
  if (histogram) {
    // The realtime clock first: a pause between the two reads then lengthens the whole latency (read
    // second), never the kernel -> handler part alone, which could otherwise exceed the whole (CI once
    // had 1,321 µs of a 1,275 µs latency on the receiver's side).
    const seenRealtimeUs = realtime ? realtime.realtimeMicros() : 0;
    const seen = nowNs();
    for (let i = 0; i < length; i++) {
      const at = batch.offset(i);
      const latencyUs = Math.round((seen - view.getFloat64(at + 8, true)) / 1000);
      if (latencyUs < 0) negativeLatencies++;
      histogram.recordValue(latencyUs > 0 ? latencyUs : 1);
      noteSeq(view.getUint32(at, true));
      if (realtime) {
        const receiverUs = Math.max(1, Math.round(seenRealtimeUs - batch.timestamp(i)));
        const kernelUs = Math.max(1, latencyUs - receiverUs);
        inReceiver.recordValue(receiverUs);
        inKernel.recordValue(kernelUs);
        if (latencyUs > 1000) {
          slow.total++;
          if (receiverUs >= kernelUs) {
            slow.receiverSide++;
            if (slowEvents.length < 400) slowEvents.push([Math.round(performance.now() - (phase?.startMs ?? 0)), receiverUs, length]);
          } else slow.senderSide++;
        }
      }
    }
  } else if (costMs > 0) {
    for (let i = 0; i < length; i++) {
      work();
      noteSeq(view.getUint32(batch.offset(i), true));
    }
  } else {
    for (let i = 0; i < length; i++) noteSeq(view.getUint32(batch.offset(i), true));
  }
  received += length;
  if (config.timing) lastSeenMs = performance.now();
}

function drops() {
  if (loop) return { kernelDrops: loopStats.kernelDrops, ringDrops: 0 };
  const stats = rx ? rx.stats() : facade?.stats();
  // A facade counts on the event loop too (SO_MEMINFO); the kernel's line is for node:dgram.
  if (stats) return { kernelDrops: stats.kernelDrops, ringDrops: stats.ringDrops };
  return { kernelDrops: udpSocketRow(port)?.drops ?? 0, ringDrops: 0 };
}

// ---- phases ----------------------------------------------------------------

// Waits until the warm-up load, the first traffic this receiver sees, has
// arrived or is counted lost. Measures nothing.
function warmup({ expected }, reply) {
  const since = performance.now();
  const check = () => {
    const now = drops();
    if (received + now.kernelDrops + now.ringDrops >= expected || performance.now() - since > 5000) {
      reply({ received });
    }
    else setTimeout(check, 5);
  };
  check();
}

let phase = null;
let stallTimer = null;
// The lag probe: a 50 ms interval timer and the longest gap between its ticks.
let lagTimer = null;
let lag = { ticks: 0, maxGapMs: 0, last: 0 };
const lagEveryMs = 50;

function startLagTimer() {
  clearInterval(lagTimer);
  lag = { ticks: 0, maxGapMs: 0, last: performance.now() };
  lagTimer = setInterval(() => {
    const now = performance.now();
    lag.maxGapMs = Math.max(lag.maxGapMs, now - lag.last);
    lag.last = now;
    lag.ticks++;
  }, lagEveryMs);
}

function startStalls(ms, everyMs) {
  const start = performance.now();
  let k = 0;
  const next = () => {
    k++;
    stallTimer = setTimeout(() => {
      stall(ms);
      next();
    }, Math.max(0, start + k * everyMs - performance.now()));
  };
  next();
}

function mark(reply) {
  const base = drops();
  phase = {
    received,
    gaps,
    kernelDrops: base.kernelDrops,
    ringDrops: base.ringDrops,
    cpu: process.cpuUsage(),
    usage: process.resourceUsage(),
    threads: threadTimes(),
    loopTimes: loop ? processTimes(loop.pid) : null,
    switches: contextSwitches(loop ? loop.pid : process.pid),
    loopExtra: loopStats.extra,
    usedHeap: getHeapStatistics().used_heap_size,
    loopCount: loopCounter?.loopCount() ?? 0,
    profiler: new GCProfiler(),
    threadWakeups: rx ? rx.stats().threadWakeups : 0,
    ringStats: rx ? rx.stats() : null,
    startMs: performance.now(),
  };
  histogram?.reset();
  inKernel?.reset();
  inReceiver?.reset();
  slow = { total: 0, receiverSide: 0, senderSide: 0 };
  slowEvents = [];
  // Every send numbers its datagrams from 0.
  expectedSeq = 0;
  phase.profiler.start();
  if (config.stallMs > 0) startStalls(config.stallMs, config.stallEveryMs);
  if (config.lagTimer) startLagTimer();
  if (loop) {
    // The C loop holds itself until the gate opens, and times itself; without a gate it only
    // expects sequence number 0 next (the command is read before any datagram of the new send).
    loop.stdin.write(config.gate ? `hold ${config.gate}\n` : 'mark\n');
    reply({});
    return;
  }
  reply({}, () => {
    if (!config.gate) return;
    // Drain: the event loop is stalled while the sender fills the queue.
    while (!existsSync(config.gate)) sleepSync(2);
    phase.startMs = performance.now();
  });
}

function settle({ expected, idleLimitMs = 3000 }, reply) {
  clearTimeout(stallTimer);
  let lastProgress = performance.now();
  let lastReceived = -1;
  let counted = null;
  const check = () => {
    const got = received - phase.received;
    if (got !== lastReceived || (loop && performance.now() - lastStatsMs > 50)) {
      lastReceived = got;
      lastProgress = performance.now();
    }
    if (got < expected) {
      counted = drops();
      const lost = counted.kernelDrops - phase.kernelDrops + counted.ringDrops - phase.ringDrops;
      if (got + lost < expected && performance.now() - lastProgress < idleLimitMs) {
        setTimeout(check, 10);
        return;
      }
    }
    finish(expected, counted ?? drops(), reply);
  };
  check();
}

function diffSwitches(now, before) {
  const out = {};
  for (const [key, value] of Object.entries(now)) out[key] = value - (before[key] ?? 0);
  return out;
}

function finish(expected, counted, reply) {
  if (lagTimer) {
    clearInterval(lagTimer);
    lagTimer = null;
    // The gap still open when the phase ends counts too.
    lag.maxGapMs = Math.max(lag.maxGapMs, performance.now() - lag.last);
  }
  const cpu = process.cpuUsage(phase.cpu);
  const threads = threadTimes();
  const usage = process.resourceUsage();
  const ms = (now, before) => (now && before ? { cpuMs: (now.cpuNs - before.cpuNs) / 1e6, waitMs: (now.waitNs - before.waitNs) / 1e6 } : null);
  const gc = phase.profiler.stop();
  let freed = 0;
  for (const event of gc.statistics) {
    freed += event.beforeGC.heapStatistics.usedHeapSize - event.afterGC.heapStatistics.usedHeapSize;
  }
  const result = {
    expected,
    received: received - phase.received,
    gaps: gaps - phase.gaps,
    kernelDrops: counted.kernelDrops - phase.kernelDrops,
    ringDrops: counted.ringDrops - phase.ringDrops,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    // Page faults (first touch of ring or heap pages) and context switches (sleeps and wakeups) of the whole process
    // (the C loop's context switches are its own process's: see switches).
    minorFaults: usage.minorPageFault - phase.usage.minorPageFault,
    contextSwitches: usage.voluntaryContextSwitches - phase.usage.voluntaryContextSwitches +
      usage.involuntaryContextSwitches - phase.usage.involuntaryContextSwitches,
    // Per thread (voluntary + involuntary; the C loop's own process where it runs one): main, receive, other.
    switches: diffSwitches(contextSwitches(loop ? loop.pid : process.pid), phase.switches),
    mainThread: ms(threads.main, phase.threads.main),
    // The C loop is all receive thread: its process's threads (io_uring's workers too, if any).
    receiveThread: loop ? ms(processTimes(loop.pid), phase.loopTimes) : ms(threads.receive, phase.threads.receive),
    gcCount: gc.statistics.length,
    // The longest GC pause of the phase, µs.
    gcMaxPauseUs: gc.statistics.reduce((longest, event) => Math.max(longest, event.cost), 0),
    // Each GC of the phase: its type and pause (µs).
    gcs: gc.statistics.map((event) => ({ type: event.gcType, us: Math.round(event.cost) })),
    allocatedBytes: Math.max(0, getHeapStatistics().used_heap_size - phase.usedHeap + freed),
    activeMs: (config.timing ? lastSeenMs : performance.now()) - phase.startMs,
    loopIterations: loopCounter ? loopCounter.loopCount() - phase.loopCount : null,
    recvBufferSize,
    recvBufferForced,
  };
  if (loop) result.contextSwitches = result.switches.total;
  // CPU of whatever receives, per phase: the C loop's process, or this whole process.
  result.cpuNs = loop ? (result.receiveThread?.cpuMs ?? NaN) * 1e6 : (cpu.user + cpu.system) * 1000;
  if (loop && Object.keys(loopStats.extra).length > 0) {
    result.loop = Object.fromEntries(Object.entries(loopStats.extra).map(([key, value]) => [key, value - (phase.loopExtra[key] ?? 0)]));
  }
  if (config.lagTimer) result.lag = { everyMs: lagEveryMs, ticks: lag.ticks, maxGapMs: lag.maxGapMs };
  if (histogram) {
    result.latencyUs = {
      count: histogram.totalCount,
      p50: histogram.getValueAtPercentile(50),
      p99: histogram.getValueAtPercentile(99),
      p999: histogram.getValueAtPercentile(99.9),
      max: histogram.maxValue,
      negative: negativeLatencies,
    };
    negativeLatencies = 0;
    if (inKernel) {
      const pct = (h) => ({ p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), p999: h.getValueAtPercentile(99.9), max: h.maxValue });
      result.latencySplit = { sendToKernel: pct(inKernel), kernelToHandler: pct(inReceiver), slow, slowEvents };
    }
  }
  if (rx) {
    const s = rx.stats();
    result.ring = {
      meanBatchSize: s.meanBatchSize, batches: s.batches, directBatches: s.directBatches, wakeups: s.wakeups, receiveCalls: s.receiveCalls,
      threadWakeups: s.threadWakeups, threadWakeupsDuring: s.threadWakeups - phase.threadWakeups,
      // The same counters over this phase only.
      during: Object.fromEntries(['batches', 'directBatches', 'wakeups', 'receiveCalls', 'packets', 'threadWakeups', 'windows']
        .map((key) => [key, s[key] - phase.ringStats[key]])),
      producerStalls: s.producerStalls, ringHighWater: s.ringHighWater, packets: s.packets,
    };
  }
  reply(result);
}

process.on('message', (message) => {
  const reply = (body, done) => process.send({ id: message.id, ...body }, done);
  if (message.cmd === 'mark') mark(reply);
  else if (message.cmd === 'settle') settle(message, reply);
  else if (message.cmd === 'warmup') warmup(message, reply);
  else if (message.cmd === 'exit') {
    clearTimeout(stallTimer);
    socket?.close();
    facade?.close();
    // No more requests for its counters: writing to an ended stdin would throw.
    clearInterval(statsTimer);
    loop?.stdin.end();
    void rx?.close();
    process.disconnect();
  }
});
process.send({ type: 'ready', port, recvBufferSize, recvBufferForced, unavailable });
