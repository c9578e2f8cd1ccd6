// The consumer side of the native backend's ring: opens the addon's receiver
// over a SharedArrayBuffer, checks the layout native wrote, and reads and
// releases the ring (the descriptor head and tail, the wait flag, the direct
// receive), the counters, and the socket's options. core/receiver.ts holds
// one per receiver, reached through core/backend.ts (this module registers
// itself there as it loads), and calls its methods: no object per batch.
import { registerRingBackend, type AddressInfo, type RingReader, type RingBackend, type ResolvedReceiverOptions } from '../../core/backend.js';
import { Batch } from '../../core/batch.js';
import { checkRingMemory } from '../../core/memory-limit.js';
import { fromNative, systemError } from '../../core/errors.js';
import { native, nativeLoadError, type NativeReceiver, type RingLayout } from './addon.js';
import { control32, control64, descriptor, layoutMagic, layoutVersion, minimumRingBytes, payloadAlign } from './layout.js';
import { membership, sourceMembership, type OptionSetter } from './sockopt.js';

/** setsockopt names from the addon's headers. */
export function socketOptionNames(): Record<string, number> {
  const names = native.Receiver.socketOptions;
  if (!names) throw new Error('udp-ring: this build of the addon has no socket options; rebuild it (npm run compile)');
  return names;
}

// Rings are whole 64 KiB pages (a size the tests and docs rely on).
const wasmPageBytes = 65536;
// coalesceMs 'auto': the window each receive waits while busy (the event loop's timers are whole milliseconds).
const AUTO_WINDOW_US = 1000;

export class NativeRingReader implements RingReader {
  readonly backend = 'native';
  readonly #handle: NativeReceiver;
  readonly ring: SharedArrayBuffer;
  readonly #layout: RingLayout;
  readonly #c64: BigUint64Array;
  readonly #c32: Int32Array;
  readonly #u32: Uint32Array;
  readonly recvBufferSize: number;
  readonly forced: boolean;
  readonly timestampsOffset: number;
  readonly mask: number;
  readonly #family: 4 | 6;

  // adoptFd > 0: receive on that inherited, bound socket instead of opening one (dgram's bind({ fd })).
  constructor(options: ResolvedReceiverOptions, address: string, wake: () => void, adoptFd: number, dupFd: boolean) {
    this.#family = options.type === 'udp6' ? 6 : 4;
    const ringBytes = Math.ceil(options.ringBytes / wasmPageBytes) * wasmPageBytes;
    const layout = native.computeLayout(ringBytes, options.timestamps, options.pktinfo || options.tos);
    if (layout === null) throw new RangeError(`udp-ring: no ring layout fits ${ringBytes} bytes`);
    this.#layout = layout;
    this.timestampsOffset = layout.timestampsOffset;
    this.mask = layout.descriptorCount - 1;
    // The receive thread writes into the ring, so user code must not be able to
    // detach it (transfer, structuredClone) and free it under the thread: a
    // SharedArrayBuffer cannot be detached, and costs no address reservation
    // (a WebAssembly.Memory, used before, reserved ~10 GiB per receiver and
    // needed a detachable fallback under a low RLIMIT_AS).
    checkRingMemory(ringBytes, options.batchSize * options.maxMessageSize);
    this.ring = new SharedArrayBuffer(ringBytes);
    if (payloadAlign > wasmPageBytes) throw new Error('udp-ring: payload alignment exceeds a 64 KiB page');
    const handle = new native.Receiver();
    let opened: { recvBufferSize: number; forced: boolean };
    try {
      opened = handle.open(
        new Uint8Array(this.ring),
        {
          family: this.#family,
          address,
          port: options.port,
          reuseAddr: options.reuseAddr,
          reusePort: options.reusePort,
          ipv6Only: options.ipv6Only,
          recvBufferSize: options.recvBufferSize,
          batchSize: options.batchSize,
          maxMessageSize: options.maxMessageSize,
          timestamps: options.timestamps,
          gro: options.gro,
          pktinfo: options.pktinfo,
          tos: options.tos,
          overflow: options.overflow === 'drop' ? 1 : 0,
          coalesceUs: options.coalesceMs === 'auto' ? AUTO_WINDOW_US : Math.round(options.coalesceMs * 1000),
          coalesceAuto: options.coalesceMs === 'auto',
          fd: adoptFd,
          dupFd,
        },
        wake,
      );
    } catch (cause) {
      handle.close();
      throw fromNative(cause, { address, port: options.port });
    }
    this.#handle = handle;
    this.recvBufferSize = opened.recvBufferSize;
    this.forced = opened.forced;
    this.#c64 = new BigUint64Array(this.ring, 0, native.layout.controlBytes / 8);
    this.#c32 = new Int32Array(this.ring, 0, native.layout.controlBytes / 4);
    this.#u32 = new Uint32Array(this.ring, 0, ringBytes / 4);
    this.#checkLayout();
  }

  // Native wrote its view of the layout into the control block; both sides must agree.
  #checkLayout(): void {
    const c = this.#c32;
    const l = this.#layout;
    const seen = [c[control32.magic] >>> 0, c[control32.version], c[control32.descriptorSize], c[control32.descriptorCount],
      c[control32.descriptorsOffset], c[control32.timestampsOffset], c[control32.payloadOffset], c[control32.payloadCapacity],
      c[control32.packetInfoOffset]];
    const expected = [layoutMagic, layoutVersion, descriptor.size, l.descriptorCount, l.descriptorsOffset,
      l.timestampsOffset, l.payloadOffset, l.payloadCapacity, l.packetInfoOffset];
    if (seen.some((v, k) => v !== expected[k])) {
      this.#handle.close();
      throw new Error(`udp-ring: ring layout mismatch between native and TypeScript: ${seen} != ${expected}`);
    }
  }

  /** Positions need not start at 0 (they wrap at 2^32): the head is the one native wrote. */
  initialHead(): number {
    return Atomics.load(this.#c32, control32.descriptorHead) >>> 0;
  }

  /** The first Batch over the ring (the receiver reuses it, or makes its successors). */
  firstBatch(): Batch {
    const layout = this.#layout;
    return new Batch(this.ring, layout.descriptorsOffset, layout.descriptorCount, layout.timestampsOffset,
      undefined, layout.packetInfoOffset);
  }

  /** The bound address as the socket reports it, or null. */
  localAddress(): AddressInfo | null {
    return this.#handle.localAddress();
  }

  // Published datagrams not yet handed out (the consumer's head): 32-bit positions, wrapping.
  available(head: number): number {
    return (Atomics.load(this.#c32, control32.descriptorTail) - head) >>> 0;
  }

  // Published datagrams not yet released (stats only; the native head may lag ours after close).
  outstanding(): number {
    return (Atomics.load(this.#c32, control32.descriptorTail) - Atomics.load(this.#c32, control32.descriptorHead)) >>> 0;
  }

  // Payload bytes the unreleased datagrams hold, padding included: from the
  // first unreleased payload to where the producer writes next.
  payloadUsed(outstanding: number): number {
    if (outstanding === 0) return 0;
    const layout = this.#layout;
    const head = Atomics.load(this.#c32, control32.descriptorHead) & (layout.descriptorCount - 1);
    const first = this.#u32[(layout.descriptorsOffset + head * descriptor.size + descriptor.offset) >>> 2] - layout.payloadOffset;
    const next = Atomics.load(this.#c32, control32.payloadTailOffset);
    return (next - first + layout.payloadCapacity) % layout.payloadCapacity;
  }

  /** Ring bytes the unreleased datagrams hold, descriptors included. */
  ringUsed(outstanding: number): number {
    return this.payloadUsed(outstanding) + outstanding * descriptor.size;
  }

  /** Tells the producer a consumer waits (true) or no longer does (false). */
  setWaiting(waiting: boolean): void {
    Atomics.store(this.#c32, control32.consumerWaiting, waiting ? 1 : 0);
  }

  /**
   * Hands space back to the thread up to `head`: one store per batch (the producer derives the
   * payload space from the descriptor head). Stored after close too, while a drain reads on:
   * stats() counts from it; `closed`: no notify.
   */
  release(head: number, closed: boolean): void {
    Atomics.store(this.#c32, control32.descriptorHead, head | 0);
    if (closed) return;
    if (Atomics.load(this.#c32, control32.producerWaiting) !== 0) this.#handle.notifySpace();
  }

  /** The direct receive: > 0 received, 0 the event loop polls the socket, < 0 unavailable. */
  waitDirect(): number {
    return this.#handle.waitDirect();
  }

  stopDirect(): void {
    this.#handle.stopDirect();
  }

  /** The turn clock: the addon's, a small integer that allocates nothing to read. */
  nowMicros(): number {
    return native.monotonicMicros();
  }

  /** The receive thread's failure, as an Error, or null. */
  failure(address: string, port: number): Error | null {
    const failure = this.#handle.failure();
    if (!failure) return null;
    return systemError({ ...failure, address, port });
  }

  /** Joins the thread, closes the socket (native counts what the ring never got). */
  close(): void {
    this.#handle.close();
  }

  ref(): void {
    this.#handle.ref();
  }

  unref(): void {
    this.#handle.unref();
  }

  /** The native counters, as stats() reports them. */
  counter(name: keyof typeof control64): number {
    return Number(Atomics.load(this.#c64, control64[name]));
  }

  /** Bytes queued in the kernel's receive queue (null when the socket cannot say). */
  kernelQueueBytes(): number | null {
    const info = this.#handle.socketInfo();
    return info ? info.queuedBytes : null;
  }

  optionSetter(): OptionSetter {
    const handle = this.#handle;
    return {
      setOption: (level, name, value) => handle.setOption(level, name, value),
      getOption: (level, name) => handle.getOption(level, name),
    };
  }

  membership(add: boolean, group: string, iface?: string): void {
    membership(this.optionSetter(), socketOptionNames(), this.#family, add, group, iface);
  }

  sourceMembership(add: boolean, source: string, group: string, iface?: string): void {
    sourceMembership(this.optionSetter(), socketOptionNames(), this.#family, add, source, group, iface);
  }

  sendTo(data: Uint8Array, address: string, port: number, source?: string): number {
    try {
      return this.#handle.sendTo(data, this.#family, address, port, source);
    } catch (cause) {
      throw fromNative(cause, { address, port });
    }
  }

  connect(peer: { address: string; port: number } | null): void {
    try {
      this.#handle.connect(this.#family, peer?.address ?? '', peer?.port ?? 0);
    } catch (cause) {
      throw fromNative(cause, peer ?? {});
    }
  }

  watchErrors(listener: (error: NodeJS.ErrnoException) => void): void {
    this.#handle.watchErrors((errno) => listener(systemError({ errno, syscall: 'recvmsg' })));
  }

  /** Not a node:dgram socket. */
  dgramSocket(): null {
    return null;
  }
}

const backend: RingBackend = {
  clock: native,
  loadError: nativeLoadError,
  maxBatchSize: native.maxBatchSize,
  maxRingBytes: native.layout.maxRingBytes,
  minimumRingBytes,
  interfaceName: (index) => native.interfaceName(index),
  open: (options, address, wake, adoptFd, dupFd) => new NativeRingReader(options, address, wake, adoptFd, dupFd),
};
registerRingBackend(backend);
