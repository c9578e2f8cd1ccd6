// The report `udp-ring doctor` builds (runDoctor, in index.ts) and renders
// (render.ts): its types, and the helpers that name what it shows.
import { formatBytes, type MemoryLimit } from '../../core/memory-limit.js';
import type { InterfaceCounters, SocketOwner, SoftnetCpu, UdpSocket } from './proc.js';

export type Severity = 'ok' | 'info' | 'warning' | 'critical';

export interface Finding {
  severity: Severity;
  /** Stable identifier, e.g. 'rmem_max' or 'udp4.RcvbufErrors'. */
  code: string;
  title: string;
  /** The number behind the finding. */
  value: number | null;
  detail: string;
  /** Exact commands or options that fix it, in the order to try them. */
  fix: string[];
}

export interface CounterRow {
  name: string;
  total: number;
  /** Change between the two samples; null with a single sample. */
  delta: number | null;
}

export interface SocketRow extends UdpSocket {
  rxQueueFirst: number;
  dropsDelta: number | null;
  owners: SocketOwner[];
}

export interface SoftnetRow extends SoftnetCpu {
  droppedDelta: number | null;
  timeSqueezeDelta: number | null;
}

export interface InterfaceRow extends InterfaceCounters {
  rxDroppedDelta: number | null;
  rxFifoDelta: number | null;
  /** Loss counters from `ethtool -S`, or null when not available for this interface. */
  ethtool: CounterRow[] | null;
}

/** Whether udp-ring's native addon loads in this process (see backends/native/addon.ts). */
export interface AddonStatus {
  loaded: boolean;
  /** The file loaded, or the one that failed to load; null when none was found. */
  file: string | null;
  /** Why it did not load, with what to do; null when it loaded. */
  error: string | null;
}

export interface DoctorReport {
  procRoot: string;
  /** The native addon's status; null when not checked. */
  addon: AddonStatus | null;
  seconds: number;
  /** True when counters were read twice, so deltas are known. */
  sampled: boolean;
  port: number | null;
  settings: {
    rmemDefault: number | null;
    rmemMax: number | null;
    /** Pages: [min, pressure, max]. */
    udpMem: number[] | null;
    udpRmemMin: number | null;
    netdevMaxBacklog: number | null;
    netdevBudget: number | null;
    netdevBudgetUsecs: number | null;
  };
  /** CAP_NET_ADMIN in this process's effective set: SO_RCVBUFFORCE may exceed rmem_max. */
  capNetAdmin: boolean | null;
  udpMemory: { inUse: number; memPages: number } | null;
  /** Memory limits on this process (cgroup memory limits, RLIMIT_AS), each with its headroom; null when unreadable. */
  memoryLimits: MemoryLimit[] | null;
  counters: { ipv4: CounterRow[] | null; ipv6: CounterRow[] | null };
  sockets: SocketRow[];
  /** False when some processes could not be read (owners may be missing). */
  ownersComplete: boolean;
  softnet: SoftnetRow[] | null;
  interfaces: InterfaceRow[] | null;
  /** False when `ethtool` is not installed. */
  ethtoolAvailable: boolean;
  findings: Finding[];
}

export interface DoctorOptions {
  /** Where proc is mounted; '/proc' unless testing against saved files. */
  procRoot?: string;
  /** Root for the second sample (tests: a saved later state); defaults to procRoot. */
  procRootLater?: string;
  /** Seconds between the two samples; 0 takes one sample (totals since boot only). */
  seconds?: number;
  /** A UDP port to examine in detail. */
  port?: number;
  /** The addon's status to report (the CLI loads it); unset, it is not checked. */
  addon?: AddonStatus;
}

const sysctlFile = '/etc/sysctl.d/60-udp-ring.conf';

/** Shell-ready sysctl fix: the runtime command, then the line that makes it survive a reboot. */
export function sysctlFix(name: string, value: number | string): string[] {
  return [`sysctl -w ${name}=${value}`, `echo '${name} = ${value}' >> ${sysctlFile}`];
}

/** Bytes in binary units, as the memory-limit error writes them. */
export const bytes = formatBytes;

/** How the report names the sampling interval. */
export function interval(r: { seconds: number }): string {
  return r.seconds > 0 ? `in the last ${r.seconds} s` : 'between the two samples';
}

export function socketName(s: { family: 4 | 6; localAddress: string; localPort: number }): string {
  return s.family === 6 ? `[${s.localAddress}]:${s.localPort}` : `${s.localAddress}:${s.localPort}`;
}
