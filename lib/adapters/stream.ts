// `udp-ring/stream`: a receiver as an object-mode Readable, for
// stream.pipeline. The stream pulls a batch from the ring only when its
// consumer asks for more (_read), so a slow consumer leaves datagrams in the
// ring, and once the ring is full the receiver's overflow policy decides:
// 'block' leaves them in the kernel queue (its drops are counted), 'drop'
// counts ringDrops. Destroying the stream closes the receiver.
import { Readable } from 'node:stream';
import type { Batch } from '../core/batch.js';
import type { UdpReceiver } from '../core/receiver.js';

/** One datagram, copied out of the ring. */
export interface Datagram {
  data: Buffer;
  address: string;
  family: 4 | 6;
  port: number;
  truncated: boolean;
}

/** A batch copied out of the ring into one Buffer: payload i is data.subarray(offsets[i], offsets[i] + sizes[i]). */
export interface CopiedBatch {
  length: number;
  data: Buffer;
  offsets: Uint32Array;
  sizes: Uint32Array;
  ports: Uint16Array;
  families: Uint8Array;
  /** Source address i as a string (allocates). */
  address(i: number): string;
}

export interface ReceiverStreamOptions {
  /** 'datagrams' (default): one Datagram per chunk; 'buffers': one Buffer per datagram; 'batches': one CopiedBatch per chunk. */
  mode?: 'datagrams' | 'buffers' | 'batches';
  /** Chunks the stream buffers before it stops pulling from the ring. Default 1024 (batches: 16). */
  highWaterMark?: number;
}

function copyBatch(batch: Batch): CopiedBatch {
  const length = batch.length;
  const offsets = new Uint32Array(length);
  const sizes = new Uint32Array(length);
  const ports = new Uint16Array(length);
  const families = new Uint8Array(length);
  const addresses = new Array<string>(length);
  let total = 0;
  for (let i = 0; i < length; i++) total += batch.size(i);
  const data = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < length; i++) {
    const size = batch.size(i);
    data.set(batch.bytes.subarray(batch.offset(i), batch.offset(i) + size), at);
    offsets[i] = at;
    sizes[i] = size;
    ports[i] = batch.port(i);
    families[i] = batch.family(i);
    addresses[i] = batch.address(i);
    at += size;
  }
  return { length, data, offsets, sizes, ports, families, address: (i) => addresses[i] };
}

export class ReceiverStream extends Readable {
  readonly receiver: UdpReceiver;
  readonly #mode: 'datagrams' | 'buffers' | 'batches';
  // Set by _read, cleared when push() says the buffer is full. While it is
  // clear the handler holds its batch (a promise), the ring fills, and the
  // receiver's overflow policy acts.
  #wanted = false;
  #resume: (() => void) | null = null;

  constructor(receiver: UdpReceiver, options: ReceiverStreamOptions = {}) {
    const mode = options.mode ?? 'datagrams';
    if (mode !== 'datagrams' && mode !== 'buffers' && mode !== 'batches') {
      const error = new TypeError(`The "options.mode" option must be one of 'datagrams', 'buffers' or 'batches'. Received ${String(mode)}`);
      (error as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_VALUE';
      throw error;
    }
    super({ objectMode: true, highWaterMark: options.highWaterMark ?? (mode === 'batches' ? 16 : 1024) });
    this.receiver = receiver;
    this.#mode = mode;
    // The fast path: no promise per batch while the consumer keeps up.
    receiver.onBatch(this.#onBatch).then(
      () => {
        if (!this.destroyed) this.push(null);
      },
      (error: unknown) => {
        if (!this.destroyed) this.destroy(error as Error);
      },
    );
  }

  override _read(): void {
    this.#wanted = true;
    const resume = this.#resume;
    this.#resume = null;
    resume?.();
  }

  // A whole batch is pushed before the next is taken, since taking the next
  // releases this one's ring space.
  readonly #onBatch = (batch: Batch): void | Promise<void> => {
    if (this.destroyed) return;
    if (!this.#wanted) {
      return new Promise<void>((resolve) => {
        this.#resume = resolve;
      }).then(() => this.#onBatch(batch));
    }
    let more = true;
    if (this.#mode === 'batches') {
      more = this.push(copyBatch(batch));
    } else {
      for (let i = 0; i < batch.length; i++) {
        const data = batch.copy(i);
        more = this.push(this.#mode === 'buffers' ? data : {
          data, address: batch.address(i), family: batch.family(i), port: batch.port(i), truncated: batch.truncated(i),
        });
      }
    }
    if (!more) this.#wanted = false;
  };

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const closed = this.receiver.close();
    // A handler waiting for _read goes on, sees the stream destroyed, and delivery ends.
    const resume = this.#resume;
    this.#resume = null;
    resume?.();
    closed.then(() => callback(error), () => callback(error));
  }
}

/** An object-mode Readable over `receiver` (which it then owns: destroying the stream closes it). */
export function createReadStream(receiver: UdpReceiver, options?: ReceiverStreamOptions): ReceiverStream {
  return new ReceiverStream(receiver, options);
}
