// What the benchmark learns from the system: per-socket kernel counters for
// node:dgram (which has no stats of its own), forcing a dgram socket's
// receive buffer past net.core.rmem_max, a description of the machine, and how much
// of its CPU the hypervisor took.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

/** The /proc/net/udp row of the IPv4 socket bound to `port`: { inode, rxQueue, drops } or null. */
export function udpSocketRow(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const lines = readFileSync('/proc/net/udp', 'utf8').split('\n');
  for (let k = 1; k < lines.length; k++) {
    const fields = lines[k].trim().split(/\s+/);
    if (fields.length < 13 || !fields[1].endsWith(`:${hexPort}`)) continue;
    const [, rxQueue] = fields[4].split(':');
    return { inode: fields[9], rxQueue: Number.parseInt(rxQueue, 16), drops: Number(fields[12]) };
  }
  return null;
}

/** This process's file descriptor for the socket with `inode`, or -1. */
export function socketFd(inode) {
  const target = `socket:[${inode}]`;
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === target) return Number(name);
    } catch { /* closed while listing */ }
  }
  return -1;
}

const rcvbufHelper = fileURLToPath(new URL('./force-rcvbuf.pl', import.meta.url));

/**
 * Sets SO_RCVBUFFORCE on one of this process's sockets, which node:dgram
 * cannot do: a helper takes a duplicate of the fd with pidfd_getfd (needs
 * CAP_SYS_PTRACE and CAP_NET_ADMIN, i.e. root). Returns the size granted, or null.
 */
export function forceRecvBuffer(fd, bytes) {
  try {
    const out = execFileSync('perl', [rcvbufHelper, String(process.pid), String(fd), String(bytes)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return Number(out.toString().trim());
  } catch {
    return null;
  }
}

/**
 * CPU time and run-queue wait (ns) of this process's main thread and of its
 * udp-ring receive thread, from /proc/self/task/<tid>/schedstat. The wait is
 * time spent runnable but without a CPU: how much a busy machine held it back.
 */
export function threadTimes() {
  const read = (tid) => {
    const [cpuNs, waitNs] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
    return { cpuNs, waitNs };
  };
  const result = { main: read(process.pid), receive: null };
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'udp-ring') {
        result.receive = read(tid);
        break;
      }
    }
  } catch {
    /* a thread ended while listing */
  }
  return result;
}

/**
 * Context switches (voluntary + involuntary) of a process's threads, from
 * /proc/<pid>/task/<tid>/status: { main, receive, other, total }; 'receive' is
 * udp-ring's thread (comm 'udp-ring'), 'other' libuv's pool, V8's workers.
 */
export function contextSwitches(pid) {
  const out = { main: 0, receive: 0, other: 0, total: 0 };
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        const count = (name) => Number(status.match(new RegExp(`^${name}:\\s*(\\d+)`, 'm'))?.[1] ?? 0);
        const n = count('voluntary_ctxt_switches') + count('nonvoluntary_ctxt_switches');
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const key = Number(tid) === pid ? 'main' : comm === 'udp-ring' ? 'receive' : 'other';
        out[key] += n;
        out.total += n;
      } catch { /* a thread ended while listing */ }
    }
  } catch { /* the process is gone */ }
  return out;
}

/** CPU time and run-queue wait (ns) of another process, summed over its threads; null once it is gone. */
export function processTimes(pid) {
  try {
    let cpuNs = 0;
    let waitNs = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
        cpuNs += cpu;
        waitNs += wait;
      } catch { /* a thread ended while listing */ }
    }
    return { cpuNs, waitNs };
  } catch {
    return null;
  }
}

export function rmemMax() {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  } catch {
    return null;
  }
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    rmemMax: rmemMax(),
    root: process.getuid?.() === 0,
    loadAverage: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/**
 * The share of the machine's CPU time the hypervisor gave to others (steal, /proc/stat) from now to
 * share(): on a VM, the noise a latency tail measures besides the receiver. NaN off Linux.
 */
export function stealSample() {
  const read = () => {
    try {
      // user nice system idle iowait irq softirq steal: guest and guest_nice after them are
      // already counted in user and nice.
      const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
      return { steal: fields[7] ?? 0, total: fields.reduce((a, b) => a + b, 0) };
    } catch {
      return null;
    }
  };
  const before = read();
  return {
    share() {
      const after = read();
      if (!before || !after || after.total === before.total) return NaN;
      return (after.steal - before.steal) / (after.total - before.total);
    },
  };
}
