// The benchmark harness end to end in its smallest mode: every scenario runs,
// every receiver process starts and exits, and the results are valid JSON in
// which every datagram sent is accounted for. No timing is asserted.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'udp-ring-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench/run.mjs --smoke', () => {
  it('runs every scenario and writes results that reconcile', async () => {
    const out = join(dir, 'results.json');
    const { stdout, stderr } = await run(process.execPath, ['bench/run.mjs', '--smoke', '--no-docs', '--out', out], {
      timeout: 90_000,
    });
    expect(stderr).toContain('drain:');
    const results = JSON.parse(readFileSync(out, 'utf8'));
    expect(results.mode).toBe('smoke');
    expect(results.machine.cores).toBeGreaterThan(0);
    for (const name of ['drain', 'stalls', 'lossless', 'latency', 'cost', 'costLight', 'lag']) {
      expect(results[name].rounds.length, name).toBeGreaterThan(0);
    }
    // The kernel scenario: both send modes, and every drain variant accounts for every datagram.
    expect(results.kernel.send.map((r: { gso: boolean }) => r.gso).sort()).toEqual([false, true]);
    for (const r of [...results.kernel.gro, ...results.kernel.large, ...results.kernel.mixed, ...results.kernel.info]) {
      expect(r.received + r.kernelDrops + r.ringDrops, `${r.variant}`).toBe(r.sent);
    }
    // udp-ring beside its landing-zone copy path at each large size and the mixed sizes, paired by round.
    const variants = (rows: { variant: string }[]) => [...new Set(rows.map((r) => r.variant))];
    expect(variants(results.kernel.large)).toContain('udp-ring, landing zone only');
    expect(variants(results.kernel.mixed)).toEqual(['udp-ring', 'udp-ring, landing zone only', 'C recvmmsg loop']);
    // The C loop with IP_PKTINFO + IP_RECVTOS read both from every datagram it received (the floor is real).
    const withInfo = results.kernel.info.filter((r: { variant: string }) => r.variant === 'C recvmmsg loop, pktinfo + tos');
    expect(withInfo.length).toBeGreaterThan(0);
    for (const r of withInfo) expect(r.loop.withInfo).toBe(r.received);
    // Every datagram is received or counted as dropped, by every receiver.
    for (const r of [...results.drain.rounds, ...results.stalls.rounds, ...results.cost.rounds, ...results.costLight.rounds, ...results.lag.rounds]) {
      expect(r.received + r.kernelDrops + r.ringDrops, `${r.kind}`).toBe(r.sent);
      // Loopback keeps order: without losses every sequence number read is the next one.
      if (r.received === r.sent) expect(r.gaps, `${r.kind}`).toBe(0);
    }
    // The cost tables carry their floor: a Node process that only wakes, and the C epoll loop (CPU and
    // context switches its own process's; no V8 heap, so no GC columns).
    for (const cost of [results.cost, results.costLight]) {
      expect(cost.kinds).toEqual(expect.arrayContaining(['ring-empty', 'c-epoll']));
      for (const r of cost.rounds.filter((row: { kind: string }) => row.kind === 'c-epoll')) {
        expect(r.cpuSecondsPerMillion).toBeGreaterThan(0);
        expect(r.contextSwitches).toBe(r.switches.total);
        expect(r.gcsPerMillion).toBeNull();
      }
    }
    for (const r of results.lossless.rounds) {
      for (const step of r.steps) expect(step.received + step.kernelDrops + step.ringDrops).toBe(step.sent);
    }
    for (const r of results.latency.rounds) {
      expect(r.latencyUs.count).toBe(r.received);
      expect(r.latencyUs.negative).toBe(0);
      expect(r.latencyUs.p50).toBeLessThanOrEqual(r.latencyUs.p99);
    }
    // The C io_uring loop (bench/iouring-loop.c) has its rows beside the C recvmmsg loop: measured,
    // or one row that says why the kernel refused io_uring.
    const iouring = [...results.drain.rounds.filter((r: { kind: string }) => r.kind === 'c-iouring'),
      ...results.kernel.large.filter((r: { variant: string }) => r.variant === 'C io_uring loop')];
    expect(iouring.length).toBeGreaterThanOrEqual(3);
    for (const r of iouring) if (r.unavailable) expect(r.unavailable).toMatch(/^(io_uring_setup (1|38)|uname 38) /);
    expect(stdout).toContain('C io_uring loop');
    // The ring never loses a datagram when its kernel buffer can be forced (root).
    for (const r of results.drain.rounds) if (r.recvBufferForced) expect(r.received).toBe(r.sent);
    // The event-loop lag probe ticked in every receiver (its gaps are reported, not asserted).
    for (const r of results.lag.rounds) expect(r.lag.ticks, r.kind).toBeGreaterThan(0);
    // 24, the CPU and GC targets of onBatch with coalesceMs in both cost tables (4), and with
    // coalesceMs 'auto' onBatch's and the iterator's latency (4) and cost targets (8).
    expect(results.summary.targets.length).toBe(40);
    for (const kind of ['ring-coalesce', 'ring-auto', 'ring-iter-auto']) {
      expect(results.cost.kinds).toContain(kind);
      expect(results.latency.kinds).toContain(kind);
    }
    for (const target of results.summary.targets) expect(stdout).toContain(target.name);
    expect(stdout).toMatch(/PASS|MISS/);
    // Every target says why it lands where it does, from the run's rows; a missed one is listed with it.
    for (const target of results.summary.targets) {
      expect(typeof target.why, target.name).toBe('string');
      expect(target.why.length, target.name).toBeGreaterThan(20);
      expect(target.why, target.name).not.toMatch(/undefined|NaN/);
    }
    const missed = results.summary.targets.filter((t: { pass: boolean }) => !t.pass);
    if (missed.length > 0) expect(stdout).toContain('Missed targets');
    for (const target of missed) expect(stdout).toContain(`- ${target.name}: ${target.value}. ${target.why}`);
  });
});
