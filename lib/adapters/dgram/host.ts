// What the parts of a facade socket (event-loop.ts, send.ts, socket-options.ts) see of the Socket
// (socket.ts): its state, its receiver and a few of its methods. The Socket makes one per socket.
import type * as NodeDgram from 'node:dgram';
import type { EventEmitter } from 'node:events';
import type { UdpReceiver } from '../../core/receiver.js';
import type { DgramReceiver } from '../../backends/dgram/receiver.js';
import type { BindOptions, Part, SendCallback, SocketOptions, SocketType, State } from './types.js';

export interface SocketHost {
  /** The facade socket: its events, and its own bind() and send() for what waits for the bind. */
  readonly socket: EventEmitter & {
    bind(options: BindOptions, callback?: () => void): unknown;
    send(parts: Part[], port: number, address: string, callback?: SendCallback): void;
  };
  readonly type: SocketType;
  readonly options: SocketOptions;
  readonly family: 4 | 6;
  /** The node:dgram socket while the socket receives on the event loop (event-loop.ts). */
  inner(): NodeDgram.Socket | null;
  state(): State;
  setState(state: State): void;
  refed(): boolean;
  receiver(): UdpReceiver | null;
  /** The receiver, or node:dgram's error when closed or not bound. */
  bound(syscall: string): UdpReceiver;
  /** The dgram backend's receiver, when that is the backend. */
  fallback(): DgramReceiver | null;
  /** Runs once the socket listens (node:dgram's queue while it binds). */
  enqueue(run: () => void): void;
  /** node:dgram's lookup: the default address, the socket's family, the user's lookup if any. */
  lookup(address: string | null | undefined, callback: (error: Error | null, ip: string) => void): void;
  /** replyFromDestination: the local address this peer last sent to. */
  replySource(address: string, port: number): string | undefined;
  /** Opens the thread's receiver on a duplicate of fd (small: a client's ring); null or a throw: not now. */
  openOnThread(port: number, address: string, fd: number, small: boolean): UdpReceiver | null;
  /** Receiving has moved to the thread: the receiver is the socket's now. */
  moved(receiver: UdpReceiver): void;
}
