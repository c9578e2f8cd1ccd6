// `udp-ring doctor`: the checklist of a UDP drop investigation, read from the
// live system. Counters are sampled twice, some seconds apart, so the report
// says what is dropping now and not only what dropped since boot. Every
// finding carries a severity, the number behind it and the command that fixes it.
import { setTimeout as sleep } from 'node:timers/promises';
import { describeLimit, formatBytes, memoryMargin, readMemoryLimits, tightestMemoryLimit, type MemoryLimit } from '../../core/memory-limit.js';
import { readEthtool, type EthtoolCounters } from './ethtool.js';
import {
  findOwners, parseCapNetAdmin, parseNetDev, parseSnmp, parseSnmp6, parseSockstat, parseSoftnet, parseUdpSockets,
  readSysctl, readText, type Counters, type InterfaceCounters, type SocketOwner, type SoftnetCpu, type UdpSocket,
} from './proc.js';

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

const MiB = 1024 * 1024;
// udp-ring asks for a 32 MiB receive buffer by default (options.ts defaults.recvBufferSize).
const recommendedRmemMax = 32 * MiB;
// The default ring and landing zone (options.ts defaults: ringBytes; batchSize × maxMessageSize), not imported: doctor loads no native code.
const defaultRingBytes = 32 * MiB;
const defaultLandingBytes = 64 * 65535;
const pageBytes = 4096;
const sysctlFile = '/etc/sysctl.d/60-udp-ring.conf';
/** What a 100–200-byte datagram costs in receive-buffer memory (skb truesize: 832–1280 bytes measured on loopback). */
const smallDatagramTruesize = 1024;

const counterNames = ['InDatagrams', 'InErrors', 'RcvbufErrors', 'NoPorts', 'InCsumErrors', 'MemErrors'];

interface Sample {
  udp4: Counters | null;
  udp6: Counters | null;
  sockets: UdpSocket[];
  softnet: SoftnetCpu[] | null;
  netdev: InterfaceCounters[] | null;
  ethtool: Map<string, EthtoolCounters> | null;
}

async function takeSample(root: string): Promise<Sample> {
  const snmp = readText(root, 'net/snmp');
  const snmp6 = readText(root, 'net/snmp6');
  const sockets = [...parseUdpSockets(readText(root, 'net/udp') ?? ''), ...parseUdpSockets(readText(root, 'net/udp6') ?? '')];
  const softnet = readText(root, 'net/softnet_stat');
  const netdev = readText(root, 'net/dev');
  const interfaces = netdev === null ? null : parseNetDev(netdev);
  return {
    udp4: snmp === null ? null : parseSnmp(snmp),
    udp6: snmp6 === null ? null : parseSnmp6(snmp6),
    sockets,
    softnet: softnet === null ? null : parseSoftnet(softnet),
    netdev: interfaces,
    ethtool: await readEthtool((interfaces ?? []).map((i) => i.name).filter((name) => name !== 'lo')),
  };
}

/** Shell-ready sysctl fix: the runtime command, then the line that makes it survive a reboot. */
export function sysctlFix(name: string, value: number | string): string[] {
  return [`sysctl -w ${name}=${value}`, `echo '${name} = ${value}' >> ${sysctlFile}`];
}

function counterRows(first: Counters | null, second: Counters | null, sampled: boolean): CounterRow[] | null {
  if (second === null) return null;
  return counterNames
    .filter((name) => name in second)
    .map((name) => ({ name, total: second[name], delta: sampled && first && name in first ? second[name] - first[name] : null }));
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

export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const procRoot = options.procRoot ?? '/proc';
  const seconds = options.seconds ?? 1;
  const port = options.port ?? null;
  const sampled = seconds > 0 || options.procRootLater !== undefined;

  const first = sampled ? await takeSample(procRoot) : null;
  if (sampled && seconds > 0) await sleep(seconds * 1000);
  const second = await takeSample(options.procRootLater ?? procRoot);

  const sysctl = (name: string) => readSysctl(procRoot, name)?.[0] ?? null;
  const settings = {
    rmemDefault: sysctl('net.core.rmem_default'),
    rmemMax: sysctl('net.core.rmem_max'),
    udpMem: readSysctl(procRoot, 'net.ipv4.udp_mem'),
    udpRmemMin: sysctl('net.ipv4.udp_rmem_min'),
    netdevMaxBacklog: sysctl('net.core.netdev_max_backlog'),
    netdevBudget: sysctl('net.core.netdev_budget'),
    netdevBudgetUsecs: sysctl('net.core.netdev_budget_usecs'),
  };
  const status = readText(procRoot, 'self/status');
  const capNetAdmin = status === null ? null : parseCapNetAdmin(status);
  const sockstat = readText(procRoot, 'net/sockstat');
  const memoryLimits = readText(procRoot, 'self/cgroup') === null ? null : readMemoryLimits({ procRoot });

  const earlier = new Map((first?.sockets ?? []).map((s) => [`${s.family}/${s.inode}`, s]));
  const inodes = new Set(second.sockets.map((s) => s.inode).filter((inode) => inode !== 0));
  const { owners, complete } = findOwners(procRoot, inodes);
  const sockets: SocketRow[] = second.sockets.map((s) => {
    const before = earlier.get(`${s.family}/${s.inode}`);
    return {
      ...s,
      rxQueueFirst: before?.rxQueue ?? s.rxQueue,
      // A socket opened between the samples started from zero.
      dropsDelta: sampled ? s.drops - (before?.drops ?? 0) : null,
      owners: owners.get(s.inode) ?? [],
    };
  });

  const softnetBefore = new Map((first?.softnet ?? []).map((c) => [c.cpu, c]));
  const softnet = second.softnet?.map((c) => {
    const before = softnetBefore.get(c.cpu);
    return {
      ...c,
      droppedDelta: sampled && before ? c.dropped - before.dropped : null,
      timeSqueezeDelta: sampled && before ? c.timeSqueeze - before.timeSqueeze : null,
    };
  }) ?? null;

  const netdevBefore = new Map((first?.netdev ?? []).map((i) => [i.name, i]));
  const interfaces = second.netdev?.map((i): InterfaceRow => {
    const before = netdevBefore.get(i.name);
    const stats = second.ethtool?.get(i.name);
    const statsBefore = first?.ethtool?.get(i.name);
    return {
      ...i,
      rxDroppedDelta: sampled && before ? i.rxDropped - before.rxDropped : null,
      rxFifoDelta: sampled && before ? i.rxFifo - before.rxFifo : null,
      ethtool: stats
        ? Object.entries(stats).map(([name, total]) => ({
            name, total, delta: sampled && statsBefore && name in statsBefore ? total - statsBefore[name] : null,
          }))
        : null,
    };
  }) ?? null;

  const report: DoctorReport = {
    procRoot,
    addon: options.addon ?? null,
    seconds,
    sampled,
    port,
    settings,
    capNetAdmin,
    udpMemory: sockstat === null ? null : parseSockstat(sockstat),
    memoryLimits,
    counters: {
      ipv4: counterRows(first?.udp4 ?? null, second.udp4, sampled),
      ipv6: counterRows(first?.udp6 ?? null, second.udp6, sampled),
    },
    sockets,
    ownersComplete: complete,
    softnet,
    interfaces,
    ethtoolAvailable: second.ethtool !== null,
    findings: [],
  };
  report.findings = diagnose(report);
  return report;
}

const rank: Record<Severity, number> = { critical: 0, warning: 1, info: 2, ok: 3 };

/** Turns a report's numbers into findings, worst first. */
export function diagnose(r: DoctorReport): Finding[] {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const over = interval(r);
  if (r.addon) {
    if (r.addon.loaded) {
      add({
        severity: 'ok', code: 'native_addon', title: `udp-ring's native addon loads (${r.addon.file})`, value: null,
        detail: 'UdpReceiver and UdpSender run on the native backend by default.', fix: [],
      });
    } else {
      const linux = process.platform === 'linux';
      add({
        // On Linux UdpReceiver.open() then rejects unless backend 'dgram' or 'auto' is asked for.
        severity: linux ? 'critical' : 'info',
        code: 'native_addon',
        title: linux
          ? "udp-ring's native addon does not load: UdpReceiver.open() fails unless backend 'dgram' or 'auto' is chosen"
          : `udp-ring's native addon is Linux-only: on ${process.platform} the dgram backend runs`,
        value: null,
        detail: r.addon.error ?? 'no reason given',
        fix: linux
          ? ['apt-get install python3 make g++   # or your distribution\'s equivalent', 'npm rebuild udp-ring',
              "UdpReceiver.open({ backend: 'dgram' })   # or UDP_RING_BACKEND=dgram: node:dgram, no stall protection"]
          : [],
      });
    }
  }

  const udpRingBuffer = `udp-ring: UdpReceiver.open({ recvBufferSize: ${recommendedRmemMax} }) ` +
    `(the default; CLI: udp-ring listen --recv-buffer ${recommendedRmemMax})`;

  // Receive buffer ceiling.
  const { rmemMax, rmemDefault } = r.settings;
  if (rmemMax !== null) {
    if (rmemMax < recommendedRmemMax) {
      const held = Math.floor((2 * rmemMax) / smallDatagramTruesize);
      add({
        severity: r.capNetAdmin ? 'warning' : 'critical',
        code: 'rmem_max',
        title: `net.core.rmem_max is ${bytes(rmemMax)}: no socket may ask for a larger receive buffer`,
        value: rmemMax,
        detail:
          `A socket's queue holds at most ${bytes(2 * rmemMax)} of kernel memory (the kernel doubles the request); ` +
          `a small datagram costs about 1 KiB of it (skb truesize: 832 bytes for 100 bytes of payload on loopback), so about ${held} datagrams: ` +
          `${Math.round(held / 100)} ms of traffic at 100k datagrams/s before the kernel drops (RcvbufErrors). ` +
          (r.capNetAdmin
            ? 'This process has CAP_NET_ADMIN, so udp-ring run like this forces its 32 MiB past the limit (SO_RCVBUFFORCE); ' +
              'unprivileged processes, node:dgram and most other programs stay capped.'
            : 'This process lacks CAP_NET_ADMIN, so udp-ring cannot force a larger buffer: its 32 MiB request is cut to the limit.'),
        fix: [...sysctlFix('net.core.rmem_max', recommendedRmemMax), udpRingBuffer],
      });
    } else {
      add({
        severity: 'ok', code: 'rmem_max', title: `net.core.rmem_max is ${bytes(rmemMax)}`, value: rmemMax,
        detail: `Sockets may ask for up to ${bytes(rmemMax)} (udp-ring asks for ${bytes(recommendedRmemMax)}).`, fix: [],
      });
    }
  }
  if (rmemDefault !== null && rmemDefault < 4 * MiB) {
    add({
      severity: 'info',
      code: 'rmem_default',
      title: `net.core.rmem_default is ${bytes(rmemDefault)}: sockets that do not ask get this`,
      value: rmemDefault,
      detail: 'node:dgram without recvBufferSize, and most programs, run with this receive buffer. ' +
        'udp-ring always asks for its own size, so it is not affected.',
      fix: [...sysctlFix('net.core.rmem_default', 4 * MiB), "node:dgram: dgram.createSocket({ type: 'udp4', recvBufferSize: 4194304 })"],
    });
  }
  if (r.capNetAdmin !== null) {
    add({
      severity: 'info',
      code: 'cap_net_admin',
      title: r.capNetAdmin
        ? 'This process has CAP_NET_ADMIN: SO_RCVBUFFORCE may exceed net.core.rmem_max'
        : 'This process lacks CAP_NET_ADMIN: receive buffers are capped at net.core.rmem_max',
      value: r.capNetAdmin ? 1 : 0,
      detail: 'Read from CapEff in /proc/self/status (bit 12). A receiver run by another user may differ.',
      fix: r.capNetAdmin ? [] : ['raise net.core.rmem_max (above), or give the receiver the capability: AmbientCapabilities=CAP_NET_ADMIN in its systemd unit'],
    });
  }

  // The ring is resident from open: it must fit under the process's memory limits (checked again at open).
  const tightest = r.memoryLimits ? tightestMemoryLimit(r.memoryLimits) : null;
  if (tightest) {
    const defaultNeed = defaultRingBytes + defaultLandingBytes + memoryMargin;
    const fits = Math.max(0, tightest.headroom - defaultLandingBytes - memoryMargin);
    add({
      severity: tightest.headroom < defaultNeed ? 'warning' : 'info',
      code: 'memory_limit',
      title: `${describeLimit(tightest)} allows ${formatBytes(tightest.limit)}, ${formatBytes(tightest.headroom)} of it free`,
      value: tightest.headroom,
      detail: `${formatBytes(tightest.used)} is ${tightest.source === 'rlimit_as' ? 'mapped' : 'in use'} (${tightest.file}). ` +
        `A receiver's ring is resident from open, so UdpReceiver.open refuses a ringBytes above about ${formatBytes(fits)} ` +
        `here (ERR_UDP_RING_MEMORY_LIMIT) rather than be killed; the default ring needs ${formatBytes(defaultNeed)} with its landing zone and margin. ` +
        'Read for this process; a receiver run elsewhere may have other limits.',
      fix: tightest.headroom < defaultNeed
        ? [`udp-ring: UdpReceiver.open({ ringBytes: ${Math.floor(fits / 65536) * 65536} }) or less`,
          tightest.source === 'rlimit_as' ? 'raise the address-space limit: ulimit -v unlimited, or LimitAS=infinity in the systemd unit'
            : `raise the limit: ${tightest.file}, docker run --memory, or MemoryMax= in the systemd unit`]
        : [],
    });
  } else if (r.memoryLimits) {
    add({
      severity: 'ok', code: 'memory_limit', value: null, fix: [],
      title: 'No memory cgroup limit or RLIMIT_AS applies to this process',
      detail: 'Read from /proc/self/cgroup, the cgroup files and /proc/self/limits.',
    });
  }

  // Global UDP memory (pages).
  const udpMem = r.settings.udpMem;
  if (udpMem && udpMem.length === 3) {
    const [, pressure, max] = udpMem;
    const used = r.udpMemory?.memPages ?? 0;
    if (used >= pressure) {
      add({
        severity: 'critical',
        code: 'udp_mem',
        title: `UDP memory is under pressure: ${used} pages in use, pressure at ${pressure}, limit ${max}`,
        value: used,
        detail: 'Above the pressure mark sockets are held to udp_rmem_min; at the limit datagrams are dropped (MemErrors).',
        fix: sysctlFix('net.ipv4.udp_mem', `"${pressure * 2} ${pressure * 3} ${max * 2}"`),
      });
    } else if (max * pageBytes < 4 * recommendedRmemMax) {
      add({
        severity: 'warning',
        code: 'udp_mem',
        title: `net.ipv4.udp_mem allows only ${bytes(max * pageBytes)} for all UDP sockets together`,
        value: max * pageBytes,
        detail: `Fewer than four full ${bytes(recommendedRmemMax)} receive buffers fit; beyond it datagrams are dropped (MemErrors).`,
        fix: sysctlFix('net.ipv4.udp_mem', `"${udpMem[0]} ${pressure} ${(4 * recommendedRmemMax) / pageBytes}"`),
      });
    } else {
      add({
        severity: 'ok', code: 'udp_mem', value: used,
        title: `UDP memory: ${used} pages in use of a ${max}-page limit (${bytes(max * pageBytes)})`,
        detail: `net.ipv4.udp_mem = ${udpMem.join(' ')} (pages: min, pressure, max).`, fix: [],
      });
    }
  }
  if (r.settings.udpRmemMin !== null) {
    add({
      severity: 'ok', code: 'udp_rmem_min', value: r.settings.udpRmemMin,
      title: `net.ipv4.udp_rmem_min is ${bytes(r.settings.udpRmemMin)}`,
      detail: 'What each socket keeps even under memory pressure.', fix: [],
    });
  }

  // Protocol counters, both families.
  for (const [family, rows] of [['udp4', r.counters.ipv4], ['udp6', r.counters.ipv6]] as const) {
    if (!rows) continue;
    const row = (name: string) => rows.find((c) => c.name === name);
    const label = family === 'udp4' ? 'IPv4' : 'IPv6';
    const rcvbuf = row('RcvbufErrors');
    if (rcvbuf && (rcvbuf.delta ?? 0) > 0) {
      const culprits = r.sockets.filter((s) => (s.dropsDelta ?? 0) > 0).map(describeSocket);
      add({
        severity: 'critical',
        code: `${family}.RcvbufErrors`,
        title: `${rcvbuf.delta} ${label} datagrams dropped ${over}: a socket's receive buffer was full (RcvbufErrors)`,
        value: rcvbuf.delta,
        detail: `The receiving program reads slower than datagrams arrive, and its buffer could not absorb the difference. ` +
          (culprits.length > 0
            ? `Dropping now: ${culprits.join('; ')}.`
            : 'No socket still open shows new drops: the one that dropped has closed, or lives in another network namespace.'),
        fix: [...sysctlFix('net.core.rmem_max', recommendedRmemMax), udpRingBuffer,
          "udp-ring: drain on a thread of its own (UdpReceiver), keep the handler's work per batch small, or overflow: 'drop' to count ring drops instead"],
      });
    } else if (rcvbuf && rcvbuf.total > 0) {
      add({
        severity: 'info', code: `${family}.RcvbufErrors`, value: rcvbuf.total,
        title: `${rcvbuf.total} ${label} datagrams dropped since boot for a full receive buffer${rcvbuf.delta === 0 ? `, none ${over}` : ''}`,
        detail: 'Past losses: run again while the traffic flows to see whether they continue.', fix: [],
      });
    }
    const memErrors = row('MemErrors');
    if (memErrors && (memErrors.delta ?? 0) > 0) {
      add({
        severity: 'critical', code: `${family}.MemErrors`, value: memErrors.delta,
        title: `${memErrors.delta} ${label} datagrams dropped ${over}: UDP memory exhausted (MemErrors)`,
        detail: 'All UDP sockets together reached net.ipv4.udp_mem.',
        fix: udpMem ? sysctlFix('net.ipv4.udp_mem', `"${udpMem[0]} ${udpMem[1] * 2} ${udpMem[2] * 2}"`) : [],
      });
    }
    const csum = row('InCsumErrors');
    if (csum && (csum.delta ?? 0) > 0) {
      add({
        severity: 'warning', code: `${family}.InCsumErrors`, value: csum.delta,
        title: `${csum.delta} ${label} datagrams with a bad checksum ${over} (InCsumErrors)`,
        detail: 'Corrupted on the way: a faulty NIC, cable or offload. They count in InErrors and are never delivered.',
        fix: ['ethtool -S <interface>   # look for crc/rx errors', 'ethtool -k <interface>   # check rx-checksumming'],
      });
    }
    const inErrors = row('InErrors');
    if (inErrors && (inErrors.delta ?? 0) > 0 && !(rcvbuf && (rcvbuf.delta ?? 0) > 0)) {
      add({
        severity: 'warning', code: `${family}.InErrors`, value: inErrors.delta,
        title: `${inErrors.delta} ${label} datagrams failed on receive ${over} (InErrors)`,
        detail: 'Not explained by a full buffer; see InCsumErrors and MemErrors.', fix: [],
      });
    }
    const noPorts = row('NoPorts');
    if (noPorts && (noPorts.delta ?? 0) > 0) {
      add({
        severity: 'info', code: `${family}.NoPorts`, value: noPorts.delta,
        title: `${noPorts.delta} ${label} datagrams ${over} arrived for a port nobody listens on (NoPorts)`,
        detail: 'Not drops of a receiver: the sender aims at a port with no socket (or the receiver was not up yet).',
        fix: ['check the destination port of the sender; start the receiver first'],
      });
    }
  }

  // Sockets.
  for (const s of r.sockets) {
    const rising = (s.dropsDelta ?? 0) > 0;
    if (s.drops === 0) continue;
    add({
      severity: rising ? 'critical' : 'warning',
      code: `socket.${socketName(s)}`,
      title: rising
        ? `Socket ${socketName(s)} dropped ${s.dropsDelta} datagrams ${over} (${s.drops} since it opened)`
        : `Socket ${socketName(s)} has dropped ${s.drops} datagrams since it opened`,
      value: rising ? s.dropsDelta : s.drops,
      detail: `${describeSocket(s)}; ${s.rxQueue} bytes queued now.`,
      fix: [...sysctlFix('net.core.rmem_max', recommendedRmemMax), udpRingBuffer],
    });
  }
  if (r.port !== null) {
    const mine = r.sockets.filter((s) => s.localPort === r.port);
    if (mine.length === 0) {
      add({
        severity: 'warning', code: 'port', value: r.port,
        title: `No UDP socket is bound to port ${r.port}`,
        detail: 'Datagrams sent there are counted as NoPorts and discarded.',
        fix: [`udp-ring listen --port ${r.port}`],
      });
    } else {
      for (const s of mine) {
        if (s.drops > 0) continue;
        add({
          severity: 'ok', code: `port.${socketName(s)}`, value: 0,
          title: `Socket ${socketName(s)} has dropped nothing`, detail: `${describeSocket(s)}; ${s.rxQueue} bytes queued now.`, fix: [],
        });
      }
    }
  }

  // Softnet backlog and budget, per CPU.
  if (r.softnet) {
    const backlog = r.settings.netdevMaxBacklog ?? 1000;
    const droppedNow = r.softnet.reduce((n, c) => n + (c.droppedDelta ?? 0), 0);
    const droppedTotal = r.softnet.reduce((n, c) => n + c.dropped, 0);
    if (droppedTotal > 0) {
      const cpus = r.softnet.filter((c) => c.dropped > 0).map((c) => `cpu${c.cpu}: ${c.dropped}`).join(', ');
      add({
        severity: droppedNow > 0 ? 'critical' : 'warning', code: 'softnet.dropped', value: droppedNow > 0 ? droppedNow : droppedTotal,
        title: droppedNow > 0
          ? `${droppedNow} packets dropped ${over} before reaching any socket: the CPU input backlog was full`
          : `${droppedTotal} packets dropped since boot for a full CPU input backlog`,
        detail: `/proc/net/softnet_stat column 2 (${cpus}); net.core.netdev_max_backlog is ${backlog}.`,
        fix: sysctlFix('net.core.netdev_max_backlog', Math.max(2 * backlog, 10000)),
      });
    }
    const squeezeNow = r.softnet.reduce((n, c) => n + (c.timeSqueezeDelta ?? 0), 0);
    const squeezeTotal = r.softnet.reduce((n, c) => n + c.timeSqueeze, 0);
    if (squeezeNow > 0 || squeezeTotal > 0) {
      const budget = r.settings.netdevBudget ?? 300;
      const usecs = r.settings.netdevBudgetUsecs ?? 2000;
      add({
        severity: squeezeNow > 0 ? 'warning' : 'info', code: 'softnet.time_squeeze',
        value: squeezeNow > 0 ? squeezeNow : squeezeTotal,
        title: squeezeNow > 0
          ? `Packet processing ran out of budget ${squeezeNow} times ${over} (time_squeeze)`
          : `Packet processing ran out of budget ${squeezeTotal} times since boot (time_squeeze)`,
        detail: `The softirq stopped with packets left (net.core.netdev_budget ${budget}, netdev_budget_usecs ${usecs}); ` +
          'sustained, it leads to backlog and NIC drops.',
        // A few squeezes since boot are normal; tuning is worth it only while they happen.
        fix: squeezeNow > 0 ? [...sysctlFix('net.core.netdev_budget', budget * 2), ...sysctlFix('net.core.netdev_budget_usecs', usecs * 2)] : [],
      });
    }
  }

  // Interfaces: /proc/net/dev, then the driver's own counters.
  for (const i of r.interfaces ?? []) {
    const now = (i.rxDroppedDelta ?? 0) + (i.rxFifoDelta ?? 0);
    if (i.rxDropped + i.rxFifo > 0) {
      add({
        severity: now > 0 ? 'warning' : 'info', code: `netdev.${i.name}`, value: now > 0 ? now : i.rxDropped + i.rxFifo,
        title: now > 0
          ? `Interface ${i.name} dropped ${now} received packets ${over}`
          : `Interface ${i.name} has dropped ${i.rxDropped + i.rxFifo} received packets since it came up`,
        detail: `/proc/net/dev: rx drop ${i.rxDropped}, rx fifo ${i.rxFifo}. Drops here happen before the UDP layer.`,
        fix: [`ethtool -g ${i.name}   # then raise the RX ring: ethtool -G ${i.name} rx <the maximum shown>`],
      });
    }
    for (const c of i.ethtool ?? []) {
      if (c.total === 0) continue;
      const rising = (c.delta ?? 0) > 0;
      add({
        severity: rising ? 'warning' : 'info', code: `ethtool.${i.name}.${c.name}`, value: rising ? c.delta : c.total,
        title: rising ? `NIC ${i.name}: ${c.name} rose by ${c.delta} ${over}` : `NIC ${i.name}: ${c.name} is ${c.total}`,
        detail: 'A driver counter (ethtool -S) whose name says packets were lost on receive.',
        fix: [`ethtool -g ${i.name}   # then raise the RX ring: ethtool -G ${i.name} rx <the maximum shown>`],
      });
    }
  }
  if (!r.ethtoolAvailable) {
    add({
      severity: 'info', code: 'ethtool', value: null, title: 'ethtool is not installed: NIC driver counters were skipped',
      detail: '/proc/net/dev drop counters were still read.', fix: ['apt-get install ethtool   # or your distribution\'s package'],
    });
  }

  return findings.sort((a, b) => rank[a.severity] - rank[b.severity]);
}

function describeSocket(s: SocketRow): string {
  const owner = s.owners.length > 0 ? s.owners.map((o) => `pid ${o.pid} (${o.command})`).join(', ') : 'owner unknown';
  return `${socketName(s)} inode ${s.inode} uid ${s.uid}, ${owner}`;
}
