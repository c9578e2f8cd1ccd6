// Per-datagram packet info (options.pktinfo, options.tos): the local address
// each datagram was sent to, on a receiver bound to the wildcard, and the TOS
// byte / ECN bits the sender set, over IPv4 and IPv6.
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Batch } from '../../dist/index.js';

async function collect(rx: UdpReceiver, count: number): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = [];
  const iterator = rx[Symbol.asyncIterator]();
  while (rows.length < count) {
    const batch = (await iterator.next()).value as Batch;
    for (let i = 0; i < batch.length; i++) rows.push(row(batch, i));
  }
  await iterator.return!();
  return rows;
}

function row(batch: Batch, i: number): Record<string, unknown> {
  const out: Record<string, unknown> = { payload: batch.bytes[batch.offset(i)] };
  try {
    const at = batch.destinationOffset(i);
    const family = batch.destinationFamily(i);
    out.destination = batch.destinationAddress(i);
    out.family = family;
    out.raw = Array.from(batch.bytes.subarray(at, at + (family === 4 ? 4 : 16))).join('.');
    out.interfaceIndex = batch.interfaceIndex(i);
  } catch (error) {
    out.pktinfo = (error as NodeJS.ErrnoException).code;
  }
  try {
    out.tos = batch.tos(i);
    out.ecn = batch.ecn(i);
  } catch (error) {
    out.tosError = (error as NodeJS.ErrnoException).code;
  }
  return out;
}

describe('destination address per datagram (pktinfo)', () => {
  it('udp4 bound to 0.0.0.0: datagrams to 127.0.0.1 and 127.0.0.2 each say which', async () => {
    const rx = await UdpReceiver.open({ host: '0.0.0.0', pktinfo: true });
    const { port } = rx.address();
    for (const [k, host] of ['127.0.0.1', '127.0.0.2', '127.0.0.1'].entries()) {
      const tx = await UdpSender.open({ host, port });
      tx.send(new Uint8Array([k]));
      tx.close();
    }
    const rows = await collect(rx, 3);
    expect(rows).toEqual([
      { payload: 0, destination: '127.0.0.1', family: 4, raw: '127.0.0.1', interfaceIndex: 1, tosError: 'ERR_UDP_RING_NO_TOS' },
      { payload: 1, destination: '127.0.0.2', family: 4, raw: '127.0.0.2', interfaceIndex: 1, tosError: 'ERR_UDP_RING_NO_TOS' },
      { payload: 2, destination: '127.0.0.1', family: 4, raw: '127.0.0.1', interfaceIndex: 1, tosError: 'ERR_UDP_RING_NO_TOS' },
    ]);
  });

  it('udp6 bound to :: (dual stack): ::1, and IPv4 datagrams as v4-mapped destinations', async () => {
    const rx = await UdpReceiver.open({ host: '::', type: 'udp6', pktinfo: true });
    const { port } = rx.address();
    for (const [k, host] of ['::1', '127.0.0.2'].entries()) {
      const tx = await UdpSender.open({ host, port });
      tx.send(new Uint8Array([k]));
      tx.close();
    }
    const rows = await collect(rx, 2);
    expect(rows[0]).toMatchObject({ payload: 0, destination: '::1', family: 6, interfaceIndex: 1 });
    expect(rows[1]).toMatchObject({ payload: 1, destination: '::ffff:127.0.0.2', family: 6, interfaceIndex: 1,
      raw: '0.0.0.0.0.0.0.0.0.0.255.255.127.0.0.2' });
  });

  it('without pktinfo the accessors throw ERR_UDP_RING_NO_PKTINFO, and the ring has no packet-info region', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ port: rx.address().port });
    tx.send(new Uint8Array([7]));
    expect(await collect(rx, 1)).toEqual([{ payload: 7, pktinfo: 'ERR_UDP_RING_NO_PKTINFO', tosError: 'ERR_UDP_RING_NO_TOS' }]);
    tx.close();
  });
});

describe('options', () => {
  it('pktinfo and tos are refused on the dgram backend, which cannot report them', async () => {
    await expect(UdpReceiver.open({ host: '127.0.0.1', pktinfo: true, backend: 'dgram' }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.pktinfo') });
    await expect(UdpReceiver.open({ host: '127.0.0.1', tos: true, backend: 'dgram' }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.tos') });
    await expect(UdpReceiver.open({ host: '127.0.0.1', pktinfo: 1 as unknown as boolean }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('a reply leaves from the address the request was sent to', () => {
  for (const [type, host] of [['udp4', '0.0.0.0'], ['udp6', '::']] as const) {
    it(`${type} bound to ${host}: a request to 127.0.0.2 is answered from 127.0.0.2`, async () => {
      const server = await UdpReceiver.open({ host, type, pktinfo: true });
      const client = await UdpReceiver.open({ host: '127.0.0.1' });
      const { port: clientPort } = client.address();
      const serverIterator = server[Symbol.asyncIterator]();
      const clientIterator = client[Symbol.asyncIterator]();
      const answers: string[] = [];
      for (const withSource of [false, true]) {
        client._sendTo(new Uint8Array([1]), '127.0.0.2', server.address().port);
        const request = (await serverIterator.next()).value as Batch;
        const from = request.destinationAddress(0);
        server._sendTo(new Uint8Array([2]), type === 'udp4' ? '127.0.0.1' : '::ffff:127.0.0.1', clientPort,
          withSource ? from : undefined);
        const reply = (await clientIterator.next()).value as Batch;
        answers.push(reply.address(0));
      }
      // Without a source the kernel picks the route's (127.0.0.1); with it, the request's destination.
      expect(answers).toEqual(['127.0.0.1', '127.0.0.2']);
      await serverIterator.return!();
      await clientIterator.return!();
    });
  }
});

describe('TOS / ECN per datagram (tos)', () => {
  for (const [type, host] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
    it(`${type}: the TOS byte and ECN bits the sender set are read back per datagram`, async () => {
      const rx = await UdpReceiver.open({ host, type, tos: true });
      const { port } = rx.address();
      // DSCP EF (46) with each ECN codepoint, and the default.
      const values = [46 << 2, (46 << 2) | 1, (46 << 2) | 2, (46 << 2) | 3, undefined];
      for (const [k, tos] of values.entries()) {
        const tx = await UdpSender.open({ host, port, type, tos });
        tx.send(new Uint8Array([k]));
        tx.close();
      }
      const rows = await collect(rx, values.length);
      expect(rows).toEqual(values.map((tos, k) => ({ payload: k, pktinfo: 'ERR_UDP_RING_NO_PKTINFO', tos: tos ?? 0, ecn: (tos ?? 0) & 3 })));
    });
  }

  it('pktinfo and tos together, on a dual-stack socket: an IPv4 datagram has both', async () => {
    const rx = await UdpReceiver.open({ host: '::', type: 'udp6', pktinfo: true, tos: true });
    const tx = await UdpSender.open({ host: '127.0.0.2', port: rx.address().port, tos: 2 });
    tx.send(new Uint8Array([9]));
    tx.close();
    expect((await collect(rx, 1))[0]).toMatchObject({ payload: 9, destination: '::ffff:127.0.0.2', tos: 2, ecn: 2 });
  });
});
