// The dgram backend's storage: two Areas of packed records (16 address bytes,
// then the payload, 8-byte aligned) with their descriptor tables; the consumer
// reads one while 'message' callbacks fill the other.
import type * as dgram from 'node:dgram';

export const addressBytes = 16;
const recordAlign = 8;

export function align(n: number): number {
  return Math.ceil(n / recordAlign) * recordAlign;
}

/** One buffer of packed records (16 address bytes, then the payload) and its descriptor tables. */
export class Area {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  offsets = new Uint32Array(256);
  sizes = new Uint32Array(256);
  wireSizes = new Uint32Array(256);
  ports = new Uint16Array(256);
  families = new Uint8Array(256);
  flags = new Uint8Array(256);
  // A link-local source's '%interface' (rinfo.address keeps it), else ''.
  scopes: string[] = [];
  count = 0;
  used = 0;
  /** Descriptors already handed to the consumer. */
  read = 0;

  constructor(bytes: number) {
    this.buffer = new ArrayBuffer(bytes);
    this.bytes = new Uint8Array(this.buffer);
  }

  reset(): void {
    this.count = 0;
    this.used = 0;
    this.read = 0;
  }

  fits(payloadBytes: number): boolean {
    return this.used + addressBytes + align(payloadBytes) <= this.buffer.byteLength;
  }

  #grow(): void {
    const n = this.offsets.length * 2;
    const grow = <T extends Uint32Array | Uint16Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(n);
      next.set(old);
      return next;
    };
    this.offsets = grow(this.offsets, (k) => new Uint32Array(k));
    this.sizes = grow(this.sizes, (k) => new Uint32Array(k));
    this.wireSizes = grow(this.wireSizes, (k) => new Uint32Array(k));
    this.ports = grow(this.ports, (k) => new Uint16Array(k));
    this.families = grow(this.families, (k) => new Uint8Array(k));
    this.flags = grow(this.flags, (k) => new Uint8Array(k));
  }

  /** Packs one datagram; the caller checked fits(). */
  append(msg: Buffer, keep: number, rinfo: dgram.RemoteInfo): void {
    if (this.count === this.offsets.length) this.#grow();
    const k = this.count++;
    const at = this.used;
    const family = writeAddress(this.bytes, at, rinfo.address, rinfo.family);
    this.bytes.set(keep === msg.length ? msg : msg.subarray(0, keep), at + addressBytes);
    this.offsets[k] = at + addressBytes;
    this.sizes[k] = keep;
    this.wireSizes[k] = msg.length;
    this.ports[k] = rinfo.port;
    this.families[k] = family;
    this.flags[k] = keep < msg.length ? 1 : 0;
    const percent = rinfo.address.indexOf('%');
    this.scopes[k] = percent < 0 ? '' : rinfo.address.slice(percent + 1);
    this.used = at + addressBytes + align(keep);
  }
}

/** Writes rinfo.address as 4 or 16 network-order bytes at `at`; returns the family (4 or 6). */
export function writeAddress(target: Uint8Array, at: number, address: string, family: string | number): 4 | 6 {
  if (family === 'IPv4' || family === 4) {
    let part = 0;
    let value = 0;
    for (let i = 0; i < address.length; i++) {
      const c = address.charCodeAt(i);
      if (c === 46) {
        target[at + part++] = value;
        value = 0;
      } else {
        value = value * 10 + (c - 48);
      }
    }
    target[at + part] = value;
    return 4;
  }
  parseIPv6(address, target, at);
  return 6;
}

function parseIPv6(text: string, target: Uint8Array, at: number): void {
  const scope = text.indexOf('%');
  if (scope >= 0) text = text.slice(0, scope);
  target.fill(0, at, at + 16);
  const words: number[] = [];
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const q = group.split('.').map(Number);
        out.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
      } else {
        out.push(Number.parseInt(group, 16));
      }
    }
    return out;
  };
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  words.push(...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back);
  for (let g = 0; g < 8; g++) {
    target[at + 2 * g] = words[g] >>> 8;
    target[at + 2 * g + 1] = words[g] & 0xff;
  }
}
