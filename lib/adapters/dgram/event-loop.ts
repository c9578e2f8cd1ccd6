// Receive on the event loop: a facade socket starts as a node:dgram socket (no ring, no thread),
// counts what it receives, and moves to the receive thread once traffic calls for it (promote);
// the same kernel socket, so no datagram is lost and the port stays (docs/dgram-migration.md).
import * as nodeDgram from 'node:dgram';
import type * as NodeDgram from 'node:dgram';
import { readRmemMax } from '../../core/kernel.js';
import type { AddressInfo, ReceiverStats, UdpReceiver } from '../../core/receiver.js';
import { native } from '../../backends/native/addon.js';
import { sharesPort } from './cluster.js';
import { dgramFd } from './fd.js';
import type { SocketHost } from './host.js';
import { State, type SocketOptions } from './types.js';

// An event-loop socket moves to the thread when this many datagrams arrive within one second,
// or this many in one turn of the event loop (libuv reads at most 32 per readiness: the queue
// held more than one read loop takes, so the loop is behind).
const promoteRate = 100;
const promoteBurst = 32;
// A client moves with the full ring, not the small one, when it has proved busy: the burst above,
// kernel drops already, or its promoteRate datagrams came within this long (1000/s or more).
const busyWindowMs = 100;

// Runs fn once the event loop has polled for I/O at least once: a check-phase callback queued
// from the check phase itself runs after the next poll.
function afterPoll(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}

// receive: 'auto': every socket starts on the event loop, except a cluster worker's on a named
// port (which binds its own socket with SO_REUSEPORT, on the thread) and a socket given
// udp-ring's ring or backend options.
export function startsOnLoop(o: SocketOptions, port: number, exclusive: boolean): boolean {
  if (sharesPort(port, exclusive)) return false;
  return o.receive !== 'thread' && o.ringBytes === undefined && o.backend === undefined && !o.reusePort && !o.replyFromDestination;
}

type LoopFinal = { kernelDrops: number; discarded: number; recvBufferSize: number };

export class EventLoopReceive {
  readonly #host: SocketHost;
  // Event-loop receive: a node:dgram socket does everything until the socket moves to the thread.
  #inner: NodeDgram.Socket | null = null;
  #windowStart = 0;
  #windowCount = 0;
  #turnCount = 0;
  #turnPending = false;
  #requestedPort = 0;
  // The event-loop socket that still receives until the thread's first batch.
  #handover: NodeDgram.Socket | null = null;
  // What node:dgram received on the event loop (each one emitted), its socket's fd and kernel drops
  // when last read: stats() has them before the move and adds them to the ring's after it.
  #loopPackets = 0;
  #loopBytes = 0;
  #loopFd = 0;
  #loopDrops = 0;
  // A socket closed while on the event loop: its kernel drops and what the close threw away.
  #loopFinal: LoopFinal | null = null;

  constructor(host: SocketHost) {
    this.#host = host;
  }

  /** The node:dgram socket while it receives (then every call goes to it); null once on the thread. */
  get inner(): NodeDgram.Socket | null {
    return this.#inner;
  }

  /** Closed while on the event loop: stats() are the event loop's, final. */
  get closed(): boolean {
    return this.#loopFinal !== null;
  }

  // The node:dgram socket that receives on the event loop; its events become this socket's.
  bind(host: string | null | undefined, exclusive: boolean, port: number): void {
    this.#requestedPort = port;
    const o = this.#host.options;
    const inner = nodeDgram.createSocket({
      type: this.#host.type, reuseAddr: o.reuseAddr, ipv6Only: o.ipv6Only, recvBufferSize: o.recvBufferSize,
      sendBufferSize: o.sendBufferSize, ...(o.lookup ? { lookup: o.lookup } : {}),
    });
    this.#inner = inner;
    if (!this.#host.refed()) inner.unref();
    inner.on('listening', () => {
      this.#loopFd = dgramFd(inner);
      this.#host.setState(State.Bound);
      this.#host.socket.emit('listening');
      // A server (a port named) starts its thread right away, in the background: the kernel buffer
      // grows then, and the ring is prefaulted while node:dgram still receives. Not within this
      // tick: opening blocks the event loop (~0.2 ms), so it waits until the loop has polled once,
      // and a request sent at 'listening' is answered first. A client moves only when traffic
      // calls for it.
      if (port !== 0) afterPoll(() => this.#inner === inner && this.#promote());
    });
    inner.on('error', (error) => {
      if (this.#host.state() === State.Binding) this.#host.setState(State.Unbound);
      this.#host.socket.emit('error', error);
    });
    inner.on('connect', () => this.#host.socket.emit('connect'));
    inner.on('close', () => {
      this.#host.setState(State.Closed);
      this.#host.socket.emit('close');
    });
    inner.on('message', (msg, rinfo) => {
      this.#loopPackets++;
      this.#loopBytes += msg.byteLength;
      try {
        this.#host.socket.emit('message', msg, rinfo);
      } finally {
        if (this.#inner === inner) this.#countTraffic();
      }
    });
    inner.bind({ port, address: host ?? undefined, exclusive });
  }

  #countTraffic(): void {
    if (++this.#turnCount === 1 && !this.#turnPending) {
      this.#turnPending = true;
      setImmediate(() => {
        this.#turnCount = 0;
        this.#turnPending = false;
      }).unref();
    }
    const now = performance.now();
    // The first datagram opens a window (performance.now() counts from the process's start, so a
    // window anchored at 0 would end early in a young process).
    if (this.#windowCount === 0 || now - this.#windowStart > 1000) {
      this.#windowStart = now;
      this.#windowCount = 0;
    }
    const burst = this.#turnCount >= promoteBurst;
    const rate = ++this.#windowCount >= promoteRate;
    // At once, from inside node:dgram's read loop: safe, as the node:dgram socket stays open (and
    // keeps receiving) until the thread's first batch.
    if (burst || rate) this.#promote(burst || now - this.#windowStart < busyWindowMs);
  }

  // Moves receiving onto the thread: the native receiver takes a duplicate of the socket's fd,
  // then the node:dgram socket closes its own. The same kernel socket: no datagram is lost and
  // the port stays. A connected socket, or one with sends queued, stays on the event loop.
  #promote(busy = false): void {
    const inner = this.#inner;
    if (!inner || this.#host.state() !== State.Bound) return;
    let local: AddressInfo;
    try {
      // Closed by a listener (the 'close' event is yet to come), or sends queued: stays.
      if (inner.getSendQueueCount() > 0) return;
      local = inner.address() as AddressInfo;
    } catch {
      return;
    }
    try {
      inner.remoteAddress();
      return; // connected: stays on the event loop
    } catch {
      // not connected: may move
    }
    const fd = dgramFd(inner);
    if (fd <= 0) return;
    const dropped = (this.#readLoopDrops()?.socketDrops ?? 0) > 0;
    let receiver: UdpReceiver | null = null;
    try {
      // The ring a socket bound that way gets from the start: the default for a server, small for a
      // client unless it has proved busy.
      const small = this.#requestedPort === 0 && !busy && !dropped;
      receiver = this.#host.openOnThread(this.#requestedPort, local.address, fd, small);
    } catch {
      // Stays on the event loop.
    }
    if (!receiver) return;
    this.#inner = null;
    inner.removeAllListeners('close');
    inner.removeAllListeners('error');
    inner.removeAllListeners('connect');
    inner.on('error', () => {});
    if (this.#requestedPort !== 0) {
      // A server, moving at 'listening': the node:dgram socket keeps receiving while the thread
      // prefaults its 32 MiB ring (which it does before it receives), and closes at the thread's
      // first batch (endHandover, from the socket's delivery). Datagrams arriving in that window may be emitted out of order.
      this.#handover = inner;
    } else {
      // A client, moving under traffic: node:dgram stops here (libuv's read loop, which runs this,
      // stops with the fd), so the order holds; the kernel holds what comes while the thread
      // prefaults its 1 MiB ring.
      inner.removeAllListeners('message');
      inner.close();
    }
    this.#host.moved(receiver);
  }

  // The thread's first batch has come: the node:dgram socket that still received closes.
  endHandover(): void {
    const inner = this.#handover;
    if (!inner) return;
    this.#handover = null;
    inner.removeAllListeners('message');
    inner.close();
  }

  ref(): void {
    this.#handover?.ref();
    this.#inner?.ref();
  }

  unref(): void {
    this.#handover?.unref();
    this.#inner?.unref();
  }

  // As node:dgram's close, after reading what it throws away.
  close(): void {
    const inner = this.#inner;
    if (!inner) return;
    if (this.#host.state() === State.Bound && !this.#loopFinal) this.#loopFinal = this.#closingLoopCounts();
    inner.close();
  }

  // The thread's counters with what the event loop received before the move added in, so the
  // counts go on without a gap. unemitted: taken from the ring but never emitted.
  onThread(stats: ReceiverStats, unemitted: number): ReceiverStats {
    const packets = stats.packets + this.#loopPackets;
    const batches = stats.batches + this.#loopPackets;
    return {
      ...stats,
      packets,
      // Taken from the ring but never emitted: discarded, not delivered.
      delivered: stats.delivered - unemitted + this.#loopPackets,
      discarded: stats.discarded + unemitted,
      bytes: stats.bytes + this.#loopBytes,
      batches,
      meanBatchSize: batches === 0 ? 0 : packets / batches,
      receiveCalls: stats.receiveCalls + this.#loopPackets,
      // The thread counts the socket's drops from its creation, as the event loop did, but learns of
      // earlier ones only with its next datagram or queue check: never less than the loop last saw.
      kernelDrops: Math.max(stats.kernelDrops, this.#loopDrops),
    };
  }

  #readLoopDrops(): ReturnType<typeof native.socketMemInfo> {
    const info = this.#loopFd > 0 ? native.socketMemInfo(this.#loopFd) : null;
    if (info) this.#loopDrops = Math.max(this.#loopDrops, info.socketDrops);
    return info;
  }

  // node:dgram reads one datagram per call, each a 'message'; the kernel's queue and drops come from
  // SO_MEMINFO (after close, from what close() read).
  stats(): ReceiverStats {
    const final = this.#loopFinal;
    const info = final ? null : this.#readLoopDrops();
    const o = this.#host.options;
    const packets = this.#loopPackets;
    const requested = o.recvBufferSize ?? 0;
    const recvBufferSize = final ? final.recvBufferSize : (info?.recvBufferSize ?? 0);
    return {
      packets, delivered: packets, bytes: this.#loopBytes, batches: packets, meanBatchSize: packets === 0 ? 0 : 1,
      kernelDrops: final ? final.kernelDrops : this.#loopDrops, ringDrops: 0, discarded: final ? final.discarded : 0, truncated: 0,
      recvBufferSize, recvBufferRequested: requested, recvBufferForced: false,
      recvBufferCapped: requested > 0 && recvBufferSize < 2 * requested, rmemMax: readRmemMax(),
      kernelQueueBytes: info ? info.queuedBytes : null,
      ringBytes: 0, ringUsed: 0, ringDatagrams: 0, ringHighWater: 0, wakeups: 0, producerStalls: 0,
      receiveCalls: packets, directBatches: 0, threadWakeups: 0, coalesced: 0, windows: 0,
      overflow: o.overflow ?? 'block', batchSize: 1, maxMessageSize: 65535, queueDelay: null, backend: 'dgram',
    };
  }

  // At close on the event loop: node:dgram throws away what the kernel queue holds; count it as
  // discarded, as the receive thread does at its close. One getsockopt when the queue is empty
  // (a short-lived client's usual close); native.discardQueued reads it out otherwise.
  #closingLoopCounts(): LoopFinal {
    const info = this.#readLoopDrops();
    const counts = { kernelDrops: this.#loopDrops, discarded: 0, recvBufferSize: info?.recvBufferSize ?? 0 };
    const gone = info && info.queuedBytes > 0 ? native.discardQueued(this.#loopFd) : null;
    if (gone) counts.discarded = gone.discarded + (gone.socketDrops === null ? 0 : Math.max(0, gone.socketDrops - counts.kernelDrops));
    return counts;
  }
}
