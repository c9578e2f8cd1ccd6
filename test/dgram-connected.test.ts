// udp-ring/dgram against node:dgram, the same case run on both: a connected
// socket whose peer goes away. node:dgram reports each ICMP port unreachable
// once, as 'error' ECONNREFUSED from recvmsg (or on the next send's
// callback), and keeps the socket open; the facade must do the same.
import nodeDgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import * as ringDgram from '../dist/adapters/dgram/index.js';

type Factory = { createSocket(type: 'udp4' | 'udp6'): nodeDgram.Socket };
type Event = unknown[];

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The facade on one backend, with node:dgram's createSocket(type) shape. */
const facade = (backend: 'native' | 'dgram'): Factory => ({
  createSocket: (type) => ringDgram.createSocket({ type, backend }) as unknown as nodeDgram.Socket,
});

async function bound(dgram: Factory, type: 'udp4' | 'udp6', host: string): Promise<nodeDgram.Socket> {
  const socket = dgram.createSocket(type);
  await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
  return socket;
}

/** Waits until `check` holds (polling), at most limitMs; a fixed sleep is not enough on a loaded machine. */
async function until(check: () => boolean, limitMs = 5_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!check() && Date.now() < end) await wait(5);
}

/**
 * Connects to a live peer, exchanges a datagram, then the peer closes and
 * three more are sent, each once the one before has been answered (its
 * refusal reported): otherwise, under load, the next send can meet the
 * refusal before the receive side does, in node:dgram as in the facade.
 */
async function peerGoesAway(dgram: Factory, type: 'udp4' | 'udp6'): Promise<Event[]> {
  const host = type === 'udp4' ? '127.0.0.1' : '::1';
  const events: Event[] = [];
  const peer = await bound(nodeDgram, type, host);
  const stranger = await bound(nodeDgram, type, host);
  const socket = await bound(dgram, type, host);
  socket.on('error', (e: NodeJS.ErrnoException) => events.push(['error', e.code, e.errno, e.syscall, e.message]));
  socket.on('message', (m, rinfo) => events.push(['message', m.toString(), rinfo.port === peer.address().port ? 'peer' : 'other']));
  peer.on('message', (m, rinfo) => peer.send(`re:${m}`, rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => socket.connect(peer.address().port, host, () => resolve()));
  events.push(['connected', socket.remoteAddress().port === peer.address().port]);
  // Only the peer is heard: a stranger's datagram is not delivered.
  stranger.send('from a stranger', socket.address().port, host);
  socket.send('hello', (e, n) => events.push(['sent', 'hello', e?.code ?? null, n]));
  await until(() => events.some((e) => e[0] === 'message'));
  await wait(20);
  await new Promise<void>((resolve) => peer.close(() => resolve()));
  events.push(['peer closed']);
  const errors = () => events.filter((e) => e[0] === 'error').length;
  socket.send('one', (e, n) => events.push(['sent', 'one', e?.code ?? null, n]));
  await until(() => errors() === 1);
  socket.send('two'); // no callback: a failed send would be an 'error' event
  await until(() => errors() === 2);
  socket.send('three', (e, n) => events.push(['sent', 'three', e?.code ?? null, n]));
  await until(() => errors() === 3);
  await wait(20); // nothing more comes
  events.push(['still open', socket.address().port > 0]);
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  stranger.close();
  return events;
}

describe('udp-ring/dgram: a connected socket whose peer is gone, as node:dgram', () => {
  for (const [type, backend] of [['udp4', 'native'], ['udp6', 'native'], ['udp4', 'dgram'], ['udp6', 'dgram']] as const) {
    it(`${type}, ${backend} backend: the same events and error codes, in the same order`, async () => {
      const expected = await peerGoesAway(nodeDgram, type);
      const actual = await peerGoesAway(facade(backend), type);
      const refused = ['error', 'ECONNREFUSED', -111, 'recvmsg', 'recvmsg ECONNREFUSED'];
      // What node:dgram does here, pinned, so that a change in Node shows up as such.
      expect(expected).toEqual([
        ['connected', true], ['sent', 'hello', null, 5], ['message', 're:hello', 'peer'], ['peer closed'],
        ['sent', 'one', null, 3], refused, refused, ['sent', 'three', null, 5], refused, ['still open', true],
      ]);
      expect(actual).toEqual(expected);
    });
  }

  it('a send that meets the pending refusal fails as dgram\'s does: callback error "send ECONNREFUSED", no address', async () => {
    const results: Record<string, unknown> = {};
    for (const [name, dgram] of [['node', nodeDgram], ['native', facade('native')], ['dgram', facade('dgram')]] as const) {
      const gone = await bound(nodeDgram, 'udp4', '127.0.0.1');
      const port = gone.address().port;
      await new Promise<void>((resolve) => gone.close(() => resolve()));
      const socket = await bound(dgram, 'udp4', '127.0.0.1');
      const events: Event[] = [];
      socket.on('error', (e: NodeJS.ErrnoException) => events.push(['error', e.code, e.syscall]));
      await new Promise<void>((resolve) => socket.connect(port, '127.0.0.1', () => resolve()));
      // Two in one go: the second may meet the first's refusal (node:dgram: always; the facade's
      // receive thread may take it first). Either way every refusal is reported once, and never twice.
      const sends: Event[] = [];
      for (const text of ['a', 'b']) {
        socket.send(text, (e: NodeJS.ErrnoException | null) => sends.push([text, e && { ...e, message: e.message }]));
      }
      const failures = () => sends.filter(([, e]) => e !== null).length;
      await until(() => sends.length === 2 && failures() + events.length >= sends.length - failures());
      await wait(20); // nothing more comes
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      const failed = sends.filter(([, e]) => e !== null);
      for (const [, e] of failed) expect(e).toEqual({ errno: -111, code: 'ECONNREFUSED', syscall: 'send', message: 'send ECONNREFUSED' });
      // Each datagram sent is refused once: by a later send's failure or by an 'error' event.
      expect(failed.length + events.length).toBe(sends.length - failed.length);
      results[name] = events.every((e) => e[1] === 'ECONNREFUSED' && e[2] === 'recvmsg');
    }
    expect(results).toEqual({ node: true, native: true, dgram: true });
  });
});
