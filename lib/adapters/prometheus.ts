// udp-ring/prometheus: a receiver's counters and gauges on a prom-client
// registry. Values are read from stats() when Prometheus scrapes (collect
// callbacks), never per packet. This is the only module that imports
// prom-client, an optional peer dependency.
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import type { ReceiverStats, UdpReceiver } from '../core/receiver.js';
import type { JetStreamPublisher, JetStreamPublisherStats } from './jetstream.js';

export interface ReceiverMetricsOptions {
  /** Registry to register on; prom-client's default registry when omitted. */
  registry?: Registry;
  /** Value of the `socket` label; the bound address ("127.0.0.1:9000", "[::1]:9000") when omitted. */
  socket?: string;
}

export interface ReceiverMetrics {
  /** The `socket` label this receiver's series carry. */
  readonly socket: string;
  /** Stops reporting this receiver; the metrics stay registered while other receivers use them. */
  remove(): void;
}

type Read = (s: ReceiverStats) => number | null;

const counters: Array<[name: string, help: string, read: Read]> = [
  ['udp_ring_datagrams_received_total', 'Datagrams the receive thread placed in the ring.', (s) => s.packets],
  ['udp_ring_bytes_received_total', 'Payload bytes placed in the ring.', (s) => s.bytes],
  ['udp_ring_kernel_drops_total', 'Datagrams the kernel dropped on this socket because its receive buffer was full.', (s) => s.kernelDrops],
  ['udp_ring_ring_drops_total', "Datagrams dropped because the ring was full (overflow 'drop').", (s) => s.ringDrops],
  ['udp_ring_discarded_total', 'Datagrams the socket took but the application never got because the receiver closed.', (s) => s.discarded],
  ['udp_ring_truncated_total', 'Datagrams longer than maxMessageSize, delivered cut and flagged.', (s) => s.truncated],
  ['udp_ring_receive_batches_total', 'recvmmsg calls that returned datagrams.', (s) => s.batches],
  ['udp_ring_receive_calls_total', 'recvmmsg calls made, including ones that found the queue empty.', (s) => s.receiveCalls],
  ['udp_ring_direct_batches_total', 'Batches the event loop received itself while the iterator waited (eventLoopReceive).', (s) => s.directBatches],
  ['udp_ring_wakeups_total', 'Times the receive thread woke the event loop (at most once per batch).', (s) => s.wakeups],
  ['udp_ring_thread_wakeups_total', 'Times the receive thread woke from a wait (a datagram, a watch tick while the event loop receives).', (s) => s.threadWakeups],
  ['udp_ring_coalescing_windows_total', "Coalescing windows waited (coalesceMs; with 'auto' only while busy).", (s) => s.windows],
  ['udp_ring_producer_stalls_total', "Times the receive thread waited for ring space (overflow 'block').", (s) => s.producerStalls],
];

const gauges: Array<[name: string, help: string, read: Read]> = [
  ['udp_ring_ring_bytes', 'Size of the ring in bytes.', (s) => s.ringBytes],
  ['udp_ring_ring_bytes_used', 'Ring bytes holding datagrams not yet released by the application.', (s) => s.ringUsed],
  ['udp_ring_ring_datagrams', 'Datagrams in the ring not yet released by the application.', (s) => s.ringDatagrams],
  ['udp_ring_ring_high_water_bytes', 'Most ring bytes in use at once since the receiver opened.', (s) => s.ringHighWater],
  ['udp_ring_recv_buffer_bytes', 'Kernel receive buffer granted to the socket (SO_RCVBUF, as the kernel reports it).', (s) => s.recvBufferSize],
  ['udp_ring_recv_buffer_capped', '1 when net.core.rmem_max cut the requested receive buffer short, else 0.', (s) => (s.recvBufferCapped ? 1 : 0)],
  ['udp_ring_kernel_queue_bytes', "Bytes waiting in the kernel's queue for this socket.", (s) => s.kernelQueueBytes],
  // With options.timestamps only: kernel arrival to delivery, over every datagram since open.
  ...(['p50', 'p99', 'p999', 'max'] as const).map((q): [string, string, Read] => [
    `udp_ring_queue_delay_${q}_seconds`,
    `Queueing delay from the kernel's receive timestamp to delivery, ${q === 'max' ? 'maximum' : `percentile ${q.slice(1, 3)}${q.length > 3 ? `.${q.slice(3)}` : ''}`} (timestamps: true).`,
    (s) => (s.queueDelay ? s.queueDelay[q] / 1e6 : null),
  ]),
];

/** One per registry: the metrics, and the receivers they report. */
class Collector {
  readonly #receivers = new Map<string, UdpReceiver>();
  // All metrics of one scrape read one snapshot: a metric that meets a snapshot it
  // has already used is the first of the next scrape, and takes a fresh one.
  #snapshot: Map<string, ReceiverStats> | null = null;
  #generation = 0;

  constructor(registry: Registry) {
    const metric = () => {
      let used = -1;
      return () => {
        if (this.#snapshot === null || used === this.#generation) this.#take();
        used = this.#generation;
        return this.#snapshot!;
      };
    };
    for (const [name, help, read] of counters) {
      const snapshot = metric();
      new Counter({
        name, help, labelNames: ['socket'], registers: [registry],
        collect() {
          this.reset();
          for (const [socket, stats] of snapshot()) this.inc({ socket }, read(stats) ?? 0);
        },
      });
    }
    for (const [name, help, read] of gauges) {
      const snapshot = metric();
      new Gauge({
        name, help, labelNames: ['socket'], registers: [registry],
        collect() {
          this.reset();
          for (const [socket, stats] of snapshot()) {
            const value = read(stats);
            if (value !== null) this.set({ socket }, value);
          }
        },
      });
    }
  }

  has(socket: string): boolean {
    return this.#receivers.has(socket);
  }

  add(socket: string, receiver: UdpReceiver): void {
    this.#receivers.set(socket, receiver);
    this.#snapshot = null;
  }

  delete(socket: string, receiver: UdpReceiver): void {
    if (this.#receivers.get(socket) !== receiver) return;
    this.#receivers.delete(socket);
    this.#snapshot = null;
  }

  #take(): void {
    const snapshot = new Map<string, ReceiverStats>();
    for (const [socket, receiver] of this.#receivers) snapshot.set(socket, receiver.stats());
    this.#snapshot = snapshot;
    this.#generation++;
  }
}

const collectors = new WeakMap<Registry, Collector>();

/**
 * Reports a receiver's counters and gauges on a registry, with a `socket`
 * label. Several receivers can share one registry; each needs its own label.
 */
export function registerReceiverMetrics(receiver: UdpReceiver, options: ReceiverMetricsOptions = {}): ReceiverMetrics {
  const registry = options.registry ?? defaultRegistry;
  let socket = options.socket;
  if (socket === undefined) {
    const a = receiver.address();
    socket = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }
  if (typeof socket !== 'string' || socket === '') throw new TypeError('udp-ring: options.socket must be a non-empty string');
  let collector = collectors.get(registry);
  if (!collector) {
    collector = new Collector(registry);
    collectors.set(registry, collector);
  }
  if (collector.has(socket)) {
    throw new Error(`udp-ring: a receiver with socket label '${socket}' is already registered on this registry`);
  }
  collector.add(socket, receiver);
  const owner = collector;
  const label = socket;
  return {
    socket: label,
    remove() {
      owner.delete(label, receiver);
    },
  };
}

// udp-ring/jetstream's counters beside the receiver's (registerReceiverMetrics reports
// the receiver itself): with both, sent = acked + failed + skipped + ring, kernel drops
// and discarded can be checked from the scrape.
type PublisherRead = (s: JetStreamPublisherStats) => number;

const publisherCounters: Array<[name: string, help: string, read: PublisherRead]> = [
  ['udp_ring_jetstream_acked_total', 'Messages the JetStream stream acknowledged (duplicates included).', (s) => s.acked],
  ['udp_ring_jetstream_duplicates_total', 'Of acked: acknowledged as duplicates of an earlier attempt whose ack was lost (stored once).', (s) => s.duplicates],
  ['udp_ring_jetstream_retried_total', 'Publish attempts after the first (same message id).', (s) => s.retried],
  ['udp_ring_jetstream_skipped_total', 'Datagrams the map function returned null for.', (s) => s.skipped],
  ['udp_ring_jetstream_backpressure_waits_total', 'Times the in-flight bound was reached and the receiver was left unread.', (s) => s.backpressureWaits],
];

class PublisherCollector {
  readonly publishers = new Map<string, JetStreamPublisher>();

  constructor(registry: Registry) {
    const all = () => [...this.publishers].map(([socket, p]) => [socket, p.stats()] as const);
    for (const [name, help, read] of publisherCounters) {
      new Counter({
        name, help, labelNames: ['socket'], registers: [registry],
        collect() {
          this.reset();
          for (const [socket, stats] of all()) this.inc({ socket }, read(stats));
        },
      });
    }
    new Counter({
      name: 'udp_ring_jetstream_failed_total', help: "Messages given up on, by reason (the server's, or timeout).",
      labelNames: ['socket', 'reason'], registers: [registry],
      collect() {
        this.reset();
        for (const [socket, stats] of all()) {
          for (const [reason, n] of Object.entries(stats.failures)) this.inc({ socket, reason }, n);
        }
      },
    });
    new Gauge({
      name: 'udp_ring_jetstream_in_flight', help: 'Publishes awaiting their ack.', labelNames: ['socket'], registers: [registry],
      collect() {
        this.reset();
        for (const [socket, stats] of all()) this.set({ socket }, stats.inFlight);
      },
    });
  }
}

const publisherCollectors = new WeakMap<Registry, PublisherCollector>();

/** Reports a udp-ring/jetstream publisher's counters, labelled `socket` like its receiver's. */
export function registerJetStreamMetrics(publisher: JetStreamPublisher, options: { registry?: Registry; socket: string }):
  ReceiverMetrics {
  const registry = options.registry ?? defaultRegistry;
  const socket = options.socket;
  if (typeof socket !== 'string' || socket === '') throw new TypeError('udp-ring: options.socket must be a non-empty string');
  let collector = publisherCollectors.get(registry);
  if (!collector) {
    collector = new PublisherCollector(registry);
    publisherCollectors.set(registry, collector);
  }
  if (collector.publishers.has(socket)) {
    throw new Error(`udp-ring: a publisher with socket label '${socket}' is already registered on this registry`);
  }
  collector.publishers.set(socket, publisher);
  const owner = collector;
  return {
    socket,
    remove() {
      if (owner.publishers.get(socket) === publisher) owner.publishers.delete(socket);
    },
  };
}
