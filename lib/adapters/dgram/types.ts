// The facade's types: node:dgram's own, from the user's @types/node, and udp-ring's options.
import type * as NodeDgram from 'node:dgram';
import type { BackendChoice, Overflow, YieldEvery } from '../../core/options.js';

export type SocketType = 'udp4' | 'udp6';

// Types come from the user's own @types/node, so a facade socket type-checks wherever a
// node:dgram Socket does (the message Buffer type, RemoteInfo, lookup differ between versions).
/** A 'message' listener, exactly as node:dgram types it. */
export type MessageListener = NonNullable<Parameters<typeof NodeDgram.createSocket>[1]>;
export type RemoteInfo = NodeDgram.RemoteInfo;
export type BindOptions = NodeDgram.BindOptions;

/** node:dgram's `lookup` as Node calls it: lookup(hostname, family, callback), as dns.lookup. */
export type LookupFunction = (hostname: string, family: number,
  callback: (error: NodeJS.ErrnoException | null, address: string, family?: number) => void) => void;

export interface SocketOptions extends NodeDgram.SocketOptions {
  /** SO_REUSEPORT (node:dgram from Node 22.12 / 23.1). */
  reusePort?: boolean;
  /** udp-ring's own: passed to UdpReceiver.open. */
  ringBytes?: number;
  maxMessageSize?: number;
  batchSize?: number;
  overflow?: Overflow;
  /** When 'message' events pause for the event loop's turn (UdpReceiver's option). */
  yieldEvery?: YieldEvery;
  /**
   * UdpReceiver's option, for the ring: 'auto' makes a busy socket's messages share wakeups (up to
   * about 1 ms more latency above about 32k/s, none below), a number of milliseconds always waits.
   * Not used while a socket still receives on the event loop as node:dgram does.
   */
  coalesceMs?: number | 'auto';
  backend?: BackendChoice;
  /**
   * Where datagrams are received. 'auto' (default): a socket bound to a port of its own
   * choosing starts on the event loop, as a node:dgram socket (no ring, no thread), and moves
   * to the receive thread once traffic calls for it (see docs/dgram-migration.md); a socket
   * bound to a port you name, or given ringBytes or backend, receives on the thread from the
   * start. 'thread': always on the thread.
   */
  receive?: 'auto' | 'thread';
  /**
   * udp-ring's own: a reply leaves from the local address the peer's latest datagram was sent to
   * (IP_PKTINFO / IPV6_RECVPKTINFO on receive, the source given to each send), so a socket bound
   * to the wildcard on a host with several addresses answers from the one it was asked on, where
   * node:dgram lets the route choose. Such a socket receives on the thread from bind on (the event
   * loop's node:dgram socket cannot see the destination). Native backend.
   */
  replyFromDestination?: boolean;
  /**
   * false: createSocket returns a node:dgram socket instead (the opt-out per socket when
   * udp-ring/register has swapped dgram for the whole process).
   */
  udpRing?: boolean;
}

export type Callback = () => void;
export type SendCallback = (error: Error | null, bytes: number) => void;
export type Message = string | NodeJS.ArrayBufferView | readonly any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
export type Datagram = string | NodeJS.ArrayBufferView;
export type Part = string | ArrayBufferView;

export const enum State { Unbound, Binding, Bound, Closed }
export const enum Connect { Disconnected, Connecting, Connected }
