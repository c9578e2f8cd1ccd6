// The seam between the core and its backends. A backend's module registers
// how it opens a receiver when it loads (lib/backends/index.ts loads every
// one, and each entry point that opens receivers imports that); the core
// opens through openBackend(), so it imports no backend file. The types a
// backend needs from the core come from this file, never from receiver.ts.
//
// Both backends give UdpReceiver (core/receiver.ts) a RingReader (below): a
// ring of datagram records in the core's format (ring-format.ts) and the
// socket behind it. The native one registers its RingBackend
// (registerRingBackend: backends/native/ring-reader.ts, the addon's thread
// fills the ring); the dgram one registers how it opens its reader
// (registerBackend: backends/dgram/receiver.ts, node:dgram's 'message'
// callbacks fill it). Each backend also registers its sender
// (registerSenderBackend), which the public UdpSender (core/sender.ts) opens.
import type * as NodeDgram from 'node:dgram';
import type { Backend, ResolvedReceiverOptions } from './options.js';
import type { Batch } from './batch.js';
import type { AddressInfo } from './receiver.js';
import type { RealtimeClock } from './queue-delay.js';

export type { AddressInfo, ReceiverStats } from './receiver.js';
export type { Backend, CloseOptions, ResolvedReceiverOptions } from './options.js';

/**
 * Opens a bound socket on `address` (already resolved) with the resolved options, and the ring
 * its datagrams go to; `wake` is called when a waiting consumer has a batch.
 */
export type BackendOpener = (options: ResolvedReceiverOptions, address: string, wake: () => void) => Promise<RingReader>;

const openers = new Map<Backend, BackendOpener>();

/** Called once by a backend's module as it loads (the dgram backend; native registers a RingBackend). */
export function registerBackend(name: Backend, open: BackendOpener): void {
  openers.set(name, open);
}

/** Opens a receiver's reader on the named backend; a backend whose module never loaded is an error that says so. */
export function openBackend(name: Backend, options: ResolvedReceiverOptions, address: string, wake: () => void): Promise<RingReader> {
  const open = openers.get(name);
  if (!open) throw notLoaded(name);
  return open(options, address, wake);
}

/**
 * The dgram backend's node:dgram socket, for the dgram facade's sends, socket options and
 * connect there (node:dgram does them asynchronously, with its own errors).
 */
export interface DgramSocketAccess {
  readonly _socket: NodeDgram.Socket;
  _connect(peer: { address: string; port: number } | null): Promise<void>;
  _watchSocketErrors(listener: (error: NodeJS.ErrnoException) => void): void;
}

/**
 * A backend's ring, as UdpReceiver reads it: one long-lived object per receiver, whose
 * methods the per-batch path calls (no object or closure per batch).
 */
export interface RingReader {
  /** Which backend fills the ring (stats().backend). */
  readonly backend: Backend;
  readonly ring: SharedArrayBuffer | ArrayBuffer;
  readonly recvBufferSize: number;
  readonly forced: boolean;
  /** Where the timestamps are, and the descriptor slot mask (queue delay). */
  readonly timestampsOffset: number;
  readonly mask: number;
  initialHead(): number;
  firstBatch(): Batch;
  localAddress(): AddressInfo | null;
  available(head: number): number;
  outstanding(): number;
  ringUsed(outstanding: number): number;
  setWaiting(waiting: boolean): void;
  release(head: number, closed: boolean): void;
  waitDirect(): number;
  stopDirect(): void;
  /**
   * A monotonic clock in microseconds that wraps at 2^30 (clockMicrosMask, iteration.ts): the
   * delivery turn's budget. Read at most wakeups, so it should allocate nothing (a small integer).
   */
  nowMicros(): number;
  failure(address: string, port: number): Error | null;
  /** Closes the socket; a promise when that takes a while (the dgram backend reading its kernel queue). */
  close(): void | Promise<void>;
  ref(): void;
  unref(): void;
  counter(name: RingCounter): number;
  kernelQueueBytes(): number | null;
  optionSetter(): SocketOptionSetter;
  membership(add: boolean, group: string, iface?: string): void;
  sourceMembership(add: boolean, source: string, group: string, iface?: string): void;
  sendTo(data: Uint8Array, address: string, port: number, source?: string): number;
  connect(peer: { address: string; port: number } | null): void;
  watchErrors(listener: (error: NodeJS.ErrnoException) => void): void;
  /** The dgram backend's socket, or null (native). */
  dgramSocket(): DgramSocketAccess | null;
}

/** The native counters stats() reads. */
export type RingCounter = 'packets' | 'bytes' | 'batches' | 'kernelDrops' | 'ringDrops' | 'discarded' | 'truncated' |
  'ringHighWater' | 'wakeups' | 'producerStalls' | 'receiveCalls' | 'directBatches' | 'threadWakeups' | 'coalesced' | 'windows';

/** setsockopt/getsockopt on the bound socket. */
export interface SocketOptionSetter {
  setOption(level: number, name: number, value: number | Uint8Array): void;
  getOption(level: number, name: number): number;
}

export interface RingBackend {
  /** The clock the kernel timestamps are against (queue delay). */
  readonly clock: RealtimeClock;
  /** Why the addon did not load (what opening on this backend throws), or null when it did. */
  readonly loadError: Error | null;
  /** The largest batchSize the receive loop takes (options are checked against it, loaded or not). */
  readonly maxBatchSize: number;
  /** The largest ring the layout addresses. */
  readonly maxRingBytes: number;
  /** Ring bytes that hold one batch of the largest datagrams at the wrap (the layout's own figures). */
  minimumRingBytes(batchSize: number, maxMessageSize: number, timestamps: boolean, packetInfo: boolean): number;
  /** An interface's name by index ('lo', 'eth0'), as a scoped address shows it; null when there is none. */
  interfaceName(index: number): string | null;
  /** Opens the socket and its receive thread over a new ring; `wake` is called when a waiting consumer has a batch. */
  open(options: ResolvedReceiverOptions, address: string, wake: () => void, adoptFd: number, dupFd: boolean): RingReader;
}

let ringBackend: RingBackend | null = null;

/** Called once by the native backend's module as it loads. */
export function registerRingBackend(backend: RingBackend): void {
  ringBackend = backend;
}

function notLoaded(name: Backend): Error {
  return new Error(`udp-ring: the '${name}' backend is not loaded (import the package, 'udp-ring', ` +
    'or one of its entry points, not a file inside it)');
}

/** The native backend; not loaded is the same error as openBackend()'s. */
export function nativeRingBackend(): RingBackend {
  if (ringBackend === null) throw notLoaded('native');
  return ringBackend;
}

/** Why the native backend cannot open a receiver (its addon did not load, or its module did not), or null. */
export function nativeUnavailable(): Error | null {
  return ringBackend === null ? notLoaded('native') : ringBackend.loadError;
}

/** What a sender backend opens: a connected socket that sends batches of datagrams. */
export interface SenderHandle {
  /** Sends `count` datagrams laid end to end in `data` (datagram k is sizes[k] bytes); how many the kernel took. */
  send(data: Uint8Array, sizes: Uint32Array, count: number): number;
  close(): void;
  localAddress(): AddressInfo | null;
  /** ICMP errors for sent datagrams since open. */
  errors(): { refused: number; icmpErrors: number };
  /** Whether sends use GSO (UDP_SEGMENT) now; false where the backend has none. */
  gso(): boolean;
  /**
   * Datagrams sent by the backend's own count, or null when what send() returns is the count.
   * The dgram backend counts sends as they complete, which goes on after close().
   */
  completed(): number | null;
}

/** A sender's options, checked and resolved (numeric addresses) by the core's UdpSender. */
export interface ResolvedSenderOptions {
  type: 'udp4' | 'udp6';
  address: string;
  port: number;
  sendBufferSize: number;
  localAddress?: string;
  localPort: number;
  gso: boolean;
  tos?: number;
}

export interface SenderBackend {
  /** Why this backend cannot send (the native one: its addon's load error), or null. */
  readonly loadError: Error | null;
  open(options: ResolvedSenderOptions): Promise<SenderHandle>;
}

const senders = new Map<Backend, SenderBackend>();

/** Called once by a backend's sender module as it loads. */
export function registerSenderBackend(name: Backend, backend: SenderBackend): void {
  senders.set(name, backend);
}

/** The named sender backend; one whose module never loaded is the same error as openBackend()'s. */
export function senderBackend(name: Backend): SenderBackend {
  const backend = senders.get(name);
  if (!backend) throw notLoaded(name);
  return backend;
}
