// udp-ring/jetstream: a receiver's datagrams published to a NATS JetStream
// stream through onBatch, with a bounded number of publishes in flight, every
// ack checked, and every datagram accounted for:
//   sent = acked + failed + skipped + ringDrops + kernelDrops + discarded
// once closed. Nothing here imports the NATS client: any object with
// JetStream's publish(subject, payload, { msgID, timeout }) works, from
// @nats-io/jetstream (v3, the tested one) or nats v2's nc.jetstream().
import type { Batch } from '../core/batch.js';
import type { ReceiverStats, UdpReceiver } from '../core/receiver.js';

/** The part of a JetStream client this module uses (@nats-io/jetstream's JetStreamClient has it). */
export interface JetStreamPublishTarget {
  publish(subject: string, payload?: Uint8Array, options?: { msgID?: string; timeout?: number }):
    Promise<{ stream: string; seq: number; duplicate: boolean }>;
}

/** What map() makes of one datagram: published to `${subject}.${suffix}` (or `subject` when suffix is ''). */
export interface Mapped {
  /** Subject suffix, appended after a dot: keep one source's datagrams on one subject to keep them in order. */
  suffix: string;
  /** The message body. May be a view into the ring (batch.payload(i) or a subarray): it is copied. */
  payload: Uint8Array;
  /**
   * Nats-Msg-Id, when the datagram carries its own identity (a source and sequence number):
   * then a datagram the sender repeats is deduplicated too. Default: `${idPrefix}-${n}`.
   */
  id?: string;
}

export interface JetStreamPublisherOptions {
  /** The subject prefix; the stream must bind `${subject}` and/or `${subject}.>`. */
  subject: string;
  /** Datagram i of the batch (read in place) to a message, or null to skip it (counted). Default: the payload as is, no suffix. */
  map?: (batch: Batch, i: number) => Mapped | null;
  /** Most publishes awaiting their ack at once; when reached, the receiver stops being read. Default 512. */
  maxInFlight?: number;
  /** How long to wait for one ack, in ms, before trying again. Default 5000. */
  ackTimeout?: number;
  /** Attempts after the first for a publish that timed out or found no responder (the same message id each time). Default 10. */
  retries?: number;
  /** First pause between attempts in ms; doubles, up to 2000. Default 100. */
  retryDelay?: number;
  /** Prefix of the generated message ids; unique per publisher (and process) by default. */
  idPrefix?: string;
}

export interface JetStreamPublisherStats {
  /** Messages the stream acknowledged (duplicates included). */
  acked: number;
  /**
   * Of acked: acknowledged as duplicates, i.e. an earlier attempt whose ack was lost had been
   * stored (Nats-Msg-Id within the stream's duplicate window): stored once, acked once.
   */
  duplicates: number;
  /** Messages given up on: the server refused them, or every attempt went unanswered. */
  failed: number;
  /** failed, by reason (the server's description, or 'timeout', 'no responders', ...). */
  failures: Record<string, number>;
  /** Attempts after the first (each one counted). */
  retried: number;
  /** Datagrams map() returned null for. */
  skipped: number;
  /** Publishes awaiting their ack now. */
  inFlight: number;
  /** Most publishes in flight at once. */
  inFlightHighWater: number;
  /** Times the bound was reached and the receiver was left unread until acks came back. */
  backpressureWaits: number;
  /** The receiver's counters (kernelDrops, ringDrops, discarded, delivered, ...). */
  receiver: ReceiverStats;
  /**
   * sent - (acked + failed + skipped + inFlight + ringDrops + kernelDrops + discarded + ring content),
   * for a caller who knows `sent`; here: datagrams delivered minus those accounted for. 0 unless a bug.
   */
  unaccounted: number;
}

const maxReasons = 32;
const retryable = (reason: string) => reason === 'timeout' || reason === 'no responders' || reason === 'disconnected';

// Short, stable names for what went wrong: counters are keyed by them.
function reasonOf(error: unknown): string {
  const e = error as { name?: string; message?: string; code?: unknown; isNoResponders?: () => boolean } | null;
  const name = e?.name ?? '';
  const message = String(e?.message ?? error);
  if (name === 'TimeoutError' || /timeout/i.test(message)) return 'timeout';
  if (name === 'JetStreamNotEnabled' || /no responders/i.test(message) || e?.isNoResponders?.()) return 'no responders';
  if (/disconnect|connection closed|closed connection|CONNECTION_/i.test(message) || name === 'ClosedConnectionError') {
    return 'disconnected';
  }
  return message.length > 120 ? message.slice(0, 120) : message;
}

let publishers = 0;

export class JetStreamPublisher {
  readonly #receiver: UdpReceiver;
  readonly #js: JetStreamPublishTarget;
  readonly #subject: string;
  readonly #map: ((batch: Batch, i: number) => Mapped | null) | null;
  readonly #maxInFlight: number;
  readonly #ackTimeout: number;
  readonly #retries: number;
  readonly #retryDelay: number;
  readonly #idPrefix: string;
  #nextId = 0;
  #acked = 0;
  #duplicates = 0;
  #failed = 0;
  readonly #failures = new Map<string, number>();
  #retried = 0;
  #skipped = 0;
  #inFlight = 0;
  #inFlightHighWater = 0;
  #backpressureWaits = 0;
  // Resolved when a publish settles while the handler waits for room, or all settle while close() waits.
  #room: (() => void) | null = null;
  #idle: Array<() => void> = [];
  readonly #done: Promise<void>;
  #closing: Promise<void> | null = null;

  /**
   * Starts consuming `receiver` (through onBatch: one consumer per receiver) and
   * publishing to `js`. The connection stays the caller's: close() this, then drain it.
   */
  constructor(receiver: UdpReceiver, js: JetStreamPublishTarget, options: JetStreamPublisherOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('The "options" argument must be an object');
    if (js === null || typeof js !== 'object' || typeof js.publish !== 'function') {
      throw new TypeError('The "js" argument must be a JetStream client (an object with publish())');
    }
    if (typeof options.subject !== 'string' || options.subject === '' || /[\s*>]/.test(options.subject)) {
      throw new TypeError('The "options.subject" property must be a subject without spaces or wildcards');
    }
    if (options.map !== undefined && typeof options.map !== 'function') {
      throw new TypeError('The "options.map" property must be of type function');
    }
    this.#receiver = receiver;
    this.#js = js;
    this.#subject = options.subject;
    this.#map = options.map ?? null;
    this.#maxInFlight = count('options.maxInFlight', options.maxInFlight, 512, 1);
    this.#ackTimeout = count('options.ackTimeout', options.ackTimeout, 5000, 1);
    this.#retries = count('options.retries', options.retries, 10, 0);
    this.#retryDelay = count('options.retryDelay', options.retryDelay, 100, 0);
    if (options.idPrefix !== undefined && (typeof options.idPrefix !== 'string' || options.idPrefix === '')) {
      throw new TypeError('The "options.idPrefix" property must be a non-empty string');
    }
    this.#idPrefix = options.idPrefix ??
      `${process.pid.toString(36)}-${Date.now().toString(36)}-${(publishers++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.#done = receiver.onBatch(this.#onBatch);
  }

  /** Resolves once the receiver closed and every publish settled; rejects if the receiver failed. */
  get done(): Promise<void> {
    return this.#done.then(() => this.#settled());
  }

  // The handler: publish each datagram of the batch; when the bound is reached, hold the batch
  // (return a promise) until acks make room, so the ring and then the overflow policy take the rest.
  readonly #onBatch = (batch: Batch): void | Promise<void> => {
    for (let i = 0; i < batch.length; i++) {
      if (this.#inFlight >= this.#maxInFlight) return this.#resume(batch, i);
      this.#one(batch, i);
    }
  };

  async #resume(batch: Batch, from: number): Promise<void> {
    const length = batch.length;
    for (let i = from; i < length; i++) {
      if (this.#inFlight >= this.#maxInFlight) {
        this.#backpressureWaits++;
        await new Promise<void>((resolve) => { this.#room = resolve; });
        // Closed under us without a drain (rx.close()): the batch's memory is gone. Its
        // datagrams were delivered, so they are counted here, not as discarded.
        if (!batch.current) {
          for (; i < length; i++) this.#fail('receiver closed');
          return;
        }
      }
      this.#one(batch, i);
    }
  }

  #one(batch: Batch, i: number): void {
    let mapped: Mapped | null;
    if (this.#map === null) {
      mapped = { suffix: '', payload: batch.payload(i) };
    } else {
      try {
        mapped = this.#map(batch, i);
      } catch (error) {
        this.#fail(`map: ${reasonOf(error)}`);
        return;
      }
    }
    if (mapped === null) {
      this.#skipped++;
      return;
    }
    const subject = mapped.suffix === '' ? this.#subject : `${this.#subject}.${mapped.suffix}`;
    // A copy: the ring's bytes are released when the batch is, and the client and a retry need
    // them later. Not slice(): on a Buffer (what batch.payload(i) gives) it is a view.
    const payload = new Uint8Array(mapped.payload);
    const id = mapped.id ?? `${this.#idPrefix}-${this.#nextId++}`;
    this.#inFlight++;
    if (this.#inFlight > this.#inFlightHighWater) this.#inFlightHighWater = this.#inFlight;
    void this.#publish(subject, payload, id);
  }

  async #publish(subject: string, payload: Uint8Array, msgID: string): Promise<void> {
    let delay = this.#retryDelay;
    for (let attempt = 0; ; attempt++) {
      try {
        const ack = await this.#js.publish(subject, payload, { msgID, timeout: this.#ackTimeout });
        this.#acked++;
        if (ack.duplicate) this.#duplicates++;
        break;
      } catch (error) {
        const reason = reasonOf(error);
        if (!retryable(reason) || attempt >= this.#retries) {
          this.#fail(reason);
          break;
        }
        this.#retried++;
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(2000, delay * 2);
      }
    }
    this.#inFlight--;
    const room = this.#room;
    this.#room = null;
    room?.();
    if (this.#inFlight === 0 && this.#idle.length > 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }

  #fail(reason: string): void {
    this.#failed++;
    const key = this.#failures.has(reason) || this.#failures.size < maxReasons ? reason : 'other';
    this.#failures.set(key, (this.#failures.get(key) ?? 0) + 1);
  }

  #settled(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Shutdown: the receiver stops receiving (what the kernel still held is counted
   * as discarded), the ring is read to its end and published, outstanding acks are
   * awaited (each publish retries or fails as usual). Idempotent. With `drain: false`
   * the ring's content is discarded (counted) instead of published.
   */
  close(options: { drain?: boolean } = {}): Promise<void> {
    if (this.#closing === null) {
      const drain = options.drain ?? true;
      this.#closing = this.#receiver.close({ drain }).then(() => this.#done).then(() => this.#settled());
    }
    return this.#closing;
  }

  stats(): JetStreamPublisherStats {
    const receiver = this.#receiver.stats();
    const accounted = this.#acked + this.#failed + this.#skipped + this.#inFlight;
    return {
      acked: this.#acked,
      duplicates: this.#duplicates,
      failed: this.#failed,
      failures: Object.fromEntries(this.#failures),
      retried: this.#retried,
      skipped: this.#skipped,
      inFlight: this.#inFlight,
      inFlightHighWater: this.#inFlightHighWater,
      backpressureWaits: this.#backpressureWaits,
      receiver,
      unaccounted: receiver.delivered - accounted,
    };
  }
}

function count(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`The "${name}" property must be an integer. Received ${String(value)}`);
  }
  if (value < min) {
    const error = new RangeError(`The value of "${name}" is out of range. It must be >= ${min}. Received ${value}`);
    (error as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
    throw error;
  }
  return value;
}

/** Shorthand: `new JetStreamPublisher(receiver, js, options)`. */
export function publishToJetStream(receiver: UdpReceiver, js: JetStreamPublishTarget, options: JetStreamPublisherOptions):
  JetStreamPublisher {
  return new JetStreamPublisher(receiver, js, options);
}
