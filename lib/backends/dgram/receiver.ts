// The pure-TypeScript backend: the same UdpReceiver API over node:dgram, for
// platforms where the addon cannot load or has no recvmmsg, or when asked for
// (options.backend 'dgram', env UDP_RING_BACKEND=dgram). It receives on the
// event loop, one datagram per callback, so it keeps none of the native path's
// guarantees under load; it exists so that code written for udp-ring runs
// everywhere. Datagrams are packed into two alternating buffers: the consumer
// reads one while 'message' callbacks fill the other.
//
// This file is the receiver: one state machine over node:dgram's socket (message,
// park, block, iterate, drain, close), about 500 lines because its private state is
// shared by every method. What it restates of the core (iteration, onBatch, close and
// drain) leaves when the core drives every backend through core/backend.ts. area.ts
// stores datagrams, batch.ts reads them, socket.ts reads /proc and the libuv handle.
import * as dgram from 'node:dgram';
import { closedError, invalidType } from '../../core/errors.js';
import { alreadyIteratingError, batchIterator, DONE, turnRoom, type BatchIterator } from '../../core/iteration.js';
import { readRmemMax } from '../../core/kernel.js';
import { checkRingMemory } from '../../core/memory-limit.js';
import { closeOptions, type CloseOptions, type ResolvedReceiverOptions } from '../../core/options.js';
import { registerBackend, type AddressInfo, type ReceiverStats } from '../../core/backend.js';
import { Area, addressBytes, align } from './area.js';
import { DgramBatch } from './batch.js';
import { procSocketLine, recvHandle, type RecvHandle } from './socket.js';

export { DgramBatch } from './batch.js';

interface Parked {
  msg: Buffer;
  rinfo: dgram.RemoteInfo;
}

export class DgramReceiver implements AsyncIterable<DgramBatch> {
  readonly #socket: dgram.Socket;
  readonly #options: ResolvedReceiverOptions;
  readonly #areas: [Area, Area];
  readonly #views: [DataView, DataView];
  #filling: Area;
  #reading: Area | null = null;
  #batch: DgramBatch | null = null;
  #held = 0;
  #generation = 0;
  #parked: Parked | null = null;
  #stopped = false;
  #handle: RecvHandle | null = null;
  #address: AddressInfo;
  #closed = false;
  // As the native receiver's: close({ drain: true }) lets the consumer read on.
  #draining = false;
  #drained: Array<() => void> = [];
  #ended = false;
  // Closing after 'block' stopped reading: the kernel queue is read and counted, then the socket closes.
  #discarding = false;
  #socketClosed: Promise<void> = Promise.resolve();
  #delivered = 0;
  #discarded = 0;
  #turnDatagrams = 0;
  #turnStarted = 0;
  #turnElapsed = 0;
  #msPerDatagram = 0;
  #iterating = false;
  #waiting = false;
  #wake: (() => void) | null = null;
  #error: Error | null = null;
  #socketErrors: ((error: NodeJS.ErrnoException) => void) | null = null;
  #onAbort: (() => void) | null = null;
  #rmemMax = readRmemMax();
  #lastKernel: { queuedBytes: number; drops: number } | null = null;
  #dropsAtOpen = 0;
  #packets = 0;
  #bytes = 0;
  #ringDrops = 0;
  #truncated = 0;
  #highWater = 0;
  #wakeups = 0;
  #stalls = 0;
  #recvBufferSize = 0;

  static async open(options: ResolvedReceiverOptions, address: string): Promise<DgramReceiver> {
    if (options.reusePort) {
      const error = new Error('udp-ring: the dgram backend cannot set SO_REUSEPORT on Node ' + process.version);
      (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_UNSUPPORTED';
      throw error;
    }
    // Its two halves are not resident at open, but fill as the ring does: refused alike.
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
    return new DgramReceiver(socket, options);
  }

  private constructor(socket: dgram.Socket, options: ResolvedReceiverOptions) {
    this.#socket = socket;
    this.#options = options;
    // Each half must hold at least one datagram of maxMessageSize.
    const half = Math.max(Math.floor(options.ringBytes / 2), addressBytes + align(options.maxMessageSize));
    this.#areas = [new Area(half), new Area(half)];
    this.#views = [new DataView(this.#areas[0].buffer), new DataView(this.#areas[1].buffer)];
    this.#filling = this.#areas[0];
    if (options.recvBufferSize > 0) {
      try {
        socket.setRecvBufferSize(options.recvBufferSize);
      } catch {
        // Never fail because of the buffer size (as the native path): report what was granted.
      }
    }
    this.#recvBufferSize = socket.getRecvBufferSize();
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
      this.#shutdown();
    });
    const { signal } = options;
    if (signal) {
      this.#onAbort = () => void this.close();
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  #onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#discarding) {
      this.#discarded++;
      return;
    }
    if (this.#closed) return;
    const keep = Math.min(msg.length, this.#options.maxMessageSize);
    // A full area waits for the consumer to take it: the other one is being read.
    if (!this.#filling.fits(keep)) {
      if (this.#handle) {
        // 'block': keep this one aside and leave the rest in the kernel queue.
        this.#parked = { msg, rinfo };
        this.#handle.recvStop();
        this.#stopped = true;
        this.#stalls++;
      } else {
        this.#ringDrops++;
      }
      return;
    }
    this.#store(msg, keep, rinfo);
  }

  #store(msg: Buffer, keep: number, rinfo: dgram.RemoteInfo): void {
    this.#filling.append(msg, keep, rinfo);
    this.#packets++;
    this.#bytes += keep;
    if (keep < msg.length) this.#truncated++;
    const used = this.#areas[0].used + this.#areas[1].used;
    if (used > this.#highWater) this.#highWater = used;
    const wake = this.#wake;
    if (wake) {
      this.#wake = null;
      this.#wakeups++;
      wake();
    }
  }

  address(): AddressInfo {
    if (this.#closed) throw closedError('address');
    return { ...this.#address };
  }

  get closed(): boolean {
    return this.#closed;
  }

  ref(): this {
    if (!this.#closed) this.#socket.ref();
    return this;
  }

  unref(): this {
    if (!this.#closed) this.#socket.unref();
    return this;
  }

  addMembership(group: string, iface?: string): void {
    this.#live('addMembership').addMembership(group, iface);
  }

  dropMembership(group: string, iface?: string): void {
    this.#live('dropMembership').dropMembership(group, iface);
  }

  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    this.#live('addSourceSpecificMembership').addSourceSpecificMembership(source, group, iface);
  }

  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    this.#live('dropSourceSpecificMembership').dropSourceSpecificMembership(source, group, iface);
  }

  #live(method: string): dgram.Socket {
    if (this.#closed) throw closedError(method);
    return this.#socket;
  }

  /** @internal Connects the node:dgram socket to a peer, or disconnects it (null): the facade's connect(). */
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

  /** @internal ICMP errors of a connected socket, as UdpReceiver._watchSocketErrors. */
  _watchSocketErrors(listener: (error: NodeJS.ErrnoException) => void): void {
    this.#socketErrors = listener;
  }

  /** The bound node:dgram socket (used by the dgram facade for socket options). */
  get _socket(): dgram.Socket {
    return this.#socket;
  }

  stats(): ReceiverStats {
    if (!this.#closed || this.#discarding) this.#lastKernel = procSocketLine(this.#address) ?? this.#lastKernel;
    const kernel = this.#lastKernel;
    const [a, b] = this.#areas;
    const gone = this.#closed && !this.#draining;
    const pending = gone ? 0 : a.count - a.read + b.count - b.read + this.#held;
    const requested = this.#options.recvBufferSize;
    return {
      packets: this.#packets,
      delivered: this.#delivered,
      bytes: this.#bytes,
      batches: this.#packets,
      meanBatchSize: this.#packets === 0 ? 0 : 1,
      kernelDrops: kernel ? kernel.drops - this.#dropsAtOpen : 0,
      ringDrops: this.#ringDrops,
      discarded: this.#discarded,
      truncated: this.#truncated,
      recvBufferSize: this.#recvBufferSize,
      recvBufferRequested: requested,
      recvBufferForced: false,
      recvBufferCapped: requested > 0 && this.#recvBufferSize < 2 * requested,
      rmemMax: this.#rmemMax,
      kernelQueueBytes: this.#closed ? null : (kernel?.queuedBytes ?? null),
      ringBytes: a.buffer.byteLength + b.buffer.byteLength,
      ringUsed: gone ? 0 : a.used + b.used,
      ringDatagrams: pending,
      ringHighWater: this.#highWater,
      wakeups: this.#wakeups,
      producerStalls: this.#stalls,
      receiveCalls: this.#packets,
      directBatches: 0,
      threadWakeups: 0,
      coalesced: 0,
      overflow: this.#options.overflow,
      batchSize: this.#options.batchSize,
      maxMessageSize: this.#options.maxMessageSize,
      queueDelay: null,
      backend: 'dgram',
    };
  }

  close(options?: CloseOptions): Promise<void> {
    const drain = closeOptions(options);
    // The batch in hand stays readable too: the consumer may be awaiting inside its loop body.
    if (drain && !this.#ended && this.#unread() + this.#held > 0) {
      this.#draining = true;
      const drained = new Promise<void>((resolve) => this.#drained.push(resolve));
      this.#shutdown();
      return drained.then(() => this.#socketClosed);
    }
    this.#draining = false;
    this.#shutdown();
    return this.#socketClosed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // Datagrams packed but not yet handed to the consumer, the parked one included.
  #unread(): number {
    const [a, b] = this.#areas;
    return a.count - a.read + b.count - b.read + (this.#parked ? 1 : 0);
  }

  #shutdown(): void {
    if (!this.#closed) {
      this.#closed = true;
      const queued = procSocketLine(this.#address)?.queuedBytes ?? 0;
      if (queued > 0 && (this.#handle || !this.#stopped)) this.#discardQueue();
      else this.#closeSocket();
      if (this.#onAbort) {
        this.#options.signal?.removeEventListener('abort', this.#onAbort);
        this.#onAbort = null;
      }
    }
    if (!this.#draining && !this.#ended) {
      this.#ended = true;
      this.#discarded += this.#unread();
      this.#parked = null;
      this.#batch?._retire();
      const drained = this.#drained;
      this.#drained = [];
      for (const resolve of drained) resolve();
    }
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #closeSocket(): void {
    this.#lastKernel = procSocketLine(this.#address) ?? this.#lastKernel;
    try {
      this.#socket.close();
    } catch {
      // Already closed by node:dgram after an error.
    }
  }

  // Datagrams wait in the kernel queue ('block' stopped reading, or the event
  // loop has not got to them): node:dgram's close() would drop them
  // uncounted, so they are read (counted as discarded) until the queue is
  // empty, for at most a second, and then the socket closes.
  #discardQueue(): void {
    this.#discarding = true;
    if (this.#stopped) {
      this.#stopped = false;
      this.#handle!.recvStart();
    }
    const until = performance.now() + 1000;
    this.#socketClosed = new Promise<void>((resolve) => {
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

  /**
   * onBatch, as the native receiver has it, over this backend's iterator: the
   * same contract (valid until the handler returns or its promise settles; a
   * throw rejects and closes), though here each batch costs a promise.
   */
  onBatch(handler: (batch: DgramBatch) => void | PromiseLike<void>): Promise<void> {
    if (typeof handler !== 'function') throw invalidType('handler', 'of type function', handler);
    if (this.#closed) throw closedError('onBatch');
    const iterator = this[Symbol.asyncIterator]();
    return new Promise<void>((resolve, reject) => {
      // Starts on a later turn, as the native onBatch does.
      setImmediate(async () => {
        try {
          for (;;) {
            const { value, done } = await iterator.next();
            if (done) return resolve();
            await handler(value);
          }
        } catch (error) {
          await iterator.return?.();
          reject(error);
        }
      });
    });
  }

  [Symbol.asyncIterator](): BatchIterator<DgramBatch> {
    if (this.#closed && !this.#draining) throw closedError('[Symbol.asyncIterator]');
    if (this.#iterating) throw alreadyIteratingError();
    this.#iterating = true;
    return batchIterator(
      () => this.#next(),
      () => {
        this.#release();
        this.#draining = false;
        this.#shutdown();
        return this.#socketClosed;
      },
    );
  }

  async #next(): Promise<IteratorResult<DgramBatch, undefined>> {
    if (this.#waiting) throw new Error('udp-ring: next() called while another next() is waiting');
    this.#release();
    this.#waiting = true;
    try {
      // The event loop's turn (options.yieldEvery), as the native receiver gives it.
      const budget = this.#options.yieldEvery;
      if (this.#turnDatagrams > 0) {
        this.#turnElapsed = performance.now() - this.#turnStarted;
        this.#msPerDatagram = this.#turnElapsed / this.#turnDatagrams;
        if (this.#turnDatagrams >= budget.datagrams || this.#turnElapsed >= budget.ms) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          this.#turnDatagrams = 0;
        }
      }
      for (;;) {
        const batch = this.#fill();
        if (batch) return { done: false, value: batch };
        if (this.#error) throw this.#error;
        if (this.#closed) {
          if (this.#draining) {
            this.#draining = false;
            this.#shutdown();
          }
          return DONE;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#turnDatagrams = 0; // woken by a 'message' callback: the loop had its turn
      }
    } finally {
      this.#waiting = false;
    }
  }

  #fill(): DgramBatch | null {
    if (this.#closed && !this.#draining) return null;
    let area = this.#reading;
    if (area === null || area.read === area.count) {
      if (area) area.reset();
      // Hand the filling area to the consumer; new datagrams go to the other one.
      if (this.#filling.count === 0) {
        this.#reading = null;
        return null;
      }
      area = this.#filling;
      this.#reading = area;
      const other = area === this.#areas[0] ? this.#areas[1] : this.#areas[0];
      other.reset();
      this.#filling = other;
      this.#resume();
    }
    // Within the turn's budget: its count, and the time left at the consumer's recent pace.
    if (this.#turnDatagrams === 0) this.#turnElapsed = 0;
    const room = turnRoom(this.#options.yieldEvery, this.#turnDatagrams, this.#turnElapsed, this.#msPerDatagram);
    const length = Math.min(area.count - area.read, this.#options.maxBatchLength, room);
    if (this.#turnDatagrams === 0) this.#turnStarted = performance.now();
    this.#turnDatagrams += length;
    const view = this.#views[area === this.#areas[0] ? 0 : 1];
    this.#batch = new DgramBatch(area, area.read, length, ++this.#generation, view);
    area.read += length;
    this.#held = length;
    this.#delivered += length;
    return this.#batch;
  }

  // Space again: store the parked datagram and read the kernel queue again.
  #resume(): void {
    const parked = this.#parked;
    this.#parked = null;
    if (parked) this.#store(parked.msg, Math.min(parked.msg.length, this.#options.maxMessageSize), parked.rinfo);
    if (!this.#stopped) return;
    this.#stopped = false;
    // Closed: a drain reads on what was taken, but nothing more from the socket.
    if (!this.#closed) this.#handle?.recvStart();
  }

  #release(): void {
    if (this.#held === 0) return;
    this.#held = 0;
    this.#batch?._retire();
  }
}

registerBackend('dgram', (options, address) => DgramReceiver.open(options, address));

