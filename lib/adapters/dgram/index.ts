// `udp-ring/dgram`: node:dgram's Socket over a UdpReceiver, for services that
// already use dgram. Receive runs on the native thread into the ring; each
// datagram is then copied into its own Buffer and emitted as 'message', as
// dgram does (that copy is the price of the familiar API; iterate a
// UdpReceiver to avoid it). Sends leave from the bound socket itself, so
// replies come from the port peers sent to.
import cluster from 'node:cluster';
import * as dns from 'node:dns';
import * as nodeDgram from 'node:dgram';
import type * as NodeDgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { fstatSync, readFileSync, type Stats } from 'node:fs';
import { isatty } from 'node:tty';
import { isIP } from 'node:net';
import { getSystemErrorMap, inspect } from 'node:util';
import type { Batch } from '../../core/batch.js';
import { systemError } from '../../core/errors.js';
import type { DgramReceiver } from '../../backends/dgram/receiver.js';
import type { BackendChoice, Overflow, YieldEvery } from '../../core/options.js';
import { readRmemMax } from '../../core/kernel.js';
import { native } from '../../backends/native/addon.js';
import { socketOptionNames } from '../../backends/native/ring-reader.js';
import { closeOptions, UdpReceiver, type AddressInfo, type CloseOptions, type ReceiverStats } from '../../core/receiver.js';
import * as sockopt from '../../backends/native/sockopt.js';
import '../../backends/index.js';

export type SocketType = 'udp4' | 'udp6';

// Types come from the user's own @types/node, so a facade socket type-checks wherever a
// node:dgram Socket does (the message Buffer type, RemoteInfo, lookup differ between versions).
/** A 'message' listener, exactly as node:dgram types it. */
export type MessageListener = NonNullable<Parameters<typeof NodeDgram.createSocket>[1]>;
export type RemoteInfo = NodeDgram.RemoteInfo;
export type BindOptions = NodeDgram.BindOptions;

/** node:dgram's `lookup` as Node calls it: lookup(hostname, family, callback), as dns.lookup. */
type LookupFunction = (hostname: string, family: number,
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

type Callback = () => void;
type SendCallback = (error: Error | null, bytes: number) => void;
type Message = string | NodeJS.ArrayBufferView | readonly any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
type Datagram = string | NodeJS.ArrayBufferView;
type Part = string | ArrayBufferView;

function codeError(Kind: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): Error {
  const error = new Kind(message);
  (error as NodeJS.ErrnoException).code = code;
  return error;
}

// Node's determineSpecificType: how ERR_INVALID_ARG_TYPE and ERR_SOCKET_BAD_PORT show a value.
function received(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'function') return `function ${(value as { name?: string }).name}`;
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name;
    return name ? `an instance of ${name}` : inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

function argType(name: string, expected: string, value: unknown): TypeError {
  return codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${received(value)}`) as TypeError;
}

function validPort(port: unknown, allowZero = true): number {
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw codeError(RangeError, 'ERR_SOCKET_BAD_PORT', `Port should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${received(port)}.`);
  }
  return n;
}

function notRunning(): Error {
  return codeError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
}

const partTypes = 'of type string or an instance of Buffer, TypedArray, or DataView';

// Any ArrayBufferView (every TypedArray, DataView), viewed as a Buffer without a copy.
function view(part: ArrayBufferView): Buffer {
  return Buffer.from(part.buffer, part.byteOffset, part.byteLength);
}

// node:dgram's sliceBuffer: offsets as uint32, bounds checked, a view (no copy).
function sliceBuffer(buffer: unknown, offset: unknown, length: unknown): Buffer {
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

function partsOf(buffer: unknown): Part[] {
  if (!Array.isArray(buffer)) {
    if (typeof buffer === 'string' || ArrayBuffer.isView(buffer)) return [buffer];
    throw argType('buffer', partTypes, buffer);
  }
  for (const part of buffer) {
    if (typeof part !== 'string' && !ArrayBuffer.isView(part)) throw argType('buffer list arguments', partTypes, buffer);
  }
  return buffer as Part[];
}

function joined(parts: Part[]): Buffer {
  const one = (part: Part) => (typeof part === 'string' ? Buffer.from(part) : view(part));
  return parts.length === 1 ? one(parts[0]) : Buffer.concat(parts.map(one));
}

// node:dgram's buffer-size errors are SystemErrors (code ERR_SOCKET_BUFFER_SIZE, with `info` and
// `errno`). Node does not export the class; one is taken from node:dgram itself, once.
let BufferSizeError: (new (context: object) => Error) | null | undefined;

function bufferSizeError(errno: number, syscall: string): Error {
  if (BufferSizeError === undefined) {
    BufferSizeError = null;
    const probe = nodeDgram.createSocket('udp4');
    try {
      probe.getRecvBufferSize(); // unbound: throws EBADF
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_SOCKET_BUFFER_SIZE') {
        BufferSizeError = (error as Error).constructor as new (context: object) => Error;
      }
    }
    probe.close();
  }
  const [code, message] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error'];
  const context = { errno: -errno, code, message, syscall };
  if (BufferSizeError) return new BufferSizeError(context);
  const error = codeError(Error, 'ERR_SOCKET_BUFFER_SIZE', `Could not get or set buffer size: ${syscall} returned ${code} (${message})`);
  Object.assign(error, { info: context, errno: -errno, syscall });
  return error;
}

// libuv's uv_guess_handle, as far as bind({ fd }) needs it: a socket is taken as UDP here and
// the native open refuses a stream socket ('TCP').
function handleType(fd: number): string {
  let stats: Stats;
  try {
    stats = fstatSync(fd);
  } catch {
    return 'UNKNOWN';
  }
  if (stats.isSocket()) return 'UDP';
  if (stats.isFile()) return 'FILE';
  if (stats.isFIFO()) return 'PIPE';
  if (stats.isCharacterDevice()) return isatty(fd) ? 'TTY' : 'FILE';
  return 'UNKNOWN';
}

// A stream socket that libuv calls a pipe (AF_UNIX): its inode is listed in /proc/net/unix.
function unixSocket(fd: number): boolean {
  try {
    const inode = String(fstatSync(fd).ino);
    return readFileSync('/proc/net/unix', 'utf8').split('\n').some((line) => line.trim().split(/\s+/)[6] === inode);
  } catch {
    return false;
  }
}

// A socket bound to an ephemeral port (port 0, or bound by its first send or connect) is a
// client: a DNS query, a statsd or syslog sender. When it moves to the thread its ring is small,
// unless it has proved busy (below); a server (a port chosen) gets UdpReceiver's default ring.
const clientRingBytes = 1024 * 1024;
const clientBatchSize = 8;

// An event-loop socket moves to the thread when this many datagrams arrive within one second,
// or this many in one turn of the event loop (libuv reads at most 32 per readiness: the queue
// held more than one read loop takes, so the loop is behind).
const promoteRate = 100;
const promoteBurst = 32;
// A client moves with the full ring, not the small one, when it has proved busy: the burst above,
// kernel drops already, or its promoteRate datagrams came within this long (1000/s or more).
const busyWindowMs = 100;

// Runs fn once the event loop has polled for I/O at least once: a check-phase callback queued
// from the check phase itself runs after the next poll.
function afterPoll(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}

// The fd of a node:dgram socket, without the deprecated _handle getter (DEP0112): node:dgram keeps
// its handle in a symbol-keyed state object. 0 when not found (the socket then stays on the loop).
function dgramFd(socket: NodeDgram.Socket): number {
  for (const key of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[key];
    const fd = state && typeof state === 'object' ? state.handle?.fd : undefined;
    if (typeof fd === 'number') return fd;
  }
  return 0;
}

const enum State { Unbound, Binding, Bound, Closed }
const enum Connect { Disconnected, Connecting, Connected }

interface QueuedSend {
  data: Buffer;
  address: string;
  port: number;
  /** The local address to send from (replyFromDestination), or undefined: the route's choice. */
  source: string | undefined;
  callback: SendCallback | undefined;
}

const EAGAIN = 11;

// replyFromDestination: the peers whose destination is remembered, oldest forgotten first.
const maxReplyPeers = 4096;

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
  #draining = false;
  // Datagrams of a batch already taken from the ring when a listener closed the socket.
  #unemitted = 0;
  #refed = true;
  #connectState = Connect.Disconnected;
  #remote: AddressInfo | null = null;
  #watchingErrors = false;
  // node:dgram's queue: what was asked of the socket while it was binding, run once it listens.
  #queue: Array<() => void> | undefined;
  // Sends that met a full kernel send buffer, retried in order, as libuv queues them.
  #sendQueue: QueuedSend[] = [];
  #sendQueueBytes = 0;
  #sendRetry: NodeJS.Timeout | null = null;
  // Event-loop receive: a node:dgram socket does everything until the socket moves to the thread.
  #inner: NodeDgram.Socket | null = null;
  #windowStart = 0;
  #windowCount = 0;
  #turnCount = 0;
  #turnPending = false;
  #requestedPort = 0;
  // The event-loop socket that still receives until the thread's first batch.
  #handover: NodeDgram.Socket | null = null;
  // What node:dgram received on the event loop (each one emitted), its socket's fd and kernel drops
  // when last read: stats() has them before the move and adds them to the ring's after it.
  #loopPackets = 0;
  #loopBytes = 0;
  #loopFd = 0;
  #loopDrops = 0;
  // A socket closed while on the event loop: its kernel drops and what the close threw away.
  #loopFinal: { kernelDrops: number; discarded: number; recvBufferSize: number } | null = null;
  // replyFromDestination: "address port" of each peer heard from -> the local address it sent to.
  readonly #replySources: Map<string, string> | null;

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
    this.#replySources = options.replyFromDestination ? new Map() : null;
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
    if (this.#startsOnLoop(boundPort, exclusive)) {
      this.#bindOnLoop(host, exclusive, boundPort);
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
      receiver = UdpReceiver._openNow(this.#receiverOptions(0, this.type === 'udp4' ? '0.0.0.0' : '::'), '', fd);
    } catch (cause) {
      const e = cause as NodeJS.ErrnoException;
      if (e.errno === -22) throw codeError(TypeError, 'ERR_INVALID_FD_TYPE', `Unsupported fd type: ${unixSocket(fd) ? 'PIPE' : 'TCP'}`);
      throw typeof e.errno === 'number' ? systemError({ errno: e.errno, syscall: 'open' }) : e;
    }
    if (!receiver) throw codeError(Error, 'ERR_UDP_RING_UNSUPPORTED', "udp-ring/dgram: bind({ fd }) needs the native backend");
    this.#state = State.Binding;
    this.#listening(receiver);
  }

  // receive: 'auto': every socket starts on the event loop, except a cluster worker's on a named
  // port (which binds its own socket with SO_REUSEPORT, on the thread) and a socket given
  // udp-ring's ring or backend options.
  #startsOnLoop(port: number, exclusive: boolean): boolean {
    const o = this.#options;
    if (port !== 0 && cluster.isWorker && !exclusive) return false;
    return o.receive !== 'thread' && o.ringBytes === undefined && o.backend === undefined && !o.reusePort && !o.replyFromDestination;
  }

  // The node:dgram socket that receives on the event loop; its events become this socket's.
  #bindOnLoop(host: string | null | undefined, exclusive: boolean, port: number): void {
    this.#requestedPort = port;
    const o = this.#options;
    const inner = nodeDgram.createSocket({
      type: this.type, reuseAddr: o.reuseAddr, ipv6Only: o.ipv6Only, recvBufferSize: o.recvBufferSize,
      sendBufferSize: o.sendBufferSize, ...(o.lookup ? { lookup: o.lookup } : {}),
    });
    this.#inner = inner;
    if (!this.#refed) inner.unref();
    inner.on('listening', () => {
      this.#loopFd = dgramFd(inner);
      this.#state = State.Bound;
      this.emit('listening');
      // A server (a port named) starts its thread right away, in the background: the kernel buffer
      // grows then, and the ring is prefaulted while node:dgram still receives. Not within this
      // tick: opening blocks the event loop (~0.2 ms), so it waits until the loop has polled once,
      // and a request sent at 'listening' is answered first. A client moves only when traffic
      // calls for it.
      if (port !== 0) afterPoll(() => this.#inner === inner && this.#promote());
    });
    inner.on('error', (error) => {
      if (this.#state === State.Binding) this.#state = State.Unbound;
      this.emit('error', error);
    });
    inner.on('connect', () => this.emit('connect'));
    inner.on('close', () => {
      this.#state = State.Closed;
      this.emit('close');
    });
    inner.on('message', (msg, rinfo) => {
      this.#loopPackets++;
      this.#loopBytes += msg.byteLength;
      try {
        this.emit('message', msg, rinfo);
      } finally {
        if (this.#inner === inner) this.#countTraffic();
      }
    });
    inner.bind({ port, address: host ?? undefined, exclusive });
  }

  #countTraffic(): void {
    if (++this.#turnCount === 1 && !this.#turnPending) {
      this.#turnPending = true;
      setImmediate(() => {
        this.#turnCount = 0;
        this.#turnPending = false;
      }).unref();
    }
    const now = performance.now();
    // The first datagram opens a window (performance.now() counts from the process's start, so a
    // window anchored at 0 would end early in a young process).
    if (this.#windowCount === 0 || now - this.#windowStart > 1000) {
      this.#windowStart = now;
      this.#windowCount = 0;
    }
    const burst = this.#turnCount >= promoteBurst;
    const rate = ++this.#windowCount >= promoteRate;
    // At once, from inside node:dgram's read loop: safe, as the node:dgram socket stays open (and
    // keeps receiving) until the thread's first batch.
    if (burst || rate) this.#promote(burst || now - this.#windowStart < busyWindowMs);
  }

  // Moves receiving onto the thread: the native receiver takes a duplicate of the socket's fd,
  // then the node:dgram socket closes its own. The same kernel socket: no datagram is lost and
  // the port stays. A connected socket, or one with sends queued, stays on the event loop.
  #promote(busy = false): void {
    const inner = this.#inner;
    if (!inner || this.#state !== State.Bound) return;
    let local: AddressInfo;
    try {
      // Closed by a listener (the 'close' event is yet to come), or sends queued: stays.
      if (inner.getSendQueueCount() > 0) return;
      local = inner.address() as AddressInfo;
    } catch {
      return;
    }
    try {
      inner.remoteAddress();
      return; // connected: stays on the event loop
    } catch {
      // not connected: may move
    }
    const fd = dgramFd(inner);
    if (fd <= 0) return;
    const dropped = (this.#readLoopDrops()?.socketDrops ?? 0) > 0;
    let receiver: UdpReceiver | null = null;
    try {
      // The ring a socket bound that way gets from the start: the default for a server, small for a
      // client unless it has proved busy.
      const small = this.#requestedPort === 0 && !busy && !dropped;
      receiver = UdpReceiver._openNow(this.#receiverOptions(this.#requestedPort, local.address, false, small), local.address, fd, true);
    } catch {
      // Stays on the event loop.
    }
    if (!receiver) return;
    this.#inner = null;
    inner.removeAllListeners('close');
    inner.removeAllListeners('error');
    inner.removeAllListeners('connect');
    inner.on('error', () => {});
    if (this.#requestedPort !== 0) {
      // A server, moving at 'listening': the node:dgram socket keeps receiving while the thread
      // prefaults its 32 MiB ring (which it does before it receives), and closes at the thread's
      // first batch (#deliver). Datagrams arriving in that window may be emitted out of order.
      this.#handover = inner;
    } else {
      // A client, moving under traffic: node:dgram stops here (libuv's read loop, which runs this,
      // stops with the fd), so the order holds; the kernel holds what comes while the thread
      // prefaults its 1 MiB ring.
      inner.removeAllListeners('message');
      inner.close();
    }
    this.#receiver = receiver;
    if (!this.#refed) receiver.unref();
    this.#pump(receiver);
  }

  /** Where this socket receives now: 'eventLoop' (node:dgram) or 'thread' (the ring); null before bind. */
  receivingOn(): 'eventLoop' | 'thread' | null {
    if (this.#inner) return this.#state === State.Bound ? 'eventLoop' : null;
    return this.#receiver ? 'thread' : null;
  }

  // small: a client socket moving off the event loop (the ring for a port of its own choosing).
  #receiverOptions(port: number, host: string, shared = false, small = false) {
    const o = this.#options;
    return {
      port, host, type: this.type, reuseAddr: o.reuseAddr, reusePort: o.reusePort || shared, ipv6Only: o.ipv6Only,
      recvBufferSize: o.recvBufferSize, ringBytes: o.ringBytes ?? (small ? clientRingBytes : undefined),
      maxMessageSize: o.maxMessageSize, batchSize: o.batchSize ?? (small ? clientBatchSize : undefined), overflow: o.overflow, yieldEvery: o.yieldEvery, backend: o.backend,
      pktinfo: !!o.replyFromDestination,
    };
  }

  // In a cluster worker, unless exclusive: node:dgram shares the primary's socket; here each worker
  // binds its own with SO_REUSEPORT (the kernel spreads datagrams across them) and tells the
  // primary it listens, as node:dgram's worker does.
  #open(port: number, host: string, exclusive: boolean): void {
    const shared = cluster.isWorker && !exclusive && port !== 0;
    let receiver: UdpReceiver | null;
    try {
      receiver = UdpReceiver._openNow(this.#receiverOptions(port, host, shared), host);
    } catch (error) {
      this.#state = State.Unbound;
      this.emit('error', error);
      return;
    }
    if (receiver) {
      if (cluster.isWorker && !exclusive) this.#announce(receiver);
      this.#listening(receiver);
      return;
    }
    // The dgram backend opens asynchronously.
    UdpReceiver.open(this.#receiverOptions(port, host, shared)).then((opened) => {
      if (this.#state === State.Closed) return void opened.close();
      if (cluster.isWorker && !exclusive) this.#announce(opened);
      this.#listening(opened);
    }, (error: unknown) => {
      if (this.#state === State.Closed) return;
      this.#state = State.Unbound;
      this.emit('error', error);
    });
  }

  // cluster's own message from a worker that listens (the primary emits 'listening' for it).
  #announce(receiver: UdpReceiver): void {
    const { address, port } = receiver.address();
    if (cluster.worker) (cluster.worker as unknown as { state: string }).state = 'listening';
    process.send?.({ cmd: 'NODE_CLUSTER', act: 'listening', addressType: this.type, address, port, fd: -1, data: null });
  }

  #listening(receiver: UdpReceiver): void {
    this.#receiver = receiver;
    this.#state = State.Bound;
    if (!this.#refed) receiver.unref();
    if (this.#options.sendBufferSize !== undefined) this.setSendBufferSize(this.#options.sendBufferSize);
    this.emit('listening');
    if (this.#receiver === receiver) this.#pump(receiver);
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

  // Receives on the fast path (onBatch): no promise per batch.
  #pump(receiver: UdpReceiver): void {
    receiver.onBatch(this.#deliver).catch((error: unknown) => {
      if (this.#state !== State.Closed) this.emit('error', error);
    });
  }

  #endHandover(): void {
    const inner = this.#handover;
    if (!inner) return;
    this.#handover = null;
    inner.removeAllListeners('message');
    inner.close();
  }

  readonly #deliver = (batch: Batch): void => {
    if (this.#handover) this.#endHandover();
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
      const sources = this.#replySources;
      if (sources) {
        const peer = `${rinfo.address} ${rinfo.port}`;
        sources.delete(peer);
        sources.set(peer, batch.destinationAddress(i));
        if (sources.size > maxReplyPeers) sources.delete(sources.keys().next().value as string);
      }
      try {
        this.emit('message', batch.copy(i), rinfo);
      } catch (error) {
        // As with dgram, a throwing listener is an uncaught exception, not the end of receiving.
        process.nextTick(() => {
          throw error;
        });
      }
    }
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
      if (this.#state === State.Bound && !this.#loopFinal) this.#loopFinal = this.#closingLoopCounts();
      this.#inner.close();
      return this;
    }
    if (this.#queue !== undefined) {
      this.#queue.push(() => this.close((options ?? {}) as CloseOptions));
      return this;
    }
    if (this.#state === State.Closed) throw notRunning();
    this.#state = State.Closed;
    this.#endHandover();
    const receiver = this.#receiver;
    this.#receiver = null;
    this.#closedReceiver = receiver;
    this.#cancelSends();
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
    this.#handover?.ref();
    if (this.#inner) {
      this.#inner.ref();
      return this;
    }
    this.#receiver?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    this.#handover?.unref();
    if (this.#inner) {
      this.#inner.unref();
      return this;
    }
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
    if (this.#inner) return this.#inner.setRecvBufferSize(size);
    this.#bufferSize('recv', size);
  }

  setSendBufferSize(size: number): void {
    if (this.#inner) return this.#inner.setSendBufferSize(size);
    this.#bufferSize('send', size);
  }

  getRecvBufferSize(): number {
    if (this.#inner) return this.#inner.getRecvBufferSize();
    return this.#bufferSize('recv');
  }

  getSendBufferSize(): number {
    if (this.#inner) return this.#inner.getSendBufferSize();
    return this.#bufferSize('send');
  }

  #bufferSize(which: 'recv' | 'send', size = 0): number {
    // As node:dgram: a uint32 or ERR_SOCKET_BAD_BUFFER_SIZE; 0 reads the size.
    if (size >>> 0 !== size) throw codeError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
    const syscall = `uv_${which}_buffer_size`;
    if (this.#state === State.Closed || !this.#receiver) throw bufferSizeError(9, syscall); // EBADF
    // libuv passes an int: above INT_MAX is EINVAL.
    if (size > 0x7fffffff) throw bufferSizeError(22, syscall);
    const fallback = this.#fallback();
    if (fallback) {
      const socket = fallback._socket;
      if (size !== 0) which === 'recv' ? socket.setRecvBufferSize(size) : socket.setSendBufferSize(size);
      return which === 'recv' ? socket.getRecvBufferSize() : socket.getSendBufferSize();
    }
    const names = socketOptionNames();
    const setter = this.#receiver._socketOptions();
    const name = which === 'recv' ? names.SO_RCVBUF : names.SO_SNDBUF;
    try {
      if (size !== 0) setter.setOption(names.SOL_SOCKET, name, size);
      return setter.getOption(names.SOL_SOCKET, name);
    } catch (cause) {
      const errno = (cause as { errno?: number }).errno;
      throw bufferSizeError(typeof errno === 'number' ? Math.abs(errno) : 22, syscall);
    }
  }

  setBroadcast(flag: boolean): void {
    if (this.#inner) return this.#inner.setBroadcast(flag);
    this.#option('setBroadcast', (s, n) => sockopt.setBroadcast(s, n, !!flag), (d) => d.setBroadcast(flag));
  }

  setTTL(ttl: number): number {
    if (this.#inner) return this.#inner.setTTL(ttl);
    if (typeof ttl !== 'number') throw argType('ttl', 'of type number', ttl);
    this.#option('setTTL', (s, n) => sockopt.setTTL(s, n, this.#family(), ttl), (d) => d.setTTL(ttl));
    return ttl;
  }

  setMulticastTTL(ttl: number): number {
    if (this.#inner) return this.#inner.setMulticastTTL(ttl);
    if (typeof ttl !== 'number') throw argType('ttl', 'of type number', ttl);
    this.#option('setMulticastTTL', (s, n) => sockopt.setMulticastTTL(s, n, this.#family(), ttl), (d) => d.setMulticastTTL(ttl));
    return ttl;
  }

  setMulticastLoopback(flag: boolean): boolean {
    if (this.#inner) return this.#inner.setMulticastLoopback(flag);
    this.#option('setMulticastLoopback', (s, n) => sockopt.setMulticastLoopback(s, n, this.#family(), !!flag),
      (d) => d.setMulticastLoopback(flag));
    return flag;
  }

  setMulticastInterface(iface: string): void {
    if (this.#inner) return this.#inner.setMulticastInterface(iface);
    if (typeof iface !== 'string') throw argType('interfaceAddress', 'of type string', iface);
    // libuv parses the address first: one that is neither IPv4 nor IPv6 (scope aside) is EINVAL.
    if (isIP(iface) === 0 && isIP(iface.split('%')[0]) !== 6) {
      this.#bound('setMulticastInterface');
      throw systemError({ errno: 22, syscall: 'setMulticastInterface' });
    }
    this.#option('setMulticastInterface', (s, n) => sockopt.setMulticastInterface(s, n, this.#family(), iface),
      (d) => d.setMulticastInterface(iface));
  }

  addMembership(group: string, iface?: string): void {
    if (this.#inner) return this.#inner.addMembership(group, iface);
    if (typeof group !== 'string') throw argType('multicastAddress', 'of type string', group);
    this.#bound('addMembership').addMembership(group, iface);
  }

  dropMembership(group: string, iface?: string): void {
    if (this.#inner) return this.#inner.dropMembership(group, iface);
    if (typeof group !== 'string') throw argType('multicastAddress', 'of type string', group);
    this.#bound('dropMembership').dropMembership(group, iface);
  }

  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    if (this.#inner) return this.#inner.addSourceSpecificMembership(source, group, iface);
    if (typeof source !== 'string') throw argType('sourceAddress', 'of type string', source);
    if (typeof group !== 'string') throw argType('groupAddress', 'of type string', group);
    this.#bound('addSourceSpecificMembership').addSourceSpecificMembership(source, group, iface);
  }

  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    if (this.#inner) return this.#inner.dropSourceSpecificMembership(source, group, iface);
    if (typeof source !== 'string') throw argType('sourceAddress', 'of type string', source);
    if (typeof group !== 'string') throw argType('groupAddress', 'of type string', group);
    this.#bound('dropSourceSpecificMembership').dropSourceSpecificMembership(source, group, iface);
  }

  connect(port: number, address?: string, callback?: () => void): void;
  connect(port: number, callback: () => void): void;
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
    if (this.#state === State.Unbound) this.bind({ port: 0, exclusive: true }, null as unknown as undefined);
    const inner = this.#inner as NodeDgram.Socket | null; // bind() may have made it
    if (inner) {
      this.#connectState = Connect.Disconnected;
      return inner.connect(remotePort, address, callback);
    }
    const host = address;
    const run = () => {
      if (callback) this.once('connect', callback);
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
            this.removeListener('connect', callback);
            (callback as unknown as (e: Error) => void)(failure);
          } else this.emit('error', failure);
        });
        return;
      }
      this.#remote = { address: ip, family: this.type === 'udp6' ? 'IPv6' : 'IPv4', port };
      this.#connectState = Connect.Connected;
      process.nextTick(() => this.emit('connect'));
    };
    if (error) return connected(error);
    // Connected in the kernel, as dgram's socket is: an ICMP error for what is sent to the
    // peer comes back on the next send, or on a receive, which emits it as 'error'.
    if (!this.#watchingErrors) {
      this.#watchingErrors = true;
      (fallback ?? receiver)._watchSocketErrors((failure) => {
        if (this.#state !== State.Closed && this.#receiver === receiver) this.emit('error', failure);
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
    let parts: Part[];
    const connected = this.#connectState === Connect.Connected;
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
    if (this.#state === State.Closed) throw notRunning();
    if (this.#state === State.Unbound) this.bind({ port: 0, exclusive: true }, null as unknown as undefined);
    const inner = this.#inner as NodeDgram.Socket | null; // bind() may have made it
    if (inner) return inner.send(parts, port as number, address as string, callback as SendCallback);
    if (parts.length === 0) parts = [Buffer.alloc(0)];
    const done = callback as SendCallback | undefined;
    if (this.#state !== State.Bound) {
      const queuedParts = parts;
      const queuedPort = port;
      const queuedAddress = address;
      this.#enqueue(() => this.send(queuedParts, queuedPort as number, queuedAddress as string, done));
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
      else process.nextTick(() => this.emit('error', error));
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
    const entry: QueuedSend = { data, address: to, port: toPort, source: this.#replySources?.get(`${to} ${toPort}`), callback };
    if (this.#sendQueue.length > 0) return this.#queueSend(entry);
    const failure = this.#trySend(receiver, entry);
    if (failure === 'again') this.#queueSend(entry);
    // As node:dgram: a failed send without a callback is not an 'error'.
    else if (failure) callback && process.nextTick(callback, failure);
    else callback && process.nextTick(callback, null, data.byteLength);
    void address;
  }

  // Sends one datagram: null when sent, 'again' for a full send buffer, else the error.
  #trySend(receiver: UdpReceiver, entry: QueuedSend): Error | 'again' | null {
    try {
      receiver._sendTo(entry.data, entry.address, entry.port, entry.source);
      return null;
    } catch (caught) {
      const e = caught as NodeJS.ErrnoException;
      if (e.errno === -EAGAIN || e.code === 'EAGAIN') return 'again';
      // As dgram's: a connected socket's send error names no address ('send ECONNREFUSED').
      if (this.#connectState === Connect.Connected && e.syscall === 'send' && typeof e.errno === 'number') {
        return systemError({ errno: e.errno, syscall: 'send' });
      }
      return typeof e.errno === 'number' ? systemError({ errno: e.errno, syscall: 'send', address: entry.address, port: entry.port }) : e;
    }
  }

  #queueSend(entry: QueuedSend): void {
    this.#sendQueue.push(entry);
    this.#sendQueueBytes += entry.data.byteLength;
    if (!this.#sendRetry) {
      // libuv waits for the socket to be writable; the receive thread owns the socket's poll, so poll here.
      this.#sendRetry = setInterval(() => this.#flushSends(), 1);
      if (!this.#refed) this.#sendRetry.unref();
    }
  }

  #flushSends(): void {
    const receiver = this.#receiver;
    while (receiver && this.#sendQueue.length > 0) {
      const entry = this.#sendQueue[0];
      const failure = this.#trySend(receiver, entry);
      if (failure === 'again') return;
      this.#sendQueue.shift();
      this.#sendQueueBytes -= entry.data.byteLength;
      if (failure) entry.callback?.(failure, 0);
      else entry.callback?.(null, entry.data.byteLength);
    }
    if (this.#sendRetry) clearInterval(this.#sendRetry);
    this.#sendRetry = null;
  }

  // As libuv's close: sends still queued fail with ECANCELED.
  #cancelSends(): void {
    if (this.#sendRetry) clearInterval(this.#sendRetry);
    this.#sendRetry = null;
    const queued = this.#sendQueue;
    this.#sendQueue = [];
    this.#sendQueueBytes = 0;
    for (const entry of queued) {
      if (entry.callback) process.nextTick(entry.callback, systemError({ errno: 125, syscall: 'send', address: entry.address, port: entry.port }), 0);
    }
  }

  /** Bytes waiting for room in the kernel's send buffer (node:dgram's, libuv's send queue). */
  getSendQueueSize(): number {
    if (this.#inner) return this.#inner.getSendQueueSize();
    return this.#sendQueueBytes;
  }

  /** Datagrams waiting for room in the kernel's send buffer. */
  getSendQueueCount(): number {
    if (this.#inner) return this.#inner.getSendQueueCount();
    return this.#sendQueue.length;
  }

  /**
   * udp-ring's counters for this socket (UdpReceiver.stats()); null before bind; final values after
   * close. While node:dgram still receives on the event loop: the same counters, from it (backend
   * 'dgram', no ring; kernelDrops and kernelQueueBytes from the socket's SO_MEMINFO); once on the
   * thread, what the event loop received is added in, so the counts go on without a gap.
   */
  stats(): ReceiverStats | null {
    if (this.#loopFinal) return this.#loopStats();
    if (this.#inner) return this.#state === State.Bound ? this.#loopStats() : null;
    const receiver = this.#receiver ?? this.#closedReceiver;
    if (!receiver) return null;
    const stats = receiver.stats();
    const packets = stats.packets + this.#loopPackets;
    const batches = stats.batches + this.#loopPackets;
    return {
      ...stats,
      packets,
      // Taken from the ring but never emitted: discarded, not delivered.
      delivered: stats.delivered - this.#unemitted + this.#loopPackets,
      discarded: stats.discarded + this.#unemitted,
      bytes: stats.bytes + this.#loopBytes,
      batches,
      meanBatchSize: batches === 0 ? 0 : packets / batches,
      receiveCalls: stats.receiveCalls + this.#loopPackets,
      // The thread counts the socket's drops from its creation, as the event loop did, but learns of
      // earlier ones only with its next datagram or queue check: never less than the loop last saw.
      kernelDrops: Math.max(stats.kernelDrops, this.#loopDrops),
    };
  }

  #readLoopDrops(): ReturnType<typeof native.socketMemInfo> {
    const info = this.#loopFd > 0 ? native.socketMemInfo(this.#loopFd) : null;
    if (info) this.#loopDrops = Math.max(this.#loopDrops, info.socketDrops);
    return info;
  }

  // node:dgram reads one datagram per call, each a 'message'; the kernel's queue and drops come from
  // SO_MEMINFO (after close, from what close() read).
  #loopStats(): ReceiverStats {
    const final = this.#loopFinal;
    const info = final ? null : this.#readLoopDrops();
    const o = this.#options;
    const packets = this.#loopPackets;
    const requested = o.recvBufferSize ?? 0;
    const recvBufferSize = final ? final.recvBufferSize : (info?.recvBufferSize ?? 0);
    return {
      packets, delivered: packets, bytes: this.#loopBytes, batches: packets, meanBatchSize: packets === 0 ? 0 : 1,
      kernelDrops: final ? final.kernelDrops : this.#loopDrops, ringDrops: 0, discarded: final ? final.discarded : 0, truncated: 0,
      recvBufferSize, recvBufferRequested: requested, recvBufferForced: false,
      recvBufferCapped: requested > 0 && recvBufferSize < 2 * requested, rmemMax: readRmemMax(),
      kernelQueueBytes: info ? info.queuedBytes : null,
      ringBytes: 0, ringUsed: 0, ringDatagrams: 0, ringHighWater: 0, wakeups: 0, producerStalls: 0,
      receiveCalls: packets, directBatches: 0, threadWakeups: 0, coalesced: 0,
      overflow: o.overflow ?? 'block', batchSize: 1, maxMessageSize: 65535, queueDelay: null, backend: 'dgram',
    };
  }

  // At close on the event loop: node:dgram throws away what the kernel queue holds; count it as
  // discarded, as the receive thread does at its close. One getsockopt when the queue is empty
  // (a short-lived client's usual close); native.discardQueued reads it out otherwise.
  #closingLoopCounts(): { kernelDrops: number; discarded: number; recvBufferSize: number } {
    const info = this.#readLoopDrops();
    const counts = { kernelDrops: this.#loopDrops, discarded: 0, recvBufferSize: info?.recvBufferSize ?? 0 };
    const gone = info && info.queuedBytes > 0 ? native.discardQueued(this.#loopFd) : null;
    if (gone) counts.discarded = gone.discarded + (gone.socketDrops === null ? 0 : Math.max(0, gone.socketDrops - counts.kernelDrops));
    return counts;
  }
}

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
