// The sender of the dgram backend: UdpSender's handle over a connected
// node:dgram socket, for when the addon cannot load or UDP_RING_BACKEND=dgram.
// node:dgram sends are asynchronous: each datagram is one send() that the
// kernel takes at once when it can (Node tries a synchronous send first) and
// that libuv queues otherwise. So sendBatch counts datagrams handed over, not
// datagrams the kernel accepted, and an error shows on the next call.
import dgram from 'node:dgram';
import type { NativeAddress, NativeSender } from './native.js';

export type SenderHandle = Pick<NativeSender, 'send' | 'close' | 'localAddress'>;

export interface DgramSenderOptions {
  type: 'udp4' | 'udp6';
  address: string;
  port: number;
  sendBufferSize: number;
  localAddress?: string;
  localPort: number;
}

// As the native sender: an ICMP port unreachable loses one datagram, the rest
// can still be sent; a full device queue drops; a close cancels what is queued.
const ignored = new Set(['ECONNREFUSED', 'ENOBUFS', 'ECANCELED']);

export class DgramSender implements SenderHandle {
  readonly #socket: dgram.Socket;
  #closed = false;
  #pending = 0;
  #error: Error | null = null;
  readonly #onSent = (error: Error | null): void => {
    this.#pending--;
    if (error) this.#fail(error);
    if (this.#pending === 0 && this.#closed) this.#socket.close();
  };

  static async open(options: DgramSenderOptions): Promise<DgramSender> {
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
    socket.on('error', (error) => this.#fail(error));
    // As the native sender, which holds no event-loop handle: an open sender does not keep the process alive.
    socket.unref();
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
      this.#pending++;
      this.#socket.send(copy.subarray(offset, offset + size), this.#onSent);
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

  localAddress(): NativeAddress | null {
    if (this.#closed) return null;
    const { address, family, port } = this.#socket.address();
    return { address, family: family === 'IPv6' ? 'IPv6' : 'IPv4', port };
  }
}
