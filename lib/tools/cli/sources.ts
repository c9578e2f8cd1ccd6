// Counts datagrams per source (address and port) without making a string or
// object per datagram: keys are the raw address bytes, stored in a typed-array
// hash table with linear probing. Strings are made only for the top entries,
// when a view is drawn.
import { formatIPv4, formatIPv6 } from '../../core/address.js';

const KEY_BYTES = 20; // family, unused, port (2), address (16)

export interface SourceCount {
  address: string;
  port: number;
  family: 4 | 6;
  count: number;
}

export class SourceCounter {
  readonly #keys: Uint8Array;
  readonly #counts: Float64Array;
  readonly #mask: number;
  readonly #limit: number;
  #size = 0;
  /** Datagrams from sources that did not fit in the table. */
  other = 0;

  /** capacity: a power of two; the table stops taking new sources at 3/4 full. */
  constructor(capacity = 4096) {
    if ((capacity & (capacity - 1)) !== 0) throw new RangeError('capacity must be a power of two');
    this.#keys = new Uint8Array(capacity * KEY_BYTES);
    this.#counts = new Float64Array(capacity);
    this.#mask = capacity - 1;
    this.#limit = (capacity * 3) >>> 2;
  }

  get size(): number {
    return this.#size;
  }

  /** Adds `n` datagrams from the source whose address bytes start at `bytes[at]` (4 or 16 of them). */
  add(bytes: Uint8Array, at: number, family: 4 | 6, port: number, n = 1): void {
    const length = family === 6 ? 16 : 4;
    let hash = 0x811c9dc5 ^ family;
    hash = Math.imul(hash ^ (port & 0xff), 0x01000193);
    hash = Math.imul(hash ^ (port >>> 8), 0x01000193);
    for (let k = 0; k < length; k++) hash = Math.imul(hash ^ bytes[at + k], 0x01000193);
    const keys = this.#keys;
    for (let slot = hash & this.#mask; ; slot = (slot + 1) & this.#mask) {
      const base = slot * KEY_BYTES;
      if (this.#counts[slot] === 0) {
        if (this.#size >= this.#limit) {
          this.other += n;
          return;
        }
        keys[base] = family;
        keys[base + 2] = port >>> 8;
        keys[base + 3] = port & 0xff;
        for (let k = 0; k < length; k++) keys[base + 4 + k] = bytes[at + k];
        this.#counts[slot] = n;
        this.#size++;
        return;
      }
      if (keys[base] === family && keys[base + 2] === port >>> 8 && keys[base + 3] === (port & 0xff) && this.#same(base, bytes, at, length)) {
        this.#counts[slot] += n;
        return;
      }
    }
  }

  #same(base: number, bytes: Uint8Array, at: number, length: number): boolean {
    for (let k = 0; k < length; k++) if (this.#keys[base + 4 + k] !== bytes[at + k]) return false;
    return true;
  }

  /** The `n` sources with the most datagrams, most first. Allocates: call it per view, not per datagram. */
  top(n: number): SourceCount[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#counts.length; slot++) if (this.#counts[slot] > 0) slots.push(slot);
    slots.sort((a, b) => this.#counts[b] - this.#counts[a]);
    return slots.slice(0, n).map((slot) => {
      const base = slot * KEY_BYTES;
      const family = this.#keys[base] as 4 | 6;
      return {
        family,
        address: family === 6 ? formatIPv6(this.#keys, base + 4) : formatIPv4(this.#keys, base + 4),
        port: (this.#keys[base + 2] << 8) | this.#keys[base + 3],
        count: this.#counts[slot],
      };
    });
  }
}
