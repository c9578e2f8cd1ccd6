// The benchmark's C io_uring loop (bench/iouring-loop.c, issue 13): what it
// counts must be true before its rate means anything. Real sockets on
// loopback: every datagram sent is received or counted as a kernel drop, kept
// samples match what was sent byte for byte, and the loop's own paths are
// taken (the multishot receive ended by ENOBUFS and re-armed, a hold that
// cancels it, drops read from SO_RXQ_OVFL in the recvmsg_out control area).
// Skipped only where the kernel refuses io_uring (io_uring_setup: ENOSYS or EPERM; or before 6.0).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { fillDatagram, spawnAsync, spreadSize } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'udp-ring-iouring-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const binary = join(dir, 'iouring-loop');

// Built as the benchmark builds it (bench/native-loop.mjs): warnings are errors.
const built = await spawnAsync(process.env.CC || 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, 'bench/iouring-loop.c'],
  { timeout: 60_000 });
if (built.status !== 0) throw new Error(`bench/iouring-loop.c does not build:\n${built.stderr}`);

class Loop {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: Interface;
  readonly #waiting: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  readonly #queued: string[] = [];
  #stderr = '';
  #exited: Error | null = null;

  constructor(args: string[]) {
    this.child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr += chunk));
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (line) => {
      const next = this.#waiting.shift();
      if (next) next.resolve(line);
      else this.#queued.push(line);
    });
    // After the last line is read: what it printed before exiting still counts.
    this.lines.on('close', () => {
      this.#exited = new Error(`iouring-loop exited (${this.child.exitCode}): ${this.#stderr}`);
      for (const waiting of this.#waiting.splice(0)) waiting.reject(this.#exited);
    });
  }

  /** The next line it prints; fails if it exits first (with what it said on stderr). */
  line(): Promise<string> {
    const queued = this.#queued.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#exited) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  send(command: string): void {
    this.child.stdin.write(`${command}\n`);
  }

  /** Stats once every datagram sent is received or counted as dropped (or after 30 s, to fail on). */
  async settled(sent: number): Promise<Record<string, number>> {
    const start = Date.now();
    let stats = await this.stats();
    while (stats.received + stats.kernelDrops < sent && Date.now() - start < 30_000) {
      await new Promise((r) => setTimeout(r, 5));
      stats = await this.stats();
    }
    return stats;
  }

  async stats(): Promise<Record<string, number>> {
    this.send('stats');
    const [word, received, kernelDrops, gaps, startNs, lastNs, ...fields] = (await this.line()).split(' ');
    expect(word).toBe('stats');
    return { received: Number(received), kernelDrops: Number(kernelDrops), gaps: Number(gaps), startNs: Number(startNs),
      lastNs: Number(lastNs), ...Object.fromEntries(fields.map((f) => f.split('=')).map(([k, v]) => [k, Number(v)])) };
  }

  /** Samples asked for, in order: [seq, bytes] (null when that datagram never came). */
  async samples(): Promise<[number, Buffer | null][]> {
    this.send('show');
    const out: [number, Buffer | null][] = [];
    for (let line = await this.line(); line !== 'shown'; line = await this.line()) {
      const [word, seq, length, hex] = line.split(' ');
      expect(word).toBe('sample');
      const bytes = length === '-1' ? null : Buffer.from(hex ?? '', 'hex');
      if (bytes) expect(bytes.length).toBe(Number(length));
      out.push([Number(seq), bytes]);
    }
    return out;
  }

  async close(): Promise<number | null> {
    this.child.stdin.end();
    if (this.child.exitCode !== null) return this.child.exitCode;
    return new Promise((resolve) => this.child.once('exit', resolve));
  }
}

// Whether this kernel runs io_uring at all: only ENOSYS or EPERM from io_uring_setup skips (or a
// kernel before 6.0, which has io_uring but no multishot recvmsg: the loop says so as "uname 38").
const probe = new Loop(['0']);
const first = await probe.line();
await probe.close();
const refusal = /^refused (io_uring_setup (1|38)|uname 38) /.exec(first) ? first : null;

const datagram = (seq: number, size: number): Buffer => {
  const bytes = Buffer.alloc(size);
  fillDatagram(bytes, 0, seq, size);
  return bytes;
};

async function sendAll(port: number, seqs: number[], sizeOf: (seq: number) => number): Promise<number> {
  const socket = dgram.createSocket('udp4');
  try {
    // One at a time: the test's count of what was sent is exact.
    for (const seq of seqs) {
      await new Promise<void>((resolve, reject) => socket.send(datagram(seq, sizeOf(seq)), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    }
  } finally {
    socket.close();
  }
  return seqs.length;
}

const range = (n: number) => Array.from({ length: n }, (_, k) => k);

describe.skipIf(refusal !== null)(`bench/iouring-loop.c${refusal ? ` (skipped: the kernel refuses io_uring: ${refusal})` : ''}`, () => {
  it('starts, or says plainly why not', () => {
    expect(first).toMatch(/^ready \d+ \d+ [01]$/);
  });

  // The straight port, the batched one with COOP_TASKRUN, and DEFER_TASKRUN with batched waits.
  for (const options of [[], ['batch', 'coop'], ['batch', 'defer', 'wait=32']]) {
    it(`[${options.join(' ')}] receives live and from a held queue: counts reconcile, samples byte for byte`, async () => {
      // 64 buffers: a queue of 1500 runs them out, so the multishot receive ends with ENOBUFS and is armed again.
      const loop = new Loop([String(16 * 2 ** 20), 'buffers=64', ...options]);
      try {
        const [word, portText] = (await loop.line()).split(' ');
        expect(word).toBe('ready');
        const port = Number(portText);
        const sizeOf = (seq: number) => 4 + (spreadSize(seq, 1400) % 1397);
        const samples = [0, 1, 777, 1499];
        for (const seq of samples) loop.send(`sample ${seq}`);
        // The loop reads its commands as completions like any other: a stats reply says the sample
        // lines before it were taken (CI once sent datagram 1 before the loop had read "sample 1").
        await loop.stats();
        // Live: the multishot receive is armed before the first datagram.
        let sent = await sendAll(port, range(1500), sizeOf);
        let stats = await loop.settled(sent);
        expect(stats.received + stats.kernelDrops).toBe(sent);
        if (stats.kernelDrops === 0) expect(stats.gaps).toBe(0);
        const live = await loop.samples();
        expect(live.map(([seq]) => seq)).toEqual(samples);
        for (const [seq, kept] of live) {
          if (stats.kernelDrops === 0) expect(kept, `sample ${seq}`).not.toBeNull();
          if (kept) expect(kept.equals(datagram(seq, sizeOf(seq))), `sample ${seq} byte for byte`).toBe(true);
        }

        // Held: the receive is cancelled, 1500 more queue up, then the gate opens.
        const gate = join(dir, `gate-${options.join('-')}`);
        loop.send(`hold ${gate}`);
        // The multishot receive is cancelled: from now on the kernel queues every datagram.
        expect(await loop.line()).toBe('held');
        for (const seq of samples) loop.send(`sample ${seq}`);
        const before = await loop.stats();
        expect(before.startNs).toBe(0);
        sent += await sendAll(port, range(1500), (seq) => sizeOf(seq + 1));
        // Nothing is read while held (what arrived before the hold was taken is all it has).
        const held = await loop.stats();
        expect(held.received).toBe(before.received);
        writeFileSync(gate, '');
        expect(existsSync(gate)).toBe(true);
        stats = await loop.settled(sent);
        expect(stats.received + stats.kernelDrops).toBe(sent);
        expect(stats.startNs).toBeGreaterThan(0);
        expect(stats.lastNs).toBeGreaterThanOrEqual(stats.startNs);
        if (stats.kernelDrops === 0) {
          expect(stats.gaps).toBe(0);
          expect(stats.enobufs).toBeGreaterThan(0);
          expect(stats.rearms).toBeGreaterThanOrEqual(stats.enobufs);
        }
        expect(stats.truncated).toBe(0);
        const drained = await loop.samples();
        // The first four are the live ones again; the held round's samples follow.
        const heldSamples = drained.slice(samples.length);
        expect(heldSamples.map(([seq]) => seq)).toEqual(samples);
        for (const [seq, kept] of heldSamples) {
          if (stats.kernelDrops === 0) expect(kept, `sample ${seq}`).not.toBeNull();
          if (kept) expect(kept.equals(datagram(seq, sizeOf(seq + 1))), `held sample ${seq} byte for byte`).toBe(true);
        }
      } finally {
        expect(await loop.close()).toBe(0);
      }
    });
  }

  it('reads kernel drops from SO_RXQ_OVFL in the control area, and they agree with the socket counter', async () => {
    // A buffer a few datagrams fill: held, most of 400 are dropped.
    const loop = new Loop(['4096', 'batch', 'coop']);
    try {
      const port = Number((await loop.line()).split(' ')[1]);
      const gate = join(dir, 'gate-drops');
      loop.send(`hold ${gate}`);
      expect(await loop.line()).toBe('held');
      let sent = await sendAll(port, range(400), () => 1000);
      writeFileSync(gate, '');
      await loop.settled(sent);
      // Datagrams queued after the drops carry their count in the cmsg.
      sent += await sendAll(port, range(5).map((k) => 400 + k), () => 100);
      const stats = await loop.settled(sent);
      expect(stats.received + stats.kernelDrops).toBe(sent);
      expect(stats.kernelDrops).toBeGreaterThan(0);
      expect(stats.cmsgDrops).toBe(stats.kernelDrops);
      expect(stats.gaps).toBeGreaterThan(0);
    } finally {
      expect(await loop.close()).toBe(0);
    }
  });
});
