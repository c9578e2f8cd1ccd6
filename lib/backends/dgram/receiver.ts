// The pure-TypeScript backend's receive side: node:dgram's 'message' callbacks
// write each datagram into a ring in the core's format (core/ring-format.ts:
// a descriptor per datagram, its payload in the payload area), as the native
// thread does, and core/receiver.ts's UdpReceiver reads it through the
// RingReader below: one Batch class, one delivery path (iteration, onBatch,
// the turn budget, close and drain, stats) for both backends. This file only
// produces: placement, the head and tail, overflow ('drop' counts a ring drop,
// 'block' stops reading the socket until release() frees space), the wake, the
// counters, and the socket's calls delegated to node:dgram.
//
// For platforms where the addon cannot load or has no recvmmsg, or when asked
// for (options.backend 'dgram', env UDP_RING_BACKEND=dgram). It receives on the
// event loop, one datagram per callback, so it keeps none of the native path's
// guarantees under load; it exists so that code written for udp-ring runs everywhere.
//
// Over 400 lines (about 440): the producer's state (tail, payload tail, released head, the parked
// datagram, the reads stopped or not, close's kernel-queue count) is one set of private fields that
// placement, release, close and the counters all use; the rest is one-line delegations to node:dgram.
import * as dgram from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { Batch } from '../../core/batch.js';
import { checkRingMemory } from '../../core/memory-limit.js';
import { descriptor, flagTruncated } from '../../core/ring-format.js';
import { performanceMicros } from '../../core/iteration.js';
import {
  registerBackend, type AddressInfo, type DgramSocketAccess, type ResolvedReceiverOptions, type RingCounter,
  type RingReader, type SocketOptionSetter,
} from '../../core/backend.js';
import { writeAddress } from './address.js';
import { procSocketLine, recvHandle, type RecvHandle } from './socket.js';

const recordAlign = 8;

// A payload's room in the ring: 8-byte aligned, and never 0 (an empty datagram
// still takes 8 bytes, so the payload tail never meets the head unless full).
function room(bytes: number): number {
  return Math.ceil(Math.max(bytes, 1) / recordAlign) * recordAlign;
}

function largestPowerOfTwoAtMost(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

function unsupported(what: string): Error {
  const error = new Error(`udp-ring: the dgram backend has no ${what}; node:dgram's own socket does it (the dgram facade uses it)`);
  (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_UNSUPPORTED';
  return error;
}

// Interface indexes by name ('lo' -> 1), as rinfo.address names a link-local source's scope.
const scopeIndexes = new Map<string, number>();
function scopeIndex(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let index = scopeIndexes.get(name);
  if (index === undefined) {
    index = networkInterfaces()[name]?.find((entry) => entry.family === 'IPv6' && entry.scopeid)?.scopeid ?? 0;
    scopeIndexes.set(name, index);
  }
  return index;
}

type Counted = 'packets' | 'bytes' | 'ringDrops' | 'discarded' | 'truncated' | 'ringHighWater' | 'wakeups' | 'producerStalls';

interface Parked {
  msg: Buffer;
  rinfo: dgram.RemoteInfo;
}

export class DgramRingReader implements RingReader, DgramSocketAccess {
  readonly backend = 'dgram';
  readonly ring: ArrayBuffer;
  readonly recvBufferSize: number;
  readonly forced = false;
  readonly timestampsOffset = 0;
  readonly mask: number;
  readonly #socket: dgram.Socket;
  readonly #options: ResolvedReceiverOptions;
  readonly #bytes: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #descriptorCount: number;
  // The payload area: from #payloadOffset to the ring's end.
  readonly #payloadOffset: number;
  readonly #payloadCapacity: number;
  readonly #wake: () => void;
  readonly #address: AddressInfo;
  // Descriptor positions, mod 2^32: #tail published, #head released by the consumer.
  #tail = 0;
  #head = 0;
  // Where the next payload goes, from the payload area's start.
  #payloadTail = 0;
  #consumerWaiting = false;
  // overflow 'block': the datagram that did not fit, and whether the socket's reads are stopped.
  #parked: Parked | null = null;
  #stopped = false;
  readonly #handle: RecvHandle | null;
  #closed = false;
  // Closing with datagrams in the kernel queue: they are read and counted, then the socket closes.
  #discarding = false;
  #error: Error | null = null;
  #socketErrors: ((error: NodeJS.ErrnoException) => void) | null = null;
  #lastKernel: { queuedBytes: number; drops: number } | null = null;
  readonly #dropsAtOpen: number;
  // The counters stats() reads (those node:dgram has no use for stay 0: direct batches, thread
  // wakeups, coalesced; one datagram per callback, so a batch and a receive call are a datagram).
  readonly #counts: Record<Counted, number> = {
    packets: 0, bytes: 0, ringDrops: 0, discarded: 0, truncated: 0, ringHighWater: 0, wakeups: 0, producerStalls: 0,
  };

  static async open(options: ResolvedReceiverOptions, address: string, wake: () => void): Promise<DgramRingReader> {
    if (options.reusePort) {
      const error = new Error('udp-ring: the dgram backend cannot set SO_REUSEPORT on Node ' + process.version);
      (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_UNSUPPORTED';
      throw error;
    }
    // Not resident at open, but fills as the native ring does: refused alike.
    checkRingMemory(options.ringBytes, 0);
    const socket = dgram.createSocket({
      type: options.type,
      reuseAddr: options.reuseAddr,
      ipv6Only: options.ipv6Only,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new DgramRingReader(socket, options, wake);
  }

  private constructor(socket: dgram.Socket, options: ResolvedReceiverOptions, wake: () => void) {
    this.#socket = socket;
    this.#options = options;
    this.#wake = wake;
    // About one descriptor per 256 ring bytes (at least 16, at most 65,536), and a payload
    // area that holds at least two datagrams of maxMessageSize.
    const count = Math.min(65536, Math.max(16, largestPowerOfTwoAtMost(options.ringBytes / 256)));
    this.#descriptorCount = count;
    this.mask = count - 1;
    this.#payloadOffset = count * descriptor.size;
    const total = Math.max(options.ringBytes, this.#payloadOffset + 2 * room(options.maxMessageSize));
    this.#payloadCapacity = total - this.#payloadOffset;
    this.ring = new ArrayBuffer(total);
    this.#bytes = new Uint8Array(this.ring);
    this.#u16 = new Uint16Array(this.ring, 0, total >>> 1);
    this.#u32 = new Uint32Array(this.ring, 0, total >>> 2);
    if (options.recvBufferSize > 0) {
      try {
        socket.setRecvBufferSize(options.recvBufferSize);
      } catch {
        // Never fail because of the buffer size (as the native path): report what was granted.
      }
    }
    this.recvBufferSize = socket.getRecvBufferSize();
    const bound = socket.address();
    this.#address = { address: bound.address, family: bound.family === 'IPv6' ? 'IPv6' : 'IPv4', port: bound.port };
    this.#dropsAtOpen = procSocketLine(this.#address)?.drops ?? 0;
    this.#handle = options.overflow === 'block' ? recvHandle(socket) : null;
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    socket.on('error', (error) => {
      // A connected socket's ICMP errors are reported, not fatal (the facade emits them, as dgram does).
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (this.#socketErrors && ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) {
        this.#socketErrors(error as NodeJS.ErrnoException);
        return;
      }
      this.#error ??= error;
      this.#wakeConsumer();
    });
  }

  #onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#discarding) {
      this.#counts.discarded++;
      return;
    }
    if (this.#closed) return;
    if (this.#parked !== null || !this.#place(msg, rinfo)) {
      if (this.#handle) {
        // 'block': keep this one aside and leave the rest in the kernel queue until release().
        if (this.#parked === null) this.#parked = { msg, rinfo };
        else this.#counts.discarded++; // (cannot happen: reads are stopped while one is parked)
        if (!this.#stopped) {
          this.#handle.recvStop();
          this.#stopped = true;
          this.#counts.producerStalls++;
        }
      } else {
        this.#counts.ringDrops++;
      }
    }
  }

  // Where `bytes` of payload fit in the payload area, or -1: after the last
  // unreleased payload, or at the area's start when it does not fit before the end.
  #payloadAt(bytes: number): number {
    const outstanding = (this.#tail - this.#head) >>> 0;
    if (outstanding === 0) return bytes <= this.#payloadCapacity ? 0 : -1;
    if (outstanding >= this.#descriptorCount) return -1;
    const first = this.#firstPayload();
    const tail = this.#payloadTail;
    if (tail > first) {
      if (tail + bytes <= this.#payloadCapacity) return tail;
      return bytes < first ? 0 : -1;
    }
    return tail + bytes < first ? tail : -1;
  }

  // The payload offset (in the area) of the oldest unreleased datagram.
  #firstPayload(): number {
    const at = (this.#head & this.mask) * descriptor.size;
    return this.#u32[(at + descriptor.offset) >>> 2] - this.#payloadOffset;
  }

  // Writes one datagram's descriptor and payload and publishes it; false when it does not fit.
  #place(msg: Buffer, rinfo: dgram.RemoteInfo): boolean {
    const keep = Math.min(msg.length, this.#options.maxMessageSize);
    const bytes = room(keep);
    const payload = this.#payloadAt(bytes);
    if (payload < 0) return false;
    const at = (this.#tail & this.mask) * descriptor.size;
    const offset = this.#payloadOffset + payload;
    this.#bytes.set(keep === msg.length ? msg : msg.subarray(0, keep), offset);
    this.#u32[(at + descriptor.offset) >>> 2] = offset;
    this.#u16[(at + descriptor.bytes) >>> 1] = keep;
    this.#u16[(at + descriptor.wireSize) >>> 1] = msg.length;
    this.#u16[(at + descriptor.port) >>> 1] = rinfo.port;
    this.#bytes[at + descriptor.family] = writeAddress(this.#bytes, at + descriptor.address, rinfo.address, rinfo.family);
    this.#bytes[at + descriptor.flags] = keep < msg.length ? flagTruncated : 0;
    const percent = rinfo.address.indexOf('%');
    this.#u32[(at + descriptor.scopeId) >>> 2] = percent < 0 ? 0 : scopeIndex(rinfo.address.slice(percent + 1));
    this.#payloadTail = payload + bytes;
    this.#tail = (this.#tail + 1) >>> 0;
    const counts = this.#counts;
    counts.packets++;
    counts.bytes += keep;
    if (keep < msg.length) counts.truncated++;
    const used = this.ringUsed((this.#tail - this.#head) >>> 0);
    if (used > counts.ringHighWater) counts.ringHighWater = used;
    this.#wakeConsumer();
    return true;
  }

  #wakeConsumer(): void {
    if (!this.#consumerWaiting) return;
    this.#consumerWaiting = false;
    this.#counts.wakeups++;
    this.#wake();
  }

  initialHead(): number {
    return 0;
  }

  firstBatch(): Batch {
    return new Batch(this.ring, 0, this.#descriptorCount, 0);
  }

  localAddress(): AddressInfo | null {
    return { ...this.#address };
  }

  available(head: number): number {
    return (this.#tail - head) >>> 0;
  }

  outstanding(): number {
    return (this.#tail - this.#head) >>> 0;
  }

  ringUsed(outstanding: number): number {
    if (outstanding === 0) return 0;
    const payload = (this.#payloadTail - this.#firstPayload() + this.#payloadCapacity) % this.#payloadCapacity;
    return payload + outstanding * descriptor.size;
  }

  setWaiting(waiting: boolean): void {
    this.#consumerWaiting = waiting;
  }

  /** Space back up to `head`; a parked datagram ('block') goes in if it now fits, and reading resumes. */
  release(head: number, closed: boolean): void {
    this.#head = head;
    const parked = this.#parked;
    if (parked === null || closed) return;
    // Cleared first: placing it may wake the consumer, which may release again.
    this.#parked = null;
    if (!this.#place(parked.msg, parked.rinfo)) {
      this.#parked = parked;
      return;
    }
    if (this.#stopped) {
      this.#stopped = false;
      this.#handle?.recvStart();
    }
  }

  /** node:dgram polls the socket on the event loop already: a 'message' wakes the consumer. */
  waitDirect(): number {
    return 0;
  }

  stopDirect(): void {}

  nowMicros(): number {
    return performanceMicros();
  }

  failure(): Error | null {
    return this.#error;
  }

  /**
   * Closes the socket. Datagrams still in the kernel queue ('block' stopped
   * reading, or the event loop has not got to them) would go uncounted with
   * node:dgram's close(), so they are read (counted as discarded) until the
   * queue is empty, for at most a second, and then the socket closes: the promise.
   */
  close(): Promise<void> | undefined {
    if (this.#closed) return undefined;
    this.#closed = true;
    if (this.#parked) {
      this.#parked = null;
      this.#counts.discarded++;
    }
    const queued = procSocketLine(this.#address)?.queuedBytes ?? 0;
    if (queued > 0 && (this.#handle || !this.#stopped)) return this.#discardQueue();
    this.#closeSocket();
    return undefined;
  }

  #closeSocket(): void {
    this.#lastKernel = procSocketLine(this.#address) ?? this.#lastKernel;
    try {
      this.#socket.close();
    } catch {
      // Already closed by node:dgram after an error.
    }
  }

  #discardQueue(): Promise<void> {
    this.#discarding = true;
    if (this.#stopped) {
      this.#stopped = false;
      this.#handle!.recvStart();
    }
    const until = performance.now() + 1000;
    return new Promise<void>((resolve) => {
      const check = () => {
        const line = procSocketLine(this.#address);
        if (line && line.queuedBytes > 0 && performance.now() < until) {
          setImmediate(check);
          return;
        }
        this.#closeSocket();
        this.#discarding = false;
        resolve();
      };
      setImmediate(check);
    });
  }

  ref(): void {
    this.#socket.ref();
  }

  unref(): void {
    this.#socket.unref();
  }

  counter(name: RingCounter): number {
    if (name === 'kernelDrops') {
      // The socket's line in /proc, read again while it is open (kernelQueueBytes() reads the same).
      if (!this.#closed || this.#discarding) this.#lastKernel = procSocketLine(this.#address) ?? this.#lastKernel;
      return this.#lastKernel ? this.#lastKernel.drops - this.#dropsAtOpen : 0;
    }
    if (name === 'batches' || name === 'receiveCalls') return this.#counts.packets;
    return name in this.#counts ? this.#counts[name as Counted] : 0;
  }

  /** As stats() last read the socket's line (it reads 'kernelDrops' first). */
  kernelQueueBytes(): number | null {
    return this.#lastKernel?.queuedBytes ?? null;
  }

  optionSetter(): SocketOptionSetter {
    throw unsupported('raw setsockopt');
  }

  membership(add: boolean, group: string, iface?: string): void {
    if (add) this.#socket.addMembership(group, iface);
    else this.#socket.dropMembership(group, iface);
  }

  sourceMembership(add: boolean, source: string, group: string, iface?: string): void {
    if (add) this.#socket.addSourceSpecificMembership(source, group, iface);
    else this.#socket.dropSourceSpecificMembership(source, group, iface);
  }

  sendTo(): number {
    throw unsupported('synchronous send');
  }

  connect(peer: { address: string; port: number } | null): void {
    void this._connect(peer);
  }

  watchErrors(listener: (error: NodeJS.ErrnoException) => void): void {
    this.#socketErrors = listener;
  }

  dgramSocket(): DgramSocketAccess {
    return this;
  }

  get _socket(): dgram.Socket {
    return this.#socket;
  }

  async _connect(peer: { address: string; port: number } | null): Promise<void> {
    if (peer === null) {
      this.#socket.disconnect();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.connect(peer.port, peer.address, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
  }

  _watchSocketErrors(listener: (error: NodeJS.ErrnoException) => void): void {
    this.#socketErrors = listener;
  }
}

registerBackend('dgram', (options, address, wake) => DgramRingReader.open(options, address, wake));
