// The doctor's report as text for a terminal: the numbers first, then the
// findings, worst first, each with its fix.
import type { CounterRow, DoctorReport, Finding, SocketRow } from './index.js';
import { bytes, interval, socketName } from './index.js';

const tag: Record<Finding['severity'], string> = { critical: 'CRITICAL', warning: 'WARNING', info: 'info', ok: 'ok' };

function pad(text: string | number, width: number): string {
  return String(text).padEnd(width);
}

function lpad(text: string | number | null, width: number): string {
  return String(text ?? '-').padStart(width);
}

function counterTable(label: string, rows: CounterRow[], seconds: number, lines: string[]): void {
  lines.push(`  ${pad(label, 16)}${lpad('since boot', 14)}${lpad(seconds > 0 ? `last ${seconds} s` : 'change', 14)}`);
  for (const row of rows) lines.push(`  ${pad(row.name, 16)}${lpad(row.total, 14)}${lpad(row.delta, 14)}`);
}

function socketLine(s: SocketRow): string {
  let owner = s.owners.length > 0 ? s.owners.map((o) => `${o.pid} ${o.command}`).join(', ') : '?';
  if (owner.length > 60) owner = `${owner.slice(0, 59)}…`;
  const drops = s.dropsDelta !== null && s.dropsDelta > 0 ? `${s.drops} (+${s.dropsDelta})` : String(s.drops);
  return `  ${pad(socketName(s), 46)}${lpad(s.rxQueue, 10)}${lpad(drops, 14)}${lpad(s.inode, 10)}  ${owner}`;
}

export function renderReport(r: DoctorReport, maxSockets = 20): string {
  const lines: string[] = [];
  const s = r.settings;
  lines.push(`udp-ring doctor: ${r.seconds > 0 ? `counters sampled ${r.seconds} s apart` : r.sampled ? 'two samples' : 'one sample'}` +
    (r.procRoot !== '/proc' ? ` (proc at ${r.procRoot})` : ''));
  if (r.addon) {
    lines.push('');
    lines.push(`Native addon    ${r.addon.loaded ? `loaded from ${r.addon.file}` : `not loaded${r.addon.file ? ` (${r.addon.file})` : ''}`}`);
  }
  lines.push('');
  lines.push('Kernel settings');
  const setting = (name: string, value: string | number | null, note = '') =>
    lines.push(`  ${pad(name, 30)}${pad(value ?? 'unreadable', 24)}${note}`);
  const withSize = (n: number | null) => (n === null ? null : `${n} (${bytes(n)})`);
  setting('net.core.rmem_default', withSize(s.rmemDefault));
  setting('net.core.rmem_max', withSize(s.rmemMax));
  setting('net.ipv4.udp_mem', s.udpMem?.join(' ') ?? null, s.udpMem?.length === 3 ? `pages: min pressure max (max ${bytes(s.udpMem[2] * 4096)})` : '');
  setting('net.ipv4.udp_rmem_min', withSize(s.udpRmemMin));
  setting('net.core.netdev_max_backlog', s.netdevMaxBacklog);
  setting('net.core.netdev_budget', s.netdevBudget);
  setting('CAP_NET_ADMIN', r.capNetAdmin === null ? null : r.capNetAdmin ? 'yes' : 'no', 'SO_RCVBUFFORCE may pass rmem_max');
  if (r.udpMemory) setting('UDP sockets / memory', `${r.udpMemory.inUse} / ${r.udpMemory.memPages} pages`);
  if (r.memoryLimits) {
    const limits = r.memoryLimits.map((l) => `${bytes(l.limit)} (${l.source}, ${bytes(l.headroom)} free)`);
    setting('memory limit', limits.length > 0 ? limits.join(', ') : 'none', 'cgroup memory / RLIMIT_AS: the ring must fit');
  }
  lines.push('');
  lines.push('UDP counters (/proc/net/snmp, /proc/net/snmp6)');
  if (r.counters.ipv4) counterTable('IPv4', r.counters.ipv4, r.seconds, lines);
  if (r.counters.ipv6) counterTable('IPv6', r.counters.ipv6, r.seconds, lines);
  lines.push('');
  const shown = [...r.sockets].sort((a, b) => b.drops - a.drops || b.rxQueue - a.rxQueue).slice(0, maxSockets);
  lines.push(`UDP sockets (${r.sockets.length}${r.sockets.length > shown.length ? `, ${shown.length} shown` : ''})` +
    (r.ownersComplete ? '' : ': some processes could not be read, run as root to see every owner'));
  if (shown.length > 0) {
    lines.push(`  ${pad('local address', 46)}${lpad('rx_queue', 10)}${lpad('drops', 14)}${lpad('inode', 10)}  owner`);
    for (const socket of shown) lines.push(socketLine(socket));
  }
  if (r.port !== null) {
    lines.push('');
    const mine = r.sockets.filter((socket) => socket.localPort === r.port);
    lines.push(`Port ${r.port}: ${mine.length === 0 ? 'no socket bound' : `${mine.length} socket(s)`}`);
    for (const m of mine) {
      lines.push(`  ${socketName(m)}  ${m.state === 1 ? `connected to ${m.remoteAddress}:${m.remotePort}` : 'unconnected'}  uid ${m.uid}  inode ${m.inode}`);
      lines.push(`    receive queue   ${m.rxQueueFirst} -> ${m.rxQueue} bytes`);
      lines.push(`    drops           ${m.drops} since opened${m.dropsDelta !== null ? `, ${m.dropsDelta} ${interval(r)}` : ''}`);
      for (const o of m.owners) lines.push(`    owner           pid ${o.pid}: ${o.command}`);
      if (m.owners.length === 0) lines.push('    owner           not found');
    }
  }
  if (r.softnet) {
    lines.push('');
    lines.push('Softnet per CPU (/proc/net/softnet_stat)');
    lines.push(`  ${pad('cpu', 6)}${lpad('processed', 14)}${lpad('dropped', 12)}${lpad('time_squeeze', 14)}`);
    for (const c of r.softnet) {
      const delta = (n: number, d: number | null) => (d !== null && d > 0 ? `${n} (+${d})` : String(n));
      lines.push(`  ${pad(c.cpu, 6)}${lpad(c.processed, 14)}${lpad(delta(c.dropped, c.droppedDelta), 12)}` +
        `${lpad(delta(c.timeSqueeze, c.timeSqueezeDelta), 14)}`);
    }
  }
  if (r.interfaces) {
    lines.push('');
    lines.push(`Interfaces (/proc/net/dev${r.ethtoolAvailable ? ', ethtool -S' : '; ethtool not installed'})`);
    for (const i of r.interfaces) {
      lines.push(`  ${pad(i.name, 12)}rx packets ${i.rxPackets}, errors ${i.rxErrors}, dropped ${i.rxDropped}, fifo ${i.rxFifo}`);
      for (const c of i.ethtool ?? []) {
        if (c.total > 0) lines.push(`  ${pad('', 12)}${c.name} ${c.total}${c.delta ? ` (+${c.delta})` : ''}`);
      }
    }
  }
  lines.push('');
  lines.push('Findings');
  for (const f of r.findings) {
    lines.push(`  [${tag[f.severity]}] ${f.title}`);
    if (f.severity !== 'ok') lines.push(`      ${f.detail}`);
    f.fix.forEach((command, k) => lines.push(`      ${k === 0 ? 'fix:' : '    '} ${command}`));
  }
  const problems = r.findings.filter((f) => f.severity === 'critical' || f.severity === 'warning').length;
  lines.push('');
  lines.push(problems === 0 ? 'No problems found.' : `${problems} problem(s) found.`);
  return `${lines.join('\n')}\n`;
}
