// `udp-ring doctor`: the checklist of a UDP drop investigation, read from the
// live system. Counters are sampled twice, some seconds apart, so the report
// says what is dropping now and not only what dropped since boot. Every
// finding carries a severity, the number behind it and the command that fixes it.
//
// This file samples the system (runDoctor); report.ts holds the report's types,
// diagnose.ts turns its numbers into findings.
import { setTimeout as sleep } from 'node:timers/promises';
import { readMemoryLimits } from '../../core/memory-limit.js';
import { readEthtool, type EthtoolCounters } from './ethtool.js';
import {
  findOwners, parseCapNetAdmin, parseNetDev, parseSnmp, parseSnmp6, parseSockstat, parseSoftnet, parseUdpSockets,
  readSysctl, readText, type Counters, type InterfaceCounters, type SoftnetCpu, type UdpSocket,
} from './proc.js';
import { diagnose } from './diagnose.js';
import type { CounterRow, DoctorOptions, DoctorReport, InterfaceRow, SocketRow } from './report.js';

export * from './report.js';
export { diagnose } from './diagnose.js';

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

function counterRows(first: Counters | null, second: Counters | null, sampled: boolean): CounterRow[] | null {
  if (second === null) return null;
  return counterNames
    .filter((name) => name in second)
    .map((name) => ({ name, total: second[name], delta: sampled && first && name in first ? second[name] - first[name] : null }));
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
