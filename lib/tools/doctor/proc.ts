// Readers for the /proc files a UDP drop investigation needs. Each parser
// takes the file's text, so tests can feed saved copies; each reader takes a
// proc root, so the whole doctor can run against a directory of fixtures.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { formatIPv4, formatIPv6 } from '../../core/address.js';

export function readText(root: string, path: string): string | null {
  try {
    return readFileSync(join(root, path), 'utf8');
  } catch {
    return null;
  }
}

/** A sysctl as numbers (udp_mem has three), or null when it cannot be read. */
export function readSysctl(root: string, name: string): number[] | null {
  const text = readText(root, join('sys', ...name.split('.')));
  if (text === null) return null;
  const values = text.trim().split(/\s+/).map(Number);
  return values.every(Number.isFinite) ? values : null;
}

/** Bit 12 of CapEff in a /proc/<pid>/status: may this process use SO_RCVBUFFORCE? */
export function parseCapNetAdmin(status: string): boolean | null {
  const match = /^CapEff:\s*([0-9a-fA-F]+)/m.exec(status);
  if (!match) return null;
  return ((BigInt(`0x${match[1]}`) >> 12n) & 1n) === 1n;
}

export type Counters = Record<string, number>;

/** The "Udp:" header and value lines of /proc/net/snmp. */
export function parseSnmp(text: string, section = 'Udp'): Counters | null {
  const lines = text.split('\n').filter((line) => line.startsWith(`${section}:`));
  if (lines.length < 2) return null;
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1);
  const counters: Counters = {};
  names.forEach((name, k) => (counters[name] = Number(values[k])));
  return counters;
}

/** The "Udp6..." lines of /proc/net/snmp6, with the prefix removed so both families share names. */
export function parseSnmp6(text: string, prefix = 'Udp6'): Counters | null {
  const counters: Counters = {};
  let found = false;
  for (const line of text.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name?.startsWith(prefix) && !name.startsWith(`${prefix}Lite`) && value !== undefined) {
      counters[name.slice(prefix.length)] = Number(value);
      found = true;
    }
  }
  return found ? counters : null;
}

export interface UdpSocket {
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** Hex state: 07 is unconnected (TCP_CLOSE), 01 connected (TCP_ESTABLISHED). */
  state: number;
  txQueue: number;
  /** Bytes waiting in the socket's receive queue (kernel memory, truesize). */
  rxQueue: number;
  uid: number;
  inode: number;
  /** Datagrams the kernel dropped on this socket since it was created. */
  drops: number;
}

const littleEndian = endianness() === 'LE';

// The kernel prints each 32-bit word of the address in host order.
function decodeAddress(hex: string): { address: string; family: 4 | 6 } {
  const bytes = new Uint8Array(hex.length / 2);
  for (let word = 0; word < hex.length / 8; word++) {
    for (let k = 0; k < 4; k++) {
      const from = word * 8 + (littleEndian ? 3 - k : k) * 2;
      bytes[word * 4 + k] = Number.parseInt(hex.slice(from, from + 2), 16);
    }
  }
  return bytes.length === 4 ? { address: formatIPv4(bytes, 0), family: 4 } : { address: formatIPv6(bytes, 0), family: 6 };
}

/** /proc/net/udp or /proc/net/udp6: one entry per socket. */
export function parseUdpSockets(text: string): UdpSocket[] {
  const sockets: UdpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13 || !f[0].endsWith(':')) continue;
    const [localHex, localPort] = f[1].split(':');
    const [remoteHex, remotePort] = f[2].split(':');
    const [tx, rx] = f[4].split(':');
    const local = decodeAddress(localHex);
    sockets.push({
      family: local.family,
      localAddress: local.address,
      localPort: Number.parseInt(localPort, 16),
      remoteAddress: decodeAddress(remoteHex).address,
      remotePort: Number.parseInt(remotePort, 16),
      state: Number.parseInt(f[3], 16),
      txQueue: Number.parseInt(tx, 16),
      rxQueue: Number.parseInt(rx, 16),
      uid: Number(f[7]),
      inode: Number(f[9]),
      drops: Number(f[12]),
    });
  }
  return sockets;
}

export interface SoftnetCpu {
  cpu: number;
  processed: number;
  /** Packets dropped because this CPU's input backlog (netdev_max_backlog) was full. */
  dropped: number;
  /** Times the softirq ran out of budget (netdev_budget / netdev_budget_usecs) with work left. */
  timeSqueeze: number;
}

/** /proc/net/softnet_stat: one line per CPU, hex columns. */
export function parseSoftnet(text: string): SoftnetCpu[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, index) => {
      const f = line.trim().split(/\s+/).map((v) => Number.parseInt(v, 16));
      // Since Linux 5.10 the 13th column is the CPU number (lines skip offline CPUs).
      return { cpu: f.length >= 13 ? f[12] : index, processed: f[0], dropped: f[1], timeSqueeze: f[2] };
    });
}

export interface InterfaceCounters {
  name: string;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  rxFifo: number;
}

/** /proc/net/dev: receive counters per interface. */
export function parseNetDev(text: string): InterfaceCounters[] {
  const result: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    result.push({ name: line.slice(0, colon).trim(), rxPackets: f[1], rxErrors: f[2], rxDropped: f[3], rxFifo: f[4] });
  }
  return result;
}

/** /proc/net/sockstat's "UDP: inuse N mem P" (mem in pages). */
export function parseSockstat(text: string): { inUse: number; memPages: number } | null {
  const match = /^UDP:\s+inuse\s+(\d+)\s+mem\s+(\d+)/m.exec(text);
  return match ? { inUse: Number(match[1]), memPages: Number(match[2]) } : null;
}

export interface SocketOwner {
  pid: number;
  command: string;
}

/**
 * Finds which processes hold the given socket inodes by reading the
 * /proc/<pid>/fd links ("socket:[inode]"). Unprivileged, only one's own
 * processes are visible; `complete` says whether every process could be read.
 */
export function findOwners(root: string, inodes: Set<number>): { owners: Map<number, SocketOwner[]>; complete: boolean } {
  const owners = new Map<number, SocketOwner[]>();
  let complete = true;
  if (inodes.size === 0) return { owners, complete };
  let pids: string[];
  try {
    pids = readdirSync(root).filter((name) => /^\d+$/.test(name));
  } catch {
    return { owners, complete: false };
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(root, pid, 'fd'));
    } catch {
      complete = false;
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(root, pid, 'fd', fd));
      } catch {
        continue;
      }
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (!match || !inodes.has(Number(match[1]))) continue;
      const inode = Number(match[1]);
      const list = owners.get(inode) ?? [];
      if (!list.some((o) => o.pid === Number(pid))) list.push({ pid: Number(pid), command: commandOf(root, pid) });
      owners.set(inode, list);
    }
  }
  return { owners, complete };
}

function commandOf(root: string, pid: string): string {
  const cmdline = readText(root, join(pid, 'cmdline'));
  if (cmdline) {
    const args = cmdline.split('\0').filter((a) => a !== '');
    if (args.length > 0) return args.join(' ').slice(0, 120);
  }
  return readText(root, join(pid, 'comm'))?.trim() ?? '?';
}
