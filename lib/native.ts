// Loads the addon: a prebuild for this platform if one ships, else the local
// build. One error says what was tried and what to do.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface NativeLayout {
  magic: number;
  version: number;
  controlBytes: number;
  descriptorSize: number;
  payloadAlign: number;
  payloadReserve: number;
  bytesPerDescriptor: number;
  maxRingBytes: number;
  flagTruncated: number;
  control: Record<
    | 'magic' | 'version' | 'descriptorSize' | 'descriptorCount' | 'descriptorsOffset' | 'payloadOffset'
    | 'payloadCapacity' | 'maxMessageSize' | 'descriptorTail' | 'payloadTail' | 'descriptorHead'
    | 'payloadHead' | 'consumerWaiting' | 'producerWaiting' | 'packets' | 'bytes' | 'batches'
    | 'kernelDrops' | 'ringDrops' | 'truncated' | 'ringHighWater' | 'wakeups' | 'producerStalls'
    | 'receiveCalls',
    number
  >;
  descriptor: Record<'offset' | 'size' | 'port' | 'family' | 'flags' | 'wireSize' | 'address', number>;
}

export interface RingLayout {
  descriptorCount: number;
  descriptorsOffset: number;
  payloadOffset: number;
  payloadCapacity: number;
}

export interface NativeAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

export interface NativeReceiver {
  open(
    ring: ArrayBuffer,
    options: {
      family: 4 | 6;
      address: string;
      port: number;
      reuseAddr: boolean;
      reusePort: boolean;
      ipv6Only: boolean;
      recvBufferSize: number;
      batchSize: number;
      maxMessageSize: number;
      overflow: 0 | 1;
    },
    wake: () => void,
  ): { recvBufferSize: number; forced: boolean };
  close(): void;
  notifySpace(): void;
  ref(): void;
  unref(): void;
  localAddress(): NativeAddress | null;
  socketInfo(): { queuedBytes: number; recvBufferSize: number; socketDrops: number } | null;
  failure(): { errno: number; syscall: string } | null;
}

export interface NativeSender {
  open(options: {
    family: 4 | 6;
    address: string;
    port: number;
    sendBufferSize: number;
    localAddress?: string;
    localPort?: number;
  }): void;
  send(data: Uint8Array, sizes: Uint32Array, count: number): number;
  close(): void;
  localAddress(): NativeAddress | null;
}

export interface NativeBinding {
  Receiver: new () => NativeReceiver;
  Sender: new () => NativeSender;
  layout: NativeLayout;
  computeLayout(ringBytes: number): RingLayout | null;
  maxBatchSize: number;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as NativeBinding;
  } catch (cause) {
    const error = new Error(
      `udp-ring: could not load its native addon for ${process.platform}-${process.arch} ` +
        `(Node ${process.version}). Looked for a prebuild in ${join(root, 'prebuilds')} and a local build in ` +
        `${join(root, 'build')}. udp-ring needs Linux; to build it here install python3, make and g++ ` +
        `and run \`npm rebuild udp-ring\` (npm 11 skips dependencies' install scripts until ` +
        `\`npm install-scripts approve udp-ring\`). Cause: ${(cause as Error).message}`,
      { cause },
    );
    (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_NATIVE';
    throw error;
  }
}

export const native: NativeBinding = load();
