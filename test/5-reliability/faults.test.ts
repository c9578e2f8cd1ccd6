// Faults: closing at awkward moments, consumers that throw, threads and
// processes that end with receivers open, exhausted descriptors and threads,
// user code taking the ring's memory away, and hundreds of receivers at once.
// Nothing may crash, hang or leak a descriptor.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram, openLoopback, waitUntil } from '../helpers.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures');
const openFds = () => readdirSync('/proc/self/fd').length;
const asRoot = process.getuid?.() === 0;
// A uid no one else runs as, so RLIMIT_NPROC counts only the child's threads.
const spareUid = String(47000 + (process.pid % 1000));
const sanitized = Boolean(process.env.UDP_RING_SANITIZED);

function runFixture(command: string[], limitMs = 30_000) {
  const run = spawnSync(command[0], command.slice(1), { encoding: 'utf8', timeout: limitMs });
  return { ...run, report: run.stdout.trim() ? (() => { try { return JSON.parse(run.stdout.trim().split('\n').pop()!); } catch { return null; } })() : null };
}

function numbered(count: number, size: number): Uint8Array {
  const data = new Uint8Array(count * size);
  for (let s = 0; s < count; s++) fillDatagram(data, s * size, s, size);
  return data;
}

describe('closing at awkward moments', () => {
  it('close while the thread drains heavy traffic, 60 times: no crash, no fd left', async () => {
    const before = openFds();
    const data = numbered(1024, 200);
    for (let round = 0; round < 60; round++) {
      const rx = await openLoopback({ ringBytes: 1 << 20, maxMessageSize: 2048, overflow: round % 2 ? 'drop' : 'block' });
      const tx = await UdpSender.open({ port: rx.address().port });
      tx.sendBatch(data, 200, 1024);
      const iterator = rx[Symbol.asyncIterator]();
      const first = await iterator.next();
      expect(first.done).toBe(false);
      // The thread is busy in recvmmsg/placing the rest (or blocked for space) right now.
      if (round % 3 === 0) tx.sendBatch(data, 200, 1024);
      await rx.close();
      expect((await iterator.next()).done).toBe(true);
      tx.close();
    }
    expect(openFds()).toBe(before);
  });

  it('close from inside the loop body ends the loop cleanly', async () => {
    const rx = await openLoopback();
    const tx = await UdpSender.open({ port: rx.address().port });
    tx.sendBatch(numbered(100, 64), 64, 100);
    let iterations = 0;
    for await (const batch of rx) {
      iterations++;
      expect(checkDatagram(batch.bytes, batch.offset(0), 0, 64)).toBe(-1);
      await rx.close();
      expect(() => batch.size(0)).toThrow(expect.objectContaining({ code: 'ERR_UDP_RING_STALE_BATCH' }));
    }
    expect(iterations).toBe(1);
    expect(rx.closed).toBe(true);
    await rx.close();
    tx.close();
  });

  it('a consumer that throws closes the receiver and the error reaches the caller', async () => {
    const before = openFds();
    const rx = await openLoopback();
    const tx = await UdpSender.open({ port: rx.address().port });
    tx.sendBatch(numbered(10, 64), 64, 10);
    const boom = new Error('consumer failed');
    await expect((async () => {
      for await (const batch of rx) if (batch.length > 0) throw boom;
    })()).rejects.toBe(boom);
    expect(rx.closed).toBe(true);
    tx.close();
    expect(openFds()).toBe(before);
  });
});

describe('threads and processes that end with receivers open', () => {
  it('terminating a worker with receivers mid-iteration under traffic frees their ports and descriptors', async () => {
    const before = openFds();
    for (let round = 0; round < 3; round++) {
      const worker = new Worker(join(fixtures, 'rel-worker.mjs'));
      const ports = await new Promise<number[]>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(ports).toHaveLength(4);
      await worker.terminate();
      // The environment cleanup hook closed every socket: the ports bind again.
      for (const port of ports) {
        const rx = await UdpReceiver.open({ host: '127.0.0.1', port });
        await rx.close();
      }
    }
    await waitUntil(() => openFds() === before, 10_000, 'descriptors back to the baseline');
  });

  it('process.exit() from inside the loop body, thread busy: exits 0', () => {
    for (let k = 0; k < 3; k++) {
      const run = runFixture([process.execPath, join(fixtures, 'rel-exit.mjs'), 'exit']);
      expect(run.signal, run.stderr).toBeNull();
      expect(run.status, run.stderr).toBe(0);
    }
  });

  it('an unref()d receiver with a next() pending lets the process end', () => {
    const run = runFixture([process.execPath, join(fixtures, 'rel-exit.mjs'), 'unref']);
    expect(run.signal, run.stderr).toBeNull();
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('ended');
  });

  it('ending while a wakeup is queued never aborts (teardown wakeup)', () => {
    // Exit 13 is Node's "top-level await never settled": the expected, clean end here.
    for (let k = 0; k < 8; k++) {
      const run = runFixture([process.execPath, join(fixtures, 'rel-exit.mjs'), 'unref-early']);
      expect(run.signal, run.stderr).toBeNull();
      expect([0, 13], run.stderr).toContain(run.status);
      expect(run.stderr).not.toContain('FATAL');
    }
  });
});

describe('exhausted resources', () => {
  it('no free descriptor: a clear EMFILE from socket() or eventfd(), nothing leaked, opens again after', () => {
    const run = runFixture(['prlimit', '--nofile=64:64', process.execPath, join(fixtures, 'rel-limits.mjs'), 'nofile']);
    expect(run.status, run.stderr).toBe(0);
    const r = run.report;
    expect(r.firstError).toMatchObject({ code: 'EMFILE', syscall: 'socket', errno: -24 });
    expect(r.firstLeak).toBe(0);
    expect(r.error).toMatchObject({ code: 'EMFILE', syscall: 'eventfd', errno: -24 });
    expect(r.error.message).toMatch(/EMFILE/);
    expect(r.fdsAfterFailure).toBe(r.fdsBefore);
    expect(r.reopened).toBe(true);
  });

  it.skipIf(!asRoot)('thread creation fails (RLIMIT_NPROC): EAGAIN from pthread_create, nothing leaked', () => {
    const run = runFixture([
      'prlimit', '--nproc=14:14', 'setpriv', `--reuid=${spareUid}`, `--regid=${spareUid}`, '--clear-groups',
      '--inh-caps=-all', '--bounding-set=-all', process.execPath, join(fixtures, 'rel-limits.mjs'), 'nproc',
    ]);
    expect(run.signal, run.stderr).toBeNull();
    expect(run.status, run.stderr).toBe(0);
    const r = run.report;
    expect(r.uid).toBe(Number(spareUid));
    expect(r.error).toMatchObject({ code: 'EAGAIN', syscall: 'pthread_create' });
    expect(r.fdsAfterFailure).toBe(r.fdsBefore);
    expect(r.fdsPerReceiver).toBe(2);
    expect(r.reopened).toBe(true);
  });
});

describe("the ring's memory", () => {
  it('cannot be detached by structuredClone(..., { transfer }): receiving goes on, bytes intact', () => {
    const run = runFixture([process.execPath, '--expose-gc', join(fixtures, 'rel-detach.mjs')]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.report).toMatchObject({ detached: false, error: null, received: 2000, corrupt: 0 });
  });

  it.skipIf(sanitized)('under a low RLIMIT_AS (no room for large reservations) it still cannot be detached', () => {
    const run = runFixture(['prlimit', '--as=6000000000', process.execPath, '--expose-gc', join(fixtures, 'rel-detach.mjs')]);
    expect(run.signal, run.stderr).toBeNull();
    expect(run.status, run.stderr).toBe(0);
    expect(run.report).toMatchObject({ detached: false, error: null, received: 2000, corrupt: 0 });
  });
});

describe('many receivers', () => {
  it('300 receivers opened, fed and closed concurrently, three times: every datagram, no fd left', async () => {
    const before = openFds();
    for (let round = 0; round < 3; round++) {
      const receivers = await Promise.all(
        Array.from({ length: 300 }, () => openLoopback({ ringBytes: 1 << 20, maxMessageSize: 2048, recvBufferSize: 1 << 20 })),
      );
      const results = await Promise.all(receivers.map(async (rx, k) => {
        const sender = await UdpSender.open({ port: rx.address().port });
        sender.sendBatch(numbered(3, 32), 32, 3);
        sender.close();
        let seen = 0;
        for await (const batch of rx) {
          for (let i = 0; i < batch.length; i++, seen++) {
            if (checkDatagram(batch.bytes, batch.offset(i), seen, 32) !== -1) return -k - 1;
          }
          if (seen === 3) break;
        }
        return seen;
      }));
      expect(results.every((n) => n === 3)).toBe(true);
      expect(receivers.every((rx) => rx.closed)).toBe(true);
    }
    expect(openFds()).toBe(before);
  });
});
