// Lifetime is deterministic: one idempotent close, reached by close(), break,
// throw, an AbortSignal, garbage collection and the end of a worker; nothing
// is used after it; no fd or thread outlives it; the process exits by itself.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, expectBrokenMidStream, fillDatagram, waitUntil } from '../helpers.js';

const openFds = () => readdirSync('/proc/self/fd').length;
const threads = () => readdirSync('/proc/self/task').length;
const receiveThreads = () => readdirSync('/proc/self/task').filter((tid) => {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8') === 'udp-ring\n';
  } catch {
    return false; // gone while we looked
  }
}).length;
/**
 * The thread count once it is `expected`, or after limitMs. pthread_join
 * returns when the thread clears its tid, a moment before the kernel reaps it
 * and drops it from /proc/self/task (seen: 7 ms on a loaded machine), so a
 * closed receiver's thread may still be listed just after close() returns.
 */
async function threadsOnceSettled(expected: number, limitMs = 5_000): Promise<number> {
  const end = Date.now() + limitMs;
  while (threads() !== expected && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 1));
  return threads();
}
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/** Runs a fixture in its own Node process; resolves with its exit code and output. Killed after limitMs (hangs only). */
function runNode(args: string[], limitMs = 60_000): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}

async function fed(count: number, size = 64, options: Record<string, unknown> = {}) {
  const rx = await UdpReceiver.open({ host: '127.0.0.1', ...options });
  const tx = await UdpSender.open({ port: rx.address().port });
  const data = new Uint8Array(count * size);
  for (let s = 0; s < count; s++) fillDatagram(data, s * size, s, size);
  expect(tx.sendBatch(data, size)).toBe(count);
  tx.close();
  await waitUntil(() => rx.stats().packets === count, 30_000, `${count} datagrams in the ring`);
  return rx;
}

describe('use after close', () => {
  it('address() throws ERR_SOCKET_DGRAM_NOT_RUNNING; iterating throws; stats() keeps the final values; ref/unref do nothing', async () => {
    const rx = await fed(50);
    let seen = 0;
    const iterator = rx[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    seen += first.value!.length;
    const live = rx.stats();
    await rx.close();
    expect(rx.closed).toBe(true);

    expect(() => rx.address()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    expect(() => rx[Symbol.asyncIterator]()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    await expect((async () => {
      for await (const batch of rx) void batch;
    })()).rejects.toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    // The iterator taken before close ends; it does not hand out the rest of the ring.
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });

    const final = rx.stats();
    expect(final.packets).toBe(50);
    expect(final.packets).toBe(live.packets);
    expect(final.bytes).toBe(50 * 64);
    expect(final.batches).toBe(live.batches);
    expect(final.kernelQueueBytes).toBeNull();
    expect(seen).toBeGreaterThan(0);
    expect(rx.stats()).toEqual(final); // no thread is left to move them

    expect(rx.ref()).toBe(rx);
    expect(rx.unref()).toBe(rx);
    expect(rx.closed).toBe(true);
  });

  it('close() twice, and close() racing itself, resolve and change nothing', async () => {
    const before = openFds();
    const rx = await fed(10);
    await Promise.all([rx.close(), rx.close(), rx[Symbol.asyncDispose]()]);
    await rx.close();
    expect(rx.closed).toBe(true);
    expect(rx.stats().packets).toBe(10);
    expect(openFds()).toBe(before);
  });

  it('a closed sender refuses to send and can be closed again', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ port: rx.address().port });
    tx.close();
    tx.close();
    expect(() => tx.send(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    expect(() => tx.address()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    await rx.close();
  });
});

describe('close while in use', () => {
  it('close() called elsewhere while next() waits resolves that next() with done', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const iterator = rx[Symbol.asyncIterator]();
    const pending = iterator.next();
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false); // nothing was sent: it really waits
    setTimeout(() => void rx.close(), 10);
    expect(await pending).toEqual({ done: true, value: undefined });
  });

  it('close() from a timer ends a for await loop that is waiting', async () => {
    const rx = await fed(5);
    let batches = 0;
    setTimeout(() => void rx.close(), 50);
    for await (const batch of rx) {
      expect(batch.length).toBeGreaterThan(0);
      batches++;
    }
    expect(batches).toBeGreaterThan(0);
    expect(rx.closed).toBe(true);
    expect(rx.stats().packets).toBe(5);
  });

  it('close during traffic: a worker thread blasts while the receiver reads and then closes; no crash, the loop ends', async () => {
    const before = { fds: openFds() };
    for (const overflow of ['block', 'drop'] as const) {
      const rx = await UdpReceiver.open({ host: '127.0.0.1', overflow, ringBytes: 8 << 20 });
      const stop = new SharedArrayBuffer(8); // [stop flag, datagrams sent so far]
      const worker = new Worker(fixture('life-blaster.mjs'), { workerData: { port: rx.address().port, stop } });
      const messages: Array<{ started?: boolean; sent?: number; refused?: number }> = [];
      worker.on('message', (m) => messages.push(m));
      const exited = new Promise<number>((resolve, reject) => {
        worker.on('exit', resolve);
        worker.on('error', reject);
      });
      let received = 0;
      let closeAt = 20_000;
      const loop = (async () => {
        for await (const batch of rx) {
          received += batch.length;
          // Close from elsewhere while the thread is mid-stream, then keep iterating: the loop must end.
          if (received >= closeAt) {
            closeAt = Number.POSITIVE_INFINITY;
            setImmediate(() => void rx.close());
          }
        }
      })();
      await loop;
      expect(rx.closed).toBe(true);
      expect(received).toBeGreaterThanOrEqual(20_000);
      // The sender goes on against the closed port: let it send a whole batch more, then stop it.
      // (Not a race with a starved sender thread: before, it could be stopped having sent nothing more.)
      const shared = new Int32Array(stop);
      const sentAtClose = Atomics.load(shared, 1);
      await waitUntil(() => Atomics.load(shared, 1) >= sentAtClose + 128, 30_000, 'the sender to send against the closed port');
      Atomics.store(shared, 0, 1);
      expect(await exited).toBe(0);
      const report = messages.find((m) => m.sent !== undefined)!;
      expect(report.sent).toBeGreaterThan(received);
      expect(report.refused).toBeGreaterThan(0);
      const stats = rx.stats();
      expect(stats.packets).toBeGreaterThanOrEqual(received);
    }
    expect(openFds()).toBe(before.fds);
  });

  it('close while the receive thread waits for ring space (overflow block) returns and frees everything', async () => {
    const before = openFds();
    const rx = await UdpReceiver.open({ host: '127.0.0.1', ringBytes: 1 << 20, maxMessageSize: 1500, batchSize: 16 });
    const tx = await UdpSender.open({ port: rx.address().port });
    const iterator = rx[Symbol.asyncIterator]();
    const burst = new Uint8Array(1000 * 64);
    tx.sendBatch(burst, 1000);
    const held = await iterator.next(); // held, never released: the ring fills behind it
    expect(held.done).toBe(false);
    let bursts = 0;
    while (rx.stats().producerStalls === 0 && bursts < 2000) {
      tx.sendBatch(burst, 1000);
      bursts++;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(rx.stats().producerStalls).toBeGreaterThan(0);
    await rx.close();
    expect(rx.closed).toBe(true);
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    tx.close();
    expect(openFds()).toBe(before);
  });

  it('a second concurrent iterator is refused with a clear error, and the first goes on', async () => {
    const rx = await fed(20);
    const first = rx[Symbol.asyncIterator]();
    let error: NodeJS.ErrnoException | undefined;
    try {
      rx[Symbol.asyncIterator]();
    } catch (e) {
      error = e as NodeJS.ErrnoException;
    }
    expect(error?.code).toBe('ERR_UDP_RING_ALREADY_ITERATING');
    expect(error?.message).toMatch(/already being iterated/);
    // A for await over the same receiver fails the same way, without closing it.
    await expect((async () => {
      for await (const batch of rx) void batch;
    })()).rejects.toMatchObject({ code: 'ERR_UDP_RING_ALREADY_ITERATING' });
    expect(rx.closed).toBe(false);
    let seen = 0;
    while (seen < 20) {
      const { value, done } = await first.next();
      expect(done).toBe(false);
      for (let i = 0; i < value!.length; i++, seen++) {
        expect(checkDatagram(value!.bytes, value!.offset(i), seen, 64)).toBe(-1);
      }
    }
    await first.return!();
    expect(rx.closed).toBe(true);
  });

  it('a throw inside for await closes the receiver', async () => {
    const rx = await fed(30);
    await expect((async () => {
      for await (const batch of rx) {
        if (batch.length > 0) throw new Error('application failure');
      }
    })()).rejects.toThrow('application failure');
    expect(rx.closed).toBe(true);
    expect(() => rx.address()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
  });

  it('break mid-stream, then the process exits by itself with code 0', async () => {
    const run = await runNode([fixture('life-break-exit.mjs')], 60_000);
    expect(run.killed, `the process did not exit by itself:\n${run.stderr}`).toBe(false);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectBrokenMidStream(run.stdout);
  });
});

describe('ref and unref', () => {
  it('an unref\'d receiver waiting in next() lets the process exit (cleanup closes it); a ref\'d one holds it', async () => {
    const unref = await runNode([fixture('life-unref.mjs'), 'unref'], 60_000);
    expect(unref.killed).toBe(false);
    expect(unref.stderr).toBe('');
    expect(unref.code).toBe(0);
    // Gone before the unref'd timer, with the receiver still open: the environment's cleanup closed it.
    expect(JSON.parse(unref.stdout)).toMatchObject({ heldOpen: false, closed: false });
    const ref = await runNode([fixture('life-unref.mjs'), 'ref'], 60_000);
    expect(ref.stderr).toBe('');
    expect(ref.code).toBe(0);
    expect(JSON.parse(ref.stdout)).toEqual({ received: 50, heldOpen: true, closed: true });
  });
});

describe('AbortSignal', () => {
  it('aborting closes the receiver and ends a waiting loop', async () => {
    const controller = new AbortController();
    const rx = await fed(8, 64, { signal: controller.signal });
    let received = 0;
    for await (const batch of rx) {
      received += batch.length;
      if (received === 8) setTimeout(() => controller.abort(), 10);
    }
    expect(received).toBe(8);
    expect(rx.closed).toBe(true);
  });

  it('aborting an idle receiver closes it; closing first, then aborting, is harmless', async () => {
    const before = openFds();
    const controller = new AbortController();
    const rx = await UdpReceiver.open({ host: '127.0.0.1', signal: controller.signal });
    controller.abort(new Error('shutting down'));
    expect(rx.closed).toBe(true);
    const other = new AbortController();
    const second = await UdpReceiver.open({ host: '127.0.0.1', signal: other.signal });
    await second.close();
    other.abort();
    expect(openFds()).toBe(before);
  });

  it('an already aborted signal rejects open() with AbortError and opens nothing', async () => {
    const before = openFds();
    const reason = new Error('no longer wanted');
    const error = await UdpReceiver.open({ host: '127.0.0.1', signal: AbortSignal.abort(reason) }).then(
      () => null,
      (e: Error) => e,
    );
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect((error as Error).cause).toBe(reason);
    expect(openFds()).toBe(before);
  });
});

describe('nothing left behind', () => {
  it('a receiver that becomes garbage closes its fd and thread, and the process exits by itself', async () => {
    const run = await runNode(['--expose-gc', fixture('life-gc.mjs')], 60_000);
    expect(run.killed, `the process did not exit by itself (a receiver still holds the loop):\n${run.stdout}${run.stderr}`).toBe(false);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    // Four receivers were really open: each an fd for the socket and one for its eventfd, and a thread.
    expect(report.opened.fds).toBe(report.baseline.fds + 8);
    expect(report.opened.threads).toBe(report.baseline.threads + 4);
    expect(report.opened.closed).toEqual([false, false, false, false]);
    expect(report.opened.firstBatch).toBeGreaterThan(0);
    expect(report.after).toEqual(report.baseline);
    expect(report.collected).not.toBeNull();
  });

  it('500 open/close cycles, with traffic on every tenth, leave no fd or thread behind', async () => {
    // Warm up what is made once per process, so the baseline is steady.
    const warm = await fed(10);
    await warm.close();
    await waitUntil(() => receiveThreads() === 0, 5_000, 'the warm-up receiver\'s thread to be reaped');
    const baseline = { fds: openFds(), threads: threads() };
    let received = 0;
    for (let cycle = 0; cycle < 500; cycle++) {
      const options = cycle % 3 === 0 ? { ringBytes: 1 << 20, maxMessageSize: 1500, batchSize: 16 } : {};
      if (cycle % 10 === 0) {
        const rx = await fed(20, 100, options);
        for await (const batch of rx) {
          for (let i = 0; i < batch.length; i++, received++) {
            expect(checkDatagram(batch.bytes, batch.offset(i), received % 20, 100)).toBe(-1);
          }
          if (received % 20 === 0) break; // closes
        }
        expect(rx.closed).toBe(true);
      } else {
        const rx = await UdpReceiver.open({ host: cycle % 2 ? '127.0.0.1' : '::1', ...options });
        expect(await threadsOnceSettled(baseline.threads + 1)).toBe(baseline.threads + 1);
        await rx.close();
      }
      expect(openFds()).toBe(baseline.fds);
    }
    expect(received).toBe(50 * 20);
    expect({ fds: openFds(), threads: await threadsOnceSettled(baseline.threads) }).toEqual(baseline);
  });

  it('receivers in worker threads that return, exit or are terminated mid-iteration: no crash, fds and threads back to baseline', async () => {
    const run = await runNode([fixture('life-worker.mjs')], 90_000);
    expect(run.killed, `did not finish:\n${run.stdout}${run.stderr}`).toBe(false);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.runs.map((r: { mode: string; code: number }) => [r.mode, r.code])).toEqual([
      ['return', 0], ['exit', 0], ['terminate', 1], ['return', 0], ['terminate', 1],
    ]);
    for (const r of report.runs) expect(r.message).toEqual({ received: 50 });
    expect(report.after).toEqual(report.baseline);
  });
});
