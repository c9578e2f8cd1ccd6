// UdpReceiver: the socket and the ring its datagrams go to, seen from
// JavaScript, on either backend. A backend fills the ring (the native one from
// its receive thread, the dgram one from node:dgram's 'message' callbacks);
// this class validates, holds the state, raises errors and iterates. What
// reads the ring and the socket (opening, the wait flag, release, the direct
// receive, counters, socket options) is the backend's RingReader
// (backends/native/ring-reader.ts, backends/dgram/receiver.ts), reached
// through core/backend.ts.
//
// Over 400 lines (about 720): the delivery state (turn budget, waiter, drain,
// held batch) is one set of private fields that onBatch, the iterator, close()
// and stats() all read and write on the per-batch path; splitting it across
// classes would add an object or an indirection per batch.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Batch } from './batch.js';
import { alreadyIteratingError, batchIterator, DONE, microsSince, turnRoom, type BatchIterator } from './iteration.js';
import { readRmemMax } from './kernel.js';
import { nativeRingBackend, openBackend, type DgramSocketAccess, type RingReader, type SocketOptionSetter } from './backend.js';
import { closedError, invalidType } from './errors.js';
import { QueueDelay, type QueueDelaySummary } from './queue-delay.js';
import { closeOptions, resolveReceiverOptions, type CloseOptions, type Overflow, type ReceiverOptions, type ResolvedReceiverOptions } from './options.js';

export type { CloseOptions } from './options.js';
export { closeOptions } from './options.js';

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

export interface ReceiverStats {
  /** Datagrams the receive thread placed in the ring. */
  packets: number;
  /** Datagrams handed to the application (in batches the iterator yielded). */
  delivered: number;
  /** Payload bytes placed in the ring. */
  bytes: number;
  /** recvmmsg calls that returned datagrams. */
  batches: number;
  /** packets / batches: small at light load, up to batchSize under pressure. */
  meanBatchSize: number;
  /** Datagrams the kernel dropped on this socket (its receive buffer was full). */
  kernelDrops: number;
  /** Datagrams dropped because the ring was full (overflow 'drop' only). */
  ringDrops: number;
  /**
   * Datagrams the socket took but the application never got because the
   * receiver closed: unread in the ring, waiting in the landing zone or the
   * kernel queue, or arriving while it closed. With every loss counted,
   * sent = delivered + ringDrops + kernelDrops + discarded once closed.
   */
  discarded: number;
  /** Datagrams longer than maxMessageSize: delivered cut and flagged. */
  truncated: number;
  /** Kernel receive buffer as granted (getsockopt SO_RCVBUF; the kernel doubles what it is asked). */
  recvBufferSize: number;
  /** What was asked for (options.recvBufferSize). */
  recvBufferRequested: number;
  /** True when SO_RCVBUFFORCE was allowed (CAP_NET_ADMIN), so net.core.rmem_max did not apply. */
  recvBufferForced: boolean;
  /** True when net.core.rmem_max cut the request short. */
  recvBufferCapped: boolean;
  /** net.core.rmem_max when it could be read, else null. */
  rmemMax: number | null;
  /** Bytes now waiting in the kernel's queue for this socket, or null when unknown. */
  kernelQueueBytes: number | null;
  ringBytes: number;
  /** Ring bytes in use now: payloads (with padding) and descriptors not yet released. */
  ringUsed: number;
  /** Datagrams in the ring not yet released by the consumer. */
  ringDatagrams: number;
  /** Most ring bytes in use at once, as the receive thread saw it. */
  ringHighWater: number;
  /** Times the receive thread woke the event loop (at most one per batch). */
  wakeups: number;
  /** Times the receive thread waited for ring space (overflow 'block'). */
  producerStalls: number;
  /** recvmmsg calls made, including ones that found the queue empty. */
  receiveCalls: number;
  /** Batches the event loop received itself while the iterator waited (options.eventLoopReceive). */
  directBatches: number;
  /**
   * Times the receive thread woke from a wait. While the event loop receives
   * (eventLoopReceive), the thread only checks that the loop keeps up, once per
   * 1 to 8 ms (about every 128 arrivals): at most about 1000/s, whatever the rate.
   */
  threadWakeups: number;
  /** Datagrams that arrived as segments of a coalesced GRO buffer and were split (options.gro); 0 otherwise. */
  coalesced: number;
  /**
   * Coalescing windows waited (options.coalesceMs), by the event loop and the receive thread: with
   * 'auto', it grows only while the socket is busy, and stops when traffic calms.
   */
  windows: number;
  overflow: Overflow;
  batchSize: number;
  maxMessageSize: number;
  /**
   * With options.timestamps: microseconds from the kernel's receive timestamp to delivery,
   * per datagram since open (null without timestamps, or on the dgram backend).
   */
  queueDelay: QueueDelaySummary | null;
  /** Which backend receives: the addon's thread, or node:dgram on the event loop. */
  backend: 'native' | 'dgram';
}




function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as NodeJS.ErrnoException).code = 'ABORT_ERR';
  return error;
}

/** The promise a waiting next() holds; the wake function sees only this, not the receiver. */
interface Waiter {
  resolve: (() => void) | null;
}

// Made outside the class: a closure created in the constructor would share its
// context with closures that capture `this` (the abort listener), and the
// native wake function, held strongly, would then keep the receiver from ever
// being collected (and its thread alive, and the process from exiting).
function wakeFunction(waiter: Waiter): () => void {
  return () => {
    const resolve = waiter.resolve;
    waiter.resolve = null;
    resolve?.();
  };
}

// The signal may outlive the receiver (one controller for a whole application):
// its listener holds the receiver weakly, so a dropped receiver is still collected.
function abortListener(receiver: WeakRef<UdpReceiver>): () => void {
  return () => void receiver.deref()?.close();
}

export class UdpReceiver implements AsyncIterable<Batch> {
  // The backend's side of the ring and the socket (core/backend.ts).
  readonly #reader: RingReader;
  readonly #options: ResolvedReceiverOptions;
  readonly #timestampsOffset: number;
  readonly #mask: number;
  #batch: Batch;
  readonly #result: IteratorYieldResult<Batch>;
  readonly #waiter: Waiter;
  readonly #recvBufferSize: number;
  readonly #forced: boolean;
  readonly #rmemMax: number | null;
  #address: AddressInfo;
  // Datagrams released so far, mod 2^32, as the native side counts them.
  #head = 0;
  #held = 0;
  #closed = false;
  // Closed with { drain: true } and the ring not yet read to its end.
  #draining = false;
  #drained: Array<() => void> = [];
  // The ring's content is over: read to its end, or discarded.
  #ended = false;
  #delivered = 0;
  // Datagrams delivered since the event loop last had a turn (options.yieldEvery).
  #turnDatagrams = 0;
  // Microseconds of this turn measured so far (the turn clock's).
  #turnElapsed = 0;
  // When this turn's clock was first read (the reader's nowMicros(), a wrapping µs count; -1: not
  // yet), and the datagrams delivered before it (both paths read the clock only when a turn goes
  // past one batch: see #next and #deliver).
  #turnClock = -1;
  #untimed = 0;
  // What the consumer spent on how many datagrams in this turn (or the last):
  // sizes batches so that a turn ends near yieldEvery.ms, not a whole batch
  // after. Two whole numbers, not a rate: a fraction stored in a field is a
  // heap number allocated at each store, at every wakeup under load.
  #paceMicros = 0;
  #paceDatagrams = 0;
  // Unread ring datagrams given up at close (the backend counts the rest).
  #ringDiscarded = 0;
  // The backend's close, while it takes a while (the dgram backend reading its kernel queue).
  #socketClosed: Promise<void> | null = null;
  #iterating = false;
  #waiting = false;
  // options.eventLoopReceive, until the addon says libuv is not to be found.
  #direct: boolean;
  #directPolling = false;
  #resolveNext: ((result: IteratorResult<Batch, undefined>) => void) | null = null;
  #rejectNext: ((error: unknown) => void) | null = null;
  readonly #executor = (
    resolve: (result: IteratorResult<Batch, undefined>) => void,
    reject: (error: unknown) => void,
  ): void => {
    this.#resolveNext = resolve;
    this.#rejectNext = reject;
    this.#arm();
  };
  // Handed to the wake function only while a next() waits, so an idle receiver
  // is not pinned by the native side and can still be collected.
  readonly #onWake = (): void => {
    this.#waiter.resolve = null;
    // Woken from the event loop (a callback of its own): the loop had its turn.
    this.#turnDatagrams = 0;
    this.#turnClock = -1;
    this.#arm();
  };
  #error: Error | null = null;
  // onBatch: the handler, and its promise's settlers until delivery ends.
  #handler: ((batch: Batch) => void | PromiseLike<void>) | null = null;
  #handlerDone: { resolve: () => void; reject: (error: unknown) => void } | null = null;
  // Queueing delay per datagram, with options.timestamps.
  readonly #delays: QueueDelay | null;
  #onAbort: (() => void) | null = null;

  /** Opens a socket, binds it and starts its receive thread. */
  static async open(options?: ReceiverOptions): Promise<UdpReceiver> {
    const resolved = resolveReceiverOptions(options);
    const { signal } = resolved;
    if (signal?.aborted) throw abortError(signal);
    let address = resolved.host ?? (resolved.type === 'udp6' ? '::' : '0.0.0.0');
    if (isIP(address) === 0) {
      address = (await lookup(address, { family: resolved.type === 'udp6' ? 6 : 4 })).address;
      if (signal?.aborted) throw abortError(signal);
    }
    const waiter: Waiter = { resolve: null };
    if (resolved.backend === 'dgram') {
      const reader = await openBackend('dgram', resolved, address, wakeFunction(waiter));
      return new UdpReceiver(resolved, address, null, reader, waiter);
    }
    const makeDelays = resolved.timestamps ? await QueueDelay.loader(nativeRingBackend().clock) : null;
    return UdpReceiver.#native(resolved, address, makeDelays);
  }

  static #native(options: ResolvedReceiverOptions, address: string,
    makeDelays: ((ring: SharedArrayBuffer) => QueueDelay) | null, adoptFd = 0, dupFd = false): UdpReceiver {
    const waiter: Waiter = { resolve: null };
    const reader = nativeRingBackend().open(options, address, wakeFunction(waiter), adoptFd, dupFd);
    return new UdpReceiver(options, address, makeDelays, reader, waiter);
  }

  /**
   * @internal Opens on the native backend within the call (no timestamps): the dgram facade's
   * bind, whose 'listening' must come in the same tick as node:dgram's. Null when the options
   * resolve to the dgram backend, which only opens asynchronously (use open()).
   */
  static _openNow(options: ReceiverOptions, address: string, adoptFd = 0, dupFd = false): UdpReceiver | null {
    const resolved = resolveReceiverOptions(options);
    if (resolved.backend === 'dgram' || resolved.timestamps) return null;
    return UdpReceiver.#native(resolved, address, null, adoptFd, dupFd);
  }

  // adoptFd > 0 (native): receive on that inherited, bound socket instead of opening one (dgram's bind({ fd })).
  private constructor(options: ResolvedReceiverOptions, address: string,
    makeDelays: ((ring: SharedArrayBuffer) => QueueDelay) | null, reader: RingReader, waiter: Waiter) {
    this.#options = options;
    this.#direct = options.eventLoopReceive;
    this.#waiter = waiter;
    this.#reader = reader;
    this.#recvBufferSize = reader.recvBufferSize;
    this.#forced = reader.forced;
    this.#rmemMax = readRmemMax();
    this.#timestampsOffset = reader.timestampsOffset;
    this.#mask = reader.mask;
    this.#head = reader.initialHead();
    this.#batch = reader.firstBatch();
    this.#delays = makeDelays?.(reader.ring as SharedArrayBuffer) ?? null;
    this.#result = { done: false, value: this.#batch };
    const local = reader.localAddress();
    this.#address = local ?? { address, family: options.type === 'udp6' ? 'IPv6' : 'IPv4', port: options.port };
    const { signal } = options;
    if (signal) {
      this.#onAbort = abortListener(new WeakRef(this));
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /** The bound address, like dgram's socket.address(). */
  address(): AddressInfo {
    if (this.#closed) throw closedError('address');
    return { ...this.#address };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Keeps the event loop alive while open (the default, as dgram does). */
  ref(): this {
    if (!this.#closed) this.#reader.ref();
    return this;
  }

  /** Lets the process exit while this receiver is open. */
  unref(): this {
    if (!this.#closed) this.#reader.unref();
    return this;
  }

  /** Joins a multicast group, as dgram's addMembership: `iface` is a local IPv4 address, or an IPv6 '%scope'. */
  addMembership(group: string, iface?: string): void {
    this.#open('setsockopt').membership(true, group, iface);
  }

  dropMembership(group: string, iface?: string): void {
    this.#open('setsockopt').membership(false, group, iface);
  }

  /** Joins `group` for datagrams from `source` only (SSM). */
  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    this.#open('setsockopt').sourceMembership(true, source, group, iface);
  }

  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    this.#open('setsockopt').sourceMembership(false, source, group, iface);
  }

  /** @internal setsockopt/getsockopt on the bound socket (the dgram facade's socket options). */
  _socketOptions(): SocketOptionSetter {
    return this.#open('setsockopt').optionSetter();
  }

  /**
   * @internal One datagram from the bound socket (the dgram facade's send). `source`: the local
   * address to send from, such as `batch.destinationAddress(i)` (pktinfo), so that a socket bound to
   * the wildcard answers from the address it was asked on.
   */
  _sendTo(data: Uint8Array, address: string, port: number, source?: string): number {
    return this.#open('send').sendTo(data, address, port, source);
  }

  /** @internal Connects the socket to a peer, or disconnects it (null): the dgram facade's connect(). */
  _connect(peer: { address: string; port: number } | null): void {
    this.#open('connect').connect(peer);
  }

  /** @internal ICMP errors a connected socket's receives meet (ECONNREFUSED...), as dgram reports them. */
  _watchSocketErrors(listener: (error: NodeJS.ErrnoException) => void): void {
    this.#reader.watchErrors(listener);
  }

  /** @internal The dgram backend's node:dgram socket (the dgram facade's sends and options there), or null. */
  _dgram(): DgramSocketAccess | null {
    return this.#reader.dgramSocket();
  }

  // The reader, for a socket call that needs the socket open (`call` names it in the error).
  #open(call: string): RingReader {
    if (this.#closed) throw closedError(call);
    return this.#reader;
  }

  /** Counters and gauges; still readable after close (final values). */
  stats(): ReceiverStats {
    const reader = this.#reader;
    const packets = reader.counter('packets');
    const batches = reader.counter('batches');
    // Once closed (and not draining) nothing is left in the ring: it was discarded.
    const gone = this.#closed && !this.#draining;
    const ringDatagrams = gone ? 0 : reader.outstanding();
    const requested = this.#options.recvBufferSize;
    return {
      packets,
      delivered: this.#delivered,
      bytes: reader.counter('bytes'),
      batches,
      meanBatchSize: batches === 0 ? 0 : packets / batches,
      kernelDrops: reader.counter('kernelDrops'),
      ringDrops: reader.counter('ringDrops'),
      discarded: reader.counter('discarded') + this.#ringDiscarded,
      truncated: reader.counter('truncated'),
      recvBufferSize: this.#recvBufferSize,
      recvBufferRequested: requested,
      recvBufferForced: this.#forced,
      recvBufferCapped: requested > 0 && !this.#forced && this.#recvBufferSize < 2 * requested,
      rmemMax: this.#rmemMax,
      kernelQueueBytes: this.#closed ? null : reader.kernelQueueBytes(),
      ringBytes: reader.ring.byteLength,
      ringUsed: reader.ringUsed(ringDatagrams),
      ringDatagrams,
      ringHighWater: reader.counter('ringHighWater'),
      wakeups: reader.counter('wakeups'),
      producerStalls: reader.counter('producerStalls'),
      receiveCalls: reader.counter('receiveCalls'),
      directBatches: reader.counter('directBatches'),
      threadWakeups: reader.counter('threadWakeups'),
      coalesced: reader.counter('coalesced'),
      windows: reader.counter('windows'),
      overflow: this.#options.overflow,
      batchSize: this.#options.batchSize,
      maxMessageSize: this.#options.maxMessageSize,
      queueDelay: this.#delays?.summary() ?? null,
      backend: this.#reader.backend,
    };
  }

  /**
   * Stops the thread, closes the socket. Idempotent. Unread datagrams are
   * discarded and counted (stats().discarded), unless `drain` is set: then the
   * iterator goes on yielding what the ring holds, and the promise resolves
   * once it has (or once a plain close() discards the rest).
   */
  close(options?: CloseOptions): Promise<void> {
    const drain = closeOptions(options);
    // The batch in hand stays readable too: the consumer may be awaiting inside its loop body.
    if (drain && !this.#closed && this.#available() > 0) {
      this.#draining = true;
      const drained = new Promise<void>((resolve) => this.#drained.push(resolve));
      this.#shutdown();
      return this.#afterSocket(drained);
    }
    if (drain && this.#draining) return this.#afterSocket(new Promise<void>((resolve) => this.#drained.push(resolve)));
    this.#draining = false;
    this.#shutdown();
    return this.#socketClosed ?? Promise.resolve();
  }

  // `drained`, then the backend's close if that takes a while.
  #afterSocket(drained: Promise<void>): Promise<void> {
    return this.#socketClosed ? drained.then(() => this.#socketClosed!) : drained;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // Closes the native side once; then, unless a drain goes on, ends the ring's
  // content: what is still unread is discarded and counted, drains settle.
  #shutdown(): void {
    if (!this.#closed) {
      this.#closed = true;
      // Joins the thread; the backend counts what the ring never got. The ring is
      // JavaScript's memory: a drain goes on reading it.
      this.#socketClosed = this.#reader.close() ?? null;
      if (this.#onAbort) {
        this.#options.signal?.removeEventListener('abort', this.#onAbort);
        this.#onAbort = null;
      }
    }
    if (!this.#draining && !this.#ended) {
      this.#ended = true;
      this.#ringDiscarded = Math.max(0, this.#available() - this.#held);
      this.#batch._retire();
      const drained = this.#drained;
      this.#drained = [];
      for (const resolve of drained) resolve();
    }
    const resolve = this.#waiter.resolve;
    this.#waiter.resolve = null;
    resolve?.();
  }

  /**
   * The fast path: `handler(batch)` is called from the event loop for each
   * batch, with no promise and no allocation per batch (one Batch object,
   * reused). The batch is valid until the handler returns, or, if it returns a
   * promise, until that settles (delivery waits for it). After
   * options.yieldEvery the event loop gets a turn (one setImmediate). Returns a
   * promise that resolves when the receiver closes (after a drain) and
   * rejects on a receive error or a throw from the handler, which also closes
   * the receiver. One consumer at a time: not with the iterator.
   */
  onBatch(handler: (batch: Batch) => void | PromiseLike<void>): Promise<void> {
    if (typeof handler !== 'function') throw invalidType('handler', 'of type function', handler);
    if (this.#closed && !this.#draining) throw closedError('onBatch');
    if (this.#iterating) throw alreadyIteratingError();
    this.#iterating = true;
    this.#handler = handler;
    const done = new Promise<void>((resolve, reject) => {
      this.#handlerDone = { resolve, reject };
    });
    // Never from inside onBatch() itself: the first batch comes on a later turn.
    setImmediate(this.#pump);
    return done;
  }

  // A new turn of the event loop (setImmediate, a wakeup): the budget starts again.
  readonly #pump = (): void => {
    this.#turnDatagrams = 0;
    this.#turnClock = -1;
    this.#deliver();
  };

  // Delivers batches to the handler until the ring is empty or the turn's
  // budget is spent; then waits (the wake calls #pump) or yields. Also where
  // an async handler's settled promise resumes: that may be a microtask of the
  // same turn (a promise that never waited), so the turn's budget goes on.
  readonly #deliver = (): void => {
    const handler = this.#handler;
    if (handler === null || this.#handlerDone === null) return;
    const budget = this.#options.yieldEvery;
    // The clock is read from the second batch of a turn on, or from the first
    // when it holds more than one datagram (under load): a quiet-time turn of
    // one datagram reads no clock. (The reader's clock allocates nothing; it is
    // still a native call, ~0.1 µs.)
    for (;;) {
      this.#release();
      // (The clock is read only when another batch is there to take.)
      if (this.#turnDatagrams > 0 && this.#available() > 0 && this.#turnSpent(budget)) {
        setImmediate(this.#pump);
        return;
      }
      if (!this.#fill(true)) {
        if (this.#error || this.#closed) break;
        // Empty: announce the wait, re-check, and let the event loop poll the
        // socket. What the re-check finds (a batch, a failure) goes round again:
        // no turn of the event loop is needed to take it.
        this.#waiter.resolve = this.#onHandlerWake;
        this.#reader.setWaiting(true);
        if (this.#available() === 0 && !this.#checkFailure() && !this.#receiveDirect()) return;
        this.#reader.setWaiting(false);
        this.#waiter.resolve = null;
        continue;
      }
      if (this.#turnClock < 0 && this.#batch.length > 1) {
        this.#turnClock = this.#reader.nowMicros();
        this.#untimed = this.#turnDatagrams - this.#batch.length;
      }
      let result: void | PromiseLike<void>;
      try {
        result = handler(this.#batch);
      } catch (error) {
        this.#endHandler(error);
        return;
      }
      if (result !== undefined && typeof (result as PromiseLike<void>).then === 'function') {
        // An async handler: the batch stays live until its promise settles.
        (result as PromiseLike<void>).then(this.#deliver, this.#endHandler);
        return;
      }
    }
    if (this.#error) return this.#endHandler(this.#error);
    if (this.#draining) {
      this.#draining = false;
      this.#shutdown();
    }
    return this.#endHandler(null);
  };

  readonly #onHandlerWake = (): void => {
    this.#waiter.resolve = null;
    if (this.#directPolling) {
      this.#directPolling = false;
      if (!this.#closed) this.#reader.stopDirect();
    }
    this.#pump();
  };

  // The handler's delivery is over: closed (null), or failed (the receive or the handler threw).
  readonly #endHandler = (error: unknown): void => {
    const done = this.#handlerDone;
    if (done === null) return;
    this.#handlerDone = null;
    this.#release();
    if (error !== null) {
      this.#draining = false;
      this.#shutdown();
      done.reject(error);
    } else {
      done.resolve();
    }
  };

  /**
   * Iterates batches. A Batch stays valid until the next iteration; leaving
   * the loop (break, return, throw) closes the receiver.
   */
  [Symbol.asyncIterator](): BatchIterator<Batch> {
    if (this.#closed && !this.#draining) throw closedError('[Symbol.asyncIterator]');
    if (this.#iterating) throw alreadyIteratingError();
    this.#iterating = true;
    return batchIterator(() => this.#next(), () => {
      this.#release();
      this.#draining = false;
      this.#shutdown();
      return this.#socketClosed ?? undefined;
    });
  }

  // Whether this turn's budget of delivery is spent (the caller then yields a
  // setImmediate). Called only when another batch is there to take, so the
  // clock is not read at light load. The first
  // read starts the turn's clock; later ones measure the handler's pace, which
  // sizes the rest of this turn's batches and the next turn's first (#room).
  #turnSpent(budget: ResolvedReceiverOptions['yieldEvery']): boolean {
    const now = this.#reader.nowMicros();
    if (this.#turnClock < 0) {
      this.#turnClock = now;
      this.#untimed = this.#turnDatagrams;
    } else if (this.#turnDatagrams > this.#untimed) {
      this.#turnElapsed = microsSince(now, this.#turnClock);
      this.#paceMicros = this.#turnElapsed;
      this.#paceDatagrams = this.#turnDatagrams - this.#untimed;
    }
    return this.#turnDatagrams >= budget.datagrams || microsSince(now, this.#turnClock) >= budget.ms * 1000;
  }

  #next(): Promise<IteratorResult<Batch, undefined>> {
    if (this.#waiting) {
      return Promise.reject(new Error('udp-ring: next() called while another next() is waiting'));
    }
    this.#release();
    // The event loop's turn: after a budget of delivery in a row, timers, I/O
    // and signals run (one setImmediate) before the next batch is taken. The
    // clock is read only when another batch is there to take (as onBatch does):
    // at light load the ring is empty here, the iterator waits, and its wakeup
    // is a turn of the event loop.
    if (this.#turnDatagrams > 0 && this.#available() > 0 && this.#turnSpent(this.#options.yieldEvery)) {
      this.#waiting = true;
      return new Promise((resolve) => setImmediate(this.#afterTurn, resolve));
    }
    return this.#take();
  }

  readonly #afterTurn = (resolve: (result: Promise<IteratorResult<Batch, undefined>>) => void): void => {
    this.#waiting = false;
    this.#turnDatagrams = 0;
    this.#turnClock = -1;
    resolve(this.#take());
  };

  #take(): Promise<IteratorResult<Batch, undefined>> {
    if (this.#fill()) return Promise.resolve(this.#result);
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed) {
      if (this.#draining) {
        this.#draining = false;
        this.#shutdown();
      }
      return Promise.resolve(DONE);
    }
    return this.#wait();
  }

  // Waiting costs one promise: no async function, no closure per wait. The
  // executor and the wake handler are made once, in the constructor.
  #wait(): Promise<IteratorResult<Batch, undefined>> {
    this.#waiting = true;
    return new Promise(this.#executor);
  }

  // Runs when a wait starts and at every wakeup: settles the pending next()
  // if there is a batch, an error or the end; otherwise announces the wait to
  // the thread and re-checks (the thread may have published just before).
  #arm(): void {
    for (;;) {
      if (this.#settle()) return;
      this.#waiter.resolve = this.#onWake;
      this.#reader.setWaiting(true);
      if (this.#available() === 0 && !this.#closed && !this.#checkFailure() && !this.#receiveDirect()) return;
      this.#reader.setWaiting(false);
      this.#waiter.resolve = null;
    }
  }

  // With eventLoopReceive: receives now if anything is queued (true: go round
  // again and settle), else leaves the event loop polling the socket (false).
  #receiveDirect(): boolean {
    if (!this.#direct) return false;
    const got = this.#reader.waitDirect();
    if (got > 0) return true;
    if (got < 0) this.#direct = false;
    else this.#directPolling = true;
    return false;
  }

  #settle(): boolean {
    const resolve = this.#resolveNext;
    const reject = this.#rejectNext;
    if (resolve === null || reject === null) return true;
    let outcome: IteratorResult<Batch, undefined> | null = null;
    if (this.#fill()) outcome = this.#result;
    else if (this.#error) outcome = null;
    else if (this.#closed) {
      if (this.#draining) {
        this.#draining = false;
        this.#shutdown();
      }
      outcome = DONE;
    } else return false;
    this.#resolveNext = null;
    this.#rejectNext = null;
    this.#waiting = false;
    if (this.#directPolling) {
      this.#directPolling = false;
      if (!this.#closed) this.#reader.stopDirect();
    }
    if (outcome === null) reject(this.#error);
    else resolve(outcome);
    return true;
  }

  // Published datagrams not yet handed out: 32-bit positions, wrapping.
  #available(): number {
    return this.#reader.available(this.#head);
  }

  // Fills the batch with what the thread has published. False when empty or closed.
  // onBatch reuses the one Batch object; the iterator makes one per batch.
  #fill(reuse = false): boolean {
    if (this.#closed && !this.#draining) return false;
    const available = this.#available();
    if (available <= 0) {
      // (onBatch checks once it has announced its wait, where it must.)
      if (!reuse) this.#checkFailure();
      return false;
    }
    const length = Math.min(available, this.#options.maxBatchLength, this.#room());
    const first = this.#head & this.#mask;
    if (reuse) {
      this.#batch._reuse(first, length);
    } else {
      this.#batch = this.#batch._successor(first, length);
      this.#result.value = this.#batch;
    }
    this.#delays?.record(this.#timestampsOffset, first, length, this.#mask);
    this.#held = length;
    this.#delivered += length;
    // The iterator times a turn from its first batch of more than one datagram (see #next).
    if (!reuse && this.#turnClock < 0 && length > 1) {
      this.#turnClock = this.#reader.nowMicros();
      this.#untimed = this.#turnDatagrams;
    }
    this.#turnDatagrams += length;
    return true;
  }

  // How many more datagrams this turn's budget allows: its count, and the time
  // left at the consumer's recent pace. At least one.
  #room(): number {
    if (this.#turnDatagrams === 0) this.#turnElapsed = 0;
    return turnRoom(this.#options.yieldEvery, this.#turnDatagrams, this.#turnElapsed, this.#paceMicros, this.#paceDatagrams);
  }

  #checkFailure(): boolean {
    if (this.#error) return true;
    const failure = this.#closed ? null : this.#reader.failure(this.#address.address, this.#address.port);
    if (!failure) return false;
    this.#error = failure;
    return true;
  }

  // Hands the held batch's space back to the thread: one store per batch (the
  // producer derives the payload space from the descriptor head).
  #release(): void {
    const held = this.#held;
    if (held === 0) return;
    this.#held = 0;
    this.#head = (this.#head + held) >>> 0;
    if (this.#options.poisonReleased) this.#batch._poison();
    this.#batch._retire();
    // Stored after close too, while a drain reads on: stats() counts from it.
    this.#reader.release(this.#head, this.#closed);
  }
}
