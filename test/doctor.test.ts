// `udp-ring doctor` against saved /proc trees (test/fixtures/proc), for what
// this machine does not show: a socket dropping now, softnet backlog drops,
// RcvbufErrors rising between the two samples, NIC counters from ethtool.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCapNetAdmin, parseSnmp, parseSnmp6, parseSoftnet, parseUdpSockets } from '../dist/tools/doctor/proc.js';
import { parseEthtoolStats } from '../dist/tools/doctor/ethtool.js';

const cli = fileURLToPath(new URL('../dist/tools/cli/index.js', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/proc/', import.meta.url));
const fakeBin = join(fixtures, 'bin');
const scratch = mkdtempSync(join(tmpdir(), 'udp-ring-doctor-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'doctor', ...args], { timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

// PATH without any real ethtool, so runs are the same on every machine.
const noEthtool = { PATH: '/nonexistent' };
const withFakeEthtool = (state: string) => ({ PATH: fakeBin, FAKE_ETHTOOL_STATE: join(scratch, state) });

describe('doctor on saved /proc trees', () => {
  it('finds drops happening now: RcvbufErrors rising, the socket and its owner, softnet backlog, NIC counters', async () => {
    const { code, stdout } = await doctor(
      ['--proc', join(fixtures, 'drops'), '--proc-later', join(fixtures, 'drops-later'), '--seconds', '0', '--port', '9000', '--json'],
      withFakeEthtool('drops'),
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    const finding = (c: string) => report.findings.find((f: any) => f.code === c);

    expect(report.settings).toMatchObject({ rmemMax: 4194304, rmemDefault: 212992, udpMem: [188103, 250806, 376206], netdevMaxBacklog: 1000 });
    expect(report.capNetAdmin).toBe(false);

    // Stock 4 MiB and no CAP_NET_ADMIN: nothing can get a big buffer.
    expect(finding('rmem_max')).toMatchObject({ severity: 'critical', value: 4194304 });
    expect(finding('rmem_max').fix).toEqual(expect.arrayContaining([
      'sysctl -w net.core.rmem_max=33554432',
      "echo 'net.core.rmem_max = 33554432' >> /etc/sysctl.d/60-udp-ring.conf",
    ]));
    expect(finding('rmem_max').fix.some((f: string) => f.includes('recvBufferSize: 33554432'))).toBe(true);

    // 1500 -> 3500 RcvbufErrors between the samples.
    expect(finding('udp4.RcvbufErrors')).toMatchObject({ severity: 'critical', value: 2000 });
    expect(finding('udp4.RcvbufErrors').detail).toContain('pid 4242 (node server.mjs --port 9000)');
    expect(finding('udp6.RcvbufErrors')).toBeUndefined();

    const socket = report.sockets.find((s: any) => s.inode === 77001);
    expect(socket).toMatchObject({
      family: 4, localAddress: '127.0.0.1', localPort: 9000, drops: 3500, dropsDelta: 2000,
      rxQueueFirst: 0x400000, rxQueue: 0x7ff000, uid: 1000, owners: [{ pid: 4242, command: 'node server.mjs --port 9000' }],
    });
    expect(report.sockets.find((s: any) => s.inode === 77002)).toMatchObject({
      localAddress: '0.0.0.0', localPort: 5353, owners: [{ pid: 4300, command: 'collector' }],
    });
    expect(report.sockets.find((s: any) => s.inode === 77003)).toMatchObject({ family: 6, localAddress: '::1', localPort: 9001, owners: [] });
    expect(finding('socket.127.0.0.1:9000')).toMatchObject({ severity: 'critical', value: 2000 });
    // Opened between the samples: all its drops are new.
    expect(report.sockets.find((s: any) => s.inode === 77004)).toMatchObject({ localPort: 7000, drops: 50, dropsDelta: 50 });
    expect(finding('socket.127.0.0.1:7000')).toMatchObject({ severity: 'critical', value: 50 });

    // softnet_stat is hex: dropped 0x10 -> 0x90, time_squeeze 0x2a -> 0x30 on cpu 0.
    expect(report.softnet[0]).toMatchObject({ cpu: 0, dropped: 0x90, droppedDelta: 0x80, timeSqueeze: 0x30, timeSqueezeDelta: 6 });
    expect(report.softnet[1]).toMatchObject({ cpu: 1, dropped: 0, droppedDelta: 0 });
    expect(finding('softnet.dropped')).toMatchObject({ severity: 'critical', value: 128 });
    expect(finding('softnet.dropped').fix).toContain('sysctl -w net.core.netdev_max_backlog=10000');
    expect(finding('softnet.time_squeeze')).toMatchObject({ severity: 'warning', value: 6 });

    // /proc/net/dev: 12 drops on eth0, none new; the fake ethtool's counter rose by 100.
    expect(finding('netdev.eth0')).toMatchObject({ severity: 'info', value: 12 });
    expect(report.ethtoolAvailable).toBe(true);
    const eth0 = report.interfaces.find((i: any) => i.name === 'eth0');
    expect(eth0.ethtool).toEqual(expect.arrayContaining([{ name: 'rx_missed_errors', total: 200, delta: 100 }]));
    expect(eth0.ethtool.some((c: any) => c.name === 'rx_packets')).toBe(false);
    expect(finding('ethtool.eth0.rx_missed_errors')).toMatchObject({ severity: 'warning', value: 100 });

    // Worst first, and every problem says how to fix it.
    const ranks = report.findings.map((f: any) => ['critical', 'warning', 'info', 'ok'].indexOf(f.severity));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    for (const f of report.findings.filter((f: any) => f.severity === 'critical' || f.severity === 'warning')) {
      expect(f.fix.length, f.code).toBeGreaterThan(0);
      expect(typeof f.value, f.code).toBe('number');
    }
  });

  it('prints the same as text, with severities, numbers and fixes', async () => {
    const { stdout } = await doctor(
      ['--proc', join(fixtures, 'drops'), '--proc-later', join(fixtures, 'drops-later'), '--seconds', '0', '--port', '9000'],
      noEthtool,
    );
    expect(stdout).toContain('[CRITICAL] net.core.rmem_max is 4 MiB');
    expect(stdout).toContain('[CRITICAL] 2000 IPv4 datagrams dropped between the two samples');
    expect(stdout).toMatch(/fix: sysctl -w net\.core\.rmem_max=33554432\n\s+echo 'net\.core\.rmem_max = 33554432' >> \/etc\/sysctl\.d\/60-udp-ring\.conf/);
    expect(stdout).toContain('UDP sockets (4)');
    expect(stdout).toMatch(/127\.0\.0\.1:9000\s+8384512\s+3500 \(\+2000\)\s+77001\s+4242 node server\.mjs --port 9000/);
    expect(stdout).toContain('Port 9000: 1 socket(s)');
    expect(stdout).toContain('drops           3500 since opened, 2000 between the two samples');
    expect(stdout).toMatch(/^\s+0\s+169552957\s+144 \(\+128\)\s+48 \(\+6\)$/m);
    expect(stdout).toContain('ethtool not installed');
    expect(stdout).toContain('[info] ethtool is not installed: NIC driver counters were skipped');
    expect(stdout).toMatch(/\d+ problem\(s\) found\./);
  });

  it('with one sample, past drops are warnings and totals, not drops happening now', async () => {
    const { stdout } = await doctor(['--proc', join(fixtures, 'drops'), '--seconds', '0', '--json'], noEthtool);
    const report = JSON.parse(stdout);
    const finding = (c: string) => report.findings.find((f: any) => f.code === c);
    expect(report.sampled).toBe(false);
    expect(finding('socket.127.0.0.1:9000')).toMatchObject({ severity: 'warning', value: 1500 });
    expect(finding('udp4.RcvbufErrors')).toMatchObject({ severity: 'info', value: 1500 });
    expect(finding('softnet.dropped')).toMatchObject({ severity: 'warning', value: 16 });
    expect(finding('softnet.time_squeeze')).toMatchObject({ severity: 'info', value: 42 });
    expect(report.sockets.find((s: any) => s.inode === 77001).dropsDelta).toBe(null);
  });

  it('reports a tuned, quiet host as healthy (one sample, proc root from UDP_RING_PROC)', async () => {
    const { code, stdout } = await doctor(['--seconds', '0', '--json'], { ...noEthtool, UDP_RING_PROC: join(fixtures, 'tuned') });
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.procRoot).toBe(join(fixtures, 'tuned'));
    expect(report.sampled).toBe(false);
    expect(report.capNetAdmin).toBe(true);
    expect(report.counters.ipv4.find((c: any) => c.name === 'InDatagrams')).toEqual({ name: 'InDatagrams', total: 100, delta: null });
    expect(report.findings.filter((f: any) => f.severity === 'critical' || f.severity === 'warning')).toEqual([]);
    expect(report.findings.find((f: any) => f.code === 'rmem_max')).toMatchObject({ severity: 'ok', value: 67108864 });
    expect(report.ethtoolAvailable).toBe(false);
  });

  it('--fail-on exits 2 when a finding is that severe, 0 when none is, and names a bad severity', async () => {
    const drops = ['--proc', join(fixtures, 'drops'), '--seconds', '0', '--json'];
    // One sample of the drops tree: warnings (socket drops, softnet) and a critical (rmem_max, no CAP_NET_ADMIN).
    expect((await doctor([...drops, '--fail-on', 'critical'], noEthtool)).code).toBe(2);
    expect((await doctor([...drops, '--fail-on', 'warning'], noEthtool)).code).toBe(2);
    expect((await doctor(drops, noEthtool)).code).toBe(0);
    const tuned = ['--proc', join(fixtures, 'tuned'), '--seconds', '0', '--json'];
    const healthy = await doctor([...tuned, '--fail-on', 'warning'], noEthtool);
    expect(healthy.code).toBe(0);
    expect(JSON.parse(healthy.stdout).findings.length).toBeGreaterThan(0);
    const bad = await doctor([...tuned, '--fail-on', 'info'], noEthtool);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--fail-on.*info.*warning, critical/s);
  });

  it('says so when nothing is bound to --port', async () => {
    const { stdout } = await doctor(['--proc', join(fixtures, 'tuned'), '--seconds', '0', '--port', '4444', '--json'], noEthtool);
    const report = JSON.parse(stdout);
    expect(report.findings.find((f: any) => f.code === 'port')).toMatchObject({
      severity: 'warning', value: 4444, fix: ['udp-ring listen --port 4444'],
    });
  });

  it('has --help that shows the options and hides the test-only ones', async () => {
    const { code, stdout } = await doctor(['--help']);
    expect(code).toBe(0);
    for (const option of ['--port', '--seconds', '--json']) expect(stdout).toContain(option);
    expect(stdout).not.toContain('--proc');
  });
});

describe('doctor without the addon', () => {
  it('loads no native code: nothing doctor imports statically reaches the addon loader', () => {
    // Commands load their modules with import() when they run, so follow static imports only.
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(/^import\s[^'"]*['"](\.[^'"]+)['"]/gm)) visit(resolve(dirname(file), match[1]));
    };
    const dist = fileURLToPath(new URL('../dist/', import.meta.url));
    visit(join(dist, 'tools/cli/index.js'));
    visit(join(dist, 'tools/cli/doctor.js'));
    const reached = [...seen].map((f) => f.slice(dist.length));
    expect(reached).toContain('tools/doctor/index.js');
    expect(reached).toContain('tools/doctor/proc.js');
    expect(reached.filter((f) => f === 'backends/native/addon.js' || f === 'index.js' || f === 'core/receiver.js')).toEqual([]);
  });
});

describe('doctor parsers', () => {
  it('reads CAP_NET_ADMIN from bit 12 of CapEff, and only that bit', () => {
    expect(parseCapNetAdmin('CapEff:\t0000000000001000\n')).toBe(true);
    expect(parseCapNetAdmin('CapEff:\t0000000000000fff\n')).toBe(false);
    expect(parseCapNetAdmin('CapEff:\t000001ffffffefff\n')).toBe(false);
    expect(parseCapNetAdmin('CapPrm:\t0000000000001000\nCapEff:\t0000000000000000\n')).toBe(false);
    expect(parseCapNetAdmin('Name: x\n')).toBe(null);
  });

  it('decodes /proc/net/udp and udp6 addresses (host-order words) and the queue and drops columns', () => {
    const v4 = parseUdpSockets(
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n' +
      '    5: 0A01A8C0:0035 0100007F:1F90 01 00000010:0000ABCD 00:00000000 00000000   100        0 4242 2 0000000000000000 7\n',
    );
    expect(v4).toEqual([{
      family: 4, localAddress: '192.168.1.10', localPort: 53, remoteAddress: '127.0.0.1', remotePort: 8080, state: 1,
      txQueue: 16, rxQueue: 0xabcd, uid: 100, inode: 4242, drops: 7,
    }]);
    const v6 = parseUdpSockets(
      '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n' +
      '    9: B80D0120000000000000000001000000:2328 0000000000000000FFFF00000100007F:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0\n',
    );
    expect(v6[0]).toMatchObject({ family: 6, localAddress: '2001:db8::1', localPort: 9000, remoteAddress: '::ffff:127.0.0.1' });
  });

  it('reads softnet_stat with and without the CPU column', () => {
    const modern = parseSoftnet('00000010 00000002 00000003 0 0 0 0 0 0 0 0 0 00000003 0 0\n');
    expect(modern).toEqual([{ cpu: 3, processed: 16, dropped: 2, timeSqueeze: 3 }]);
    const old = parseSoftnet('00000010 00000002 00000003 0 0 0 0 0 0 0 0\n000000ff 00000000 00000001 0 0 0 0 0 0 0 0\n');
    expect(old.map((c) => c.cpu)).toEqual([0, 1]);
    expect(old[1].processed).toBe(255);
  });

  it('reads the UDP counters of both families', () => {
    expect(parseSnmp('Udp: InDatagrams RcvbufErrors\nUdp: 10 3\n')).toEqual({ InDatagrams: 10, RcvbufErrors: 3 });
    expect(parseSnmp6('Udp6InDatagrams 5\nUdp6RcvbufErrors 1\nUdpLite6InDatagrams 9\n')).toEqual({ InDatagrams: 5, RcvbufErrors: 1 });
  });

  it('keeps the loss counters of ethtool -S and nothing else', () => {
    const counters = parseEthtoolStats('NIC statistics:\n     rx_packets: 10\n     rx_dropped: 2\n     rx_missed_errors: 3\n' +
      '     port.rx_discards: 4\n     rx_queue_0_packets: 5\n     tx_bytes: 6\n');
    expect(counters).toEqual({ rx_dropped: 2, rx_missed_errors: 3, 'port.rx_discards': 4 });
  });
});
