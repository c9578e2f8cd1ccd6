// One test file, written once, run against node:dgram and against
// udp-ring/dgram (on both backends): whatever node:dgram does here, the
// facade must do too.
import * as nodeDgram from 'node:dgram';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import * as ringDgram from '../dist/adapters/dgram/index.js';

type Api = { createSocket: (type: 'udp4' | 'udp6' | Record<string, unknown>, listener?: (...a: never[]) => void) => nodeDgram.Socket };
type Rinfo = { address: string; family: string; port: number; size: number };

const implementations: Array<[string, Api]> = [
  ['node:dgram', nodeDgram as unknown as Api],
  ['udp-ring/dgram (event loop until busy)', ringDgram as unknown as Api],
  ['udp-ring/dgram (native)', {
    createSocket: (type, listener) =>
      ringDgram.createSocket({ ...(typeof type === 'string' ? { type } : type), receive: 'thread' } as ringDgram.SocketOptions,
        listener as never) as unknown as nodeDgram.Socket,
  }],
  ['udp-ring/dgram (dgram backend)', {
    createSocket: (type, listener) =>
      ringDgram.createSocket({ ...(typeof type === 'string' ? { type } : type), backend: 'dgram' } as ringDgram.SocketOptions,
        listener as never) as unknown as nodeDgram.Socket,
  }],
];

function codeOf(run: () => unknown): unknown {
  try {
    run();
    return 'no error';
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { code: e.code, name: e.name, ...(e.syscall ? { syscall: e.syscall } : {}) };
  }
}

async function bound(api: Api, type: 'udp4' | 'udp6' = 'udp4', host = type === 'udp4' ? '127.0.0.1' : '::1') {
  const socket = api.createSocket(type);
  socket.bind(0, host);
  await once(socket, 'listening');
  return socket;
}

for (const [name, api] of implementations) {
  describe(`dgram behaviour: ${name}`, () => {
    it('bind, listening, message with a Buffer and rinfo { address, family, port, size }', async () => {
      for (const type of ['udp4', 'udp6'] as const) {
        const host = type === 'udp4' ? '127.0.0.1' : '::1';
        const received: Array<[Buffer, Rinfo]> = [];
        const socket = api.createSocket(type, ((msg: Buffer, rinfo: Rinfo) => received.push([msg, rinfo])) as never);
        let listened = false;
        socket.bind(0, host, () => { listened = true; });
        await once(socket, 'listening');
        expect(listened).toBe(true);
        const address = socket.address();
        expect(address).toEqual({ address: host, family: type === 'udp4' ? 'IPv4' : 'IPv6', port: address.port });
        const peer = nodeDgram.createSocket(type);
        await new Promise<void>((r) => peer.bind(0, host, r));
        for (const text of ['one', '', 'three']) peer.send(text, address.port, host);
        while (received.length < 3) await once(socket, 'message');
        expect(received.map(([m]) => m.toString())).toEqual(['one', '', 'three']);
        for (const [msg, rinfo] of received) {
          expect(Buffer.isBuffer(msg)).toBe(true);
          expect(rinfo).toEqual({ address: host, family: type === 'udp4' ? 'IPv4' : 'IPv6', port: peer.address().port, size: msg.length });
        }
        peer.close();
        socket.close();
        await once(socket, 'close');
      }
    });

    it('send replies from the bound port; offset/length and arrays of buffers; callback gets the byte count', async () => {
      const server = await bound(api);
      server.on('message', (msg, rinfo) => server.send([Buffer.from('re:'), msg], rinfo.port, rinfo.address));
      const client = nodeDgram.createSocket('udp4');
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      client.send('ping', server.address().port, '127.0.0.1');
      const [reply, rinfo] = (await once(client, 'message')) as [Buffer, Rinfo];
      expect(reply.toString()).toBe('re:ping');
      expect(rinfo.port).toBe(server.address().port);
      const bytes = await new Promise<number>((resolve, reject) =>
        server.send(Buffer.from('xxhelloxx'), 2, 5, client.address().port, '127.0.0.1', (e, n) => (e ? reject(e) : resolve(n))));
      expect(bytes).toBe(5);
      const [second] = (await once(client, 'message')) as [Buffer];
      expect(second.toString()).toBe('hello');
      client.close();
      server.close();
    });

    it('connect filters peers, remoteAddress, send without a port, disconnect', async () => {
      const socket = await bound(api);
      const peer = nodeDgram.createSocket('udp4');
      const stranger = nodeDgram.createSocket('udp4');
      await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
      await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', r));
      socket.connect(peer.address().port, '127.0.0.1');
      await once(socket, 'connect');
      expect(socket.remoteAddress()).toEqual({ address: '127.0.0.1', family: 'IPv4', port: peer.address().port });
      expect(codeOf(() => socket.connect(peer.address().port, '127.0.0.1'))).toMatchObject({ code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
      const got: string[] = [];
      socket.on('message', (m: Buffer) => got.push(m.toString()));
      stranger.send('from a stranger', socket.address().port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
      peer.send('from the peer', socket.address().port, '127.0.0.1');
      while (got.length < 1) await once(socket, 'message');
      expect(got).toEqual(['from the peer']);
      socket.send('to the peer');
      const [m] = (await once(peer, 'message')) as [Buffer];
      expect(m.toString()).toBe('to the peer');
      socket.disconnect();
      expect(codeOf(() => socket.remoteAddress())).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      expect(codeOf(() => socket.disconnect())).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      peer.close();
      stranger.close();
      socket.close();
    });

    it('errors carry the same codes as node:dgram', async () => {
      expect(codeOf(() => api.createSocket('bogus' as 'udp4'))).toMatchObject({ code: 'ERR_SOCKET_BAD_TYPE', name: 'TypeError' });
      const fresh = api.createSocket('udp4');
      expect(codeOf(() => fresh.address())).toMatchObject({ code: 'EBADF', syscall: 'getsockname' });
      expect(codeOf(() => fresh.getRecvBufferSize())).toMatchObject({ code: 'ERR_SOCKET_BUFFER_SIZE' });
      expect(codeOf(() => fresh.setTTL(5))).toMatchObject({ code: 'EBADF', syscall: 'setTTL' });
      expect(codeOf(() => fresh.setBroadcast(true))).toMatchObject({ code: 'EBADF', syscall: 'setBroadcast' });
      expect(codeOf(() => fresh.remoteAddress())).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      expect(codeOf(() => fresh.setTTL('x' as unknown as number))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
      expect(codeOf(() => fresh.send('x', 70000, '127.0.0.1'))).toMatchObject({ code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError' });
      fresh.close();
      expect(codeOf(() => fresh.close())).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      expect(codeOf(() => fresh.send('x', 9, '127.0.0.1'))).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });

      const holder = await bound(api);
      expect(codeOf(() => holder.bind(0))).toMatchObject({ code: 'ERR_SOCKET_ALREADY_BOUND' });
      expect(codeOf(() => holder.setTTL(0))).toMatchObject({ code: 'EINVAL', syscall: 'setTTL' });
      expect(codeOf(() => holder.setTTL(64))).toBe('no error');
      expect(codeOf(() => holder.setMulticastTTL(2))).toBe('no error');
      expect(codeOf(() => holder.setMulticastLoopback(true))).toBe('no error');
      expect(codeOf(() => holder.setBroadcast(true))).toBe('no error');
      expect(codeOf(() => holder.setMulticastInterface('127.0.0.1'))).toBe('no error');
      expect(codeOf(() => holder.addMembership('127.0.0.1'))).toMatchObject({ code: 'EINVAL', syscall: 'addMembership' });
      expect(codeOf(() => holder.dropMembership('239.1.2.3'))).toMatchObject({ code: 'EADDRNOTAVAIL', syscall: 'dropMembership' });
      holder.setRecvBufferSize(1 << 20);
      // The kernel doubles what it is asked for, on either implementation.
      expect(holder.getRecvBufferSize()).toBe(2 << 20);

      const taken = api.createSocket('udp4');
      taken.bind(holder.address().port, '127.0.0.1');
      const [error] = (await once(taken, 'error')) as [NodeJS.ErrnoException];
      expect({ code: error.code, errno: error.errno, syscall: error.syscall }).toEqual({ code: 'EADDRINUSE', errno: -98, syscall: 'bind' });
      holder.close();
      taken.close();
    });

    it('bind(options, callback), close(callback) emits close once, Symbol.asyncDispose, ref/unref return the socket', async () => {
      const socket = api.createSocket({ type: 'udp4' });
      await new Promise<void>((r) => socket.bind({ port: 0, address: '127.0.0.1' }, r));
      expect(socket.address().port).toBeGreaterThan(0);
      expect(socket.unref()).toBe(socket);
      expect(socket.ref()).toBe(socket);
      let closes = 0;
      socket.on('close', () => closes++);
      await new Promise<void>((r) => socket.close(r));
      expect(closes).toBe(1);
      const disposable = await bound(api);
      await (disposable as unknown as AsyncDisposable)[Symbol.asyncDispose]();
      expect(codeOf(() => disposable.address())).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    });

    it('an unbound socket that sends binds itself first', async () => {
      const receiver = nodeDgram.createSocket('udp4');
      await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', r));
      const socket = api.createSocket('udp4');
      socket.send('hi', receiver.address().port, '127.0.0.1');
      const [msg, rinfo] = (await once(receiver, 'message')) as [Buffer, Rinfo];
      expect(msg.toString()).toBe('hi');
      expect(rinfo.port).toBe(socket.address().port);
      socket.close();
      receiver.close();
    });
  });
}
