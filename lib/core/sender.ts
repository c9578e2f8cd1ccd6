// UdpSender: a connected socket sending batches of datagrams with sendmmsg.
// Synchronous by design: it is a load generator, meant for its own process
// or worker; the receiver it feeds never runs on the JS thread. It checks its
// options and opens a sender backend through the registry (core/backend.ts):
// the addon's sendmmsg (backends/native/sender.ts) or, without the addon or
// with backend 'dgram', node:dgram (backends/dgram/sender.ts), where a send is
// only handed over, not yet done.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { senderBackend, type SenderHandle } from './backend.js';
import { closedError, fromNative, invalidType, invalidValue } from './errors.js';
import { backendOption, hostOption, integer, typeOption, MiB, type Backend, type BackendChoice, type SocketType } from './options.js';
import type { AddressInfo } from './receiver.js';

export interface SenderOptions {
  /** Destination port (required). */
  port: number;
  /** Destination host; default '127.0.0.1' (or '::1' for udp6). */
  host?: string;
  type?: SocketType;
  /** SO_SNDBUF to ask for; default 4 MiB. */
  sendBufferSize?: number;
  /** Source address to bind before connecting. */
  localAddress?: string;
  /** Source port to bind (with localAddress); 0 picks one. */
  localPort?: number;
  /**
   * GSO (UDP_SEGMENT, Linux 4.18): sendBatch hands each run of equal-size datagrams (up to 64, the
   * last may be shorter) to the kernel as one message that it splits, so many datagrams cost one
   * pass through the stack. The receiver sees ordinary datagrams (or, with `gro`, coalesced
   * buffers that udp-ring splits again). Native backend, where the kernel has it; a refusal by the
   * kernel or the route falls back to sendmmsg (for good, or for a segment above the path MTU, for
   * that size and above). Off by default, because of `refused`: over loopback a GSO message
   * reaches the receiving stack whole, and a closed port answers it with one ICMP error, not one
   * per datagram. So GSO turns itself off at the first ICMP error, and the refusals of GSO
   * messages before it count one per message.
   */
  gso?: boolean;
  /**
   * The IP TOS byte (IPv6: traffic class) of every datagram, 0-255: DSCP in the high 6 bits, ECN in
   * the low 2 (1 ECT(1), 2 ECT(0), 3 CE). Default: the system's (0). Native backend only.
   */
  tos?: number;
  /**
   * 'native' (sendmmsg), 'dgram' (node:dgram, one async send per datagram) or
   * 'auto' (native when the addon loads). Default as UdpReceiver's: env
   * UDP_RING_BACKEND, else 'native' on Linux (an error if the addon cannot load),
   * 'dgram' elsewhere.
   */
  backend?: BackendChoice;
}

const KNOWN = new Set(['port', 'host', 'type', 'sendBufferSize', 'localAddress', 'localPort', 'gso', 'tos', 'backend']);

export interface SenderStats {
  /** Datagrams the kernel accepted (the dgram backend: datagrams whose send completed). */
  sent: number;
  /**
   * Datagrams refused by the destination: ICMP port unreachable, nothing
   * listening there. On loopback each refused datagram is counted at once;
   * from a remote host the ICMP arrives a round trip later.
   */
  refused: number;
  /** Other ICMP errors for sent datagrams: host or network unreachable, fragmentation needed, prohibited. */
  icmpErrors: number;
  backend: Backend;
}

export class UdpSender {
  /** Which backend sends: the addon's sendmmsg, or node:dgram. */
  readonly backend: Backend;
  readonly #handle: SenderHandle;
  #closed = false;
  #sent = 0;
  #errors = { refused: 0, icmpErrors: 0 };
  #sizes = new Uint32Array(0);
  #one = new Uint32Array(1);

  static async open(options: SenderOptions): Promise<UdpSender> {
    if (options === null || typeof options !== 'object') throw invalidType('options', 'of type object', options);
    for (const key of Object.keys(options)) {
      if (!KNOWN.has(key)) throw invalidValue(`options.${key}`, `one of the known options (${[...KNOWN].join(', ')})`, key);
    }
    const o = options as unknown as Record<string, unknown>;
    if (o.port === undefined) throw invalidType('options.port', 'of type number', o.port);
    const port = integer('options.port', o.port, 0, 1, 65535);
    let host = hostOption('options.host', o.host);
    const type = typeOption('options.type', o.type, host);
    host ??= type === 'udp6' ? '::1' : '127.0.0.1';
    const sendBufferSize = integer('options.sendBufferSize', o.sendBufferSize, 4 * MiB, 0, 2 ** 31 - 1);
    let localAddress = hostOption('options.localAddress', o.localAddress);
    const localPort = integer('options.localPort', o.localPort, 0, 0, 65535);
    const backend = backendOption(o.backend);
    if (o.gso !== undefined && typeof o.gso !== 'boolean') throw invalidType('options.gso', 'of type boolean', o.gso);
    const gso = o.gso === true;
    const tos = o.tos === undefined ? undefined : integer('options.tos', o.tos, 0, 0, 255);
    const sender = senderBackend(backend);
    if (sender.loadError) throw sender.loadError;
    // Checked here, as the receiver does: native would only say the address is not numeric.
    for (const [name, address] of [['options.host', host], ['options.localAddress', localAddress]] as const) {
      const family = address === undefined ? 0 : isIP(address);
      if ((family === 4 && type === 'udp6') || (family === 6 && type === 'udp4')) {
        throw invalidValue(name, `an IPv${type === 'udp4' ? 4 : 6} address for type '${type}'`, address);
      }
    }
    // Names are resolved here, as for the receiver's host: native takes numeric addresses only.
    if (isIP(host) === 0) host = (await lookup(host, { family: type === 'udp6' ? 6 : 4 })).address;
    if (localAddress !== undefined && isIP(localAddress) === 0) {
      localAddress = (await lookup(localAddress, { family: type === 'udp6' ? 6 : 4 })).address;
    }
    const handle = await sender.open({ type, address: host, port, sendBufferSize, localAddress, localPort, gso, tos });
    return new UdpSender(handle, backend);
  }

  private constructor(handle: SenderHandle, backend: Backend) {
    this.#handle = handle;
    this.backend = backend;
  }

  /** The local address the sender sends from. */
  address(): AddressInfo {
    if (this.#closed) throw closedError('address');
    const local = this.#handle.localAddress();
    if (!local) throw closedError('address');
    return local;
  }

  /**
   * Whether sendBatch currently sends runs of equal-size datagrams with GSO (UDP_SEGMENT): false on
   * the dgram backend, with `gso: false`, on kernels without it, or after the kernel, the route or an
   * ICMP error turned it off.
   */
  get gso(): boolean {
    if (this.#closed) return false;
    return this.#handle.gso();
  }

  /** Sends one datagram. */
  send(datagram: Uint8Array): void {
    this.#one[0] = datagram.byteLength;
    this.sendBatch(datagram, this.#one, 1);
  }

  /**
   * Sends `count` datagrams laid end to end in `data`: datagram k is
   * `sizes[k]` bytes (or `sizes` bytes each, when a number). Returns how many
   * the kernel accepted. On the dgram backend it returns how many were handed
   * to node:dgram (all of them): those the kernel cannot take at once are
   * queued and sent as the event loop runs, and a send error is thrown by the
   * next call. `data` may be reused at once on both.
   */
  sendBatch(data: Uint8Array, sizes: Uint32Array | number, count?: number): number {
    if (this.#closed) throw closedError('send');
    if (!(data instanceof Uint8Array)) throw invalidType('data', 'an instance of Uint8Array', data);
    let table: Uint32Array;
    if (typeof sizes === 'number') {
      const n = count ?? (sizes === 0 ? 0 : Math.floor(data.byteLength / sizes));
      if (this.#sizes.length < n) this.#sizes = new Uint32Array(Math.max(n, this.#sizes.length * 2));
      table = this.#sizes;
      table.fill(sizes, 0, n);
      count = n;
    } else if (sizes instanceof Uint32Array) {
      table = sizes;
      count ??= sizes.length;
    } else {
      throw invalidType('sizes', 'a number or an instance of Uint32Array', sizes);
    }
    let sent: number;
    try {
      sent = this.#handle.send(data, table, count);
    } catch (cause) {
      throw fromNative(cause);
    }
    this.#sent += sent;
    return sent;
  }

  /**
   * What was sent and what came back refused. A datagram sent to a port
   * nothing listens on is accepted by the kernel (sendBatch counts it) and
   * then refused by the destination: `refused` counts those. Readable after close.
   */
  stats(): SenderStats {
    // The dgram backend's queued sends complete after close(), so its counts go on moving.
    const completed = this.#handle.completed();
    if (!this.#closed || completed !== null) this.#errors = this.#handle.errors();
    return { sent: completed ?? this.#sent, ...this.#errors, backend: this.backend };
  }

  close(): void {
    if (this.#closed) return;
    this.#errors = this.#handle.errors();
    this.#closed = true;
    this.#handle.close();
  }
}
