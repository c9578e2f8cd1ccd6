// The ring's defects found in review (issue 10), each with a test that failed
// before its fix: a datagram at the wrap that could never be placed, leftovers
// of a direct receive stranded until more traffic came, and a prefault that
// wrote over published datagrams. (The IPv6 scope id: test/1-receive/scope-id.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { minimumRingBytes } from '../../dist/core/options.js';
import { checkDatagram, fillDatagram, spawnAsync } from '../helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'udp-ring-defects-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function compile(compiler: string, args: string[]): Promise<void> {
  const run = await spawnAsync(compiler, args, { cwd: root, timeout: 120_000 });
  if (run.status !== 0) throw new Error(`${compiler} ${args.join(' ')} failed:\n${run.stderr}${run.error ?? ''}`);
}

describe('the ring at its limits', () => {
  it('a ring too small for a batch of the largest datagrams at the wrap is refused, naming the minimum', async () => {
    // 128 KiB used to be accepted for batchSize 1: the second 60,000-byte datagram then never fit.
    const minimum = minimumRingBytes(1, 65535);
    expect(minimum).toBeGreaterThan(2 * 65536);
    const attempt = UdpReceiver.open({ host: '127.0.0.1', batchSize: 1, ringBytes: 128 * 1024 });
    await expect(attempt).rejects.toThrow(RangeError);
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(attempt).rejects.toThrow(new RegExp(`options\\.ringBytes.*at least ${minimum}`));
  });

  for (const overflow of ['block', 'drop'] as const) {
    it(`the smallest ring takes datagrams up to 65,507 bytes, one at a time, wherever the wrap falls (${overflow})`, async () => {
      const batchSize = 2;
      const rx = await UdpReceiver.open({ host: '127.0.0.1', batchSize, overflow, ringBytes: minimumRingBytes(batchSize, 65535) });
      const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
      const count = 60;
      const sizeOf = (seq: number) => (seq % 3 === 0 ? 65507 : 1 + ((seq * 2654435761) >>> 0) % 65507);
      const buffer = new Uint8Array(65507);
      const iterator = rx[Symbol.asyncIterator]();
      for (let seq = 0; seq < count; seq++) {
        fillDatagram(buffer, 0, seq, sizeOf(seq));
        expect(tx.sendBatch(buffer, sizeOf(seq), 1)).toBe(1);
        const { value: batch, done } = await iterator.next();
        expect(done).toBe(false);
        expect(batch!.length).toBe(1);
        expect(batch!.size(0)).toBe(sizeOf(seq));
        expect(checkDatagram(batch!.bytes, batch!.offset(0), seq, sizeOf(seq))).toBe(-1);
      }
      const stats = rx.stats();
      expect({ packets: stats.packets, ringDrops: stats.ringDrops, kernelDrops: stats.kernelDrops }).toEqual({
        packets: count, ringDrops: 0, kernelDrops: 0,
      });
      await iterator.return!();
      tx.close();
    });
  }
});

describe('positions that wrap', () => {
  it('32-bit datagram positions cross 2^32 with every datagram intact, through the iterator and onBatch', async () => {
    const run = await spawnAsync(process.execPath, [fileURLToPath(new URL('../fixtures/wrap-positions.mjs', import.meta.url))], {
      timeout: 60_000, env: { ...process.env, UDP_RING_TEST_START_POSITION: String(2 ** 32 - 512) },
    });
    expect(run.stderr).toBe('');
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!);
    for (const mode of ['iterator', 'onBatch']) {
      expect(result[mode], mode).toEqual({ seq: 3000, bad: 0, packets: 3000, drops: 0, ringDatagrams: 0, sane: true });
    }
  });
});

describe('the hand-over between the event loop and the receive thread', () => {
  it('native: leftovers of a direct receive are placed without more traffic; direct receive waits for the prefault; large datagrams received into the ring (and, switched off, copied); a nearly full ring arms fewer; a direct receive that finds the lock taken is handed to the thread at once; an empty ring starts again at its beginning, a held one never', async () => {
    const binary = join(work, 'receive_loop_test');
    await compile(process.env.CXX ?? 'c++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Inative',
      'native/test/receive_loop_test.cc', 'native/receive_loop.cc', 'native/receive_batch.cc', 'native/ring_writer.cc', '-o', binary, '-lpthread']);
    const run = await spawnAsync(binary, [], { timeout: 60_000 });
    expect(run.stdout).toContain('10 passed, 0 failed');
    expect(run.status).toBe(0);
  });

  it('a datagram held by the consumer survives a receive thread that starts late on a kernel without MADV_POPULATE_WRITE', async () => {
    const shim = join(work, 'prefault-shim.so');
    await compile(process.env.CC ?? 'cc', ['-shared', '-fPIC', '-O1', 'test/fixtures/prefault-shim.c', '-o', shim, '-ldl']);
    const run = await spawnAsync(process.execPath, [fileURLToPath(new URL('../fixtures/prefault-race.mjs', import.meta.url))], {
      timeout: 60_000, // After any preload already there (the ASan run preloads its runtime first).
      env: { ...process.env, LD_PRELOAD: [process.env.LD_PRELOAD, shim].filter(Boolean).join(' ') },
    });
    expect(run.stderr).toBe('');
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!);
    // Before the fix the event loop received it at once (directBatches 1) and the late prefault zeroed bytes of it.
    expect(result.bad).toBe(0);
  });
});
