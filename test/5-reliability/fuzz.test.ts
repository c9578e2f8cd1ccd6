// Bad input: every option fuzzed (types, ranges, NaN, huge and negative
// numbers, objects, symbols) must give a TypeError/RangeError naming the
// option, or a working receiver, never a crash or a half-open socket; hostile
// traffic (empty, maximal, many sources, IPv4-mapped) is delivered or counted,
// and never read out of bounds.
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Batch } from '../../dist/index.js';
import { checkDatagram, fillDatagram, waitUntil } from '../helpers.js';

const openFds = () => readdirSync('/proc/self/fd').length;
const MiB = 1024 * 1024;

const receiverKeys = [
  'port', 'host', 'type', 'ringBytes', 'maxMessageSize', 'batchSize', 'maxBatchLength', 'recvBufferSize',
  'overflow', 'reuseAddr', 'reusePort', 'ipv6Only', 'signal', 'backend',
] as const;
const senderKeys = ['port', 'host', 'type', 'sendBufferSize', 'localAddress', 'localPort'] as const;

// Values a caller can get wrong. Strings stay IP literals or obviously invalid
// (no DNS lookups of random names from a test); numbers cover every edge.
const strangeNumber = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0.5, -1, 2 ** 31, 2 ** 32, 2 ** 53, Number.MAX_VALUE,
    Number.MIN_VALUE, Number.MAX_SAFE_INTEGER + 2, 65535, 65536, 1024, 1025),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.double(),
);
const strangeString = fc.oneof(
  fc.constantFrom('', '127.0.0.1', '::1', '0.0.0.0', '::', 'udp4', 'udp6', 'udp7', 'block', 'drop', 'native',
    'dgram', 'x'.repeat(254), '1'.repeat(300), '127.0.0.1\0', '999.999.999.999.999', '4294967296'),
  fc.string({ maxLength: 4 }).map((s) => `${s}\n`), // invalid as a host name: rejected before any lookup
);
const strangeValue = fc.oneof(
  strangeNumber, strangeString, fc.boolean(), fc.constant(null), fc.constant(undefined),
  fc.constant(Symbol('x')), fc.bigInt(), fc.constant({}), fc.constant([]), fc.constant([1]),
  fc.constant(() => 1), fc.constant(new AbortController().signal), fc.constant(Object.create(null)),
  fc.constant({ valueOf: () => 1234 }), fc.constant({ toString: () => '127.0.0.1' }), fc.date(),
);

type Outcome = 'opened' | 'rejected';

// A rejection must be a TypeError/RangeError naming an option, or a system error with a code.
function classify(error: unknown): Outcome {
  if (error instanceof TypeError || error instanceof RangeError) {
    const code = (error as NodeJS.ErrnoException).code;
    expect(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE']).toContain(code);
    expect(error.message).toMatch(/option|options|UDP_RING_BACKEND|value of/);
    return 'rejected';
  }
  const code = (error as NodeJS.ErrnoException)?.code;
  if (['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'EINVAL', 'EAFNOSUPPORT', 'ENOTFOUND', 'EAI_AGAIN'].includes(code ?? '')) {
    return 'rejected';
  }
  throw error;
}

async function tryReceiver(options: unknown): Promise<Outcome> {
  let rx: UdpReceiver;
  try {
    rx = await UdpReceiver.open(options as never);
  } catch (error) {
    return classify(error);
  }
  await rx.close();
  return 'opened';
}

async function trySender(options: unknown): Promise<Outcome> {
  let tx: UdpSender;
  try {
    tx = await UdpSender.open(options as never);
  } catch (error) {
    return classify(error);
  }
  tx.close();
  return 'opened';
}

describe('options fuzz', () => {
  it('every receiver option, one at a time: a clear error or a working receiver, fds stable', async () => {
    const before = openFds();
    const outcomes = { opened: 0, rejected: 0 };
    for (const key of receiverKeys) {
      await fc.assert(fc.asyncProperty(strangeValue, async (value) => {
        // Small rings keep 2 GiB ringBytes values cheap; they are still validated.
        const base: Record<string, unknown> = { host: '127.0.0.1', recvBufferSize: 0 };
        if (key !== 'ringBytes' && key !== 'maxMessageSize' && key !== 'batchSize') {
          Object.assign(base, { ringBytes: MiB, maxMessageSize: 2048 });
        }
        if (key === 'host' || key === 'type') delete base.host;
        outcomes[await tryReceiver({ ...base, [key]: value })]++;
      }), { numRuns: 60 });
    }
    expect(outcomes.rejected).toBeGreaterThan(0);
    expect(outcomes.opened).toBeGreaterThan(0);
    expect(openFds()).toBe(before);
  });

  it('whole option objects, several strange values at once, and non-objects', async () => {
    const before = openFds();
    const options = fc.oneof(
      fc.dictionary(fc.constantFrom(...receiverKeys, 'bogus', '__proto__', 'constructor'), strangeValue, { maxKeys: 5 }),
      strangeValue,
    );
    await fc.assert(fc.asyncProperty(options, async (value) => {
      if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)) {
        const o = value as Record<string, unknown>;
        if (!('host' in o) && !('type' in o)) o.host = '127.0.0.1';
        if (!('ringBytes' in o)) o.ringBytes = 2 * MiB;
      }
      await tryReceiver(value);
    }), { numRuns: 300 });
    expect(openFds()).toBe(before);
  });

  it('every sender option: a clear error or a working sender, fds stable', async () => {
    const before = openFds();
    for (const key of senderKeys) {
      await fc.assert(fc.asyncProperty(strangeValue, async (value) => {
        const base: Record<string, unknown> = { port: 9, host: '127.0.0.1' };
        if (key === 'type' || key === 'host') delete base.host;
        await trySender({ ...base, [key]: value });
      }), { numRuns: 60 });
    }
    expect(openFds()).toBe(before);
  });

  it('valid values in range open, and the receiver reports what was asked', async () => {
    await fc.assert(fc.asyncProperty(
      fc.record({
        maxMessageSize: fc.integer({ min: 1, max: 65535 }),
        batchSize: fc.integer({ min: 1, max: 256 }),
        maxBatchLength: fc.integer({ min: 1, max: 2 ** 24 }),
        overflow: fc.constantFrom('block', 'drop'),
        type: fc.constantFrom('udp4', 'udp6'),
      }),
      async (o) => {
        const rx = await UdpReceiver.open({ ...o, host: o.type === 'udp6' ? '::1' : '127.0.0.1', ringBytes: 2 ** 31, recvBufferSize: 0 });
        const stats = rx.stats();
        expect(stats.maxMessageSize).toBe(o.maxMessageSize);
        expect(stats.batchSize).toBe(o.batchSize);
        expect(stats.overflow).toBe(o.overflow);
        await rx.close();
      },
    ), { numRuns: 20 });
  });
});

function inBounds(batch: Batch, i: number): void {
  const offset = batch.offset(i);
  expect(offset + batch.size(i)).toBeLessThanOrEqual(batch.bytes.length);
  expect(batch.addressOffset(i) + 16).toBeLessThanOrEqual(batch.bytes.length);
  expect(batch.size(i)).toBeLessThanOrEqual(batch.wireSize(i));
}

describe('hostile traffic', () => {
  it('zero-length and 65,507-byte datagrams, cut or whole, in one stream', async () => {
    for (const maxMessageSize of [65535, 1000]) {
      const rx = await UdpReceiver.open({ host: '127.0.0.1', maxMessageSize, batchSize: 16 });
      const tx = await UdpSender.open({ port: rx.address().port, sendBufferSize: 8 * MiB });
      const sizes = new Uint32Array([0, 65507, 0, 1, 65507, 0, 3, 65507]);
      const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      for (let s = 0; s < sizes.length; s++) { fillDatagram(data, at, s, sizes[s]); at += sizes[s]; }
      expect(tx.sendBatch(data, sizes, sizes.length)).toBe(sizes.length);
      let seen = 0;
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++, seen++) {
          inBounds(batch, i);
          expect(batch.wireSize(i)).toBe(sizes[seen]);
          expect(batch.size(i)).toBe(Math.min(sizes[seen], maxMessageSize));
          expect(batch.truncated(i)).toBe(sizes[seen] > maxMessageSize);
          expect(checkDatagram(batch.bytes, batch.offset(i), seen, batch.size(i))).toBe(-1);
        }
        if (seen === sizes.length) break;
      }
      const stats = rx.stats();
      expect(stats.packets + stats.kernelDrops + stats.ringDrops).toBe(sizes.length);
      expect(stats.truncated).toBe(maxMessageSize < 65507 ? 3 : 0);
      tx.close();
    }
  });

  it('a flood from 200 source ports: every datagram delivered or counted, sources right', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', ringBytes: 2 * MiB, maxMessageSize: 1500, overflow: 'drop' });
    const senders = await Promise.all(Array.from({ length: 200 }, () => UdpSender.open({ port: rx.address().port })));
    const portToSender = new Map(senders.map((tx, k) => [tx.address().port, k]));
    const perSender = 50;
    const size = 64;
    let sent = 0;
    for (const [k, tx] of senders.entries()) {
      const data = new Uint8Array(perSender * size);
      for (let s = 0; s < perSender; s++) fillDatagram(data, s * size, k * 1000 + s, size);
      sent += tx.sendBatch(data, size, perSender);
    }
    const next = new Array<number>(senders.length).fill(0);
    let delivered = 0;
    let bad = 0;
    const iterator = rx[Symbol.asyncIterator]();
    const done = () => { const s = rx.stats(); return s.packets + s.ringDrops + s.kernelDrops === sent && s.ringDatagrams === 0; };
    while (!(done() && delivered === rx.stats().packets)) {
      const result = await Promise.race([iterator.next(), waitUntil(done, 30_000, 'the flood to be accounted for').then(() => null)]);
      if (result === null || result.done) continue;
      const batch = result.value;
      for (let i = 0; i < batch.length; i++, delivered++) {
        inBounds(batch, i);
        const k = portToSender.get(batch.port(i));
        if (k === undefined || batch.family(i) !== 4 || batch.address(i) !== '127.0.0.1') { bad++; continue; }
        // Per source, order holds; gaps are drops.
        const seq = batch.view.getUint32(batch.offset(i), true) - k * 1000;
        if (seq < next[k] || checkDatagram(batch.bytes, batch.offset(i), k * 1000 + seq, size) !== -1) bad++;
        next[k] = seq + 1;
      }
    }
    const stats = rx.stats();
    expect(bad).toBe(0);
    expect(delivered).toBe(stats.packets);
    expect(stats.packets + stats.ringDrops + stats.kernelDrops).toBe(sent);
    await iterator.return!();
    for (const tx of senders) tx.close();
  });

  it('IPv4-mapped IPv6 sources on a dual-stack socket: family 6, ::ffff:127.0.0.1, bytes in bounds', async () => {
    const rx = await UdpReceiver.open({ type: 'udp6', host: '::', ipv6Only: false });
    const tx4 = await UdpSender.open({ port: rx.address().port, host: '127.0.0.1' });
    const tx6 = await UdpSender.open({ port: rx.address().port, host: '::1' });
    const data = new Uint8Array(32 * 4);
    for (let s = 0; s < 4; s++) fillDatagram(data, s * 32, s, 32);
    tx4.sendBatch(data.subarray(0, 64), 32, 2);
    tx6.sendBatch(data.subarray(64), 32, 2);
    const seen: string[] = [];
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++) {
        inBounds(batch, i);
        expect(batch.family(i)).toBe(6);
        const seq = batch.view.getUint32(batch.offset(i), true);
        expect(checkDatagram(batch.bytes, batch.offset(i), seq, 32)).toBe(-1);
        const at = batch.addressOffset(i);
        const mapped = batch.bytes.subarray(at, at + 12);
        if (seq < 2) {
          expect([...mapped]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
          expect(batch.port(i)).toBe(tx4.address().port);
        }
        seen.push(batch.address(i));
      }
      if (seen.length === 4) break;
    }
    expect(seen.filter((a) => a === '::ffff:127.0.0.1')).toHaveLength(2);
    expect(seen.filter((a) => a === '::1')).toHaveLength(2);
    tx4.close();
    tx6.close();
  });

  it('random streams of sizes 0..65507 against random receiver shapes: intact, flagged, counted', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 65507 })), { minLength: 1, maxLength: 80 }),
      fc.integer({ min: 1, max: 65535 }),
      fc.integer({ min: 1, max: 64 }),
      fc.constantFrom('block', 'drop'),
      async (sizeList, maxMessageSize, batchSize, overflow) => {
        const rx = await UdpReceiver.open({ host: '127.0.0.1', maxMessageSize, batchSize, overflow, ringBytes: 8 * MiB });
        const tx = await UdpSender.open({ port: rx.address().port, sendBufferSize: 8 * MiB });
        const sizes = Uint32Array.from(sizeList);
        const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
        const starts: number[] = [];
        let at = 0;
        for (let s = 0; s < sizes.length; s++) { starts.push(at); fillDatagram(data, at, s, sizes[s]); at += sizes[s]; }
        // The first `size` bytes of datagram s exactly as sent (a cut datagram keeps its head).
        const same = (batch: Batch, i: number, s: number) =>
          Buffer.compare(batch.payload(i), data.subarray(starts[s], starts[s] + batch.size(i))) === 0;
        const sent = tx.sendBatch(data, sizes, sizes.length);
        tx.close();
        const iterator = rx[Symbol.asyncIterator]();
        const settled = () => { const s = rx.stats(); return s.packets + s.ringDrops + s.kernelDrops === sent && s.ringDatagrams === 0; };
        let seq = 0;
        let delivered = 0;
        while (!settled() || delivered < rx.stats().packets) {
          const result = await Promise.race([iterator.next(), waitUntil(settled, 30_000, 'the stream').then(() => null)]);
          if (result === null || result.done) continue;
          const batch = result.value;
          for (let i = 0; i < batch.length; i++) {
            inBounds(batch, i);
            // Drops skip ahead (on loopback only under pressure); find this datagram by its wire size and bytes.
            while (seq < sizes.length && (batch.wireSize(i) !== sizes[seq] || !same(batch, i, seq))) seq++;
            expect(seq).toBeLessThan(sizes.length);
            expect(batch.truncated(i)).toBe(sizes[seq] > maxMessageSize);
            expect(batch.size(i)).toBe(Math.min(sizes[seq], maxMessageSize));
            seq++;
            delivered++;
          }
        }
        await iterator.return!();
        const stats = rx.stats();
        expect(delivered).toBe(stats.packets);
        expect(stats.packets + stats.ringDrops + stats.kernelDrops).toBe(sent);
      },
    ), { numRuns: 40 });
  });
});
