// A Batch is a window over the ring: the datagrams between the consumer's
// head and the producer's tail. Each iteration gets a fresh Batch (one small
// object per batch, sharing the ring's views), and its accessors read
// descriptors in place, so iterating allocates nothing per datagram. Methods
// that do allocate say so. Once the iterator moves on, the old Batch is
// retired: its accessors throw instead of reading slots the thread refills.
import { networkInterfaces } from 'node:os';
import { formatAddress } from './address.js';
import { nativeRingBackend, nativeUnavailable } from './backend.js';
import { descriptor, flagTruncated, packetInfo, timestampSize } from './ring-format.js';

/**
 * What a batch is: a window of `length` datagrams over `bytes`, retired when the iterator moves on.
 */
export abstract class BatchWindow {
  /** Datagrams in this batch. */
  length = 0;
  #generation: number;
  #retired = false;

  /** @internal */
  constructor(generation: number) {
    this.#generation = generation;
  }

  /** The memory the datagrams are in (native: the whole ring): payload i is `bytes.subarray(offset(i), offset(i) + size(i))`. */
  abstract get bytes(): Uint8Array;

  /** The same memory as a DataView, for reading payload fields in place. */
  abstract get view(): DataView;

  /** Counts the batches of a receiver: 0 for the first, 1 for the next, ... (a reused Batch counts on). */
  get generation(): number {
    return this.#generation;
  }

  /** @internal The same object, serving the next batch (onBatch): live again, one generation on. */
  protected _revive(): void {
    this.#retired = false;
    this.#generation++;
  }

  /** @internal Overwrites each payload byte with 0xdb (options.poisonReleased), just before release. */
  _poison(): void {
    for (let i = 0; i < this.length; i++) {
      const at = this.offset(i);
      this.bytes.fill(0xdb, at, at + this.size(i));
    }
  }

  /** @internal Its memory went back to the receiver to refill: every accessor now throws. */
  _retire(): void {
    this.#retired = true;
    this.length = 0;
  }

  /** False once the iterator moved past this batch (or the receiver closed). */
  get current(): boolean {
    return !this.#retired;
  }

  /** Throws ERR_UDP_RING_STALE_BATCH when the iterator moved past this batch. */
  assertCurrent(): void {
    if (this.#retired) throw staleBatchError(this.generation);
  }

  /**
   * The accessors' slow path, for an index that failed `(i >>> 0) !== i || i >= length`:
   * one comparison guards both cases, as a retired batch has length 0.
   */
  protected _indexError(i: number): Error {
    if (this.#retired) return staleBatchError(this.generation);
    return new RangeError(`udp-ring: datagram index ${String(i)} is outside this batch (length ${this.length})`);
  }

  /** Byte offset of datagram i's payload in `bytes` / `view`. */
  abstract offset(i: number): number;

  /** Bytes of datagram i held (at most maxMessageSize). */
  abstract size(i: number): number;

  /**
   * Allocates a view (no copy): datagram i's payload, valid until the next iteration. A Buffer,
   * as dgram's 'message' gives, so `toString()` and `(msg: Buffer) => ...` handlers work.
   */
  payload(i: number): Buffer {
    const at = this.offset(i);
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + at, this.size(i));
  }

  /** Allocates a copy: datagram i's payload as a Buffer that outlives the batch. */
  copy(i: number): Buffer {
    const at = this.offset(i);
    return Buffer.from(this.bytes.subarray(at, at + this.size(i)));
  }
}

// What every batch of one ring shares: its views and where its regions are. One per receiver, so
// that a Batch, made per batch by the iterator (the stale-batch check needs a new object each time),
// is five fields.
class RingView {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly u32: Uint32Array;
  readonly u16: Uint16Array;
  readonly mask: number;

  constructor(buffer: ArrayBufferLike, readonly descriptorsOffset: number, descriptorCount: number,
    readonly timestampsOffset: number, readonly packetInfoOffset: number) {
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    this.u32 = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    this.u16 = new Uint16Array(buffer, 0, buffer.byteLength >>> 1);
    this.mask = descriptorCount - 1;
  }
}

export class Batch extends BatchWindow {
  readonly #ring: RingView;
  #first = 0;

  /** @internal The first batch of a receiver, or (with `previous`) the one after it, sharing its views. */
  constructor(buffer: ArrayBufferLike, descriptorsOffset: number, descriptorCount: number, timestampsOffset: number,
    previous?: Batch, packetInfoOffset = 0) {
    super(previous ? previous.generation + 1 : 0);
    this.#ring = previous ? previous.#ring
      : new RingView(buffer, descriptorsOffset, descriptorCount, timestampsOffset, packetInfoOffset);
  }

  /** The memory the datagrams are in (native: the whole ring): payload i is `bytes.subarray(offset(i), offset(i) + size(i))`. */
  get bytes(): Uint8Array {
    return this.#ring.bytes;
  }

  /** The same memory as a DataView, for reading payload fields in place. */
  get view(): DataView {
    return this.#ring.view;
  }

  /** @internal Points the batch at `length` descriptors from ring slot `first` (scripts/bench-stale.mjs). */
  _reset(first: number, length: number): void {
    this.#first = first;
    this.length = length;
  }

  /** @internal This object again, for the next batch: `length` descriptors from ring slot `first` (onBatch). */
  _reuse(first: number, length: number): void {
    this._revive();
    this.#first = first;
    this.length = length;
  }

  /** @internal The next batch: `length` descriptors from ring slot `first`. Retires this one. */
  _successor(first: number, length: number): Batch {
    this._retire();
    // With `previous`, the constructor takes the ring's layout from it: the other arguments are unused.
    const next = new Batch(this.#ring.bytes.buffer, 0, 0, 0, this);
    next.#first = first;
    next.length = length;
    return next;
  }

  #at(i: number): number {
    if ((i >>> 0) !== i || i >= this.length) throw this._indexError(i);
    const ring = this.#ring;
    return ring.descriptorsOffset + ((this.#first + i) & ring.mask) * descriptor.size;
  }

  /** Byte offset of datagram i's payload in `bytes` / `view`. */
  override offset(i: number): number {
    return this.#ring.u32[(this.#at(i) + descriptor.offset) >>> 2];
  }

  /** Bytes of datagram i held in the ring (at most maxMessageSize). */
  override size(i: number): number {
    return this.#ring.u16[(this.#at(i) + descriptor.bytes) >>> 1];
  }

  /** Datagram i's length on the wire; larger than size(i) when it was truncated. */
  wireSize(i: number): number {
    return this.#ring.u16[(this.#at(i) + descriptor.wireSize) >>> 1];
  }

  /** True when datagram i was longer than maxMessageSize and was cut. */
  truncated(i: number): boolean {
    return (this.#ring.bytes[this.#at(i) + descriptor.flags] & flagTruncated) !== 0;
  }

  /** Source port of datagram i. */
  port(i: number): number {
    return this.#ring.u16[(this.#at(i) + descriptor.port) >>> 1];
  }

  /** 4 or 6: the family of datagram i's source address. */
  family(i: number): 4 | 6 {
    return this.#ring.bytes[this.#at(i) + descriptor.family] as 4 | 6;
  }

  /** Offset in `bytes` of datagram i's source address: 4 bytes (IPv4) or 16 (IPv6), network order. */
  addressOffset(i: number): number {
    return this.#at(i) + descriptor.address;
  }

  /**
   * When the kernel received datagram i, in microseconds since the Unix epoch (CLOCK_REALTIME,
   * as `Date.now() * 1000`; the fraction carries the nanoseconds, to about 0.25 µs). Needs
   * `timestamps: true` at open.
   */
  timestamp(i: number): number {
    const ring = this.#ring;
    if (ring.timestampsOffset === 0) throw timestampsOffError();
    const slot = (this.#at(i) - ring.descriptorsOffset) / descriptor.size;
    const at = ring.timestampsOffset + slot * timestampSize;
    return ring.u32[at >>> 2] * 1e6 + ring.u32[(at + 4) >>> 2] / 1e3;
  }

  // Byte offset of datagram i's PacketInfo entry (slot i of the region beside the descriptors).
  // The region serves both options; an entry says which it holds (a family, the TOS flag).
  #info(i: number, what: 'pktinfo' | 'tos'): number {
    const at = this.#at(i);
    const ring = this.#ring;
    if (ring.packetInfoOffset === 0) throw packetInfoOffError(what);
    const entry = ring.packetInfoOffset + ((at - ring.descriptorsOffset) / descriptor.size) * packetInfo.size;
    const held = what === 'pktinfo' ? ring.bytes[entry + packetInfo.destinationFamily] !== 0
      : (ring.bytes[entry + packetInfo.flags] & packetInfo.flagTos) !== 0;
    if (!held) throw packetInfoOffError(what);
    return entry;
  }

  /**
   * 4 or 6: the family of the local address datagram i was sent to (6 for an IPv4 datagram on a
   * dual-stack IPv6 socket, whose address is then v4-mapped, as its source is). Needs `pktinfo: true`.
   */
  destinationFamily(i: number): 4 | 6 {
    return this.#ring.bytes[this.#info(i, 'pktinfo') + packetInfo.destinationFamily] as 4 | 6;
  }

  /** Offset in `bytes` of the local address datagram i was sent to: 4 bytes (IPv4) or 16 (IPv6), network order. Needs `pktinfo: true`. */
  destinationOffset(i: number): number {
    return this.#info(i, 'pktinfo') + packetInfo.destination;
  }

  /** Index of the interface datagram i arrived on (as `scopeId`). Needs `pktinfo: true`. */
  interfaceIndex(i: number): number {
    return this.#ring.u32[(this.#info(i, 'pktinfo') + packetInfo.interfaceIndex) >>> 2];
  }

  /** Allocates: the local address datagram i was sent to, as a string ('127.0.0.2', '::1'). Needs `pktinfo: true`. */
  destinationAddress(i: number): string {
    const at = this.#info(i, 'pktinfo');
    return formatAddress(this.#ring.bytes, at + packetInfo.destination, this.#ring.bytes[at + packetInfo.destinationFamily]);
  }

  /** Datagram i's IP TOS byte (IPv6: traffic class): DSCP in the high 6 bits, ECN in the low 2. Needs `tos: true`. */
  tos(i: number): number {
    return this.#ring.bytes[this.#info(i, 'tos') + packetInfo.tos];
  }

  /** Datagram i's ECN codepoint: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE. Needs `tos: true`. */
  ecn(i: number): 0 | 1 | 2 | 3 {
    return (this.#ring.bytes[this.#info(i, 'tos') + packetInfo.tos] & 3) as 0 | 1 | 2 | 3;
  }

  /** The IPv6 scope (interface index) of datagram i's source: non-zero for a link-local peer, else 0. */
  scopeId(i: number): number {
    return this.#ring.u32[(this.#at(i) + descriptor.scopeId) >>> 2];
  }

  /**
   * Allocates: datagram i's source address as a string, as dgram's rinfo.address
   * (a link-local IPv6 source with its '%interface', which a reply needs).
   */
  address(i: number): string {
    const at = this.#at(i);
    const text = formatAddress(this.#ring.bytes, at + descriptor.address, this.#ring.bytes[at + descriptor.family]);
    const scope = this.#ring.u32[(at + descriptor.scopeId) >>> 2];
    return scope === 0 ? text : `${text}%${scopeName(scope)}`;
  }
}

// Interface names by index, as Node prints a scoped address; looked up once each.
const scopeNames = new Map<number, string>();
function scopeName(index: number): string {
  let name = scopeNames.get(index);
  if (name === undefined) {
    // Without the addon (the dgram backend on Bun, say): the interface whose IPv6 addresses have that scope.
    name = (nativeUnavailable() ? interfaceWithScope(index) : nativeRingBackend().interfaceName(index)) ?? String(index);
    scopeNames.set(index, name);
  }
  return name;
}

function interfaceWithScope(index: number): string | null {
  for (const [name, entries] of Object.entries(networkInterfaces())) {
    if (entries?.some((entry) => entry.family === 'IPv6' && entry.scopeid === index)) return name;
  }
  return null;
}

function packetInfoOffError(what: 'pktinfo' | 'tos'): Error {
  const error = new Error(`udp-ring: this receiver keeps no ${what === 'pktinfo' ? 'destination addresses' : 'TOS bytes'}; ` +
    `open it with { ${what}: true } (native backend only)`);
  (error as NodeJS.ErrnoException).code = what === 'pktinfo' ? 'ERR_UDP_RING_NO_PKTINFO' : 'ERR_UDP_RING_NO_TOS';
  return error;
}

/** @internal */
export function timestampsOffError(): Error {
  const error = new Error('udp-ring: this receiver keeps no kernel timestamps; open it with { timestamps: true } (native backend only)');
  (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_NO_TIMESTAMPS';
  return error;
}

function staleBatchError(generation: number): Error {
  const error = new Error(
    `udp-ring: batch ${generation} was read after the iterator moved on; its memory is being refilled with newer ` +
      'datagrams. Read or copy (batch.copy(i)) what you need inside the loop body.',
  );
  (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_STALE_BATCH';
  return error;
}
