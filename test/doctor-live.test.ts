// `udp-ring doctor` against this machine's real /proc: it must find our own
// socket and this process as its owner, read the sysctls as they are, see a
// socket dropping while it samples, and tell an unprivileged user apart.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { minimumRingBytes, UdpSender } from '../dist/index.js';
import { openLoopback } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/tools/cli/index.js', import.meta.url));
const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
const MiB = 1024 * 1024;

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const unprivileged = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];

describe('doctor on this machine', () => {
  it('finds our udp-ring socket with --port, owned by this process, and reads the sysctls as they are', async () => {
    const rx = await openLoopback();
    const { port } = rx.address();
    const { code, stdout } = await run(process.execPath, [cli, 'doctor', '--port', String(port), '--seconds', '0.3', '--json']);
    await rx.close();
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.procRoot).toBe('/proc');
    expect(report.settings.rmemMax).toBe(rmemMax);
    expect(report.settings.rmemDefault).toBe(Number(readFileSync('/proc/sys/net/core/rmem_default', 'utf8')));
    expect(report.settings.udpMem).toEqual(readFileSync('/proc/sys/net/ipv4/udp_mem', 'utf8').trim().split(/\s+/).map(Number));
    expect(report.counters.ipv4.map((c: any) => c.name)).toEqual(
      expect.arrayContaining(['InDatagrams', 'InErrors', 'RcvbufErrors', 'NoPorts', 'InCsumErrors']));
    for (const c of report.counters.ipv4) expect(c.delta).toBeGreaterThanOrEqual(0);
    expect(report.softnet.length).toBeGreaterThanOrEqual(1);
    const mine = report.sockets.filter((s: any) => s.localPort === port);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ family: 4, localAddress: '127.0.0.1', drops: 0, dropsDelta: 0 });
    expect(mine[0].owners.map((o: any) => o.pid)).toContain(process.pid);
    expect(report.findings.find((f: any) => f.code === `port.127.0.0.1:${port}`)).toMatchObject({ severity: 'ok' });
    const rmem = report.findings.find((f: any) => f.code === 'rmem_max');
    if (rmemMax < 32 * MiB) {
      // The stock 4 MiB is a problem even for root: every other program stays capped.
      expect(['warning', 'critical']).toContain(rmem.severity);
      expect(rmem.value).toBe(rmemMax);
      expect(rmem.fix).toContain('sysctl -w net.core.rmem_max=33554432');
    } else {
      expect(rmem.severity).toBe('ok');
    }
  });

  it('sees a socket dropping while it samples, with its owner, and RcvbufErrors rising', async () => {
    // A receiver nobody reads, with a tiny ring and kernel buffer: once both are full the kernel drops.
    const rx = await openLoopback({ batchSize: 1, maxMessageSize: 64, ringBytes: minimumRingBytes(1, 64), recvBufferSize: 4096 });
    const { port } = rx.address();
    const tx = await UdpSender.open({ port });
    const burst = new Uint8Array(64 * 256);
    let sending = true;
    // Keep sending until the doctor exits, so drops surely fall between its two samples.
    const pump = (async () => {
      while (sending) {
        tx.sendBatch(burst, 64);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const { code, stdout } = await run(process.execPath, [cli, 'doctor', '--port', String(port), '--seconds', '0.5', '--json']);
    sending = false;
    await pump;
    tx.close();
    await rx.close();
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    const socket = report.sockets.find((s: any) => s.localPort === port);
    expect(socket.dropsDelta).toBeGreaterThan(0);
    expect(socket.owners.map((o: any) => o.pid)).toContain(process.pid);
    expect(report.findings.find((f: any) => f.code === `socket.127.0.0.1:${port}`)).toMatchObject({ severity: 'critical', value: socket.dropsDelta });
    const rcvbuf = report.findings.find((f: any) => f.code === 'udp4.RcvbufErrors');
    expect(rcvbuf.severity).toBe('critical');
    // Not compared with the socket's count: the two files are read a moment apart, so their windows differ slightly.
    expect(rcvbuf.value).toBeGreaterThan(0);
    expect(rcvbuf.detail).toContain(`127.0.0.1:${port}`);
  });

  it('run unprivileged, lacks CAP_NET_ADMIN, says so, and cannot see other users\' processes', async () => {
    const rx = await openLoopback();
    const { port } = rx.address();
    const { code, stdout, stderr } = await run('setpriv', [...unprivileged, process.execPath, cli, 'doctor', '--port', String(port), '--seconds', '0', '--json']);
    await rx.close();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.capNetAdmin).toBe(false);
    expect(report.findings.find((f: any) => f.code === 'cap_net_admin')).toMatchObject({ value: 0 });
    if (rmemMax < 32 * MiB) expect(report.findings.find((f: any) => f.code === 'rmem_max').severity).toBe('critical');
    // Our socket is listed (the socket table is public) but its root-owned process is not readable.
    expect(report.sockets.find((s: any) => s.localPort === port).owners).toEqual([]);
    expect(report.ownersComplete).toBe(false);
  });

  it('prints a text report with the rmem_max finding and its fix', async () => {
    const { code, stdout } = await run(process.execPath, [cli, 'doctor', '--seconds', '0.2']);
    expect(code).toBe(0);
    for (const heading of ['Kernel settings', 'UDP counters', 'UDP sockets', 'Softnet per CPU', 'Interfaces', 'Findings']) {
      expect(stdout).toContain(heading);
    }
    expect(stdout).toContain(`net.core.rmem_max             ${rmemMax}`);
    if (rmemMax < 32 * MiB) expect(stdout).toMatch(/\[(WARNING|CRITICAL)\] net\.core\.rmem_max is .*\n.*\n\s+fix: sysctl -w net\.core\.rmem_max=33554432/);
  });
});
