// The facade's Socket: node:dgram's Socket over a UdpReceiver. This file holds its state machine
// (bind, listening, close, ref) and the thread's receive (open, delivery as 'message' events);
// beside it, by job: the event-loop receive (event-loop.ts), connect and send (send.ts, with
// send-queue.ts), socket options and membership (socket-options.ts), cluster (cluster.ts),
// node:dgram's errors (errors.ts), fds (fd.ts) and types (types.ts).
// Over ~400 lines because node:dgram's Socket is one class: ~30 public methods with their
// overloads, each a line or two here when its work is in one of the files above.
import * as dns from 'node:dns';
import type * as NodeDgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { systemError } from '../../core/errors.js';
import type { DgramReceiver } from '../../backends/dgram/receiver.js';
import { closeOptions, UdpReceiver, type AddressInfo, type CloseOptions, type ReceiverStats } from '../../core/receiver.js';
import '../../backends/index.js';
import { announce, announces, sharesPort } from './cluster.js';
import { argType, codeError, notRunning, validPort } from './errors.js';
import { EventLoopReceive, startsOnLoop } from './event-loop.js';
import { handleType, unixSocket } from './fd.js';
import type { SocketHost } from './host.js';
import { SendPath } from './send.js';
import { SocketOptionCalls } from './socket-options.js';
import { receiverOptions, ThreadDelivery } from './thread.js';
import {
  State, type BindOptions, type Callback, type Datagram, type LookupFunction, type Message, type MessageListener,
  type RemoteInfo, type SendCallback, type SocketOptions, type SocketType,
} from './types.js';

// node:dgram's event overloads (as @types/node declares them), merged into the class below.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-declaration-merging */
export interface Socket {
  addListener(event: string, listener: (...args: any[]) => void): this;
  addListener(event: 'close', listener: () => void): this;
  addListener(event: 'connect', listener: () => void): this;
  addListener(event: 'error', listener: (err: Error) => void): this;
  addListener(event: 'listening', listener: () => void): this;
  addListener(event: 'message', listener: MessageListener): this;
  on(event: string, listener: (...args: any[]) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'connect', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'listening', listener: () => void): this;
  on(event: 'message', listener: MessageListener): this;
  once(event: string, listener: (...args: any[]) => void): this;
  once(event: 'close', listener: () => void): this;
  once(event: 'connect', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'listening', listener: () => void): this;
  once(event: 'message', listener: MessageListener): this;
  prependListener(event: string, listener: (...args: any[]) => void): this;
  prependListener(event: 'close', listener: () => void): this;
  prependListener(event: 'connect', listener: () => void): this;
  prependListener(event: 'error', listener: (err: Error) => void): this;
  prependListener(event: 'listening', listener: () => void): this;
  prependListener(event: 'message', listener: MessageListener): this;
  prependOnceListener(event: string, listener: (...args: any[]) => void): this;
  prependOnceListener(event: 'close', listener: () => void): this;
  prependOnceListener(event: 'connect', listener: () => void): this;
  prependOnceListener(event: 'error', listener: (err: Error) => void): this;
  prependOnceListener(event: 'listening', listener: () => void): this;
  prependOnceListener(event: 'message', listener: MessageListener): this;
  emit(event: string | symbol, ...args: any[]): boolean;
  emit(event: 'close' | 'connect' | 'listening'): boolean;
  emit(event: 'error', err: Error): boolean;
  emit(event: 'message', msg: Parameters<MessageListener>[0], rinfo: RemoteInfo): boolean;
}
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-declaration-merging */

export class Socket extends EventEmitter {
  readonly type: SocketType;
  readonly #options: SocketOptions;
  readonly #lookupFn: LookupFunction;
  #state = State.Unbound;
  #receiver: UdpReceiver | null = null;
  // Kept after close, for stats().
  #closedReceiver: UdpReceiver | null = null;
  #refed = true;
  // node:dgram's queue: what was asked of the socket while it was binding, run once it listens.
  #queue: Array<() => void> | undefined;
  // connect, send and the send queue.
  readonly #path: SendPath;
  // Event-loop receive: a node:dgram socket does everything until the socket moves to the thread.
  readonly #loop: EventLoopReceive;
  readonly #sockopts: SocketOptionCalls;
  // Receive on the thread: each batch as 'message' events.
  readonly #delivery: ThreadDelivery;

  constructor(type: SocketType | SocketOptions, listener?: MessageListener) {
    super();
    const options: SocketOptions = type !== null && typeof type === 'object' ? { ...type } : { type: type as SocketType };
    if (options.type !== 'udp4' && options.type !== 'udp6') {
      throw codeError(TypeError, 'ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6');
    }
    if (options.lookup !== undefined && typeof options.lookup !== 'function') {
      throw argType('lookup', 'of type function', options.lookup);
    }
    this.type = options.type;
    this.#options = options;
    this.#lookupFn = (options.lookup ?? dns.lookup) as unknown as LookupFunction;
    const host: SocketHost = {
      socket: this,
      type: this.type,
      options,
      family: this.#family(),
      inner: () => this.#inner,
      state: () => this.#state,
      setState: (state) => {
        this.#state = state;
      },
      refed: () => this.#refed,
      receiver: () => this.#receiver,
      bound: (syscall) => this.#bound(syscall),
      fallback: () => this.#fallback(),
      enqueue: (run) => this.#enqueue(run),
      lookup: (address, callback) => this.#lookup(address, callback),
      replySource: (address, port) => this.#delivery.replySource(address, port),
      openOnThread: (port, address, fd, small) => UdpReceiver._openNow(receiverOptions(options, port, address, false, small), address, fd, true),
      moved: (receiver) => {
        this.#receiver = receiver;
        if (!this.#refed) receiver.unref();
        this.#delivery.pump(receiver);
      },
    };
    this.#path = new SendPath(host);
    this.#loop = new EventLoopReceive(host);
    this.#sockopts = new SocketOptionCalls(host);
    this.#delivery = new ThreadDelivery(host, this.#loop, this.#path);
    if (typeof listener === 'function') this.on('message', listener);
    const { signal } = options;
    if (signal !== undefined) {
      if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) throw argType('options.signal', 'an instance of AbortSignal', signal);
      const onAbort = () => {
        if (this.#state !== State.Closed) this.close();
      };
      // As node:dgram: a signal already aborted closes the socket at once.
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
  }

  // The node:dgram socket while this socket receives on the event loop: every call goes to it.
  get #inner(): NodeDgram.Socket | null {
    return this.#loop.inner;
  }

  // node:dgram's handle.lookup: the default address, the socket's family, the user's lookup if any.
  #lookup(address: string | null | undefined, callback: (error: Error | null, ip: string) => void): void {
    const host = address || (this.type === 'udp4' ? '127.0.0.1' : '::1');
    this.#lookupFn(host, this.#family(), (error, ip) => callback(error, ip));
  }

  bind(port?: number, address?: string, callback?: () => void): this;
  bind(port?: number, callback?: () => void): this;
  bind(callback?: () => void): this;
  bind(options: BindOptions, callback?: () => void): this;
  bind(port?: number | BindOptions | Callback | null, address?: string | Callback | null, callback?: Callback | null): this {
    // eslint-disable-next-line prefer-rest-params
    const args = arguments;
    if (this.#inner) {
      this.#inner.bind(...(Array.from(args) as Parameters<NodeDgram.Socket['bind']>));
      return this;
    }
    if (this.#state === State.Closed) throw notRunning();
    if (this.#state !== State.Unbound) throw codeError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    let exclusive = false;
    let host: string | null | undefined;
    let requested: unknown;
    if (port !== null && typeof port === 'object') {
      host = port.address;
      exclusive = !!port.exclusive;
      requested = port.port;
    } else {
      requested = typeof port === 'function' ? 0 : port;
      host = typeof address === 'function' ? '' : address;
    }
    const adopting = port !== null && typeof port === 'object' && port.fd !== undefined;
    if (!adopting && host !== undefined && host !== null && typeof host !== 'string') throw argType('address', 'of type string', host);
    const boundPort = adopting ? 0 : validPort(requested ?? 0);
    this.#state = State.Binding;
    // As node:dgram: the callback is a 'listening' listener that a failed bind removes again.
    const cb = args.length > 0 ? args[args.length - 1] : undefined;
    if (typeof cb === 'function') {
      const removeListeners = () => {
        this.removeListener('error', removeListeners);
        this.removeListener('listening', onListening);
      };
      const onListening = () => {
        removeListeners();
        (cb as Callback).call(this);
      };
      this.on('error', removeListeners);
      this.on('listening', onListening);
    }
    // As node:dgram, after the callback is attached (a bad fd throws and leaves the socket binding).
    if (port !== null && typeof port === 'object' && Number.isInteger(port.fd) && (port.fd as number) > 0 && (port.fd as number) <= 0x7fffffff) {
      this.#adopt(port.fd as number);
      return this;
    }
    if (startsOnLoop(this.#options, boundPort, exclusive)) {
      this.#loop.bind(host, exclusive, boundPort);
      return this;
    }
    this.#lookup(host || (this.type === 'udp4' ? '0.0.0.0' : '::'), (error, ip) => {
      if (this.#state === State.Closed) return;
      if (error) {
        this.#state = State.Unbound;
        this.emit('error', error);
        return;
      }
      this.#open(boundPort, ip, exclusive);
    });
    return this;
  }

  // bind({ fd }): as node:dgram, synchronous: 'listening' is emitted before bind() returns.
  #adopt(fd: number): void {
    const kind = handleType(fd);
    if (kind !== 'UDP') throw codeError(TypeError, 'ERR_INVALID_FD_TYPE', `Unsupported fd type: ${kind}`);
    let receiver: UdpReceiver | null;
    try {
      receiver = UdpReceiver._openNow(receiverOptions(this.#options, 0, this.type === 'udp4' ? '0.0.0.0' : '::'), '', fd);
    } catch (cause) {
      const e = cause as NodeJS.ErrnoException;
      if (e.errno === -22) throw codeError(TypeError, 'ERR_INVALID_FD_TYPE', `Unsupported fd type: ${unixSocket(fd) ? 'PIPE' : 'TCP'}`);
      throw typeof e.errno === 'number' ? systemError({ errno: e.errno, syscall: 'open' }) : e;
    }
    if (!receiver) throw codeError(Error, 'ERR_UDP_RING_UNSUPPORTED', "udp-ring/dgram: bind({ fd }) needs the native backend");
    this.#state = State.Binding;
    this.#listening(receiver);
  }

  /** Where this socket receives now: 'eventLoop' (node:dgram) or 'thread' (the ring); null before bind. */
  receivingOn(): 'eventLoop' | 'thread' | null {
    if (this.#inner) return this.#state === State.Bound ? 'eventLoop' : null;
    return this.#receiver ? 'thread' : null;
  }

  // In a cluster worker, unless exclusive: each worker binds its own socket (cluster.ts).
  #open(port: number, host: string, exclusive: boolean): void {
    const shared = sharesPort(port, exclusive);
    let receiver: UdpReceiver | null;
    try {
      receiver = UdpReceiver._openNow(receiverOptions(this.#options, port, host, shared), host);
    } catch (error) {
      this.#state = State.Unbound;
      this.emit('error', error);
      return;
    }
    if (receiver) {
      if (announces(exclusive)) announce(receiver, this.type);
      this.#listening(receiver);
      return;
    }
    // The dgram backend opens asynchronously.
    UdpReceiver.open(receiverOptions(this.#options, port, host, shared)).then((opened) => {
      if (this.#state === State.Closed) return void opened.close();
      if (announces(exclusive)) announce(opened, this.type);
      this.#listening(opened);
    }, (error: unknown) => {
      if (this.#state === State.Closed) return;
      this.#state = State.Unbound;
      this.emit('error', error);
    });
  }

  #listening(receiver: UdpReceiver): void {
    this.#receiver = receiver;
    this.#state = State.Bound;
    if (!this.#refed) receiver.unref();
    if (this.#options.sendBufferSize !== undefined) this.setSendBufferSize(this.#options.sendBufferSize);
    this.emit('listening');
    if (this.#receiver === receiver) this.#delivery.pump(receiver);
  }

  // node:dgram's enqueue: run once the socket listens; dropped if binding fails.
  #enqueue(run: () => void): void {
    if (this.#queue === undefined) {
      this.#queue = [];
      (this as EventEmitter).once(EventEmitter.errorMonitor, this.#onListenError);
      this.once('listening', this.#onListenSuccess);
    }
    this.#queue.push(run);
  }

  readonly #onListenSuccess = (): void => {
    (this as EventEmitter).removeListener(EventEmitter.errorMonitor, this.#onListenError);
    const queue = this.#queue ?? [];
    this.#queue = undefined;
    for (const run of queue) run();
  };

  readonly #onListenError = (): void => {
    this.removeListener('listening', this.#onListenSuccess);
    this.#queue = undefined;
  };

  #bound(syscall: string): UdpReceiver {
    if (this.#state === State.Closed) throw notRunning();
    if (!this.#receiver) throw systemError({ errno: 9, syscall }); // EBADF, as dgram before bind
    return this.#receiver;
  }

  #fallback(): DgramReceiver | null {
    const r = this.#receiver as unknown as { stats(): { backend: string } };
    return r && r.stats().backend === 'dgram' ? (r as unknown as DgramReceiver) : null;
  }

  #family(): 4 | 6 {
    return this.type === 'udp6' ? 6 : 4;
  }

  address(): AddressInfo {
    if (this.#inner) return this.#inner.address() as AddressInfo;
    return this.#bound('getsockname').address();
  }

  /**
   * As node:dgram's: receiving stops at once, no 'message' follows, and what
   * the ring still holds is discarded (counted in stats().discarded).
   * udp-ring's own `close({ drain: true }, callback)` stops receiving but
   * first emits what the ring holds as 'message' events, then 'close'.
   */
  close(callback?: () => void): this;
  /** udp-ring's own: `{ drain: true }` emits what the ring holds before 'close'. */
  close(options: CloseOptions, callback?: () => void): this;
  close(options?: CloseOptions | Callback, callback?: Callback): this {
    if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    const drain = closeOptions(options);
    // As node:dgram: the callback is attached first (a second close() throws after attaching it), and
    // a close() while sends wait for the bind runs after them.
    if (typeof callback === 'function') this.on('close', callback);
    if (this.#inner) {
      this.#loop.close();
      return this;
    }
    if (this.#queue !== undefined) {
      this.#queue.push(() => this.close((options ?? {}) as CloseOptions));
      return this;
    }
    if (this.#state === State.Closed) throw notRunning();
    this.#state = State.Closed;
    this.#loop.endHandover();
    const receiver = this.#receiver;
    this.#receiver = null;
    this.#closedReceiver = receiver;
    this.#path.cancelSends();
    if (drain && receiver) {
      this.#delivery.drain();
      void receiver.close({ drain: true }).then(() => process.nextTick(() => this.emit('close')));
      return this;
    }
    void receiver?.close();
    process.nextTick(() => this.emit('close'));
    return this;
  }

  [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === State.Closed) return Promise.resolve();
    return new Promise((resolve) => this.close(resolve));
  }

  ref(): this {
    this.#refed = true;
    this.#loop.ref();
    if (this.#inner) return this;
    this.#receiver?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    this.#loop.unref();
    if (this.#inner) return this;
    this.#receiver?.unref();
    return this;
  }
  setRecvBufferSize(size: number): void {
    return this.#sockopts.setRecvBufferSize(size);
  }

  setSendBufferSize(size: number): void {
    return this.#sockopts.setSendBufferSize(size);
  }

  getRecvBufferSize(): number {
    return this.#sockopts.getRecvBufferSize();
  }

  getSendBufferSize(): number {
    return this.#sockopts.getSendBufferSize();
  }

  setBroadcast(flag: boolean): void {
    return this.#sockopts.setBroadcast(flag);
  }

  setTTL(ttl: number): number {
    return this.#sockopts.setTTL(ttl);
  }

  setMulticastTTL(ttl: number): number {
    return this.#sockopts.setMulticastTTL(ttl);
  }

  setMulticastLoopback(flag: boolean): boolean {
    return this.#sockopts.setMulticastLoopback(flag);
  }

  setMulticastInterface(iface: string): void {
    return this.#sockopts.setMulticastInterface(iface);
  }

  addMembership(group: string, iface?: string): void {
    return this.#sockopts.addMembership(group, iface);
  }

  dropMembership(group: string, iface?: string): void {
    return this.#sockopts.dropMembership(group, iface);
  }

  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    return this.#sockopts.addSourceSpecificMembership(source, group, iface);
  }

  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    return this.#sockopts.dropSourceSpecificMembership(source, group, iface);
  }

  connect(port: number, address?: string, callback?: () => void): void;
  connect(port: number, callback: () => void): void;
  connect(port: number, address?: string | Callback, callback?: Callback): void {
    return this.#path.connect(port, address, callback);
  }

  disconnect(): void {
    return this.#path.disconnect();
  }

  remoteAddress(): AddressInfo {
    return this.#path.remoteAddress();
  }

  /**
   * node:dgram's send, argument for argument: send(msg[, offset, length][, port][, address][, callback]).
   * As with dgram, the callback runs on a later process.nextTick than any queued before the call,
   * a send the socket's close() overtakes is dropped without a word, and a full kernel send buffer
   * queues the datagram (getSendQueueSize/Count) instead of failing.
   */
  send(msg: Message, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: Message, port?: number, callback?: SendCallback): void;
  send(msg: Message, callback?: SendCallback): void;
  send(msg: Datagram, offset: number, length: number, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: Datagram, offset: number, length: number, port?: number, callback?: SendCallback): void;
  send(msg: Datagram, offset: number, length: number, callback?: SendCallback): void;
  send(buffer: unknown, offset?: unknown, length?: unknown, port?: unknown, address?: unknown, callback?: unknown): void {
    // eslint-disable-next-line prefer-rest-params
    if (this.#inner) return this.#inner.send(...(Array.from(arguments) as Parameters<NodeDgram.Socket['send']>));
    this.#path.send(buffer, offset, length, port, address, callback);
  }

  /** Bytes waiting for room in the kernel's send buffer (node:dgram's, libuv's send queue). */
  getSendQueueSize(): number {
    return this.#path.getSendQueueSize();
  }

  /** Datagrams waiting for room in the kernel's send buffer. */
  getSendQueueCount(): number {
    return this.#path.getSendQueueCount();
  }

  /**
   * udp-ring's counters for this socket (UdpReceiver.stats()); null before bind; final values after
   * close. While node:dgram still receives on the event loop: the same counters, from it (backend
   * 'dgram', no ring; kernelDrops and kernelQueueBytes from the socket's SO_MEMINFO); once on the
   * thread, what the event loop received is added in, so the counts go on without a gap.
   */
  stats(): ReceiverStats | null {
    if (this.#loop.closed) return this.#loop.stats();
    if (this.#inner) return this.#state === State.Bound ? this.#loop.stats() : null;
    const receiver = this.#receiver ?? this.#closedReceiver;
    if (!receiver) return null;
    return this.#loop.onThread(receiver.stats(), this.#delivery.unemitted);
  }
}
