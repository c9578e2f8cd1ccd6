// Receive on the thread: the options a facade socket opens its UdpReceiver with, and each batch
// delivered as node:dgram's 'message' events (a Buffer copied per datagram, and its rinfo).
import type { Batch } from '../../core/batch.js';
import type { UdpReceiver } from '../../core/receiver.js';
import type { EventLoopReceive } from './event-loop.js';
import type { SocketHost } from './host.js';
import type { SendPath } from './send.js';
import { State, type RemoteInfo, type SocketOptions } from './types.js';

// A socket bound to an ephemeral port (port 0, or bound by its first send or connect) is a
// client: a DNS query, a statsd or syslog sender. When it moves to the thread its ring is small,
// unless it has proved busy (below); a server (a port chosen) gets UdpReceiver's default ring.
const clientRingBytes = 1024 * 1024;
const clientBatchSize = 8;

// replyFromDestination: the peers whose destination is remembered, oldest forgotten first.
const maxReplyPeers = 4096;

// What a facade socket opens its UdpReceiver with. small: a client socket moving off the event loop
// (the ring for a port of its own choosing).
export function receiverOptions(o: SocketOptions, port: number, host: string, shared = false, small = false) {
  return {
    port, host, type: o.type, reuseAddr: o.reuseAddr, reusePort: o.reusePort || shared, ipv6Only: o.ipv6Only,
    recvBufferSize: o.recvBufferSize, ringBytes: o.ringBytes ?? (small ? clientRingBytes : undefined),
    maxMessageSize: o.maxMessageSize, batchSize: o.batchSize ?? (small ? clientBatchSize : undefined), overflow: o.overflow, yieldEvery: o.yieldEvery, coalesceMs: o.coalesceMs, backend: o.backend,
    pktinfo: !!o.replyFromDestination,
  };
}

export class ThreadDelivery {
  readonly #host: SocketHost;
  readonly #loop: EventLoopReceive;
  readonly #path: SendPath;
  #draining = false;
  // Datagrams of a batch already taken from the ring when a listener closed the socket.
  #unemitted = 0;
  // replyFromDestination: "address port" of each peer heard from -> the local address it sent to.
  readonly #replySources: Map<string, string> | null;

  constructor(host: SocketHost, loop: EventLoopReceive, path: SendPath) {
    this.#host = host;
    this.#loop = loop;
    this.#path = path;
    this.#replySources = host.options.replyFromDestination ? new Map() : null;
  }

  /** Taken from the ring but never emitted (the socket closed in a listener): discarded, not delivered. */
  get unemitted(): number {
    return this.#unemitted;
  }

  /** close({ drain: true }): what the ring holds is still emitted. */
  drain(): void {
    this.#draining = true;
  }

  /** replyFromDestination: the local address this peer last sent to. */
  replySource(address: string, port: number): string | undefined {
    return this.#replySources?.get(`${address} ${port}`);
  }

  // Receives on the fast path (onBatch): no promise per batch.
  pump(receiver: UdpReceiver): void {
    receiver.onBatch(this.#deliver).catch((error: unknown) => {
      if (this.#host.state() !== State.Closed) this.#host.socket.emit('error', error);
    });
  }

  readonly #deliver = (batch: Batch): void => {
    this.#loop.endHandover();
    // Read once: closing the receiver retires the batch (length 0).
    const length = batch.length;
    for (let i = 0; i < length; i++) {
      // Closed by a listener: as with dgram, no 'message' after close() (unless draining).
      if (this.#host.state() === State.Closed && !this.#draining) {
        this.#unemitted += length - i;
        break;
      }
      const family = batch.family(i) === 6 ? 'IPv6' : 'IPv4';
      const rinfo: RemoteInfo = { address: batch.address(i), family, port: batch.port(i), size: batch.size(i) };
      // A connected dgram socket only hears its peer (the kernel filters; here the pump does).
      const remote = this.#path.remote;
      if (remote && (remote.port !== rinfo.port || remote.address !== rinfo.address)) continue;
      const sources = this.#replySources;
      if (sources) {
        const peer = `${rinfo.address} ${rinfo.port}`;
        sources.delete(peer);
        sources.set(peer, batch.destinationAddress(i));
        if (sources.size > maxReplyPeers) sources.delete(sources.keys().next().value as string);
      }
      try {
        this.#host.socket.emit('message', batch.copy(i), rinfo);
      } catch (error) {
        // As with dgram, a throwing listener is an uncaught exception, not the end of receiving.
        process.nextTick(() => {
          throw error;
        });
      }
    }
  };
}
