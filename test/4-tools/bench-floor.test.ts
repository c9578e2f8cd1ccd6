// bench/floor.mjs (the cost table's floor) and bench/tail.mjs (where the light-load latency tail
// goes) in their smallest runs: every receiver, the C epoll loop with and without linger, reconcile
// what was sent with what was received, and their counters agree with each other. No timing is asserted.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

function raw(stdout: string): Array<Record<string, any>> {
  const line = stdout.split('\n').find((l) => l.startsWith('raw: '));
  expect(line, stdout).toBeDefined();
  return JSON.parse(line!.slice('raw: '.length));
}

describe('bench/floor.mjs', () => {
  it('measures every receiver on the same traffic, the C loop counting its wakeups and calls', async () => {
    const { stdout } = await run(process.execPath, ['bench/floor.mjs', '--rounds', '1', '--ms', '300', '--rates', '20000',
      '--kinds', 'dgram-tuned,ring-fast,ring-empty,c-epoll,c-epoll-linger20'], { timeout: 120_000 });
    const rows = raw(stdout);
    expect(rows.map((r) => r.label).sort()).toEqual(['c-epoll', 'c-epoll-linger20', 'dgram-tuned', 'ring-empty', 'ring-fast']);
    for (const r of rows) {
      expect(r.received + r.kernelDrops + r.ringDrops, r.label).toBe(r.sent);
      if (r.received === r.sent) expect(r.gaps, r.label).toBe(0);
      expect(r.cpu, r.label).toBeGreaterThan(0);
      expect(r.switches, r.label).toBeGreaterThan(0);
    }
    for (const r of rows.filter((row) => row.label.startsWith('c-'))) {
      // Every wakeup found the socket readable and read at least one datagram; every counted call returned some.
      expect(r.loop.wakeups, r.label).toBeGreaterThan(0);
      expect(r.loop.calls, r.label).toBeGreaterThanOrEqual(r.loop.wakeups);
      expect(r.received, r.label).toBeGreaterThanOrEqual(r.loop.calls);
    }
    for (const r of rows.filter((row) => row.label.startsWith('ring'))) {
      // The phase's own counters: every datagram in a batch, most batches taken by the event loop itself.
      expect(r.ring.packets, r.label).toBe(r.received);
      expect(r.ring.batches, r.label).toBeGreaterThan(0);
      expect(r.ring.directBatches, r.label).toBeLessThanOrEqual(r.ring.batches);
    }
    expect(stdout).toContain('| c-epoll |');
  });
});

describe('bench/tail.mjs', () => {
  it('splits each udp-ring datagram at its kernel timestamp and counts the slow ones by side', async () => {
    const { stdout } = await run(process.execPath, ['bench/tail.mjs', '--rounds', '1', '--ms', '300',
      '--kinds', 'dgram-default,ring-fast'], { timeout: 120_000 });
    const rows = raw(stdout);
    expect(rows.map((r) => r.label).sort()).toEqual(['dgram-default', 'ring-fast']);
    for (const r of rows) {
      expect(r.latencyUs.negative, r.label).toBe(0);
      expect(r.latencyUs.count, r.label).toBeGreaterThan(0);
    }
    const ring = rows.find((r) => r.label === 'ring-fast')!;
    expect(ring.latencyUs.count).toBe(ring.during.packets);
    const { slow, kernelToHandler, sendToKernel } = ring.latencySplit;
    expect(slow.receiverSide + slow.senderSide).toBe(slow.total);
    // Each part of a datagram's latency is at most the whole (each at least 1 µs).
    expect(kernelToHandler.max).toBeLessThanOrEqual(ring.latencyUs.max + 1);
    expect(sendToKernel.max).toBeLessThanOrEqual(ring.latencyUs.max + 1);
    expect(rows.find((r) => r.label === 'dgram-default')!.latencySplit).toBeUndefined();
  });
});
