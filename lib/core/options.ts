// Every option is checked here, before anything native runs: a wrong type is
// a TypeError, a wrong range a RangeError, each naming the option and value.
import { isIP } from 'node:net';
import { invalidType, invalidValue, outOfRange } from './errors.js';
import { nativeRingBackend, nativeUnavailable } from './backend.js';
import { runtime } from './runtime.js';

export type Overflow = 'block' | 'drop';
export type SocketType = 'udp4' | 'udp6';
/** Which backend runs: the addon's thread, or node:dgram on the event loop. */
export type Backend = 'native' | 'dgram';
/**
 * What the caller asks for. 'native' (the default on Linux) fails when the addon cannot load;
 * 'dgram' always uses node:dgram; 'auto' uses the addon when it loads, else node:dgram.
 */
export type BackendChoice = Backend | 'auto';

/**
 * How much delivery may run before the event loop gets a macrotask turn
 * (setImmediate), as libuv gives dgram one every 32 datagrams. Either limit
 * reached ends the run; Infinity turns that limit off.
 */
export interface YieldEvery {
  /** Datagrams delivered between turns; also the longest a Batch gets. */
  datagrams?: number;
  /** Milliseconds of delivery (the consumer's work included) between turns; checked between batches. */
  ms?: number;
}

export interface ReceiverOptions {
  /** Port to bind; 0 (default) picks a free one. */
  port?: number;
  /** Address or host name to bind; defaults to all addresses ('0.0.0.0' or '::'). */
  host?: string;
  /** 'udp4' or 'udp6'; inferred from `host` when it is a literal address, else 'udp4'. */
  type?: SocketType;
  /** Bytes of ring memory shared with the receive thread. Default 32 MiB. */
  ringBytes?: number;
  /** Largest datagram kept whole; longer ones are cut and flagged. Default 65535. */
  maxMessageSize?: number;
  /** Datagrams per recvmmsg call, 1 to 1024. Default 64. */
  batchSize?: number;
  /** Most datagrams handed to the application in one Batch. Default 4096. */
  maxBatchLength?: number;
  /** Kernel receive buffer to ask for (SO_RCVBUFFORCE, then SO_RCVBUF). Default 32 MiB. */
  recvBufferSize?: number;
  /** What to do when the ring is full: 'block' (default) or 'drop'. */
  overflow?: Overflow;
  reuseAddr?: boolean;
  reusePort?: boolean;
  ipv6Only?: boolean;
  /**
   * While the iterator waits for data, let the event loop poll the socket and
   * receive into the ring itself, so a datagram in a quiet spell reaches the
   * application with one thread wakeup instead of two (the receive thread
   * still takes over within a millisecond if the loop is held up). Default
   * true; false leaves every receive to the thread. Always off under Bun, whose
   * libuv is partial: there the thread receives everything.
   */
  eventLoopReceive?: boolean;
  /**
   * Trades latency for CPU at light load: when a datagram arrives after a quiet spell, the receiver
   * waits this many milliseconds (0 to 1000) before it receives, and while traffic goes on it
   * receives once per window, so a window's datagrams share one wakeup instead of one each. A full
   * batch is taken at once, so a busy socket adds no delay. Each datagram waits at most about this
   * long more than it would. Default 0 (off). The event loop's windows are whole milliseconds
   * (libuv's timers; a fraction rounds up), the receive thread's (eventLoopReceive: false, Bun)
   * are exact. The dgram backend delivers at once and ignores it.
   *
   * `'auto'` adapts, as a network card's adaptive interrupt moderation does: while datagrams
   * arrive slower than about 32k/s each is received at once (no added latency); once they have
   * come faster for 4 ms, every receive waits a 1 ms window first, until a window's rate falls
   * below about 16k/s.
   * Busy sockets then cost a fraction of the CPU and almost no allocation, for up to about a
   * millisecond of latency while busy.
   */
  coalesceMs?: number | 'auto';
  /**
   * Kernel receive timestamps (SO_TIMESTAMPNS) for every datagram: `batch.timestamp(i)`, and the
   * queueing delay from kernel arrival to delivery in `stats().queueDelay`. Off by default.
   */
  timestamps?: boolean;
  /**
   * UDP GRO (Linux 5.0): the kernel may hand over many datagrams of one flow in one coalesced
   * buffer (from a GSO sender, or from a NIC or loopback that aggregates); the receive thread
   * splits it back into one ring entry per datagram (`stats().coalesced` counts those), so
   * consumers and every counter see ordinary datagrams. Each receive then lands up to 64 KiB
   * whatever maxMessageSize is (a datagram longer than maxMessageSize is still cut and flagged).
   * Off by default; open() rejects (ENOPROTOOPT) where the kernel lacks it. Ignored by the
   * dgram backend, whose datagrams arrive one by one anyway.
   */
  gro?: boolean;
  /**
   * The local address each datagram was sent to, and the interface it came in on
   * (IP_PKTINFO / IPV6_RECVPKTINFO): `batch.destinationOffset(i)`, `destinationFamily(i)`,
   * `interfaceIndex(i)` and (allocating) `destinationAddress(i)`. What a server bound to the
   * wildcard on a multi-homed host needs to answer from the right address. Off by default;
   * native backend only.
   */
  pktinfo?: boolean;
  /**
   * Each datagram's IP TOS / IPv6 traffic class byte (IP_RECVTOS / IPV6_RECVTCLASS):
   * `batch.tos(i)` and its ECN bits `batch.ecn(i)`. Off by default; native backend only.
   */
  tos?: boolean;
  /**
   * The event loop's turn: after this many datagrams or milliseconds of
   * delivery in a row, the iterator lets timers, I/O and signals run before
   * the next batch. Default { datagrams: 1024, ms: 10 }.
   */
  yieldEvery?: YieldEvery;
  /**
   * A debugging aid for code that keeps views into the ring (`batch.payload(i)`, a `subarray` of
   * `batch.bytes`, or `Buffer#slice()` of either, which is a view too): when a batch is released, every
   * payload byte of it is overwritten with 0xdb before the receive thread may reuse the space, so a
   * view read after its batch shows 0xdb at once instead of, now and then, whatever arrived later.
   * Costs a fill of each batch's bytes. Default: env UDP_RING_POISON=1, else false.
   */
  poisonReleased?: boolean;
  /** Closes the receiver when aborted. */
  signal?: AbortSignal;
  /**
   * 'native' (the addon's receive thread), 'dgram' (pure TypeScript over
   * node:dgram) or 'auto' (native when the addon loads, else dgram). Default:
   * env UDP_RING_BACKEND, else 'native' on Linux (open() rejects with
   * ERR_UDP_RING_NATIVE, saying why, when the addon cannot load) and 'dgram'
   * elsewhere, with one warning per process.
   */
  backend?: BackendChoice;
}

export interface ResolvedReceiverOptions {
  port: number;
  host: string | undefined;
  type: SocketType;
  ringBytes: number;
  maxMessageSize: number;
  batchSize: number;
  maxBatchLength: number;
  recvBufferSize: number;
  overflow: Overflow;
  reuseAddr: boolean;
  reusePort: boolean;
  ipv6Only: boolean;
  eventLoopReceive: boolean;
  coalesceMs: number | 'auto';
  timestamps: boolean;
  gro: boolean;
  pktinfo: boolean;
  tos: boolean;
  yieldEvery: Required<YieldEvery>;
  poisonReleased: boolean;
  signal: AbortSignal | undefined;
  backend: Backend;
}

export const MiB = 1024 * 1024;

export const defaults = Object.freeze({
  ringBytes: 32 * MiB,
  maxMessageSize: 65535,
  batchSize: 64,
  maxBatchLength: 4096,
  recvBufferSize: 32 * MiB,
  overflow: 'block' as Overflow,
  yieldEvery: Object.freeze({ datagrams: 1024, ms: 10 }),
});

const KNOWN = new Set([
  'port', 'host', 'type', 'ringBytes', 'maxMessageSize', 'batchSize', 'maxBatchLength', 'recvBufferSize',
  'overflow', 'reuseAddr', 'reusePort', 'ipv6Only', 'eventLoopReceive', 'coalesceMs', 'timestamps', 'gro', 'pktinfo', 'tos', 'yieldEvery',
  'poisonReleased', 'signal', 'backend',
]);

export function yieldEveryOption(name: string, value: unknown): Required<YieldEvery> {
  if (value === undefined) return defaults.yieldEvery;
  if (value === null || typeof value !== 'object') throw invalidType(name, 'of type object', value);
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (key !== 'datagrams' && key !== 'ms') throw invalidValue(`${name}.${key}`, "one of the known options (datagrams, ms)", key);
  }
  let datagrams: number = defaults.yieldEvery.datagrams;
  if (o.datagrams !== undefined) {
    if (typeof o.datagrams !== 'number') throw invalidType(`${name}.datagrams`, 'of type number', o.datagrams);
    if (o.datagrams !== Infinity && (!Number.isInteger(o.datagrams) || o.datagrams < 1)) {
      throw outOfRange(`${name}.datagrams`, 'an integer >= 1, or Infinity', o.datagrams);
    }
    datagrams = o.datagrams;
  }
  let ms: number = defaults.yieldEvery.ms;
  if (o.ms !== undefined) {
    if (typeof o.ms !== 'number') throw invalidType(`${name}.ms`, 'of type number', o.ms);
    if (Number.isNaN(o.ms) || o.ms < 0) throw outOfRange(`${name}.ms`, 'a number >= 0, or Infinity', o.ms);
    ms = o.ms;
  }
  return { datagrams, ms };
}

let warnedDgram = false;

/**
 * Resolves options.backend (or UDP_RING_BACKEND) to the backend that runs. Unset, it is the
 * addon on Linux, whose absence is then an error, not a quiet downgrade; elsewhere, where there
 * is no addon to load, node:dgram, said once per process by a warning.
 */
export function backendOption(value: unknown): Backend {
  const choices = "one of 'native', 'dgram' or 'auto'";
  let choice: BackendChoice | undefined;
  if (value !== undefined) {
    if (value !== 'native' && value !== 'dgram' && value !== 'auto') throw invalidValue('options.backend', choices, value);
    choice = value;
  } else {
    const env = process.env.UDP_RING_BACKEND;
    if (env !== undefined && env !== '') {
      if (env !== 'native' && env !== 'dgram' && env !== 'auto') throw invalidValue('UDP_RING_BACKEND', choices, env);
      choice = env;
    }
  }
  if (choice === 'auto') return nativeUnavailable() ? 'dgram' : 'native';
  if (choice !== undefined) return choice;
  if (process.platform === 'linux' || !nativeUnavailable()) return 'native';
  if (!warnedDgram) {
    warnedDgram = true;
    process.emitWarning(
      `udp-ring: the native receiver is Linux-only; on ${process.platform} the dgram backend runs instead ` +
        '(node:dgram on the event loop: same API, no protection against event-loop stalls). ' +
        "Pass backend: 'dgram' (or UDP_RING_BACKEND=dgram) to choose it explicitly and silence this warning.",
      { code: 'UDP_RING_DGRAM_BACKEND' },
    );
  }
  return 'dgram';
}

export function integer(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  }
  return value;
}

export function boolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value;
}

export function hostOption(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value);
  if (value.length === 0 || value.length > 253) throw invalidValue(name, 'a host name or IP address', value);
  return value;
}

export function typeOption(name: string, value: unknown, host: string | undefined): SocketType {
  if (value === undefined) return host !== undefined && isIP(host) === 6 ? 'udp6' : 'udp4';
  if (value !== 'udp4' && value !== 'udp6') throw invalidValue(name, "one of 'udp4' or 'udp6'", value);
  return value;
}

/**
 * Ring bytes needed so that one batch of the largest datagrams always fits an
 * empty ring, wrap included (the native backend's figure, from its layout: see ring.h).
 */
export function minimumRingBytes(batchSize: number, maxMessageSize: number, timestamps = false, packetInfo = false): number {
  return nativeRingBackend().minimumRingBytes(batchSize, maxMessageSize, timestamps, packetInfo);
}

export function resolveReceiverOptions(options: unknown): ResolvedReceiverOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw invalidType('options', 'of type object', options);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw invalidValue(`options.${key}`, `one of the known options (${[...KNOWN].join(', ')})`, key);
  }
  const host = hostOption('options.host', o.host);
  const type = typeOption('options.type', o.type, host);
  if (host !== undefined) {
    const family = isIP(host);
    if ((family === 4 && type === 'udp6') || (family === 6 && type === 'udp4')) {
      throw invalidValue('options.host', `an IPv${type === 'udp4' ? 4 : 6} address for type '${type}'`, host);
    }
  }
  const port = integer('options.port', o.port, 0, 0, 65535);
  const maxMessageSize = integer('options.maxMessageSize', o.maxMessageSize, defaults.maxMessageSize, 1, 65535);
  const ring = nativeRingBackend();
  const batchSize = integer('options.batchSize', o.batchSize, defaults.batchSize, 1, ring.maxBatchSize);
  const maxBatchLength = integer('options.maxBatchLength', o.maxBatchLength, defaults.maxBatchLength, 1, 2 ** 24);
  const recvBufferSize = integer('options.recvBufferSize', o.recvBufferSize, defaults.recvBufferSize, 0, 2 ** 31 - 1);
  const ringBytes = integer('options.ringBytes', o.ringBytes, defaults.ringBytes, 1, ring.maxRingBytes);
  const backend = backendOption(o.backend);
  if (backend === 'native' && ring.loadError) throw ring.loadError;
  // Without the addon there is no ring layout to size against; the dgram backend sizes its own buffers.
  const timestamps = boolean('options.timestamps', o.timestamps, false);
  const gro = boolean('options.gro', o.gro, false);
  const pktinfo = boolean('options.pktinfo', o.pktinfo, false);
  const tos = boolean('options.tos', o.tos, false);
  // node:dgram reports neither: asked for by name, they are refused rather than missing later.
  if (backend === 'dgram' && (pktinfo || tos)) {
    throw invalidValue(pktinfo ? 'options.pktinfo' : 'options.tos', "used only with backend 'native'", true);
  }
  const minimum = ring.loadError ? 0 : ring.minimumRingBytes(batchSize, maxMessageSize, timestamps, pktinfo || tos);
  if (ringBytes < minimum) {
    throw outOfRange(
      'options.ringBytes',
      `at least ${minimum} to hold one batch of ${batchSize} datagrams of ${maxMessageSize} bytes at the wrap ` +
        `(lower batchSize or maxMessageSize to use a smaller ring)`,
      ringBytes,
    );
  }
  let overflow = defaults.overflow;
  if (o.overflow !== undefined) {
    if (o.overflow !== 'block' && o.overflow !== 'drop') {
      throw invalidValue('options.overflow', "one of 'block' or 'drop'", o.overflow);
    }
    overflow = o.overflow;
  }
  const reuseAddr = boolean('options.reuseAddr', o.reuseAddr, false);
  const reusePort = boolean('options.reusePort', o.reusePort, false);
  const ipv6Only = boolean('options.ipv6Only', o.ipv6Only, false);
  // Bun exports libuv's names but not all of libuv (some are stubs): there the thread receives everything.
  let coalesceMs: number | 'auto' = 0;
  if (o.coalesceMs === 'auto') {
    coalesceMs = 'auto';
  } else if (o.coalesceMs !== undefined) {
    if (typeof o.coalesceMs !== 'number') throw invalidType('options.coalesceMs', "of type number or 'auto'", o.coalesceMs);
    if (!(o.coalesceMs >= 0 && o.coalesceMs <= 1000)) throw outOfRange('options.coalesceMs', '>= 0 and <= 1000', o.coalesceMs);
    coalesceMs = o.coalesceMs;
  }
  const eventLoopReceive = boolean('options.eventLoopReceive', o.eventLoopReceive, true) && runtime === 'node';
  const yieldEvery = yieldEveryOption('options.yieldEvery', o.yieldEvery);
  const poisonReleased = boolean('options.poisonReleased', o.poisonReleased, process.env.UDP_RING_POISON === '1');
  if (ipv6Only && type !== 'udp6') throw invalidValue('options.ipv6Only', "used only with type 'udp6'", ipv6Only);
  let signal: AbortSignal | undefined;
  if (o.signal !== undefined) {
    if (!(o.signal instanceof AbortSignal)) throw invalidType('options.signal', 'an instance of AbortSignal', o.signal);
    signal = o.signal;
  }
  return {
    port, host, type, ringBytes, maxMessageSize, batchSize, maxBatchLength, recvBufferSize, overflow,
    reuseAddr, reusePort, ipv6Only, eventLoopReceive, coalesceMs, timestamps, gro, pktinfo, tos, yieldEvery, poisonReleased, signal,
    backend,
  };
}

/** close() options. */
export interface CloseOptions {
  /**
   * Stop receiving now, but let the consumer read what the ring holds: the
   * iterator yields it and then ends, and the returned promise resolves then
   * (or when a plain close() discards the rest). Default false: discard it
   * (counted in stats().discarded).
   */
  drain?: boolean;
}

/** Checks close()'s argument (shared by both backends). */
export function closeOptions(options: unknown): boolean {
  if (options === undefined) return false;
  if (options === null || typeof options !== 'object') throw invalidType('options', 'of type object', options);
  const drain = (options as CloseOptions).drain;
  if (drain !== undefined && typeof drain !== 'boolean') throw invalidType('options.drain', 'of type boolean', drain);
  return drain === true;
}
