// Compiled by test/3-adapters/dgram-types.test.ts with tsc --strict (noImplicitAny and all): a facade
// socket must type-check wherever a node:dgram Socket does, with dgram's overloads.
import * as nodeDgram from 'node:dgram';
import dgram, { createSocket, Socket } from 'udp-ring/dgram';

function takesDgram(socket: nodeDgram.Socket): nodeDgram.Socket {
  return socket;
}
function handle(msg: Buffer, rinfo: nodeDgram.RemoteInfo): string {
  return `${msg.toString()} from ${rinfo.address}:${rinfo.port}`;
}

const socket = createSocket('udp4');
const alsoDgram: nodeDgram.Socket = socket;
takesDgram(socket);
takesDgram(dgram.createSocket({ type: 'udp6', reuseAddr: true, recvBufferSize: 1 << 20 }));
takesDgram(dgram.createSocket({ type: 'udp4', coalesceMs: 'auto', ringBytes: 1 << 20 }));
takesDgram(new Socket('udp6' as unknown as nodeDgram.SocketOptions));
const maker: typeof nodeDgram.createSocket = createSocket;
void maker;

socket.on('message', (msg, rinfo) => {
  const text: string = handle(msg, rinfo);
  const size: number = rinfo.size;
  void text;
  void size;
});
socket.once('listening', () => undefined);
socket.on('error', (error) => console.error(error.message));
socket.prependListener('close', () => undefined);
const chained: nodeDgram.Socket = socket.bind(0, '127.0.0.1', () => undefined).ref().unref();
void chained;
socket.bind({ port: 0, exclusive: true }, () => undefined);
socket.send('hi', 41234, '127.0.0.1', (err, bytes) => {
  if (err) throw err;
  const n: number = bytes;
  void n;
});
socket.send(Buffer.from('hi'), 0, 2, 41234, (err, bytes) => void [err, bytes]);
socket.send([Buffer.from('a'), 'b'], 41234);
socket.send(new Float32Array(2), 41234, 'localhost');
socket.connect(41234, () => socket.send('connected', (err, bytes) => void [err, bytes]));
const size: number = socket.getSendQueueSize() + socket.getSendQueueCount() + socket.getRecvBufferSize();
void size;
const address: string = socket.address().address;
void address;
socket.close(() => undefined);
// udp-ring's own additions.
socket.close({ drain: true }, () => undefined);
const stats = socket.stats();
void stats?.kernelDrops;

socket.on('message', (msg, rinfo) => {
  // @ts-expect-error: msg is a Buffer, not any.
  const notANumber: number = msg;
  // @ts-expect-error: rinfo is a RemoteInfo, not any.
  const notAString: string = rinfo;
  void [notANumber, notAString];
});
// @ts-expect-error: the send callback's bytes is a number.
socket.send('x', 1, (err: Error | null, bytes: string) => void [err, bytes]);
