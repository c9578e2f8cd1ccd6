// `udp-ring/dgram`: node:dgram's Socket over a UdpReceiver, for services that
// already use dgram. Receive runs on the native thread into the ring; each
// datagram is then copied into its own Buffer and emitted as 'message', as
// dgram does (that copy is the price of the familiar API; iterate a
// UdpReceiver to avoid it). Sends leave from the bound socket itself, so
// replies come from the port peers sent to.
//
// The Socket is socket.ts; beside it, by job: event-loop.ts (receiving as a node:dgram socket until
// traffic moves it to the thread), send.ts (send() arguments, the send queue), socket-options.ts
// (buffer sizes, TTL, multicast), cluster.ts, errors.ts (node:dgram's errors), fd.ts, types.ts.
import * as nodeDgram from 'node:dgram';
import { Socket } from './socket.js';
import type { MessageListener, SocketOptions, SocketType } from './types.js';

export { Socket } from './socket.js';
export type { BindOptions, MessageListener, RemoteInfo, SocketOptions, SocketType } from './types.js';

export function createSocket(type: SocketType, callback?: MessageListener): Socket;
export function createSocket(options: SocketOptions, callback?: MessageListener): Socket;
export function createSocket(type: SocketType | SocketOptions, listener?: MessageListener): Socket {
  if (type !== null && typeof type === 'object' && type.udpRing === false) {
    const { udpRing, ...options } = type;
    void udpRing;
    return nodeDgram.createSocket(options, listener) as unknown as Socket;
  }
  return new Socket(type, listener);
}

export default { createSocket, Socket };
