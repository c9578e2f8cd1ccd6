// Correctness of the receive path: every datagram arrives once, in order, byte
// for byte, with its source, across sizes, families and many wraps of the ring.
// The sender runs on the test's own thread and paces itself on what the
// iterator has delivered, so nothing may be lost and any loss is a failure.
import { describe, expect, it } from 'vitest';
import { minimumRingBytes, UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram, spreadSize } from '../helpers.js';

interface Source {
  port: number;
  family: 4 | 6;
  /** The source address as the descriptor holds it: 4 or 16 bytes, network order. */
  addressBytes: number[];
  address: string;
}

interface Outcome {
  delivered: number;
  /** The first few mismatches, as readable lines; empty when every datagram was exact. */
  problems: string[];
  stats: ReturnType<UdpReceiver['stats']>;
  lossSeen: boolean;
}

const LOOPBACK4 = [127, 0, 0, 1];
const LOOPBACK6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const MAPPED4 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];

/**
 * Sends `count` datagrams (datagram seq is `sizeOf(seq)` bytes) while reading
 * them back, keeping at most `window` in flight, and checks each one. Stops
 * early (closing the receiver) if the receiver counts any loss, so a loss
 * fails the test instead of hanging it.
 */
async function sendAndVerify(
  rx: UdpReceiver, tx: UdpSender, count: number, sizeOf: (seq: number) => number, source: Source,
  { window = 512, chunk = 64 } = {},
): Promise<Outcome> {
  let largest = 0;
  for (let s = 0; s < Math.min(count, 5000); s++) largest = Math.max(largest, sizeOf(s));
  const data = new Uint8Array(chunk * Math.max(largest, 65535));
  const sizes = new Uint32Array(chunk);
  const problems: string[] = [];
  let sent = 0;
  let delivered = 0;
  let lossSeen = false;
  const pump = () => {
    while (sent < count && sent - delivered < window) {
      const n = Math.min(chunk, count - sent, window - (sent - delivered));
      let at = 0;
      for (let k = 0; k < n; k++) {
        const size = sizeOf(sent + k);
        fillDatagram(data, at, sent + k, size);
        sizes[k] = size;
        at += size;
      }
      const accepted = tx.sendBatch(data, sizes, n);
      if (accepted !== n) throw new Error(`sendBatch accepted ${accepted} of ${n}`);
      sent += n;
    }
  };
  // A lost datagram would leave the iterator waiting for ever: stop instead.
  let lastDelivered = -1;
  let quietChecks = 0;
  const watchdog = setInterval(() => {
    const s = rx.stats();
    quietChecks = delivered === lastDelivered ? quietChecks + 1 : 0;
    lastDelivered = delivered;
    if (s.kernelDrops + s.ringDrops > 0 || quietChecks > 100) {
      lossSeen = true;
      void rx.close();
    }
  }, 200);
  const note = (problem: string) => {
    if (problems.length < 10) problems.push(problem);
  };
  try {
    pump();
    for await (const batch of rx) {
      const bytes = batch.bytes;
      for (let i = 0; i < batch.length; i++, delivered++) {
        const size = sizeOf(delivered);
        if (batch.size(i) !== size || batch.wireSize(i) !== size || batch.truncated(i)) {
          note(`#${delivered}: size ${batch.size(i)} wire ${batch.wireSize(i)} truncated ${batch.truncated(i)}, expected ${size}`);
          continue;
        }
        const bad = checkDatagram(bytes, batch.offset(i), delivered, size);
        if (bad !== -1) note(`#${delivered}: byte ${bad} of ${size} differs`);
        if (batch.port(i) !== source.port) note(`#${delivered}: port ${batch.port(i)}, expected ${source.port}`);
        if (batch.family(i) !== source.family) note(`#${delivered}: family ${batch.family(i)}, expected ${source.family}`);
        const address = batch.addressOffset(i);
        for (let k = 0; k < source.addressBytes.length; k++) {
          if (bytes[address + k] !== source.addressBytes[k]) {
            note(`#${delivered}: address byte ${k} is ${bytes[address + k]}, expected ${source.addressBytes[k]}`);
            break;
          }
        }
        // The string form allocates; a sample is enough to check the formatting.
        if (delivered % 4099 === 0 && batch.address(i) !== source.address) {
          note(`#${delivered}: address '${batch.address(i)}', expected '${source.address}'`);
        }
      }
      if (delivered >= count) break;
      pump();
    }
  } finally {
    clearInterval(watchdog);
  }
  return { delivered, problems, stats: rx.stats(), lossSeen };
}

function expectExact(outcome: Outcome, count: number): void {
  expect(outcome.problems).toEqual([]);
  expect(outcome.lossSeen).toBe(false);
  expect(outcome.delivered).toBe(count);
  expect(outcome.stats.packets).toBe(count);
  expect(outcome.stats.kernelDrops).toBe(0);
  expect(outcome.stats.ringDrops).toBe(0);
  expect(outcome.stats.truncated).toBe(0);
}

describe('receive: every datagram, in order, byte for byte', () => {
  it('1,000,000 datagrams of 1..2048 bytes over IPv4', async () => {
    const max = 2048;
    const count = 1_000_000;
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize: max });
    const tx = await UdpSender.open({ port: rx.address().port, host: '127.0.0.1' });
    const started = performance.now();
    const outcome = await sendAndVerify(rx, tx, count, (seq) => spreadSize(seq, max),
      { port: tx.address().port, family: 4, addressBytes: LOOPBACK4, address: '127.0.0.1' });
    console.log(`IPv4 1M spread: ${(performance.now() - started).toFixed(0)} ms, ` +
      `mean batch ${outcome.stats.meanBatchSize.toFixed(1)}, wakeups ${outcome.stats.wakeups}`);
    tx.close();
    expectExact(outcome, count);
    // Both ends of the spread were really sent.
    expect(outcome.stats.bytes).toBeGreaterThan(count * (max / 2) * 0.9);
  });

  it('1,000,000 datagrams of 1..2048 bytes over IPv6 (::1)', async () => {
    const max = 2048;
    const count = 1_000_000;
    const rx = await UdpReceiver.open({ host: '::1', port: 0, maxMessageSize: max });
    expect(rx.address().family).toBe('IPv6');
    const tx = await UdpSender.open({ port: rx.address().port, host: '::1' });
    const started = performance.now();
    const outcome = await sendAndVerify(rx, tx, count, (seq) => spreadSize(seq, max),
      { port: tx.address().port, family: 6, addressBytes: LOOPBACK6, address: '::1' });
    console.log(`IPv6 1M spread: ${(performance.now() - started).toFixed(0)} ms`);
    tx.close();
    expectExact(outcome, count);
  });

  it('zero-length datagrams, mixed with others', async () => {
    const count = 30_000;
    // Two of every three are empty; the rest carry the sequence, so order is still checked.
    const sizeOf = (seq: number) => (seq % 3 === 2 ? 4 + (seq % 61) : 0);
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize: 64, batchSize: 16,
      ringBytes: minimumRingBytes(16, 64) });
    const tx = await UdpSender.open({ port: rx.address().port });
    const outcome = await sendAndVerify(rx, tx, count, sizeOf,
      { port: tx.address().port, family: 4, addressBytes: LOOPBACK4, address: '127.0.0.1' }, { window: 128 });
    tx.close();
    expectExact(outcome, count);
    expect(outcome.stats.bytes).toBe(Array.from({ length: count }, (_, s) => sizeOf(s)).reduce((a, b) => a + b, 0));
  });

  it('65,507-byte datagrams (the IPv4 maximum), whole', async () => {
    const count = 400;
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
    const tx = await UdpSender.open({ port: rx.address().port });
    const outcome = await sendAndVerify(rx, tx, count, () => 65_507,
      { port: tx.address().port, family: 4, addressBytes: LOOPBACK4, address: '127.0.0.1' }, { window: 32, chunk: 8 });
    tx.close();
    expectExact(outcome, count);
    expect(outcome.stats.bytes).toBe(count * 65_507);
  });

  it('a small ring wraps thousands of times without losing or corrupting a byte', async () => {
    const max = 2048;
    const count = 300_000;
    const batchSize = 8;
    const ringBytes = minimumRingBytes(batchSize, max);
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize: max, batchSize, ringBytes });
    const tx = await UdpSender.open({ port: rx.address().port });
    const outcome = await sendAndVerify(rx, tx, count, (seq) => spreadSize(seq, max),
      { port: tx.address().port, family: 4, addressBytes: LOOPBACK4, address: '127.0.0.1' }, { window: 256 });
    tx.close();
    expectExact(outcome, count);
    // The receiver may round ringBytes up (to whole pages): count wraps of the ring it really has.
    const wraps = outcome.stats.bytes / outcome.stats.ringBytes;
    console.log(`ring of ${outcome.stats.ringBytes} bytes wrapped at least ${wraps.toFixed(0)} times; ` +
      `producer stalls ${outcome.stats.producerStalls}`);
    expect(wraps).toBeGreaterThan(2000);
  });

  it('short batches (maxBatchLength 3, batchSize 1) release the ring piece by piece as it wraps', async () => {
    const max = 700;
    const count = 100_000;
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize: max, batchSize: 1, maxBatchLength: 3,
      ringBytes: minimumRingBytes(1, max) });
    const tx = await UdpSender.open({ port: rx.address().port });
    // Empty datagrams now and then, so some batches end on one.
    const sizeOf = (seq: number) => (seq % 7 === 3 ? 0 : spreadSize(seq, max));
    const outcome = await sendAndVerify(rx, tx, count, sizeOf,
      { port: tx.address().port, family: 4, addressBytes: LOOPBACK4, address: '127.0.0.1' }, { window: 64, chunk: 16 });
    tx.close();
    expectExact(outcome, count);
    expect(outcome.stats.bytes / outcome.stats.ringBytes).toBeGreaterThan(100);
  });

  it('65,527-byte datagrams (the IPv6 maximum) over ::1, whole', async () => {
    const count = 200;
    const rx = await UdpReceiver.open({ host: '::1', port: 0 });
    const tx = await UdpSender.open({ port: rx.address().port, host: '::1' });
    const outcome = await sendAndVerify(rx, tx, count, () => 65_527,
      { port: tx.address().port, family: 6, addressBytes: LOOPBACK6, address: '::1' }, { window: 32, chunk: 8 });
    tx.close();
    expectExact(outcome, count);
  });

  it('IPv4 senders seen by a udp6 socket arrive as ::ffff:127.0.0.1', async () => {
    const max = 1500;
    const count = 20_000;
    const rx = await UdpReceiver.open({ host: '::ffff:127.0.0.1', type: 'udp6', port: 0, maxMessageSize: max });
    const tx = await UdpSender.open({ port: rx.address().port, host: '127.0.0.1' });
    const outcome = await sendAndVerify(rx, tx, count, (seq) => spreadSize(seq, max),
      { port: tx.address().port, family: 6, addressBytes: MAPPED4, address: '::ffff:127.0.0.1' });
    tx.close();
    expectExact(outcome, count);
  });
});
