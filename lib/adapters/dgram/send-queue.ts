// Sends that met a full kernel send buffer (EAGAIN), queued and retried in order as libuv's send
// queue holds them; close cancels what waits, as libuv's close does (ECANCELED).
import { systemError } from '../../core/errors.js';
import type { UdpReceiver } from '../../core/receiver.js';
import type { SendCallback } from './types.js';

export interface QueuedSend {
  data: Buffer;
  address: string;
  port: number;
  /** The local address to send from (replyFromDestination), or undefined: the route's choice. */
  source: string | undefined;
  callback: SendCallback | undefined;
}

const EAGAIN = 11;

/** What the queue needs of its socket, read when it sends (the receiver changes at close). */
export interface SendQueueHost {
  receiver(): UdpReceiver | null;
  connected(): boolean;
  refed(): boolean;
}

export class SendQueue {
  #sendQueue: QueuedSend[] = [];
  #sendQueueBytes = 0;
  #sendRetry: NodeJS.Timeout | null = null;
  readonly #host: SendQueueHost;

  constructor(host: SendQueueHost) {
    this.#host = host;
  }

  /** Bytes waiting for room in the kernel's send buffer. */
  get bytes(): number {
    return this.#sendQueueBytes;
  }

  /** Datagrams waiting for room in the kernel's send buffer. */
  get count(): number {
    return this.#sendQueue.length;
  }

  // Sends now, or behind the sends already waiting; the callback runs on a later tick either way.
  send(receiver: UdpReceiver, entry: QueuedSend): void {
    const { callback, data } = entry;
    if (this.#sendQueue.length > 0) return this.#queueSend(entry);
    const failure = this.#trySend(receiver, entry);
    if (failure === 'again') this.#queueSend(entry);
    // As node:dgram: a failed send without a callback is not an 'error'.
    else if (failure) callback && process.nextTick(callback, failure);
    else callback && process.nextTick(callback, null, data.byteLength);
  }

  // Sends one datagram: null when sent, 'again' for a full send buffer, else the error.
  #trySend(receiver: UdpReceiver, entry: QueuedSend): Error | 'again' | null {
    try {
      receiver._sendTo(entry.data, entry.address, entry.port, entry.source);
      return null;
    } catch (caught) {
      const e = caught as NodeJS.ErrnoException;
      if (e.errno === -EAGAIN || e.code === 'EAGAIN') return 'again';
      // As dgram's: a connected socket's send error names no address ('send ECONNREFUSED').
      if (this.#host.connected() && e.syscall === 'send' && typeof e.errno === 'number') {
        return systemError({ errno: e.errno, syscall: 'send' });
      }
      return typeof e.errno === 'number' ? systemError({ errno: e.errno, syscall: 'send', address: entry.address, port: entry.port }) : e;
    }
  }

  #queueSend(entry: QueuedSend): void {
    this.#sendQueue.push(entry);
    this.#sendQueueBytes += entry.data.byteLength;
    if (!this.#sendRetry) {
      // libuv waits for the socket to be writable; the receive thread owns the socket's poll, so poll here.
      this.#sendRetry = setInterval(() => this.#flushSends(), 1);
      if (!this.#host.refed()) this.#sendRetry.unref();
    }
  }

  #flushSends(): void {
    const receiver = this.#host.receiver();
    while (receiver && this.#sendQueue.length > 0) {
      const entry = this.#sendQueue[0];
      const failure = this.#trySend(receiver, entry);
      if (failure === 'again') return;
      this.#sendQueue.shift();
      this.#sendQueueBytes -= entry.data.byteLength;
      if (failure) entry.callback?.(failure, 0);
      else entry.callback?.(null, entry.data.byteLength);
    }
    if (this.#sendRetry) clearInterval(this.#sendRetry);
    this.#sendRetry = null;
  }

  // As libuv's close: sends still queued fail with ECANCELED.
  cancelSends(): void {
    if (this.#sendRetry) clearInterval(this.#sendRetry);
    this.#sendRetry = null;
    const queued = this.#sendQueue;
    this.#sendQueue = [];
    this.#sendQueueBytes = 0;
    for (const entry of queued) {
      if (entry.callback) process.nextTick(entry.callback, systemError({ errno: 125, syscall: 'send', address: entry.address, port: entry.port }), 0);
    }
  }
}
