// Bind failures are Node's: the same code, errno, syscall, address, port and
// message that node:dgram gives for the same failure (checked side by side),
// and a refused open leaves no fd behind.
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { removeStaged, runUnprivileged, stagePackage, unprivilegedSkipReason } from '../fixtures/life-setpriv.mjs';

const openFds = () => readdirSync('/proc/self/fd').length;

interface Shape {
  name?: string;
  message?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
}

const shape = (e: NodeJS.ErrnoException & { address?: string; port?: number }): Shape => ({
  name: e.name, message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port,
});

async function ringBindFailure(options: Parameters<typeof UdpReceiver.open>[0]): Promise<Shape> {
  const before = openFds();
  let rx: UdpReceiver | undefined;
  try {
    rx = await UdpReceiver.open(options);
  } catch (error) {
    expect(openFds()).toBe(before);
    return shape(error as NodeJS.ErrnoException);
  }
  await rx.close();
  throw new Error(`UdpReceiver.open(${JSON.stringify(options)}) was expected to fail, and it bound`);
}

/** What node:dgram reports for the same bind. */
function dgramBindFailure(type: 'udp4' | 'udp6', port: number, address: string): Promise<Shape> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(type);
    socket.once('error', (error) => {
      resolve(shape(error as NodeJS.ErrnoException));
      // dgram keeps the fd of a failed bind until closed.
      socket.close();
    });
    socket.bind(port, address, () => {
      socket.close();
      reject(new Error(`dgram bound ${address}:${port}, expected a failure`));
    });
  });
}

function dgramBound(type: 'udp4' | 'udp6', address: string, port = 0): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(type);
    socket.once('error', reject);
    socket.bind(port, address, () => resolve(socket));
  });
}

const isLocalAddress = (address: string) =>
  Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === address));

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = openFds();
});
afterAll(() => {
  expect(openFds()).toBe(fdsBefore);
});

describe('EADDRINUSE, like node:dgram', () => {
  it.each([
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const)('%s: a port held by another udp-ring receiver', async (type, host) => {
    const first = await UdpReceiver.open({ type, host });
    const { port } = first.address();
    const ring = await ringBindFailure({ type, host, port });
    expect(ring).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: host, port });
    expect(ring.message).toBe(`bind EADDRINUSE ${host}:${port}`);
    // node:dgram, refused the same port held by the same receiver, says exactly the same.
    const dgram = await dgramBindFailure(type, port, host);
    expect(ring).toEqual(dgram);
    // The first receiver is untouched by the failed attempts.
    expect(first.address().port).toBe(port);
    await first.close();
  });

  it('a port held by a node:dgram socket', async () => {
    const held = await dgramBound('udp4', '127.0.0.1');
    const { port } = held.address();
    const ring = await ringBindFailure({ host: '127.0.0.1', port });
    const dgram = await dgramBindFailure('udp4', port, '127.0.0.1');
    expect(ring).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: '127.0.0.1', port });
    expect(ring).toEqual(dgram);
    held.close();
    // Once dgram lets go, the port is free for udp-ring.
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port });
    expect(rx.address().port).toBe(port);
    await rx.close();
  });

  it('the wildcard address held, a specific address on that port is refused', async () => {
    const any = await UdpReceiver.open({ port: 0 });
    const { port } = any.address();
    const ring = await ringBindFailure({ host: '127.0.0.1', port });
    expect(ring).toEqual(await dgramBindFailure('udp4', port, '127.0.0.1'));
    expect(ring.code).toBe('EADDRINUSE');
    await any.close();
  });
});

describe('EADDRNOTAVAIL for an address not on this machine', () => {
  // Bind addresses only: nothing is ever sent to them.
  it('an IPv6 documentation address (2001:db8::/32)', async () => {
    expect(isLocalAddress('2001:db8::1')).toBe(false);
    const ring = await ringBindFailure({ host: '2001:db8::1' });
    expect(ring).toMatchObject({ code: 'EADDRNOTAVAIL', errno: -99, syscall: 'bind', address: '2001:db8::1' });
    expect(ring).toEqual(await dgramBindFailure('udp6', 0, '2001:db8::1'));
    const withPort = await ringBindFailure({ host: '2001:db8::1', port: 41234 });
    expect(withPort).toEqual(await dgramBindFailure('udp6', 41234, '2001:db8::1'));
  });

  it.skipIf(isLocalAddress('192.0.2.1'))('TEST-NET-1 192.0.2.1', async () => {
    const ring = await ringBindFailure({ host: '192.0.2.1', port: 41234 });
    expect(ring).toMatchObject({ code: 'EADDRNOTAVAIL', errno: -99, syscall: 'bind', address: '192.0.2.1', port: 41234 });
    expect(ring).toEqual(await dgramBindFailure('udp4', 41234, '192.0.2.1'));
  });

  it('an IPv4-mapped address on a v6-only socket is refused by the kernel, not by a crash', async () => {
    const ring = await ringBindFailure({ type: 'udp6', host: '::ffff:127.0.0.1', ipv6Only: true });
    expect(ring.syscall).toBe('bind');
    expect(ring.code).toMatch(/^E[A-Z]+$/);
    expect(ring.errno).toBeLessThan(0);
  });
});

describe.skipIf(unprivilegedSkipReason() !== null)(
  `EACCES for a privileged port, as an unprivileged user${unprivilegedSkipReason() ? ` (skipped: ${unprivilegedSkipReason()})` : ''}`,
  () => {
    let staged = '';
    beforeAll(() => {
      staged = stagePackage();
    });
    afterAll(() => removeStaged(staged));

    it('binding port 80 as uid 65534 rejects with EACCES, exactly as node:dgram does', async () => {
      const run = await runUnprivileged(staged, 'life-bind-privileged.mjs', ['80']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout);
      expect(report.uid).toBe(65534);
      expect(report.ring).toMatchObject({ code: 'EACCES', errno: -13, syscall: 'bind', address: '127.0.0.1', port: 80 });
      expect(report.ring.message).toBe('bind EACCES 127.0.0.1:80');
      expect(report.ring).toEqual(report.dgram);
      expect(report.fdsAfter).toBe(report.fdsBefore);
    });
  },
);

describe('reuseAddr and reusePort', () => {
  async function twoOnOnePort(options: { reuseAddr?: boolean; reusePort?: boolean }) {
    const a = await UdpReceiver.open({ host: '127.0.0.1', ...options });
    const { port } = a.address();
    const b = await UdpReceiver.open({ host: '127.0.0.1', port, ...options });
    expect(b.address().port).toBe(port);
    // Every datagram sent, from many source ports, lands in one of the two.
    const senders = await Promise.all(Array.from({ length: 16 }, () => UdpSender.open({ port })));
    const perSender = 20;
    const payload = new Uint8Array(32 * perSender);
    for (const tx of senders) expect(tx.sendBatch(payload, 32)).toBe(perSender);
    const sent = senders.length * perSender;
    const counts = [0, 0];
    const drain = async (rx: UdpReceiver, k: number) => {
      for await (const batch of rx) {
        counts[k] += batch.length;
        if (counts[0] + counts[1] >= sent) break;
      }
    };
    const draining = [drain(a, 0), drain(b, 1)];
    await Promise.race(draining);
    // The first loop to see the total closes its receiver; close the other (its pending next() ends).
    await a.close();
    await b.close();
    await Promise.all(draining);
    for (const tx of senders) tx.close();
    expect(counts[0] + counts[1]).toBe(sent);
    const stats = [a.stats(), b.stats()];
    expect(stats[0].packets + stats[1].packets).toBe(sent);
    expect(stats[0].kernelDrops + stats[1].kernelDrops).toBe(0);
    return counts;
  }

  it('reusePort: two receivers bind one port, and the kernel spreads senders across both', async () => {
    const counts = await twoOnOnePort({ reusePort: true });
    // SO_REUSEPORT hashes each source port to one socket: with 16 sources both get some.
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBeGreaterThan(0);
  });

  it('reuseAddr: two receivers bind one port', async () => {
    await twoOnOnePort({ reuseAddr: true });
  });

  it('without reuse on both sockets, the second bind is EADDRINUSE', async () => {
    const a = await UdpReceiver.open({ host: '127.0.0.1', reusePort: true });
    const { port } = a.address();
    expect((await ringBindFailure({ host: '127.0.0.1', port })).code).toBe('EADDRINUSE');
    await a.close();
    const b = await UdpReceiver.open({ host: '127.0.0.1' });
    expect((await ringBindFailure({ host: '127.0.0.1', port: b.address().port, reusePort: true })).code).toBe('EADDRINUSE');
    await b.close();
  });
});

describe('UdpSender failures', () => {
  it('a local address given as a name is resolved, as the destination is: datagrams leave from it', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const free = await UdpReceiver.open({ host: '127.0.0.1' });
    const localPort = free.address().port;
    await free.close();
    const tx = await UdpSender.open({ port: rx.address().port, host: 'localhost', type: 'udp4', localAddress: 'localhost', localPort });
    tx.send(new Uint8Array([7, 7, 7]));
    for await (const batch of rx) {
      expect([batch.address(0), batch.port(0), Array.from(batch.payload(0))]).toEqual(['127.0.0.1', localPort, [7, 7, 7]]);
      break;
    }
    await tx.close();
  });


  it('a local address not on this machine: bind EADDRNOTAVAIL, no fd left', async () => {
    const before = openFds();
    const error = await UdpSender.open({ port: 9, host: '::1', localAddress: '2001:db8::1' }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    // The error names the local address that failed, not the destination.
    expect(error).toMatchObject({ code: 'EADDRNOTAVAIL', errno: -99, syscall: 'bind', address: '2001:db8::1' });
    expect(error?.message).toBe('bind EADDRNOTAVAIL 2001:db8::1');
    expect(openFds()).toBe(before);
    const taken = await UdpReceiver.open({ host: '127.0.0.1' });
    const { port } = taken.address();
    const inUse = await UdpSender.open({ port: 9, localAddress: '127.0.0.1', localPort: port }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(inUse).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: '127.0.0.1', port });
    expect(inUse?.message).toBe(`bind EADDRINUSE 127.0.0.1:${port}`);
    await taken.close();
    expect(openFds()).toBe(before);
  });
});
