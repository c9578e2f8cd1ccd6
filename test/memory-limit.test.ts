// A ring the machine cannot hold is refused at open with a clear error
// (ERR_UDP_RING_MEMORY_LIMIT), not allocated and then SIGKILLed by the
// cgroup's OOM killer while the thread prefaults it. Limits: the memory
// cgroup (v2 memory.max, v1 memory.limit_in_bytes, ancestors included) and RLIMIT_AS.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRingMemory, memoryMargin, readMemoryLimits } from '../dist/core/memory-limit.js';

const fixture = join(import.meta.dirname, 'fixtures', 'rel-memory.mjs');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const sanitized = Boolean(process.env.UDP_RING_SANITIZED);

function files(map: Record<string, string>) {
  return (path: string) => map[path] ?? null;
}

describe('reading the limits', () => {
  it('cgroup v2: the own cgroup and every ancestor with a memory.max, usage less inactive file cache', () => {
    const limits = readMemoryLimits({
      procRoot: '/p',
      read: files({
        '/p/self/cgroup': '0::/app/worker\n',
        '/p/self/mountinfo': '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n',
        '/sys/fs/cgroup/app/worker/memory.max': 'max\n',
        '/sys/fs/cgroup/app/memory.max': `${400 * MiB}\n`,
        '/sys/fs/cgroup/app/memory.current': `${120 * MiB}\n`,
        '/sys/fs/cgroup/app/memory.stat': `anon 1000\ninactive_file ${20 * MiB}\nactive_file 5\n`,
        '/p/self/limits': 'Max address space         unlimited            unlimited            bytes\n',
        '/p/self/status': 'VmSize:\t  866000 kB\n',
      }),
    });
    expect(limits).toEqual([{ source: 'cgroup2', file: '/sys/fs/cgroup/app/memory.max', limit: 400 * MiB, used: 100 * MiB, headroom: 300 * MiB }]);
  });

  it('cgroup v1 (memory controller on its own hierarchy, unlimited root) and RLIMIT_AS', () => {
    const limits = readMemoryLimits({
      procRoot: '/p',
      read: files({
        '/p/self/cgroup': '9:name=systemd:/\n4:memory:/ci/job\n1:cpu:/\n0::/\n',
        '/p/self/mountinfo': '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n' +
          '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n',
        '/sys/fs/cgroup/memory/ci/job/memory.limit_in_bytes': `${1 * GiB}\n`,
        '/sys/fs/cgroup/memory/ci/job/memory.usage_in_bytes': `${300 * MiB}\n`,
        '/sys/fs/cgroup/memory/ci/job/memory.stat': `inactive_file 1\ntotal_inactive_file ${100 * MiB}\n`,
        '/sys/fs/cgroup/memory/ci/memory.limit_in_bytes': '9223372036854771712\n',
        '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
        '/p/self/limits': 'Max address space         3000000000           unlimited            bytes\n',
        '/p/self/status': 'Name:\tnode\nVmSize:\t 1000000 kB\n',
      }),
    });
    expect(limits).toEqual([
      { source: 'cgroup1', file: '/sys/fs/cgroup/memory/ci/job/memory.limit_in_bytes', limit: GiB, used: 200 * MiB, headroom: GiB - 200 * MiB },
      { source: 'rlimit_as', file: '/p/self/limits', limit: 3000000000, used: 1024000000, headroom: 1976000000 },
    ]);
  });

  it('the tightest limit decides; the error names ringBytes, the limit, its file and what to do', () => {
    const limits = [
      { source: 'rlimit_as' as const, file: '/proc/self/limits', limit: 8 * GiB, used: GiB, headroom: 7 * GiB },
      { source: 'cgroup2' as const, file: '/sys/fs/cgroup/app/memory.max', limit: 400 * MiB, used: 100 * MiB, headroom: 300 * MiB },
    ];
    expect(() => checkRingMemory(32 * MiB, 4 * MiB, limits)).not.toThrow();
    expect(() => checkRingMemory(300 * MiB - 4 * MiB - memoryMargin, 4 * MiB, limits)).not.toThrow();
    let error: (RangeError & { code?: string; limit?: unknown; ringBytes?: number }) | undefined;
    try {
      checkRingMemory(GiB, 4 * MiB, limits);
    } catch (e) {
      error = e as typeof error;
    }
    expect(error).toBeInstanceOf(RangeError);
    expect(error).toMatchObject({ code: 'ERR_UDP_RING_MEMORY_LIMIT', ringBytes: GiB, limit: limits[1] });
    expect(error!.message).toContain('ringBytes 1073741824 (1 GiB)');
    expect(error!.message).toContain('the memory cgroup /sys/fs/cgroup/app (memory.max) allows 400 MiB');
    expect(error!.message).toContain('leaving 300 MiB');
    expect(error!.message).toMatch(/Pass ringBytes of at most \d+ \(280 MiB\), or raise the limit \(memory\.max of \/sys\/fs\/cgroup\/app/);
    expect(() => checkRingMemory(GiB, 0, [])).not.toThrow();
  });
});

// A memory cgroup this test may create: v2 where the memory controller is on
// the unified hierarchy, else v1's memory hierarchy. Null, with the reason, where neither is writable.
function cgroupRoot(): { version: 1 | 2; dir: string } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'not root: cgroups are not writable' };
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => {
    const [before, after = ''] = line.split(' - ');
    const fields = before.split(' ');
    const [fstype, , superOptions = ''] = after.split(' ');
    return { point: fields[4], fstype, superOptions: superOptions.split(',') };
  });
  const v2 = mounts.find((m) => m.fstype === 'cgroup2');
  if (v2) {
    const controllers = existsSync(join(v2.point, 'cgroup.controllers')) ? readFileSync(join(v2.point, 'cgroup.controllers'), 'utf8') : '';
    if (controllers.split(/\s+/).includes('memory')) {
      try {
        const subtree = readFileSync(join(v2.point, 'cgroup.subtree_control'), 'utf8');
        if (!subtree.split(/\s+/).includes('memory')) writeFileSync(join(v2.point, 'cgroup.subtree_control'), '+memory');
        return { version: 2, dir: v2.point };
      } catch (error) {
        return { skip: `cgroup2 at ${v2.point} has the memory controller but it cannot be enabled for children: ${(error as Error).message}` };
      }
    }
  }
  const v1 = mounts.find((m) => m.fstype === 'cgroup' && m.superOptions.includes('memory'));
  if (v1) return { version: 1, dir: v1.point };
  return { skip: 'no memory cgroup controller is mounted (neither cgroup2 with memory nor a v1 memory hierarchy)' };
}

const root = cgroupRoot();
const made: string[] = [];

function makeCgroup(limit: number): string | { skip: string } {
  if ('skip' in root) return root;
  const dir = join(root.dir, `udp-ring-test-${process.pid}-${made.length}`);
  try {
    mkdirSync(dir);
    made.push(dir);
    writeFileSync(join(dir, root.version === 2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limit));
    if (root.version === 2) writeFileSync(join(dir, 'memory.swap.max'), '0');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && root.version === 2) return dir; // no swap accounting
    return { skip: `cannot create a memory cgroup under ${root.dir}: ${(error as Error).message}` };
  }
  return dir;
}

afterAll(() => {
  for (const dir of made.reverse()) {
    try {
      rmdirSync(dir);
    } catch {
      // A child still exiting: the kernel frees an empty cgroup's last charges shortly; left for the next run to see.
    }
  }
});

/** Runs a Node script inside `cgroup` (moved there by its shell before Node starts). */
function runIn(cgroup: string, ringBytes: number, args = [fixture, String(ringBytes)]) {
  const run = spawnSync('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', cgroup, process.execPath, ...args],
    { encoding: 'utf8', timeout: 60_000 });
  let report = null;
  try {
    report = JSON.parse(run.stdout);
  } catch {
    // reported below with the exit status
  }
  return { status: run.status, signal: run.signal, stderr: run.stderr, report };
}

describe('a receiver in a 400 MiB memory cgroup', () => {
  const cgroup = 'skip' in root ? root : makeCgroup(400 * MiB);
  const skip = typeof cgroup === 'string' ? null : cgroup.skip;
  it.skipIf(skip !== null)(`ringBytes 1 GiB is refused at open with ERR_UDP_RING_MEMORY_LIMIT; 32 MiB opens and receives${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const big = runIn(cgroup as string, GiB);
    expect(big.signal, `killed instead of refused: ${big.stderr}`).toBeNull();
    expect(big.status, big.stderr).toBe(0);
    expect(big.report.opened).toBe(false);
    expect(big.report.error).toMatchObject({ name: 'RangeError', code: 'ERR_UDP_RING_MEMORY_LIMIT' });
    expect(big.report.error.message).toContain('ringBytes 1073741824 (1 GiB)');
    expect(big.report.error.message).toContain(`the memory cgroup ${cgroup} (memory.`);
    expect(big.report.error.message).toContain('allows 400 MiB');
    expect(big.report.error.limit.limit).toBe(400 * MiB);

    const small = runIn(cgroup as string, 32 * MiB);
    expect(small.signal, small.stderr).toBeNull();
    expect(small.status, small.stderr).toBe(0);
    expect(small.report).toMatchObject({ opened: true, received: 1, error: null });
  });

  it.skipIf(skip !== null)(`udp-ring doctor reports the cgroup's limit and what ringBytes fits${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'tools', 'cli', 'index.js');
    const run = runIn(cgroup as string, 0, [cli, 'doctor', '--seconds', '0', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const finding = run.report.findings.find((f: { code: string }) => f.code === 'memory_limit');
    expect(finding).toMatchObject({ severity: 'info' });
    expect(finding.title).toMatch(new RegExp(`^the memory cgroup ${cgroup} \\(memory\\.\\w+\\) allows 400 MiB, [\\d.]+ MiB of it free$`));
    expect(finding.value).toBeGreaterThan(300 * MiB);
    expect(finding.value).toBeLessThanOrEqual(400 * MiB);
    expect(run.report.memoryLimits.some((l: { limit: number }) => l.limit === 400 * MiB)).toBe(true);
  });
});

describe('a receiver under RLIMIT_AS', () => {
  it.skipIf(sanitized)('ringBytes 1 GiB with ~0.6 GiB of address space left is refused; 32 MiB opens and receives', () => {
    // Node maps ~0.85 GiB by itself here; leave it ~0.6 GiB more.
    const probe = spawnSync(process.execPath, ['-e', 'process.stdout.write(/VmSize:\\s+(\\d+)/.exec(require("fs").readFileSync("/proc/self/status","utf8"))[1])'], { encoding: 'utf8' });
    const limit = Number(probe.stdout) * 1024 + 600 * MiB;
    const run = (ringBytes: number) => {
      const r = spawnSync('prlimit', [`--as=${limit}`, process.execPath, fixture, String(ringBytes)], { encoding: 'utf8', timeout: 60_000 });
      return { ...r, report: JSON.parse(r.stdout.trim().split('\n').pop() || 'null') };
    };
    const big = run(GiB);
    expect(big.status, big.stderr).toBe(0);
    expect(big.report.opened).toBe(false);
    expect(big.report.error).toMatchObject({ name: 'RangeError', code: 'ERR_UDP_RING_MEMORY_LIMIT' });
    expect(big.report.error.message).toContain('ringBytes 1073741824 (1 GiB)');
    expect(big.report.error.message).toContain('RLIMIT_AS (ulimit -v)');
    expect(big.report.error.limit).toMatchObject({ source: 'rlimit_as', limit });
    const small = run(32 * MiB);
    expect(small.status, small.stderr).toBe(0);
    expect(small.report).toMatchObject({ opened: true, received: 1, error: null });
  });
});
