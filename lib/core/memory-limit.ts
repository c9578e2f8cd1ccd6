// What memory this process may still take: its memory cgroup's limit (v2 or
// v1, every ancestor included) and RLIMIT_AS. The ring is resident from open
// (the thread prefaults it), so a ring the machine cannot hold must be refused
// before it is allocated; past a cgroup limit the kernel's answer is SIGKILL.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

export interface MemoryLimit {
  /** A cgroup v2 memory.max, a cgroup v1 memory.limit_in_bytes, or the address-space rlimit. */
  source: 'cgroup2' | 'cgroup1' | 'rlimit_as';
  /** The file that sets it (the cgroup's limit file, or /proc/self/limits). */
  file: string;
  /** Bytes allowed. */
  limit: number;
  /** Bytes already counted against it: cgroup usage less its inactive file cache (reclaimed first), or VmSize. */
  used: number;
  /** limit - used, at least 0. */
  headroom: number;
}

/** Kept free beyond the ring and its landing zone: the heap, stacks and the rest of the process grow too. */
export const memoryMargin = 16 * 1024 * 1024;

export interface ReadOptions {
  /** Where proc is mounted; '/proc' unless testing. */
  procRoot?: string;
  /** Reads a file, or null when it cannot be read (tests replace it). */
  read?: (path: string) => string | null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

// Above this a v1 limit is "unlimited" (the kernel reports PAGE_COUNTER_MAX pages, 2^63 less a page).
const unlimitedV1 = 2 ** 60;

function number(text: string | null): number | null {
  if (text === null) return null;
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : null;
}

function statField(text: string | null, name: string): number {
  const match = text?.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return match ? Number(match[1]) : 0;
}

interface Mount {
  root: string;
  point: string;
  fstype: string;
  superOptions: string[];
}

function parseMountinfo(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!after) continue;
    const fields = before.split(' ');
    const [fstype, , superOptions = ''] = after.split(' ');
    if (fields.length < 5) continue;
    mounts.push({ root: unescape(fields[3]), point: unescape(fields[4]), fstype, superOptions: superOptions.split(',') });
  }
  return mounts;
}

// The cgroup's directory under its mount, then each ancestor up to the mount point.
function cgroupDirs(mount: Mount, path: string): string[] {
  let relative = path;
  if (mount.root !== '/' && (path === mount.root || path.startsWith(`${mount.root}/`))) relative = path.slice(mount.root.length);
  const dirs: string[] = [];
  for (let dir = posix.join(mount.point, relative); ; dir = posix.dirname(dir)) {
    dirs.push(dir);
    if (dir === mount.point || dir === '/' || !dir.startsWith(mount.point)) break;
  }
  return dirs;
}

// Where a memory cgroup's limit may be set: each level's directory, v1 or v2.
interface CgroupDir {
  version: 1 | 2;
  dir: string;
}

function cgroupLimitDirs(cgroups: string, mountinfo: string): CgroupDir[] {
  const mounts = parseMountinfo(mountinfo);
  const dirs: CgroupDir[] = [];
  for (const line of cgroups.split('\n')) {
    const match = line.match(/^(\d+):([^:]*):(.*)$/);
    if (!match) continue;
    const [, id, controllers, path] = match;
    if (id === '0' && controllers === '') {
      // cgroup v2: the limit holds only where the memory controller is on (it may be bound to v1 instead).
      for (const mount of mounts.filter((m) => m.fstype === 'cgroup2')) {
        for (const dir of cgroupDirs(mount, path)) dirs.push({ version: 2, dir });
      }
    } else if (controllers.split(',').includes('memory')) {
      for (const mount of mounts.filter((m) => m.fstype === 'cgroup' && m.superOptions.includes('memory'))) {
        for (const dir of cgroupDirs(mount, path)) dirs.push({ version: 1, dir });
      }
    }
  }
  return dirs;
}

// This process's cgroup directories, kept while /proc/self/cgroup reads the same: every receiver's
// open checks the limits, and parsing mountinfo was most of that check's ~0.4 ms on the event loop.
let ownDirs: { cgroups: string; dirs: CgroupDir[] } | null = null;

/** Every memory limit in force on this process (cgroup levels with no limit are left out). */
export function readMemoryLimits(options: ReadOptions = {}): MemoryLimit[] {
  const procRoot = options.procRoot ?? '/proc';
  const read = options.read ?? readOrNull;
  const own = options.procRoot === undefined && options.read === undefined;
  const limits: MemoryLimit[] = [];
  const add = (source: MemoryLimit['source'], file: string, limit: number, used: number) =>
    limits.push({ source, file, limit, used, headroom: Math.max(0, limit - used) });

  const cgroups = read(posix.join(procRoot, 'self/cgroup')) ?? '';
  let dirs: CgroupDir[];
  if (own && ownDirs?.cgroups === cgroups) dirs = ownDirs.dirs;
  else {
    dirs = cgroupLimitDirs(cgroups, read(posix.join(procRoot, 'self/mountinfo')) ?? '');
    if (own) ownDirs = { cgroups, dirs };
  }
  for (const { version, dir } of dirs) {
    if (version === 2) {
      const max = read(posix.join(dir, 'memory.max'));
      if (max === null || max.trim() === 'max') continue;
      const limit = number(max);
      const current = number(read(posix.join(dir, 'memory.current')));
      if (limit === null || current === null) continue;
      const stat = read(posix.join(dir, 'memory.stat'));
      add('cgroup2', posix.join(dir, 'memory.max'), limit, Math.max(0, current - statField(stat, 'inactive_file')));
    } else {
      const limit = number(read(posix.join(dir, 'memory.limit_in_bytes')));
      if (limit === null || limit >= unlimitedV1) continue;
      const usage = number(read(posix.join(dir, 'memory.usage_in_bytes')));
      if (usage === null) continue;
      const stat = read(posix.join(dir, 'memory.stat'));
      const inactive = statField(stat, 'total_inactive_file') || statField(stat, 'inactive_file');
      add('cgroup1', posix.join(dir, 'memory.limit_in_bytes'), limit, Math.max(0, usage - inactive));
    }
  }

  // RLIMIT_AS: Node has no getrlimit; proc has the soft limit and the mapped size.
  const limitsFile = posix.join(procRoot, 'self/limits');
  const soft = read(limitsFile)?.match(/^Max address space\s+(\S+)/m)?.[1];
  const vmSize = read(posix.join(procRoot, 'self/status'))?.match(/^VmSize:\s+(\d+) kB/m)?.[1];
  if (soft !== undefined && soft !== 'unlimited' && vmSize !== undefined) add('rlimit_as', limitsFile, Number(soft), Number(vmSize) * 1024);
  return limits;
}

/** The limit with the least headroom, or null when nothing limits this process. */
export function tightestMemoryLimit(limits: MemoryLimit[] = readMemoryLimits()): MemoryLimit | null {
  return limits.reduce<MemoryLimit | null>((tightest, l) => (tightest === null || l.headroom < tightest.headroom ? l : tightest), null);
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} bytes` : `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** What a limit is, in words: "the memory cgroup /sys/fs/cgroup/app (memory.max)". */
export function describeLimit(l: MemoryLimit): string {
  if (l.source === 'rlimit_as') return 'the address-space limit RLIMIT_AS (ulimit -v)';
  return `the memory cgroup ${posix.dirname(l.file)} (${posix.basename(l.file)})`;
}

/**
 * Throws RangeError ERR_UDP_RING_MEMORY_LIMIT when `ringBytes`, with the
 * landing zone and a margin, does not fit in the headroom of the tightest limit.
 */
export function checkRingMemory(ringBytes: number, landingBytes: number, limits: MemoryLimit[] = readMemoryLimits()): void {
  const tightest = tightestMemoryLimit(limits);
  const needed = ringBytes + landingBytes + memoryMargin;
  if (tightest === null || needed <= tightest.headroom) return;
  const l = tightest;
  const fits = Math.floor(Math.max(0, l.headroom - landingBytes - memoryMargin) / 65536) * 65536;
  const used = l.source === 'rlimit_as' ? 'mapped (VmSize)' : 'in use';
  const raise = l.source === 'rlimit_as'
    ? 'raise the limit (ulimit -v, prlimit --as, LimitAS= in a systemd unit)'
    : `raise the limit (${posix.basename(l.file)} of ${posix.dirname(l.file)}; docker run --memory, MemoryMax= in a systemd unit)`;
  const error = new RangeError(
    `udp-ring: ringBytes ${ringBytes} (${formatBytes(ringBytes)}) does not fit in the memory this process may still use: ` +
    `${describeLimit(l)} allows ${formatBytes(l.limit)} and ${formatBytes(l.used)} is already ${used}, leaving ${formatBytes(l.headroom)}. ` +
    `The ring is resident from open; with the ${formatBytes(landingBytes)} landing zone and a ${formatBytes(memoryMargin)} margin it needs ${formatBytes(needed)}. ` +
    (fits > 0 ? `Pass ringBytes of at most ${fits} (${formatBytes(fits)}), or ${raise}.` : `Free memory or ${raise}.`),
  ) as RangeError & NodeJS.ErrnoException & { ringBytes: number; limit: MemoryLimit };
  error.code = 'ERR_UDP_RING_MEMORY_LIMIT';
  error.ringBytes = ringBytes;
  error.limit = l;
  throw error;
}
