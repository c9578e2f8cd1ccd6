// The dgram backend's Batch: BatchWindow's accessors over one Area.
import { networkInterfaces } from 'node:os';
import { formatAddress } from '../../core/address.js';
import { BatchWindow, timestampsOffError } from '../../core/batch.js';
import { Area, addressBytes } from './area.js';

/** The Batch of the dgram backend: the same accessors, over one of its two areas. */
export class DgramBatch extends BatchWindow {
  readonly #area: Area;
  readonly #first: number;

  /** @internal */
  constructor(area: Area, first: number, length: number, generation: number, view: DataView) {
    super(area.bytes, view, generation);
    this.#area = area;
    this.#first = first;
    this.length = length;
  }

  #at(i: number): number {
    if ((i >>> 0) !== i || i >= this.length) throw this._indexError(i);
    return this.#first + i;
  }

  override offset(i: number): number {
    return this.#area.offsets[this.#at(i)];
  }

  override size(i: number): number {
    return this.#area.sizes[this.#at(i)];
  }

  wireSize(i: number): number {
    return this.#area.wireSizes[this.#at(i)];
  }

  truncated(i: number): boolean {
    return this.#area.flags[this.#at(i)] !== 0;
  }

  port(i: number): number {
    return this.#area.ports[this.#at(i)];
  }

  family(i: number): 4 | 6 {
    return this.#area.families[this.#at(i)] as 4 | 6;
  }

  addressOffset(i: number): number {
    return this.#area.offsets[this.#at(i)] - addressBytes;
  }

  /** The dgram backend has no kernel receive timestamps: always throws ERR_UDP_RING_NO_TIMESTAMPS. */
  timestamp(i: number): number {
    this.#at(i);
    throw timestampsOffError();
  }

  /** The IPv6 scope (interface index) of datagram i's source, or 0. */
  scopeId(i: number): number {
    const scope = this.#area.scopes[this.#at(i)];
    if (scope === '') return 0;
    if (/^\d+$/.test(scope)) return Number(scope);
    return networkInterfaces()[scope]?.find((entry) => entry.family === 'IPv6' && entry.scopeid)?.scopeid ?? 0;
  }

  address(i: number): string {
    const k = this.#at(i);
    const text = formatAddress(this.bytes, this.#area.offsets[k] - addressBytes, this.#area.families[k]);
    const scope = this.#area.scopes[k];
    return scope === '' ? text : `${text}%${scope}`;
  }
}
