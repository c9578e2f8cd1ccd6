// The native backend's sender: sendmmsg (and GSO) through the addon's Sender, for the core's
// UdpSender (core/sender.ts), which opens it through the registry (core/backend.ts).
import { registerSenderBackend, type ResolvedSenderOptions, type SenderHandle } from '../../core/backend.js';
import { fromNative } from '../../core/errors.js';
import { native, nativeLoadError, type NativeSender } from './addon.js';

class NativeSenderHandle implements SenderHandle {
  readonly #sender: NativeSender;

  constructor(sender: NativeSender) {
    this.#sender = sender;
  }

  send(data: Uint8Array, sizes: Uint32Array, count: number): number {
    return this.#sender.send(data, sizes, count);
  }

  close(): void {
    this.#sender.close();
  }

  localAddress() {
    return this.#sender.localAddress();
  }

  errors(): { refused: number; icmpErrors: number } {
    return this.#sender.errors();
  }

  gso(): boolean {
    return this.#sender.segmentation().gso;
  }

  // send() returns what the kernel took: the caller counts it.
  completed(): null {
    return null;
  }
}

function open(options: ResolvedSenderOptions): Promise<SenderHandle> {
  const { type, address: host, port, sendBufferSize, localAddress, localPort, gso, tos } = options;
  const handle = new native.Sender();
  try {
    handle.open({ family: type === 'udp6' ? 6 : 4, address: host, port, sendBufferSize, localAddress, localPort, gso, tos });
  } catch (cause) {
    // A failed bind is about the local address, as dgram reports it; anything else about the destination.
    const failedBind = (cause as { syscall?: unknown })?.syscall === 'bind' && localAddress !== undefined;
    throw fromNative(cause, failedBind ? { address: localAddress, port: localPort } : { address: host, port });
  }
  return Promise.resolve(new NativeSenderHandle(handle));
}

registerSenderBackend('native', { loadError: nativeLoadError, open });
