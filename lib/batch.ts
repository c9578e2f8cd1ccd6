// A Batch is a window over the ring: the datagrams between the consumer's
// head and the producer's tail. One Batch object per receiver is reused for
// every iteration, and its accessors read descriptors in place, so iterating
// allocates nothing per datagram. Methods that do allocate say so.
import { formatIPv4, formatIPv6 } from './address.js';
import { descriptor, flagTruncated } from './layout.js';

export class Batch {
  /** The whole ring as bytes: payload i is `bytes.subarray(offset(i), offset(i) + size(i))`. */
  readonly bytes: Uint8Array;
  /** The whole ring as a DataView, for reading payload fields in place. */
  readonly view: DataView;
  /** Datagrams in this batch. */
  length = 0;

  readonly #u32: Uint32Array;
  readonly #u16: Uint16Array;
  readonly #descriptorsOffset: number;
  readonly #mask: number;
  #first = 0;

  /** @internal */
  constructor(buffer: ArrayBuffer, descriptorsOffset: number, descriptorCount: number) {
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    this.#u32 = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    this.#u16 = new Uint16Array(buffer, 0, buffer.byteLength >>> 1);
    this.#descriptorsOffset = descriptorsOffset;
    this.#mask = descriptorCount - 1;
  }

  /** @internal Points the batch at `length` descriptors from ring slot `first`. */
  _reset(first: number, length: number): void {
    this.#first = first;
    this.length = length;
  }

  #at(i: number): number {
    if ((i >>> 0) !== i || i >= this.length) {
      throw new RangeError(`udp-ring: datagram index ${String(i)} is outside this batch (length ${this.length})`);
    }
    return this.#descriptorsOffset + ((this.#first + i) & this.#mask) * descriptor.size;
  }

  /** Byte offset of datagram i's payload in `bytes` / `view`. */
  offset(i: number): number {
    return this.#u32[(this.#at(i) + descriptor.offset) >>> 2];
  }

  /** Bytes of datagram i held in the ring (at most maxMessageSize). */
  size(i: number): number {
    return this.#u32[(this.#at(i) + descriptor.bytes) >>> 2];
  }

  /** Datagram i's length on the wire; larger than size(i) when it was truncated. */
  wireSize(i: number): number {
    return this.#u32[(this.#at(i) + descriptor.wireSize) >>> 2];
  }

  /** True when datagram i was longer than maxMessageSize and was cut. */
  truncated(i: number): boolean {
    return (this.bytes[this.#at(i) + descriptor.flags] & flagTruncated) !== 0;
  }

  /** Source port of datagram i. */
  port(i: number): number {
    return this.#u16[(this.#at(i) + descriptor.port) >>> 1];
  }

  /** 4 or 6: the family of datagram i's source address. */
  family(i: number): 4 | 6 {
    return this.bytes[this.#at(i) + descriptor.family] as 4 | 6;
  }

  /** Offset in `bytes` of datagram i's source address: 4 bytes (IPv4) or 16 (IPv6), network order. */
  addressOffset(i: number): number {
    return this.#at(i) + descriptor.address;
  }

  /** Allocates: datagram i's source address as a string, as dgram's rinfo.address. */
  address(i: number): string {
    const at = this.#at(i);
    const address = at + descriptor.address;
    return this.bytes[at + descriptor.family] === 6 ? formatIPv6(this.bytes, address) : formatIPv4(this.bytes, address);
  }

  /** Allocates a view (no copy): datagram i's payload, valid until the next iteration. */
  payload(i: number): Uint8Array {
    const at = this.offset(i);
    return this.bytes.subarray(at, at + this.size(i));
  }

  /** Allocates a copy: datagram i's payload as a Buffer that outlives the batch. */
  copy(i: number): Buffer {
    const at = this.offset(i);
    return Buffer.from(this.bytes.subarray(at, at + this.size(i)));
  }
}
