// Most users are not root: the core path must work without CAP_NET_ADMIN, and
// stats() must say the kernel buffer was not forced and that net.core.rmem_max
// cut it short. The child runs as uid 65534 with no capabilities (setpriv),
// from a copy of the package in a temporary directory readable by that user.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeStaged, runUnprivileged, stagePackage, unprivilegedSkipReason } from '../fixtures/life-setpriv.mjs';
import { expectBrokenMidStream } from '../helpers.js';

const skipReason = unprivilegedSkipReason();
const rmemMax = Number.parseInt(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'), 10);
const defaultRequest = 32 * 1024 * 1024;

interface Result {
  host: string;
  sent: number;
  received: number;
  bad: number;
  wrongSource: number;
  closed: boolean;
  stats: Record<string, number | boolean | string | null>;
}

describe.skipIf(skipReason !== null)(`unprivileged (uid 65534, no capabilities)${skipReason ? ` — skipped: ${skipReason}` : ''}`, () => {
  let staged = '';
  beforeAll(() => {
    staged = stagePackage();
  });
  afterAll(() => removeStaged(staged));

  it('receives and verifies every datagram over IPv4 and IPv6; stats say the buffer was not forced, and capped by rmem_max', async () => {
    const run = await runUnprivileged(staged, 'life-unprivileged.mjs', [], 90_000);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { uid: number; gid: number; capEff: string; results: Result[] };
    expect(report.uid).toBe(65534);
    expect(report.gid).toBe(65534);
    expect(BigInt(`0x${report.capEff}`)).toBe(0n); // no CAP_NET_ADMIN, nor any other

    for (const r of report.results) {
      expect(r.received, r.host).toBe(r.sent);
      expect(r.bad, `${r.host}: datagrams with wrong bytes or size`).toBe(0);
      expect(r.wrongSource, `${r.host}: datagrams with the wrong source`).toBe(0);
      expect(r.closed).toBe(true);
      expect(r.stats.packets).toBe(r.sent);
      expect(r.stats.kernelDrops).toBe(0);
      expect(r.stats.ringDrops).toBe(0);
      expect(r.stats.recvBufferForced).toBe(false);
      expect(r.stats.rmemMax).toBe(rmemMax);
    }
    const [v4, v6, small] = report.results;
    expect(v4.sent).toBe(20_000);
    expect(v6.sent).toBe(5_000);
    for (const r of [v4, v6]) {
      // The default asks for 32 MiB; SO_RCVBUF grants twice min(request, rmem_max).
      expect(r.stats.recvBufferRequested).toBe(defaultRequest);
      expect(r.stats.recvBufferCapped).toBe(rmemMax < defaultRequest);
      expect(r.stats.recvBufferSize).toBe(2 * Math.min(rmemMax, defaultRequest));
    }
    // A request under rmem_max is granted in full: not capped.
    expect(small.stats.recvBufferRequested).toBe(1 << 20);
    expect(small.stats.recvBufferSize).toBe(2 * Math.min(rmemMax, 1 << 20));
    expect(small.stats.recvBufferCapped).toBe(rmemMax < 1 << 20);
  });

  it('break mid-stream lets an unprivileged process exit by itself', async () => {
    const run = await runUnprivileged(staged, 'life-break-exit.mjs', [], 60_000);
    expect(run.signal, 'killed: the process did not exit by itself').toBeNull();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectBrokenMidStream(run.stdout);
  });

  it('a receiver garbage-collected in an unprivileged process closes its fd and thread', async () => {
    const run = await runUnprivileged(staged, 'life-gc.mjs', [], 60_000, ['--expose-gc']);
    expect(run.signal, 'killed: the process did not exit by itself').toBeNull();
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.after).toEqual(report.baseline);
  });
});
