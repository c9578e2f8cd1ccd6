// `udp-ring listen`: receives with udp-ring and shows, once a second, what
// arrived and what was lost. On a terminal the view redraws in place; on a
// pipe (or with --json) each second is one JSON line, for scripts and tests.
import { UdpReceiver, type Batch, type ReceiverStats } from '../../index.js';
import { JetStreamPublisher, type JetStreamPublisherStats } from '../../adapters/jetstream.js';
import { count, hex, hexDump, percent, size } from './format.js';
import { SourceCounter, type SourceCount } from './sources.js';

export interface ListenOptions {
  port: number;
  host?: string;
  type?: 'udp4' | 'udp6';
  json?: boolean;
  dump?: number;
  seconds?: number;
  count?: number;
  top?: number;
  ringBytes?: number;
  recvBuffer?: number;
  batchSize?: number;
  maxMessageSize?: number;
  coalesceMs?: number | 'auto';
  overflow?: 'block' | 'drop';
  reusePort?: boolean;
  backend?: 'native' | 'dgram' | 'auto';
  /** NATS servers (comma-separated): publish every datagram to JetStream (udp-ring/jetstream) instead of only counting. */
  jetstream?: string;
  /** The JetStream subject (with --jetstream). */
  subject?: string;
  /** Publishes in flight at most (with --jetstream). */
  maxInFlight?: number;
}

interface Interval {
  seconds: number;
  datagramsPerSecond: number;
  bytesPerSecond: number;
  meanBatchSize: number;
}

const out = (text: string) => process.stdout.write(text);

export async function listen(options: ListenOptions): Promise<void> {
  const rx = await UdpReceiver.open({
    port: options.port,
    host: options.host,
    type: options.type,
    ringBytes: options.ringBytes,
    recvBufferSize: options.recvBuffer,
    batchSize: options.batchSize,
    maxMessageSize: options.maxMessageSize,
    coalesceMs: options.coalesceMs,
    overflow: options.overflow,
    reusePort: options.reusePort,
    backend: options.backend,
  });
  const address = rx.address();
  const where = address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
  const json = options.json === true || !process.stdout.isTTY;
  const topCount = options.top ?? 5;
  const sources = new SourceCounter();
  const started = performance.now();
  let handled = 0;
  let dumped = 0;
  let viewLines = 0;
  let stopReason = 'closed';
  let last = { at: started, packets: 0, bytes: 0, batches: 0 };
  let interval: Interval = { seconds: 0, datagramsPerSecond: 0, bytesPerSecond: 0, meanBatchSize: 0 };

  // Stops receiving; what the ring holds is still read (and counted) before the summary.
  const stop = (reason: string) => {
    if (rx.closed) return;
    stopReason = reason;
    void rx.close({ drain: true });
  };
  // A second signal while stopping means "now": exit as the default handler would.
  const onSigint = () => (rx.closed ? process.exit(130) : stop('SIGINT'));
  const onSigterm = () => (rx.closed ? process.exit(143) : stop('SIGTERM'));
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const deadline = options.seconds !== undefined ? setTimeout(() => stop('seconds'), options.seconds * 1000) : null;

  // The terminal view is redrawn over itself: move up over the last drawing and clear below.
  const erase = () => {
    if (viewLines > 0) out(`\x1b[${viewLines}F\x1b[J`);
    viewLines = 0;
  };
  // With --jetstream, the publisher consumes the receiver and the view shows its counters too.
  let publisher: JetStreamPublisher | null = null;
  let nc: { drain(): Promise<void> } | null = null;
  const draw = (stats: ReceiverStats) => {
    const text = view(where, stats, interval, (performance.now() - started) / 1000, sources.top(topCount), sources.other,
      undefined, publisher?.stats() ?? null);
    erase();
    out(text);
    // Count rows as the terminal shows them: a line wider than the terminal wraps.
    const columns = process.stdout.columns || 80;
    viewLines = text.split('\n').slice(0, -1).reduce((rows, line) => rows + Math.max(1, Math.ceil(line.length / columns)), 0);
  };

  const tick = () => {
    const stats = rx.stats();
    const now = performance.now();
    const seconds = (now - last.at) / 1000;
    const batches = stats.batches - last.batches;
    interval = {
      seconds,
      datagramsPerSecond: seconds > 0 ? (stats.packets - last.packets) / seconds : 0,
      bytesPerSecond: seconds > 0 ? (stats.bytes - last.bytes) / seconds : 0,
      meanBatchSize: batches > 0 ? (stats.packets - last.packets) / batches : 0,
    };
    last = { at: now, packets: stats.packets, bytes: stats.bytes, batches: stats.batches };
    if (json) out(`${JSON.stringify(statsLine('stats', stats, interval, now - started, sources.top(topCount), publisher?.stats() ?? null))}\n`);
    else draw(stats);
  };
  const ticker = setInterval(tick, 1000);

  if (json) out(`${JSON.stringify({ type: 'listening', address: address.address, family: address.family, port: address.port, backend: rx.stats().backend })}\n`);
  else {
    out('\x1b[?25l');
    draw(rx.stats());
  }

  // What listen does with each datagram: count its source, dump the first few.
  const inspect = (batch: Batch, i: number) => {
    sources.add(batch.bytes, batch.addressOffset(i), batch.family(i), batch.port(i));
    if (dumped < (options.dump ?? 0)) {
      dumped++;
      const from = batch.family(i) === 6 ? `[${batch.address(i)}]:${batch.port(i)}` : `${batch.address(i)}:${batch.port(i)}`;
      const payload = batch.payload(i);
      if (json) {
        out(`${JSON.stringify({ type: 'dump', index: dumped, from, size: batch.size(i), wireSize: batch.wireSize(i),
          truncated: batch.truncated(i), hex: hex(payload) })}\n`);
      } else {
        erase();
        out(`#${dumped} from ${from}, ${batch.wireSize(i)} bytes${batch.truncated(i) ? ' (truncated)' : ''}\n${hexDump(payload)}\n\n`);
      }
    }
  };

  try {
    if (options.jetstream !== undefined) {
      const { connect, jetstream } = await loadNats();
      const connection = await connect({ servers: options.jetstream.split(','), maxReconnectAttempts: -1 });
      nc = connection;
      publisher = new JetStreamPublisher(rx, jetstream(connection), {
        subject: options.subject ?? 'udp',
        maxInFlight: options.maxInFlight,
        map: (batch, i) => {
          inspect(batch, i);
          if (options.count !== undefined && ++handled >= options.count) stop('count');
          return { suffix: '', payload: batch.payload(i) };
        },
      });
      await publisher.done;
    } else {
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++) inspect(batch, i);
        handled += batch.length;
        if (options.count !== undefined && handled >= options.count) {
          stopReason = 'count';
          break;
        }
      }
    }
  } finally {
    clearInterval(ticker);
    if (deadline) clearTimeout(deadline);
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    // With --jetstream: the ring is published and every ack awaited before the summary.
    if (publisher) await publisher.close();
    await rx.close();
    await nc?.drain();
  }

  const stats = rx.stats();
  const elapsed = performance.now() - started;
  // The summary's rates are over the whole run, not the last second.
  const overall: Interval = { seconds: elapsed / 1000, datagramsPerSecond: stats.packets / (elapsed / 1000),
    bytesPerSecond: stats.bytes / (elapsed / 1000), meanBatchSize: stats.meanBatchSize };
  const js = publisher?.stats() ?? null;
  const summary = { ...statsLine('summary', stats, overall, elapsed, sources.top(topCount), js), reason: stopReason, handled,
    otherSources: sources.other };
  if (json) {
    out(`${JSON.stringify(summary)}\n`);
  } else {
    erase();
    out('\x1b[?25h');
    out(view(where, stats, overall, elapsed / 1000, sources.top(topCount), sources.other, `stopped: ${stopReason}, mean rates`, js));
    const lost = stats.kernelDrops + stats.ringDrops + stats.discarded;
    out(`\nSummary: ${count(stats.packets)} datagrams (${size(stats.bytes)}) in ${(elapsed / 1000).toFixed(1)} s, ` +
      `${count(lost)} lost (${count(stats.kernelDrops)} kernel, ${count(stats.ringDrops)} ring, ${count(stats.discarded)} discarded at close), ` +
      `${count(stats.truncated)} truncated.\n`);
    if (js) {
      out(`JetStream: ${count(js.acked)} acked (${count(js.duplicates)} as duplicates), ${count(js.failed)} failed, ` +
        `${count(js.skipped)} skipped, ${count(js.retried)} retries.\n`);
    }
  }
}

function statsLine(type: string, s: ReceiverStats, interval: Interval, elapsedMs: number, top: SourceCount[],
  js: JetStreamPublisherStats | null = null) {
  return {
    type,
    elapsed: Math.round(elapsedMs) / 1000,
    datagramsPerSecond: Math.round(interval.datagramsPerSecond),
    bytesPerSecond: Math.round(interval.bytesPerSecond),
    meanBatchSize: Math.round(interval.meanBatchSize * 100) / 100,
    packets: s.packets,
    bytes: s.bytes,
    batches: s.batches,
    kernelDrops: s.kernelDrops,
    ringDrops: s.ringDrops,
    discarded: s.discarded,
    truncated: s.truncated,
    ringBytes: s.ringBytes,
    ringUsed: s.ringUsed,
    ringHighWater: s.ringHighWater,
    recvBufferSize: s.recvBufferSize,
    recvBufferForced: s.recvBufferForced,
    kernelQueueBytes: s.kernelQueueBytes,
    topSources: top.map((t) => ({ address: t.address, port: t.port, count: t.count })),
    ...(js ? { jetstream: { acked: js.acked, duplicates: js.duplicates, failed: js.failed, failures: js.failures,
      retried: js.retried, skipped: js.skipped, inFlight: js.inFlight } } : {}),
  };
}

function view(where: string, s: ReceiverStats, i: Interval, seconds: number, top: SourceCount[], other: number,
  status = '(Ctrl-C to stop)', js: JetStreamPublisherStats | null = null): string {
  const row = (label: string, value: string) => `  ${label.padEnd(16)}${value}\n`;
  let text = `udp-ring listen ${where}${s.backend === 'dgram' ? ' (dgram backend)' : ''}   ${seconds.toFixed(1)} s   ${status}\n\n`;
  text += row('datagrams/s', `${count(i.datagramsPerSecond).padStart(14)}    total ${count(s.packets)}`);
  text += row('bytes/s', `${size(i.bytesPerSecond).padStart(14)}    total ${size(s.bytes)}`);
  text += row('mean batch', `${i.meanBatchSize.toFixed(1).padStart(14)}    overall ${s.meanBatchSize.toFixed(1)} datagrams per recvmmsg`);
  text += row('ring fill', `${size(s.ringUsed).padStart(14)}    ${percent(s.ringUsed, s.ringBytes)} of ${size(s.ringBytes)}`);
  text += row('high water', `${size(s.ringHighWater).padStart(14)}    ${percent(s.ringHighWater, s.ringBytes)}`);
  text += row('kernel buffer', `${size(s.recvBufferSize).padStart(14)}    ${s.recvBufferForced ? 'forced' : s.recvBufferCapped ? `capped by rmem_max` : 'granted'}` +
    `${s.kernelQueueBytes !== null ? `, ${size(s.kernelQueueBytes)} queued` : ''}`);
  text += row('kernel drops', count(s.kernelDrops).padStart(14));
  text += row('ring drops', count(s.ringDrops).padStart(14));
  text += row('discarded', `${count(s.discarded).padStart(14)}    at close, unread`);
  text += row('truncated', count(s.truncated).padStart(14));
  if (js) {
    text += '\n  jetstream\n';
    text += row('acked', `${count(js.acked).padStart(14)}    ${count(js.duplicates)} as duplicates of a lost ack`);
    text += row('failed', `${count(js.failed).padStart(14)}    ${Object.entries(js.failures).map(([r, n]) => `${r}: ${count(n)}`).join(', ')}`);
    text += row('retried', count(js.retried).padStart(14));
    text += row('skipped', count(js.skipped).padStart(14));
    text += row('in flight', `${count(js.inFlight).padStart(14)}    bound reached ${count(js.backpressureWaits)} times`);
  }
  text += '\n  top sources\n';
  if (top.length === 0) text += '    (none yet)\n';
  for (const t of top) {
    const name = t.family === 6 ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`;
    text += `    ${name.padEnd(44)}${count(t.count).padStart(14)}  ${percent(t.count, s.packets).padStart(7)}\n`;
  }
  if (other > 0) text += `    ${'(other sources)'.padEnd(44)}${count(other).padStart(14)}\n`;
  return text;
}

// The NATS client is an optional peer dependency: loaded only for --jetstream.
async function loadNats(): Promise<{
  connect: (options: { servers: string[]; maxReconnectAttempts: number }) => Promise<{ drain(): Promise<void> }>;
  jetstream: (nc: unknown) => import('../../adapters/jetstream.js').JetStreamPublishTarget;
}> {
  try {
    const transport = '@nats-io/transport-node';
    const client = '@nats-io/jetstream';
    const [{ connect }, { jetstream }] = await Promise.all([import(transport), import(client)]);
    return { connect, jetstream };
  } catch (cause) {
    throw new Error('udp-ring listen --jetstream needs the NATS client: npm install @nats-io/jetstream @nats-io/transport-node', { cause });
  }
}
