// The pure-TypeScript backend (node:dgram underneath): the same API, the same
// datagrams as the native path for the same traffic, and the core test files
// re-run against it.
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram, spreadSize, waitUntil } from '../helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Seen {
  size: number;
  wireSize: number;
  truncated: boolean;
  port: number;
  family: number;
  address: string;
  addressBytes: string;
  payload: string;
}

/** Everything a Batch says about each datagram, until `count` have arrived. */
async function collect(rx: UdpReceiver, count: number): Promise<Seen[]> {
  const seen: Seen[] = [];
  for await (const b of rx) {
    for (let i = 0; i < b.length; i++) {
      const at = b.addressOffset(i);
      seen.push({
        size: b.size(i),
        wireSize: b.wireSize(i),
        truncated: b.truncated(i),
        port: b.port(i),
        family: b.family(i),
        address: b.address(i),
        addressBytes: Buffer.from(b.bytes.subarray(at, at + (b.family(i) === 4 ? 4 : 16))).toString('hex'),
        payload: Buffer.from(b.bytes.subarray(b.offset(i), b.offset(i) + b.size(i))).toString('hex'),
      });
      expect(Buffer.from(b.payload(i)).equals(b.copy(i))).toBe(true);
    }
    if (seen.length >= count) break;
  }
  return seen;
}

function send(socket: Socket, data: Uint8Array, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => socket.send(data, port, host, (error) => (error ? reject(error) : resolve())));
}

describe('fallback: the dgram backend', () => {
  it('is chosen by options.backend or UDP_RING_BACKEND, reported by stats().backend, validated', async () => {
    const native = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
    expect(native.stats().backend).toBe('native');
    await native.close();
    const fallback = await UdpReceiver.open({ host: '127.0.0.1', backend: 'dgram' });
    expect(fallback.stats().backend).toBe('dgram');
    expect(fallback.address()).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    await fallback.close();
    expect(fallback.closed).toBe(true);
    expect(() => fallback.address()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    await expect(UdpReceiver.open({ backend: 'bogus' as 'dgram' })).rejects.toMatchObject({
      name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE',
    });
    const previous = process.env.UDP_RING_BACKEND;
    try {
      process.env.UDP_RING_BACKEND = 'dgram';
      const fromEnv = await UdpReceiver.open({ host: '127.0.0.1' });
      expect(fromEnv.stats().backend).toBe('dgram');
      await fromEnv.close();
      process.env.UDP_RING_BACKEND = 'fast';
      await expect(UdpReceiver.open({ host: '127.0.0.1' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      if (previous === undefined) delete process.env.UDP_RING_BACKEND;
      else process.env.UDP_RING_BACKEND = previous;
    }
  });

  it('bind errors carry the same code, errno and syscall as the native backend', async () => {
    const holder = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
    const port = holder.address().port;
    const fromNative = await UdpReceiver.open({ host: '127.0.0.1', port, backend: 'native' }).catch((e: unknown) => e);
    const fromDgram = await UdpReceiver.open({ host: '127.0.0.1', port, backend: 'dgram' }).catch((e: unknown) => e);
    await holder.close();
    const pick = (e: unknown) => {
      const { code, errno, syscall } = e as NodeJS.ErrnoException;
      return { code, errno, syscall };
    };
    expect(pick(fromNative)).toEqual({ code: 'EADDRINUSE', errno: -98, syscall: 'bind' });
    expect(pick(fromDgram)).toEqual(pick(fromNative));
  });

  for (const family of [4, 6] as const) {
    it(`both backends deliver identical datagrams for the same traffic (IPv${family})`, async () => {
      const host = family === 4 ? '127.0.0.1' : '::1';
      const maxMessageSize = 1500;
      const options = { host, maxMessageSize, maxBatchLength: 7 };
      const native = await UdpReceiver.open({ ...options, backend: 'native' });
      const fallback = await UdpReceiver.open({ ...options, backend: 'dgram' });
      const sender = createSocket(family === 4 ? 'udp4' : 'udp6');
      await new Promise<void>((resolve) => sender.bind(0, host, resolve));
      // Empty, small, exactly maxMessageSize, and longer (cut and flagged) datagrams.
      const sizes = Array.from({ length: 600 }, (_, s) => [0, 1, 17, maxMessageSize, maxMessageSize + 1, 4000][s % 6] + (s % 5));
      const expected = sizes.length;
      const receiving = Promise.all([collect(native, expected), collect(fallback, expected)]);
      for (let s = 0; s < sizes.length; s++) {
        const data = new Uint8Array(sizes[s]);
        fillDatagram(data, 0, s, sizes[s]);
        await send(sender, data, native.address().port, host);
        await send(sender, data, fallback.address().port, host);
      }
      const [fromNative, fromDgram] = await receiving;
      sender.close();
      expect(fromNative.length).toBe(expected);
      expect(fromDgram).toEqual(fromNative);
      expect(fromNative.filter((d) => d.truncated).length).toBe(sizes.filter((n) => n > maxMessageSize).length);
      const [a, b] = [native.stats(), fallback.stats()];
      for (const key of ['packets', 'bytes', 'truncated', 'kernelDrops', 'ringDrops'] as const) expect(b[key]).toBe(a[key]);
      expect(b.backend).toBe('dgram');
    });
  }

  it("overflow 'block' with a stalled consumer: the kernel queue holds the rest, sent = packets + ringDrops + kernelDrops", async () => {
    // A ring smaller than what the kernel queue holds (512 KiB granted, about 227 of these datagrams):
    // the dgram backend fills its whole ring, as native does (it used to fill one half of two).
    const rx = await UdpReceiver.open({
      host: '127.0.0.1', backend: 'dgram', overflow: 'block', ringBytes: 128 * 1024, maxMessageSize: 1024, recvBufferSize: 256 * 1024,
    });
    const tx = await UdpSender.open({ port: rx.address().port });
    const size = 1000;
    const count = 5000;
    const data = new Uint8Array(size * count);
    for (let s = 0; s < count; s++) fillDatagram(data, s * size, s, size);
    // The event loop does not run while sendmmsg fills the kernel queue and more.
    const sent = tx.sendBatch(data, size);
    tx.close();
    expect(sent).toBe(count);
    // Unconsumed, the receiver fills its buffer and stops reading.
    await waitUntil(() => rx.stats().producerStalls > 0, 30_000, 'the dgram backend to stop reading');
    let delivered = 0;
    let last = -1;
    let ordered = true;
    for await (const b of rx) {
      for (let i = 0; i < b.length; i++, delivered++) {
        const seq = b.view.getUint32(b.offset(i), true);
        if (seq <= last) ordered = false;
        last = seq;
      }
      const s = rx.stats();
      if (delivered + s.ringDrops + s.kernelDrops >= sent && s.kernelQueueBytes === 0) break;
    }
    const stats = rx.stats();
    expect(ordered).toBe(true);
    expect(stats.ringDrops).toBe(0);
    expect(stats.kernelDrops).toBeGreaterThan(0);
    expect(delivered).toBe(stats.packets);
    expect(stats.packets + stats.ringDrops + stats.kernelDrops).toBe(sent);
  });

  it("its ring wraps and 'block' resumes: mixed sizes through a small ring, every byte in order, the counts reconciled", async () => {
    // 16 KiB: 64 descriptors and about 14 KiB of payload, so datagrams of 4 to 1,500 bytes wrap every
    // ~20; a handler that holds some batches across a turn fills the ring, and reads stop and resume.
    const rx = await UdpReceiver.open({
      host: '127.0.0.1', backend: 'dgram', overflow: 'block', ringBytes: 16 * 1024, batchSize: 4, maxMessageSize: 1500,
      recvBufferSize: 4 * 1024 * 1024,
    });
    const tx = await UdpSender.open({ port: rx.address().port });
    const count = 3000;
    const sizes = Array.from({ length: count }, (_, s) => 3 + spreadSize(s, 1497));
    let delivered = 0;
    let last = -1;
    let bad = 0;
    let empty = 0;
    let maxUsed = 0;
    const done = rx.onBatch(async (b) => {
      for (let i = 0; i < b.length; i++, delivered++) {
        const seq = b.view.getUint32(b.offset(i), true);
        if (seq <= last || b.size(i) !== sizes[seq] || checkDatagram(b.bytes, b.offset(i), seq, b.size(i)) !== -1) bad++;
        last = seq;
      }
      maxUsed = Math.max(maxUsed, rx.stats().ringUsed);
      if (delivered % 7 < 3) await new Promise((resolve) => setImmediate(resolve));
    });
    let sent = 0;
    for (let s = 0; s < count; s += 50) {
      const n = Math.min(50, count - s);
      const data = new Uint8Array(sizes.slice(s, s + n).reduce((a, b) => a + b, 0));
      let at = 0;
      for (let k = 0; k < n; k++) {
        fillDatagram(data, at, s + k, sizes[s + k]);
        at += sizes[s + k];
      }
      sent += tx.sendBatch(data, Uint32Array.from(sizes.slice(s, s + n)), n);
      await new Promise((resolve) => setImmediate(resolve));
    }
    tx.close();
    await waitUntil(() => delivered + rx.stats().kernelDrops >= sent, 30_000, 'every datagram delivered or dropped');
    await waitUntil(() => rx.stats().ringDatagrams === 0, 30_000, 'the ring to empty');
    const stats = rx.stats();
    if (stats.ringUsed !== 0) empty++;
    await rx.close();
    await done;
    expect(sent).toBe(count);
    expect(bad).toBe(0);
    expect(empty).toBe(0);
    expect(stats.ringDrops).toBe(0);
    expect(stats.producerStalls).toBeGreaterThan(0);
    expect(maxUsed).toBeLessThanOrEqual(stats.ringBytes);
    expect(stats.ringHighWater).toBeGreaterThan(stats.ringBytes / 2);
    expect(delivered).toBe(stats.packets);
    expect(stats.packets + stats.kernelDrops).toBe(sent);
    expect(rx.stats().discarded).toBe(0);
  });

  it('the smoke, stale, truncation and receive tests pass against it (UDP_RING_BACKEND=dgram)', () => {
    const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
    // Skipped: the million-datagram cases, only for time (the dgram backend passes them too, in about 75 s
    // each), and the one that spins the event loop waiting for the receive thread, which the dgram backend
    // has not (as the overflow tests, which stall the loop under load: that is what the native thread is for).
    const result = spawnSync(
      process.execPath,
      [vitest, 'run', 'test/1-receive/smoke.test.ts', 'test/2-overflow-and-stats/stale.test.ts',
        'test/1-receive/truncation.test.ts', 'test/1-receive/receive.test.ts',
        '--testNamePattern', '^(?!.*(1,000,000|the full ring dropped))'],
      { cwd: root, encoding: 'utf8', timeout: 240_000, env: { ...process.env, UDP_RING_BACKEND: 'dgram', CI: '1' } },
    );
    const output = (result.stdout + result.stderr).replace(/\x1b\[[0-9;]*m/g, '');
    expect(result.status, output).toBe(0);
    const passed = /Tests\s+(\d+) passed/.exec(output);
    expect(Number(passed?.[1] ?? 0), output).toBeGreaterThanOrEqual(10);
  });
});

/** Datagram sizes every sender test sends: empty, small, MTU-sized, large. */
const senderSizes = Array.from({ length: 400 }, (_, s) => [0, 1, 4, 17, 1472, 9000][s % 6] + (s % 3));

/** Sends senderSizes in batches of 50 from `tx`, refilling the buffer at once after each call. */
function sendPattern(tx: UdpSender): number {
  let sent = 0;
  for (let first = 0; first < senderSizes.length; first += 50) {
    const sizes = Uint32Array.from(senderSizes.slice(first, first + 50));
    const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    for (let k = 0, at = 0; k < sizes.length; at += sizes[k], k++) fillDatagram(data, at, first + k, sizes[k]);
    sent += tx.sendBatch(data, sizes);
    // sendmmsg is done with `data` on return; the dgram sender must not read it later.
    data.fill(0xee);
  }
  return sent;
}

describe('fallback: UdpSender over node:dgram', () => {
  for (const family of [4, 6] as const) {
    it(`delivers the same bytes as the native sender to a native receiver (IPv${family})`, async () => {
      const host = family === 4 ? '127.0.0.1' : '::1';
      const options = { host, maxMessageSize: 9100, backend: 'native' as const };
      const fromNative = await UdpReceiver.open(options);
      const fromDgram = await UdpReceiver.open(options);
      const native = await UdpSender.open({ host, port: fromNative.address().port, backend: 'native' });
      const dgram = await UdpSender.open({ host, port: fromDgram.address().port, backend: 'dgram' });
      expect([native.backend, dgram.backend]).toEqual(['native', 'dgram']);
      expect(dgram.address()).toMatchObject({ address: host, family: `IPv${family}` });
      const expected = senderSizes.length;
      const receiving = Promise.all([collect(fromNative, expected), collect(fromDgram, expected)]);
      expect(sendPattern(native)).toBe(expected);
      expect(sendPattern(dgram)).toBe(expected);
      const dgramPort = dgram.address().port;
      const [a, b] = await receiving;
      native.close();
      dgram.close();
      expect(a.length).toBe(expected);
      expect(b.map(({ port, ...rest }) => rest)).toEqual(a.map(({ port, ...rest }) => rest));
      expect(new Set(b.map((d) => d.port))).toEqual(new Set([dgramPort]));
      for (let s = 0; s < expected; s++) {
        const bytes = Buffer.from(b[s].payload, 'hex');
        expect(bytes.length).toBe(senderSizes[s]);
        expect(checkDatagram(bytes, 0, s, bytes.length), `datagram ${s}`).toBe(-1);
      }
      await fromNative.close();
      await fromDgram.close();
    });
  }

  it('send(), a fixed size, UDP_RING_BACKEND, closed use, a port nobody reads, and bind errors as the native sender', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
    const port = rx.address().port;
    const previous = process.env.UDP_RING_BACKEND;
    let tx: UdpSender;
    try {
      process.env.UDP_RING_BACKEND = 'dgram';
      tx = await UdpSender.open({ port });
    } finally {
      if (previous === undefined) delete process.env.UDP_RING_BACKEND;
      else process.env.UDP_RING_BACKEND = previous;
    }
    expect(tx.backend).toBe('dgram');
    const one = new Uint8Array(40);
    fillDatagram(one, 0, 0, 40);
    tx.send(one);
    const fixed = new Uint8Array(3 * 100);
    for (let k = 0; k < 3; k++) fillDatagram(fixed, k * 100, k + 1, 100);
    expect(tx.sendBatch(fixed, 100)).toBe(3);
    expect(() => tx.sendBatch(fixed, Uint32Array.of(200, 200))).toThrow(RangeError);
    const seen: string[] = [];
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++) {
        expect(checkDatagram(batch.bytes, batch.offset(i), seen.length, batch.size(i))).toBe(-1);
        seen.push(`${batch.size(i)}`);
      }
      if (seen.length >= 4) break;
    }
    expect(seen).toEqual(['40', '100', '100', '100']);
    tx.close();
    tx.close();
    expect(() => tx.send(one)).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    expect(() => tx.address()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));

    // Nobody reads the port now: ICMP port unreachable comes back, and is counted as the native sender counts it.
    const lost = await UdpSender.open({ port, backend: 'dgram' });
    for (let k = 0; k < 20; k++) {
      expect(lost.sendBatch(fixed, 100)).toBe(3);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitUntil(() => lost.stats().refused === 60, 10_000, 'every datagram to be refused');
    expect(lost.stats()).toEqual({ sent: 60, refused: 60, icmpErrors: 0, backend: 'dgram' });
    lost.close();

    const holder = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
    const taken = holder.address().port;
    const errorOf = (backend: 'native' | 'dgram') =>
      UdpSender.open({ port: 9, localAddress: '127.0.0.1', localPort: taken, backend }).then(() => null, (e: NodeJS.ErrnoException) => e);
    const [fromNative, fromDgram] = [await errorOf('native'), await errorOf('dgram')];
    await holder.close();
    const pick = (e: unknown) => {
      const { code, errno, syscall, address, port: at, message } = e as NodeJS.ErrnoException & { address: string; port: number };
      return { code, errno, syscall, address, port: at, message };
    };
    expect(pick(fromNative)).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', port: taken });
    expect(pick(fromDgram)).toEqual(pick(fromNative));
    await expect(UdpSender.open({ port, backend: 'bogus' as 'dgram' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('without the addon, the CLI send refuses by default, runs on it with --backend auto, and a native receiver gets every byte', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.UDP_RING_BACKEND;
    const send = (...extra: string[]) => spawnSync(
      process.execPath,
      ['-r', join(root, 'test', 'fixtures', 'no-addon.cjs'), join(root, 'dist', 'tools', 'cli', 'index.js'),
        'send', '--port', String(rx.address().port), '--count', '300', '--size', '200', '--rate', '0', '--json', ...extra],
      { encoding: 'utf8', timeout: 60_000, env },
    );
    const refused = send();
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('could not load its native addon');
    const child = send('--backend', 'auto');
    expect(child.status, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toMatchObject({ sent: 300, bytes: 60_000, reason: 'count' });
    let received = 0;
    for await (const b of rx) {
      for (let i = 0; i < b.length; i++, received++) {
        expect(b.size(i)).toBe(200);
        // The CLI's datagrams: byte k is k & 0xff, the first 4 bytes the sequence number.
        expect(b.view.getUint32(b.offset(i), true)).toBe(received);
        for (let k = 4; k < 200; k++) if (b.bytes[b.offset(i) + k] !== k) expect(b.bytes[b.offset(i) + k]).toBe(k);
      }
      if (received + rx.stats().kernelDrops >= 300) break;
    }
    expect(received).toBe(300);
    await rx.close();
  });
});
