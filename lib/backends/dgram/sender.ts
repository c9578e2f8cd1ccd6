// The sender of the dgram backend: UdpSender's handle over a connected
// node:dgram socket, for when the addon cannot load or UDP_RING_BACKEND=dgram.
// node:dgram sends are asynchronous: each datagram is one send() that the
// kernel takes at once when it can (Node tries a synchronous send first) and
// that libuv queues otherwise. So sendBatch counts datagrams handed over, not
// datagrams the kernel accepted, and an error shows on the next call.
import dgram from 'node:dgram';
import { registerSenderBackend, type AddressInfo, type ResolvedSenderOptions, type SenderHandle } from '../../core/backend.js';
import { invalidValue } from '../../core/errors.js';

// As the native sender: a full device queue drops; a close cancels what is queued.
const ignored = new Set(['ENOBUFS', 'ECANCELED']);
// ICMP errors for an earlier datagram, reported by a later send (which then
// sent nothing) or by the socket's receive side: counted, as the native
// sender counts them from its error queue.
const icmpKinds: Record<string, 'refused' | 'icmpErrors'> = {
  ECONNREFUSED: 'refused', EHOSTUNREACH: 'icmpErrors', ENETUNREACH: 'icmpErrors',
};

export class DgramSender implements SenderHandle {
  readonly #socket: dgram.Socket;
  #closed = false;
  #pending = 0;
  #error: Error | null = null;
  #errors = { refused: 0, icmpErrors: 0 };
  // Sends that completed: the datagrams the kernel took.
  #completed = 0;

  static async open(options: ResolvedSenderOptions): Promise<DgramSender> {
    // node:dgram sets no TOS per socket: asked for by name, refused rather than ignored.
    if (options.tos !== undefined) throw invalidValue('options.tos', "used only with backend 'native'", options.tos);
    const socket = dgram.createSocket({
      type: options.type,
      sendBufferSize: options.sendBufferSize > 0 ? options.sendBufferSize : undefined,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        const connect = () =>
          socket.connect(options.port, options.address, () => {
            socket.off('error', reject);
            resolve();
          });
        if (options.localAddress === undefined) connect();
        else socket.bind({ address: options.localAddress, port: options.localPort }, connect);
      });
    } catch (error) {
      socket.close();
      throw error;
    }
    return new DgramSender(socket);
  }

  private constructor(socket: dgram.Socket) {
    this.#socket = socket;
    // Datagrams sent back to this port are read and discarded; a connected
    // socket's receive errors (ICMP unreachable) come here instead of throwing.
    socket.on('error', (error) => this.#icmp(error) || this.#fail(error));
    // As the native sender, which holds no event-loop handle: an open sender does not keep the process alive.
    socket.unref();
  }

  // Counts an ICMP error; true when it was one.
  #icmp(error: Error): boolean {
    const kind = icmpKinds[(error as NodeJS.ErrnoException).code ?? ''];
    if (kind) this.#errors[kind]++;
    return kind !== undefined;
  }

  #send(datagram: Buffer): void {
    this.#pending++;
    this.#socket.send(datagram, (error: Error | null) => {
      this.#pending--;
      // The error was an earlier datagram's, and this one did not go: send it again, as sendmmsg is retried.
      if (error && this.#icmp(error) && !this.#closed) this.#send(datagram);
      else if (error) this.#fail(error);
      else this.#completed++;
      if (this.#pending === 0 && this.#closed) this.#socket.close();
    });
  }

  errors(): { refused: number; icmpErrors: number } {
    return { ...this.#errors };
  }

  #fail(error: Error): void {
    if (!ignored.has((error as NodeJS.ErrnoException).code ?? '')) this.#error ??= error;
  }

  send(data: Uint8Array, sizes: Uint32Array, count: number): number {
    if (this.#closed) throw Object.assign(new Error('sendmmsg EBADF'), { code: 'EBADF', errno: -9, syscall: 'sendmmsg' });
    if (count > sizes.length) throw new TypeError('send(data: Uint8Array, sizes: Uint32Array, count <= sizes.length)');
    let total = 0;
    for (let k = 0; k < count; k++) total += sizes[k];
    if (total > data.byteLength) throw new RangeError('sizes add up to more than data.byteLength');
    const failed = this.#error;
    if (failed) {
      this.#error = null;
      throw failed;
    }
    // A queued send keeps reading its bytes until it completes: send from a
    // copy, so the caller may refill `data` at once, as with sendmmsg.
    const copy = Buffer.from(data.subarray(0, total));
    let offset = 0;
    for (let k = 0; k < count; k++) {
      const size = sizes[k];
      this.#send(copy.subarray(offset, offset + size));
      offset += size;
    }
    return count;
  }

  // Datagrams still queued in libuv go out before the socket closes (the
  // socket holds the process until then); close() itself returns at once.
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending === 0) this.#socket.close();
    else this.#socket.ref();
  }

  // Counted as sends complete, which goes on after close().
  completed(): number {
    return this.#completed;
  }

  // node:dgram has no GSO.
  gso(): false {
    return false;
  }

  localAddress(): AddressInfo | null {
    if (this.#closed) return null;
    const { address, family, port } = this.#socket.address();
    return { address, family: family === 'IPv6' ? 'IPv6' : 'IPv4', port };
  }
}

registerSenderBackend('dgram', { loadError: null, open: (options) => DgramSender.open(options) });
