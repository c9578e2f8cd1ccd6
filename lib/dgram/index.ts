// `udp-ring/dgram`: node:dgram's Socket over a UdpReceiver, for services that
// already use dgram. Receive runs on the native thread into the ring; each
// datagram is then copied into its own Buffer and emitted as 'message', as
// dgram does (that copy is the price of the familiar API; iterate a
// UdpReceiver to avoid it). Sends leave from the bound socket itself, so
// replies come from the port peers sent to.
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { systemError } from '../errors.js';
import type { DgramReceiver } from '../fallback.js';
import type { Backend, Overflow, YieldEvery } from '../options.js';
import { closeOptions, UdpReceiver, socketOptionNames, type AddressInfo, type CloseOptions } from '../receiver.js';
import * as sockopt from './sockopt.js';

export type SocketType = 'udp4' | 'udp6';

export interface SocketOptions {
  type: SocketType;
  reuseAddr?: boolean;
  reusePort?: boolean;
  ipv6Only?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
  signal?: AbortSignal;
  /** udp-ring's own: passed to UdpReceiver.open. */
  ringBytes?: number;
  maxMessageSize?: number;
  batchSize?: number;
  overflow?: Overflow;
  /** When 'message' events pause for the event loop's turn (UdpReceiver's option). */
  yieldEvery?: YieldEvery;
  backend?: Backend;
}

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

export interface BindOptions {
  port?: number;
  address?: string;
  exclusive?: boolean;
  fd?: number;
}

type Callback = () => void;
type SendCallback = (error: Error | null, bytes?: number) => void;
type Message = string | Uint8Array | DataView | ReadonlyArray<string | Uint8Array | DataView>;

function codeError(Kind: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): Error {
  const error = new Kind(message);
  (error as NodeJS.ErrnoException).code = code;
  return error;
}

function argType(name: string, expected: string, value: unknown): TypeError {
  const shown = value === null || value === undefined ? String(value) : `type ${typeof value} (${String(value)})`;
  return codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${shown}`) as TypeError;
}

function validPort(port: unknown, allowZero = true): number {
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw codeError(RangeError, 'ERR_SOCKET_BAD_PORT', `Port should be ${allowZero ? '>= 0' : '> 0'} and < 65536. Received ${String(port)}.`);
  }
  return n;
}

function notRunning(): Error {
  return codeError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
}

function toBuffer(message: Message): Buffer {
  const one = (part: string | Uint8Array | DataView): Buffer => {
    if (typeof part === 'string') return Buffer.from(part);
    if (part instanceof Uint8Array) return Buffer.from(part.buffer, part.byteOffset, part.byteLength);
    if (part instanceof DataView) return Buffer.from(part.buffer, part.byteOffset, part.byteLength);
    throw argType('buffer', 'of type string or an instance of Buffer, TypedArray, or DataView', part);
  };
  if (Array.isArray(message)) return Buffer.concat(message.map(one));
  return one(message as string | Uint8Array | DataView);
}

const enum State { Unbound, Binding, Bound, Closed }

export class Socket extends EventEmitter {
  readonly type: SocketType;
  readonly #options: SocketOptions;
  #state = State.Unbound;
  #receiver: UdpReceiver | null = null;
  // Kept after close, for stats().
  #closedReceiver: UdpReceiver | null = null;
  #draining = false;
  // Datagrams of a batch already taken from the ring when a listener closed the socket.
  #unemitted = 0;
  #refed = true;
  #remote: AddressInfo | null = null;
  #connecting = false;
  #watchingErrors = false;
  #afterBind: Array<() => void> = [];

  constructor(options: SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void) {
    super();
    this.type = options.type;
    this.#options = options;
    if (listener) this.on('message', listener);
    options.signal?.addEventListener('abort', () => {
      if (this.#state !== State.Closed) this.close();
    }, { once: true });
  }

  bind(port?: number | BindOptions | Callback, address?: string | Callback, callback?: Callback): this {
    if (this.#state !== State.Unbound) throw codeError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    let options: BindOptions;
    if (port !== null && typeof port === 'object') {
      options = port;
      if (typeof address === 'function') callback = address;
      if (options.fd !== undefined) {
        throw codeError(Error, 'ERR_UDP_RING_UNSUPPORTED', 'udp-ring/dgram: bind({ fd }) is not supported; bind a port');
      }
    } else {
      if (typeof port === 'function') {
        callback = port;
        port = undefined;
      }
      if (typeof address === 'function') {
        callback = address;
        address = undefined;
      }
      options = { port: port as number | undefined, address: address as string | undefined };
    }
    const boundPort = validPort(options.port ?? 0);
    if (options.address !== undefined && typeof options.address !== 'string') {
      throw argType('address', 'of type string', options.address);
    }
    if (callback) this.once('listening', callback);
    this.#state = State.Binding;
    void this.#open(boundPort, options.address);
    return this;
  }

  async #open(port: number, address: string | undefined): Promise<void> {
    const o = this.#options;
    let receiver: UdpReceiver;
    try {
      let host = address || (this.type === 'udp6' ? '::' : '0.0.0.0');
      if (isIP(host) === 0) host = (await lookup(host, { family: this.type === 'udp6' ? 6 : 4 })).address;
      receiver = await UdpReceiver.open({
        port, host, type: this.type, reuseAddr: o.reuseAddr, reusePort: o.reusePort, ipv6Only: o.ipv6Only,
        recvBufferSize: o.recvBufferSize, ringBytes: o.ringBytes, maxMessageSize: o.maxMessageSize,
        batchSize: o.batchSize, overflow: o.overflow, yieldEvery: o.yieldEvery, backend: o.backend,
      });
    } catch (error) {
      if (this.#state === State.Closed) return;
      this.#state = State.Unbound;
      this.emit('error', error);
      return;
    }
    if (this.#state === State.Closed) {
      await receiver.close();
      return;
    }
    this.#receiver = receiver;
    this.#state = State.Bound;
    if (!this.#refed) receiver.unref();
    if (o.sendBufferSize !== undefined) this.setSendBufferSize(o.sendBufferSize);
    this.emit('listening');
    const pending = this.#afterBind;
    this.#afterBind = [];
    for (const run of pending) run();
    void this.#pump(receiver);
  }

  async #pump(receiver: UdpReceiver): Promise<void> {
    try {
      for await (const batch of receiver) {
        // Read once: closing the receiver retires the batch (length 0).
        const length = batch.length;
        for (let i = 0; i < length; i++) {
          // Closed by a listener: as with dgram, no 'message' after close() (unless draining).
          if (this.#state === State.Closed && !this.#draining) {
            this.#unemitted += length - i;
            break;
          }
          const family = batch.family(i) === 6 ? 'IPv6' : 'IPv4';
          const rinfo: RemoteInfo = { address: batch.address(i), family, port: batch.port(i), size: batch.size(i) };
          // A connected dgram socket only hears its peer (the kernel filters; here the pump does).
          const remote = this.#remote;
          if (remote && (remote.port !== rinfo.port || remote.address !== rinfo.address)) continue;
          try {
            this.emit('message', batch.copy(i), rinfo);
          } catch (error) {
            // As with dgram, a throwing listener is an uncaught exception, not the end of receiving.
            process.nextTick(() => {
              throw error;
            });
          }
        }
      }
    } catch (error) {
      if (this.#state !== State.Closed) this.emit('error', error);
    }
  }

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
    return this.#bound('getsockname').address();
  }

  /**
   * As node:dgram's: receiving stops at once, no 'message' follows, and what
   * the ring still holds is discarded (counted in stats().discarded).
   * udp-ring's own `close({ drain: true }, callback)` stops receiving but
   * first emits what the ring holds as 'message' events, then 'close'.
   */
  close(options?: CloseOptions | Callback, callback?: Callback): this {
    if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    if (this.#state === State.Closed) throw notRunning();
    const drain = closeOptions(options);
    if (typeof callback === 'function') this.once('close', callback);
    this.#state = State.Closed;
    const receiver = this.#receiver;
    this.#receiver = null;
    this.#closedReceiver = receiver;
    this.#afterBind = [];
    if (drain && receiver) {
      this.#draining = true;
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
    this.#receiver?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    this.#receiver?.unref();
    return this;
  }

  #option(syscall: string, apply: (setter: sockopt.OptionSetter, names: sockopt.SocketOptionNames) => void,
    viaDgram: (socket: import('node:dgram').Socket) => void): void {
    const receiver = this.#bound(syscall);
    const fallback = this.#fallback();
    if (fallback) viaDgram(fallback._socket);
    else apply(receiver._socketOptions(), socketOptionNames());
  }

  setRecvBufferSize(size: number): void {
    this.#bufferSize('recv', size);
  }

  setSendBufferSize(size: number): void {
    this.#bufferSize('send', size);
  }

  getRecvBufferSize(): number {
    return this.#bufferSize('recv');
  }

  getSendBufferSize(): number {
    return this.#bufferSize('send');
  }

  #bufferSize(which: 'recv' | 'send', size?: number): number {
    if (size !== undefined && (typeof size !== 'number' || !Number.isInteger(size) || size < 0)) {
      throw argType('size', 'of type number', size);
    }
    const fail = (errno: number) => {
      const error = codeError(Error, 'ERR_SOCKET_BUFFER_SIZE', `Could not get or set buffer size: uv_${which}_buffer_size returned ${errno === 9 ? 'EBADF' : 'error'}`);
      (error as NodeJS.ErrnoException).syscall = `uv_${which}_buffer_size`;
      return error;
    };
    if (this.#state === State.Closed || !this.#receiver) throw fail(9);
    const fallback = this.#fallback();
    if (fallback) {
      const socket = fallback._socket;
      if (size !== undefined) which === 'recv' ? socket.setRecvBufferSize(size) : socket.setSendBufferSize(size);
      return which === 'recv' ? socket.getRecvBufferSize() : socket.getSendBufferSize();
    }
    const names = socketOptionNames();
    const setter = this.#receiver._socketOptions();
    const name = which === 'recv' ? names.SO_RCVBUF : names.SO_SNDBUF;
    try {
      if (size !== undefined) setter.setOption(names.SOL_SOCKET, name, size);
      return setter.getOption(names.SOL_SOCKET, name);
    } catch {
      throw fail(0);
    }
  }

  setBroadcast(flag: boolean): void {
    this.#option('setBroadcast', (s, n) => sockopt.setBroadcast(s, n, !!flag), (d) => d.setBroadcast(flag));
  }

  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw argType('ttl', 'of type number', ttl);
    this.#option('setTTL', (s, n) => sockopt.setTTL(s, n, this.#family(), ttl), (d) => d.setTTL(ttl));
    return ttl;
  }

  setMulticastTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw argType('ttl', 'of type number', ttl);
    this.#option('setMulticastTTL', (s, n) => sockopt.setMulticastTTL(s, n, this.#family(), ttl), (d) => d.setMulticastTTL(ttl));
    return ttl;
  }

  setMulticastLoopback(flag: boolean): boolean {
    this.#option('setMulticastLoopback', (s, n) => sockopt.setMulticastLoopback(s, n, this.#family(), !!flag),
      (d) => d.setMulticastLoopback(flag));
    return flag;
  }

  setMulticastInterface(iface: string): void {
    if (typeof iface !== 'string') throw argType('interfaceAddress', 'of type string', iface);
    this.#option('setMulticastInterface', (s, n) => sockopt.setMulticastInterface(s, n, this.#family(), iface),
      (d) => d.setMulticastInterface(iface));
  }

  addMembership(group: string, iface?: string): void {
    if (typeof group !== 'string') throw argType('multicastAddress', 'of type string', group);
    this.#bound('addMembership').addMembership(group, iface);
  }

  dropMembership(group: string, iface?: string): void {
    if (typeof group !== 'string') throw argType('multicastAddress', 'of type string', group);
    this.#bound('dropMembership').dropMembership(group, iface);
  }

  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    if (typeof source !== 'string') throw argType('sourceAddress', 'of type string', source);
    if (typeof group !== 'string') throw argType('groupAddress', 'of type string', group);
    this.#bound('addSourceSpecificMembership').addSourceSpecificMembership(source, group, iface);
  }

  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    if (typeof source !== 'string') throw argType('sourceAddress', 'of type string', source);
    if (typeof group !== 'string') throw argType('groupAddress', 'of type string', group);
    this.#bound('dropSourceSpecificMembership').dropSourceSpecificMembership(source, group, iface);
  }

  connect(port: number, address?: string | Callback, callback?: Callback): void {
    const remotePort = validPort(port, false);
    if (typeof address === 'function') {
      callback = address;
      address = undefined;
    }
    if (this.#remote || this.#connecting) throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    if (this.#state === State.Closed) throw notRunning();
    if (callback) this.once('connect', callback);
    this.#connecting = true;
    const host = (address as string | undefined) ?? (this.type === 'udp6' ? '::1' : '127.0.0.1');
    const finish = async () => {
      try {
        await null; // 'connect' is emitted asynchronously, as dgram does
        const resolved = isIP(host) ? host : (await lookup(host, { family: this.#family() })).address;
        if (!this.#connecting) return;
        if (this.#receiver) {
          // Connected in the kernel, as dgram's socket is: an ICMP error for what is sent to the
          // peer comes back on the next send, or on a receive, which emits it as 'error'.
          const receiver = this.#receiver;
          const fallback = this.#fallback();
          if (!this.#watchingErrors) {
            this.#watchingErrors = true;
            (fallback ?? receiver)._watchSocketErrors((error) => {
              if (this.#state !== State.Closed && this.#receiver === receiver) this.emit('error', error);
            });
          }
          if (fallback) await fallback._connect({ address: resolved, port: remotePort });
          else receiver._connect({ address: resolved, port: remotePort });
          if (!this.#connecting) return;
        }
        this.#remote = { address: resolved, family: this.type === 'udp6' ? 'IPv6' : 'IPv4', port: remotePort };
        this.#connecting = false;
        this.emit('connect');
      } catch (error) {
        this.#connecting = false;
        this.emit('error', error);
      }
    };
    this.#whenBound(() => void finish());
  }

  disconnect(): void {
    if (this.#state === State.Closed) throw notRunning();
    if (!this.#remote) throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    this.#remote = null;
    const fallback = this.#fallback();
    if (fallback) void fallback._connect(null);
    else this.#receiver?._connect(null);
  }

  remoteAddress(): AddressInfo {
    if (this.#state === State.Closed) throw notRunning();
    if (!this.#remote) throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    return { ...this.#remote };
  }

  // Like dgram, using an unbound socket binds it to a random port first.
  #whenBound(run: () => void): void {
    if (this.#state === State.Bound) return run();
    this.#afterBind.push(run);
    if (this.#state === State.Unbound) this.bind(0);
  }

  send(message: Message, ...rest: unknown[]): void {
    if (this.#state === State.Closed) throw notRunning();
    let callback: SendCallback | undefined;
    if (typeof rest[rest.length - 1] === 'function') callback = rest.pop() as SendCallback;
    let data = toBuffer(message);
    // send(msg, offset, length, port?, address?) when offset and length are numbers.
    if (typeof message !== 'object' || !Array.isArray(message)) {
      if (typeof rest[0] === 'number' && typeof rest[1] === 'number' && (rest.length > 2 || this.#remote)) {
        const [offset, length] = rest.splice(0, 2) as [number, number];
        data = data.subarray(offset, offset + length);
      }
    }
    let port: number;
    let address: string | undefined;
    if (this.#remote) {
      if (rest[0] !== undefined && rest[0] !== null) throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
      ({ port } = this.#remote);
      address = this.#remote.address;
    } else {
      port = validPort(rest[0], false);
      if (rest[1] !== undefined && typeof rest[1] !== 'string') throw argType('address', 'of type string', rest[1]);
      address = rest[1] as string | undefined;
    }
    const host = address || (this.type === 'udp6' ? '::1' : '127.0.0.1');
    const deliver = async () => {
      try {
        await null; // callbacks run asynchronously, as dgram's do
        const resolved = isIP(host) ? host : (await lookup(host, { family: this.#family() })).address;
        if (this.#state !== State.Bound) throw notRunning();
        const fallback = this.#fallback();
        const bytes = fallback
          ? await new Promise<number>((resolve, reject) => {
            const done = (error: Error | null, n: number) => (error ? reject(error) : resolve(n));
            // A connected node:dgram socket takes no address.
            if (this.#remote) fallback._socket.send(data, done);
            else fallback._socket.send(data, port, resolved, done);
          })
          : this.#receiver!._sendTo(data, resolved, port);
        callback?.(null, bytes);
      } catch (caught) {
        let error = caught as NodeJS.ErrnoException;
        // As dgram's: a connected socket's send error names no address ('send ECONNREFUSED').
        if (this.#remote && error.syscall === 'send' && typeof error.errno === 'number') error = systemError({ errno: error.errno, syscall: 'send' });
        if (callback) callback(error);
        else this.emit('error', error);
      }
    };
    this.#whenBound(() => void deliver());
  }

  /** udp-ring's counters for this socket (UdpReceiver.stats()); null before bind; final values after close. */
  stats(): ReturnType<UdpReceiver['stats']> | null {
    const receiver = this.#receiver ?? this.#closedReceiver;
    if (!receiver) return null;
    const stats = receiver.stats();
    // Taken from the ring but never emitted: discarded, not delivered.
    return { ...stats, delivered: stats.delivered - this.#unemitted, discarded: stats.discarded + this.#unemitted };
  }
}

export function createSocket(
  type: SocketType | SocketOptions,
  listener?: (msg: Buffer, rinfo: RemoteInfo) => void,
): Socket {
  const options: SocketOptions = typeof type === 'string' ? { type } : { ...type };
  if (options === null || (options.type !== 'udp4' && options.type !== 'udp6')) {
    throw codeError(TypeError, 'ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6');
  }
  if (listener !== undefined && typeof listener !== 'function') throw argType('listener', 'of type function', listener);
  return new Socket(options, listener);
}

export default { createSocket, Socket };
