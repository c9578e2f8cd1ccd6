// The send path: node:dgram's connect(), disconnect() and send() on a facade socket, their
// arguments read as node:dgram reads them, the connected peer (which also filters what the socket
// emits), and sends through the native receiver's socket (send-queue.ts when the kernel's buffer
// is full) or the dgram backend's.
import type * as NodeDgram from 'node:dgram';
import { systemError } from '../../core/errors.js';
import type { AddressInfo, UdpReceiver } from '../../core/receiver.js';
import type { DgramReceiver } from '../../backends/dgram/receiver.js';
import { argType, codeError, notRunning, validPort } from './errors.js';
import type { SocketHost } from './host.js';
import { SendQueue, type QueuedSend } from './send-queue.js';
import { Connect, State, type Callback, type Part, type SendCallback } from './types.js';

export const partTypes = 'of type string or an instance of Buffer, TypedArray, or DataView';

// Any ArrayBufferView (every TypedArray, DataView), viewed as a Buffer without a copy.
export function view(part: ArrayBufferView): Buffer {
  return Buffer.from(part.buffer, part.byteOffset, part.byteLength);
}

// node:dgram's sliceBuffer: offsets as uint32, bounds checked, a view (no copy).
export function sliceBuffer(buffer: unknown, offset: unknown, length: unknown): Buffer {
  let bytes: Buffer;
  if (typeof buffer === 'string') bytes = Buffer.from(buffer);
  else if (ArrayBuffer.isView(buffer)) bytes = view(buffer);
  else throw argType('buffer', partTypes, buffer);
  const start = (offset as number) >>> 0;
  const count = (length as number) >>> 0;
  if (start > bytes.byteLength) throw codeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  if (start + count > bytes.byteLength) throw codeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  return bytes.subarray(start, start + count);
}

export function partsOf(buffer: unknown): Part[] {
  if (!Array.isArray(buffer)) {
    if (typeof buffer === 'string' || ArrayBuffer.isView(buffer)) return [buffer];
    throw argType('buffer', partTypes, buffer);
  }
  for (const part of buffer) {
    if (typeof part !== 'string' && !ArrayBuffer.isView(part)) throw argType('buffer list arguments', partTypes, buffer);
  }
  return buffer as Part[];
}

export function joined(parts: Part[]): Buffer {
  const one = (part: Part) => (typeof part === 'string' ? Buffer.from(part) : view(part));
  return parts.length === 1 ? one(parts[0]) : Buffer.concat(parts.map(one));
}

/** What send() was asked, its overloads resolved and checked: the parts, where to, the callback. */
export interface SendArguments {
  parts: Part[];
  port: unknown;
  address: unknown;
  callback: SendCallback | undefined;
}

// node:dgram's send(msg[, offset, length][, port][, address][, callback]), for a socket connected or not.
export function sendArguments(connected: boolean, buffer: unknown, offset: unknown, length: unknown, port: unknown,
  address: unknown, callback: unknown): SendArguments {
  let parts: Part[];
  if (!connected) {
    if (address || (port && typeof port !== 'function')) buffer = sliceBuffer(buffer, offset, length);
    else {
      callback = port;
      port = offset;
      address = length;
    }
  } else {
    if (typeof length === 'number') {
      buffer = sliceBuffer(buffer, offset, length);
      if (typeof port === 'function') {
        callback = port;
        port = null;
      }
    } else {
      callback = offset;
    }
    if (port || address) throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
  }
  parts = partsOf(buffer);
  if (!connected) port = validPort(port, false);
  if (typeof callback !== 'function') callback = undefined;
  if (typeof address === 'function') {
    callback = address;
    address = undefined;
  } else if (address !== undefined && address !== null && typeof address !== 'string') {
    throw argType('address', 'of type string', address);
  }
  return { parts, port, address, callback: callback as SendCallback | undefined };
}

export class SendPath {
  readonly #host: SocketHost;
  readonly #socket: SocketHost['socket'];
  #connectState = Connect.Disconnected;
  #remote: AddressInfo | null = null;
  #watchingErrors = false;
  // Sends that met a full kernel send buffer, retried in order, as libuv queues them.
  readonly #sendQueue: SendQueue;

  constructor(host: SocketHost) {
    this.#host = host;
    this.#socket = host.socket;
    this.#sendQueue = new SendQueue({
      receiver: () => host.receiver(),
      connected: () => this.#connectState === Connect.Connected,
      refed: () => host.refed(),
    });
  }

  /** The connected peer: the socket emits only what it sends. */
  get remote(): AddressInfo | null {
    return this.#remote;
  }

  get #inner(): NodeDgram.Socket | null {
    return this.#host.inner();
  }

  get #state(): State {
    return this.#host.state();
  }

  get #receiver(): UdpReceiver | null {
    return this.#host.receiver();
  }

  #fallback(): DgramReceiver | null {
    return this.#host.fallback();
  }

  #enqueue(run: () => void): void {
    this.#host.enqueue(run);
  }

  #lookup(address: string | null | undefined, callback: (error: Error | null, ip: string) => void): void {
    this.#host.lookup(address, callback);
  }

  connect(port: number, address?: string | Callback, callback?: Callback): void {
    if (this.#inner) return this.#inner.connect(port, address as string, callback);
    const remotePort = validPort(port, false);
    if (typeof address === 'function') {
      callback = address;
      address = '';
    } else if (address === undefined) {
      address = '';
    }
    if (typeof address !== 'string') throw argType('address', 'of type string', address);
    if (this.#connectState !== Connect.Disconnected) throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    if (this.#state === State.Closed) throw notRunning();
    this.#connectState = Connect.Connecting;
    if (this.#state === State.Unbound) this.#socket.bind({ port: 0, exclusive: true }, null as unknown as undefined);
    const inner = this.#inner as NodeDgram.Socket | null; // bind() may have made it
    if (inner) {
      this.#connectState = Connect.Disconnected;
      return inner.connect(remotePort, address, callback);
    }
    const host = address;
    const run = () => {
      if (callback) this.#socket.once('connect', callback);
      this.#lookup(host, (error, ip) => this.#doConnect(error, ip, host, remotePort, callback));
    };
    if (this.#state !== State.Bound) this.#enqueue(run);
    else run();
  }

  #doConnect(error: Error | null, ip: string, address: string, port: number, callback: Callback | undefined): void {
    const receiver = this.#receiver;
    if (!receiver) return;
    const fallback = this.#fallback();
    const connected = (failure: Error | null) => {
      if (this.#receiver !== receiver) return;
      if (failure) {
        this.#connectState = Connect.Disconnected;
        process.nextTick(() => {
          if (callback) {
            this.#socket.removeListener('connect', callback);
            (callback as unknown as (e: Error) => void)(failure);
          } else this.#socket.emit('error', failure);
        });
        return;
      }
      this.#remote = { address: ip, family: this.#host.type === 'udp6' ? 'IPv6' : 'IPv4', port };
      this.#connectState = Connect.Connected;
      process.nextTick(() => this.#socket.emit('connect'));
    };
    if (error) return connected(error);
    // Connected in the kernel, as dgram's socket is: an ICMP error for what is sent to the
    // peer comes back on the next send, or on a receive, which emits it as 'error'.
    if (!this.#watchingErrors) {
      this.#watchingErrors = true;
      (fallback ?? receiver)._watchSocketErrors((failure) => {
        if (this.#state !== State.Closed && this.#receiver === receiver) this.#socket.emit('error', failure);
      });
    }
    if (fallback) {
      fallback._connect({ address: ip, port }).then(() => connected(null), (failure: Error) => connected(failure));
      return;
    }
    try {
      receiver._connect({ address: ip, port });
    } catch (failure) {
      const e = failure as NodeJS.ErrnoException;
      return connected(typeof e.errno === 'number' ? systemError({ errno: e.errno, syscall: 'connect', address, port }) : e);
    }
    connected(null);
  }

  disconnect(): void {
    if (this.#inner) return this.#inner.disconnect();
    if (this.#state === State.Closed) throw notRunning();
    if (this.#connectState !== Connect.Connected) throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    this.#remote = null;
    this.#connectState = Connect.Disconnected;
    const fallback = this.#fallback();
    if (fallback) void fallback._connect(null);
    else this.#receiver?._connect(null);
  }

  remoteAddress(): AddressInfo {
    if (this.#inner) return this.#inner.remoteAddress() as AddressInfo;
    if (this.#state === State.Closed) throw notRunning();
    if (this.#connectState !== Connect.Connected || !this.#remote) throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    return { ...this.#remote };
  }

  send(buffer: unknown, offset?: unknown, length?: unknown, port?: unknown, address?: unknown, callback?: unknown): void {
    const connected = this.#connectState === Connect.Connected;
    const checked = sendArguments(connected, buffer, offset, length, port, address, callback);
    let parts = checked.parts;
    ({ port, address, callback } = checked);
    if (this.#state === State.Closed) throw notRunning();
    if (this.#state === State.Unbound) this.#socket.bind({ port: 0, exclusive: true }, null as unknown as undefined);
    const inner = this.#inner as NodeDgram.Socket | null; // bind() may have made it
    if (inner) return inner.send(parts, port as number, address as string, callback as SendCallback);
    if (parts.length === 0) parts = [Buffer.alloc(0)];
    const done = callback as SendCallback | undefined;
    if (this.#state !== State.Bound) {
      const queuedParts = parts;
      const queuedPort = port;
      const queuedAddress = address;
      this.#enqueue(() => this.#socket.send(queuedParts, queuedPort as number, queuedAddress as string, done));
      return;
    }
    const data = joined(parts);
    const host = address as string | null | undefined;
    if (connected) this.#doSend(null, '', data, host, 0, done);
    else this.#lookup(host, (error, ip) => this.#doSend(error, ip, data, host, port as number, done));
  }

  #doSend(error: Error | null, ip: string, data: Buffer, address: string | null | undefined, port: number,
    callback: SendCallback | undefined): void {
    if (error) {
      if (callback) process.nextTick(callback, error);
      else process.nextTick(() => this.#socket.emit('error', error));
      return;
    }
    // Closed meanwhile: dropped quietly, as node:dgram drops it.
    const receiver = this.#receiver;
    if (!receiver) return;
    const remote = this.#connectState === Connect.Connected ? this.#remote : null;
    const fallback = this.#fallback();
    if (fallback) {
      const after = (failure: Error | null, bytes: number) => callback?.(failure, bytes);
      if (remote) fallback._socket.send(data, after);
      else fallback._socket.send(data, port, ip, after);
      return;
    }
    const to = remote ? remote.address : ip;
    const toPort = remote ? remote.port : port;
    const entry: QueuedSend = { data, address: to, port: toPort, source: this.#host.replySource(to, toPort), callback };
    this.#sendQueue.send(receiver, entry);
    void address;
  }

  /** Bytes waiting for room in the kernel's send buffer (node:dgram's, libuv's send queue). */
  getSendQueueSize(): number {
    if (this.#inner) return this.#inner.getSendQueueSize();
    return this.#sendQueue.bytes;
  }

  /** Datagrams waiting for room in the kernel's send buffer. */
  getSendQueueCount(): number {
    if (this.#inner) return this.#inner.getSendQueueCount();
    return this.#sendQueue.count;
  }

  // As libuv's close: sends still queued fail with ECANCELED.
  cancelSends(): void {
    this.#sendQueue.cancelSends();
  }
}
