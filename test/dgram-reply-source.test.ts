// replyFromDestination: a facade socket bound to the wildcard answers from the address each request
// came to (127.0.0.1 or 127.0.0.2 here), where node:dgram (and the facade by default) lets the route
// choose the source. Checked against real sockets: the client sees the reply's source in rinfo.
import * as nodeDgram from 'node:dgram';
import { once } from 'node:events';
import { expect, it } from 'vitest';
import * as facade from '../dist/adapters/dgram/index.js';

type Factory = (options: { type: 'udp4' | 'udp6'; replyFromDestination?: boolean }) => nodeDgram.Socket;

// An echo server on the wildcard; for each destination, the address the reply came from.
async function replySources(create: Factory, type: 'udp4' | 'udp6', wildcard: string, destinations: string[],
  replyFromDestination?: boolean): Promise<string[]> {
  const server = create({ type, ...(replyFromDestination ? { replyFromDestination } : {}) });
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
  server.bind(0, wildcard);
  await once(server, 'listening');
  const port = server.address().port;
  const sources: string[] = [];
  for (const destination of destinations) {
    const client = nodeDgram.createSocket(type);
    client.bind(0, type === 'udp4' ? '127.0.0.1' : '::');
    await once(client, 'listening');
    // Twice from one client: the second reply must follow the second request's destination.
    for (const payload of ['a', 'b']) {
      client.send(`${destination} ${payload}`, port, destination);
      const [msg, rinfo] = (await once(client, 'message')) as [Buffer, nodeDgram.RemoteInfo];
      expect(msg.toString()).toBe(`${destination} ${payload}`);
      expect(rinfo.port).toBe(port);
      sources.push(rinfo.address);
    }
    client.close();
  }
  server.close();
  return sources;
}

const asked = ['127.0.0.2', '127.0.0.1', '127.0.0.3'];
const twice = (xs: string[]) => xs.flatMap((x) => [x, x]);

it('node:dgram on 0.0.0.0 replies from the route\'s source; the facade by default does the same', async () => {
  const node = await replySources((o) => nodeDgram.createSocket(o), 'udp4', '0.0.0.0', asked);
  expect(node).toEqual(twice(['127.0.0.1', '127.0.0.1', '127.0.0.1']));
  expect(await replySources((o) => facade.createSocket(o) as unknown as nodeDgram.Socket, 'udp4', '0.0.0.0', asked)).toEqual(node);
});

it('replyFromDestination: the facade on 0.0.0.0 replies from the address each request came to', async () => {
  const sources = await replySources((o) => facade.createSocket(o) as unknown as nodeDgram.Socket, 'udp4', '0.0.0.0', asked, true);
  expect(sources).toEqual(twice(asked));
});

it('replyFromDestination on a dual-stack udp6 socket: IPv4 requests answered from their v4-mapped destination, IPv6 from ::1', async () => {
  const sources = await replySources((o) => facade.createSocket(o) as unknown as nodeDgram.Socket, 'udp6', '::',
    ['::ffff:127.0.0.2', '::1', '::ffff:127.0.0.3'], true);
  expect(sources).toEqual(twice(['::ffff:127.0.0.2', '::1', '::ffff:127.0.0.3']));
});

it('replyFromDestination: a send to a peer never heard from leaves from the route\'s choice; the socket is on the thread', async () => {
  const server = facade.createSocket({ type: 'udp4', replyFromDestination: true });
  server.bind(0, '0.0.0.0');
  await once(server, 'listening');
  expect(server.receivingOn()).toBe('thread');
  const client = nodeDgram.createSocket('udp4');
  client.bind(0, '127.0.0.1');
  await once(client, 'listening');
  server.send('hello', client.address().port, '127.0.0.1');
  const [, rinfo] = (await once(client, 'message')) as [Buffer, nodeDgram.RemoteInfo];
  expect(rinfo.address).toBe('127.0.0.1');
  client.close();
  server.close();
});
