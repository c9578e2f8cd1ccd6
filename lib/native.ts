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
  timestampSize: number;
  payloadAlign: number;
  payloadReserve: number;
  bytesPerDescriptor: number;
  maxRingBytes: number;
  flagTruncated: number;
  maxMessageSize: number;
  control: Record<
    | 'magic' | 'version' | 'descriptorSize' | 'descriptorCount' | 'descriptorsOffset' | 'payloadOffset'
    | 'payloadCapacity' | 'maxMessageSize' | 'timestampsOffset' | 'descriptorTail' | 'payloadTailOffset' | 'descriptorHead'
    | 'consumerWaiting' | 'producerWaiting' | 'packets' | 'bytes' | 'batches'
    | 'kernelDrops' | 'ringDrops' | 'truncated' | 'ringHighWater' | 'wakeups' | 'producerStalls'
    | 'receiveCalls' | 'directBatches' | 'discarded',
    number
  >;
  descriptor: Record<'offset' | 'size' | 'port' | 'family' | 'flags' | 'wireSize' | 'scopeId' | 'address', number>;
}

export interface RingLayout {
  descriptorCount: number;
  descriptorsOffset: number;
  /** 0 when the ring keeps no timestamps. */
  timestampsOffset: number;
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
    ring: Uint8Array,
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
      timestamps?: boolean;
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
  setOption(level: number, name: number, value: number | Uint8Array): void;
  getOption(level: number, name: number): number;
  sendTo(data: Uint8Array, family: 4 | 6, address: string, port: number): number;
  /** Connects the socket to a peer (port 0: disconnects). */
  connect(family: 4 | 6, address: string, port: number): void;
  /** ICMP errors met by receives on a connected socket, one call each (errno, positive). */
  watchErrors(callback: (errno: number) => void): void;
  /** Receives at once if anything is queued (the count), else polls the socket from the event loop (0). */
  waitDirect(): number;
  stopDirect(): void;
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
  /** ICMP errors for sent datagrams since open (read from the error queue first). */
  errors(): { refused: number; icmpErrors: number };
}

export interface NativeBinding {
  Receiver: (new () => NativeReceiver) & { socketOptions?: Record<string, number> };
  Sender: new () => NativeSender;
  layout: NativeLayout;
  computeLayout(ringBytes: number, timestamps?: boolean): RingLayout | null;
  /** CLOCK_REALTIME in microseconds: the clock of the kernel's receive timestamps. */
  realtimeMicros(): number;
  /** Payload bytes a ring needs for one batch of the largest datagrams at the wrap. */
  minimumPayloadCapacity(batchSize: number, maxMessageSize: number): number;
  /** The name of a network interface by index (if_indextoname), or null. */
  interfaceName(index: number): string | null;
  maxBatchSize: number;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// What the loader tried, for the one error that explains a failure.
function loadError(cause: unknown): Error {
  const prebuilds = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const error = new Error(
    `udp-ring: could not load its native addon for ${process.platform}-${process.arch} ` +
      `(Node ${process.version}). Tried: a prebuild in ${prebuilds} (this package ships linux-x64 glibc and musl), ` +
      `then a local build in ${join(root, 'build', 'Release')}. ` +
      'To fix: on Linux, install python3, make and g++ and run `npm rebuild udp-ring` (npm 11 skips ' +
      "dependencies' install scripts until `npm install-scripts approve udp-ring`); or use the slower " +
      "pure-TypeScript backend (options.backend 'dgram', or UDP_RING_BACKEND=dgram), which is chosen by " +
      `itself when backend is not set. Cause: ${(cause as Error)?.message ?? String(cause)}`,
    { cause },
  );
  (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_NATIVE';
  return error;
}

function load(): { binding: NativeBinding | null; error: Error | null } {
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return { binding: nodeGypBuild(root) as NativeBinding, error: null };
  } catch (cause) {
    return { binding: null, error: loadError(cause) };
  }
}

// Stands in for the addon when it cannot load, so that importing the package
// still works and the dgram backend can run: anything native throws the load
// error; the layout is all zeros, never read without a native receiver.
function unavailable(error: Error): NativeBinding {
  const fail = (): never => {
    throw error;
  };
  const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  return {
    Receiver: function Receiver() {
      fail();
    } as unknown as NativeBinding['Receiver'],
    Sender: function Sender() {
      fail();
    } as unknown as NativeBinding['Sender'],
    layout: {
      magic: 0, version: 0, controlBytes: 0, descriptorSize: 0, timestampSize: 8, payloadAlign: 1, payloadReserve: 0,
      bytesPerDescriptor: 0, maxRingBytes: 2 ** 31, flagTruncated: 0, maxMessageSize: 65535,
      control: zeros(['magic', 'version', 'descriptorSize', 'descriptorCount', 'descriptorsOffset', 'payloadOffset',
        'payloadCapacity', 'maxMessageSize', 'timestampsOffset', 'descriptorTail', 'payloadTailOffset', 'descriptorHead',
        'consumerWaiting', 'producerWaiting', 'packets', 'bytes', 'batches', 'kernelDrops', 'ringDrops', 'truncated',
        'ringHighWater', 'wakeups', 'producerStalls', 'receiveCalls', 'directBatches', 'discarded'] as const),
      descriptor: zeros(['offset', 'size', 'port', 'family', 'flags', 'wireSize', 'scopeId', 'address'] as const),
    },
    computeLayout: fail,
    minimumPayloadCapacity: fail,
    realtimeMicros: fail,
    interfaceName: fail,
    // recvmmsg's batch cap in the addon; options are validated the same with or without it.
    maxBatchSize: 1024,
  };
}

const loaded = load();

/** Why the addon did not load, or null when it did. */
export const nativeLoadError: Error | null = loaded.error;

export const native: NativeBinding = loaded.binding ?? unavailable(loaded.error!);
