// Loads the addon: a prebuild for this platform if one ships, else the local
// build. One error says what was tried and what to do.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface NativeLayout {
  magic: number;
  version: number;
  controlBytes: number;
  descriptorSize: number;
  timestampSize: number;
  packetInfoSize: number;
  packetInfoTos: number;
  payloadAlign: number;
  payloadReserve: number;
  bytesPerDescriptor: number;
  maxRingBytes: number;
  flagTruncated: number;
  maxMessageSize: number;
  control: Record<
    | 'magic' | 'version' | 'descriptorSize' | 'descriptorCount' | 'descriptorsOffset' | 'payloadOffset'
    | 'payloadCapacity' | 'maxMessageSize' | 'timestampsOffset' | 'packetInfoOffset' | 'descriptorTail' | 'payloadTailOffset'
    | 'descriptorHead' | 'consumerWaiting' | 'producerWaiting' | 'packets' | 'bytes' | 'batches'
    | 'kernelDrops' | 'ringDrops' | 'truncated' | 'ringHighWater' | 'wakeups' | 'producerStalls'
    | 'receiveCalls' | 'directBatches' | 'coalesced' | 'discarded' | 'threadWakeups' | 'windows',
    number
  >;
  descriptor: Record<'offset' | 'size' | 'port' | 'family' | 'flags' | 'wireSize' | 'scopeId' | 'address', number>;
  packetInfo: Record<'destination' | 'interfaceIndex' | 'destinationFamily' | 'tos' | 'flags', number>;
}

export interface RingLayout {
  descriptorCount: number;
  descriptorsOffset: number;
  /** 0 when the ring keeps no timestamps. */
  timestampsOffset: number;
  /** 0 when the ring keeps no packet info (destination address, TOS). */
  packetInfoOffset: number;
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
      /** > 0: after a quiet spell the thread waits this long (µs) before it receives (options.coalesceMs). */
      coalesceUs?: number;
      /** With coalesceUs: wait a window only while datagrams arrive fast (options.coalesceMs 'auto'). */
      coalesceAuto?: boolean;
      /** > 0: adopt this inherited, bound datagram socket instead of opening one. */
      fd?: number;
      /** With fd: receive on a duplicate of it (F_DUPFD_CLOEXEC), leaving fd to its owner. */
      dupFd?: boolean;
      timestamps?: boolean;
      gro?: boolean;
      pktinfo?: boolean;
      tos?: boolean;
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
  /** `source`: the local address to send from (IP_PKTINFO / IPV6_PKTINFO), e.g. a datagram's destination. */
  sendTo(data: Uint8Array, family: 4 | 6, address: string, port: number, source?: string): number;
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
    gso?: boolean;
    tos?: number;
  }): void;
  send(data: Uint8Array, sizes: Uint32Array, count: number): number;
  /** Whether sends still use UDP_SEGMENT, the largest segment size they may (0: none), and send calls since open. */
  segmentation(): { gso: boolean; gsoLimit: number; calls: number };
  close(): void;
  localAddress(): NativeAddress | null;
  /** ICMP errors for sent datagrams since open (read from the error queue first). */
  errors(): { refused: number; icmpErrors: number };
}

export interface NativeBinding {
  Receiver: (new () => NativeReceiver) & { socketOptions?: Record<string, number> };
  Sender: new () => NativeSender;
  layout: NativeLayout;
  computeLayout(ringBytes: number, timestamps?: boolean, packetInfo?: boolean): RingLayout | null;
  /** CLOCK_REALTIME in microseconds: the clock of the kernel's receive timestamps. */
  realtimeMicros(): number;
  /** CLOCK_MONOTONIC in microseconds, wrapping at 2^30: a small integer, read without allocating (the turn clock). */
  monotonicMicros(): number;
  /** Payload bytes a ring needs for one batch of the largest datagrams at the wrap. */
  minimumPayloadCapacity(batchSize: number, maxMessageSize: number): number;
  /** The name of a network interface by index (if_indextoname), or null. */
  interfaceName(index: number): string | null;
  /** SO_MEMINFO of any socket fd (the dgram facade's counters while node:dgram receives), or null. */
  socketMemInfo(fd: number): { queuedBytes: number; recvBufferSize: number; socketDrops: number } | null;
  /** For a socket about to close: filters out new arrivals, reads and counts what its queue holds. */
  discardQueued(fd: number): { discarded: number; socketDrops: number | null } | null;
  maxBatchSize: number;
}

// The one use of import.meta, which CommonJS has not: scripts/build-cjs.mjs rewrites it for dist/cjs.
// @ts-ignore TS1343 in the CommonJS build only
const here: string = import.meta.url;
// dist/backends/native/addon.js: the package root is three folders up.
const root = join(dirname(fileURLToPath(here)), '..', '..', '..');

/** The prebuilds this copy of the package carries, as `linux-x64 (glibc, musl)`; for the load error. */
function shippedPrebuilds(): string {
  const dir = join(root, 'prebuilds');
  const found = existsSync(dir)
    ? readdirSync(dir).sort().map((platform) => {
        const libcs = readdirSync(join(dir, platform)).map((f) => /\.(glibc|musl)\.node$/.exec(f)?.[1] ?? f).sort();
        return `${platform} (${libcs.join(', ')})`;
      })
    : [];
  return found.length > 0 ? `this copy ships prebuilds for ${found.join('; ')}` : 'this copy ships no prebuilds';
}

/** What scripts/install.mjs left when compiling at install failed. */
function installFailure(): string {
  const log = join(root, 'build', 'install-error.log');
  if (!existsSync(log)) return '';
  const first = readFileSync(log, 'utf8').split('\n')[0];
  return `Compiling at install failed: ${first} (the compiler's output is in ${log}). `;
}

// What the loader tried, for the one error that explains a failure.
function loadError(cause: unknown): Error {
  const prebuilds = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const linux = process.platform === 'linux';
  const error = new Error(
    `udp-ring: could not load its native addon for ${process.platform}-${process.arch} ` +
      `(Node ${process.version}). Tried: a prebuild in ${prebuilds} (${shippedPrebuilds()}), ` +
      `then a local build in ${join(root, 'build', 'Release')}. ` +
      installFailure() +
      (linux
        ? 'To fix: install python3, make and g++ and run `npm rebuild udp-ring` (an install with --ignore-scripts, ' +
          "or npm 11 before `npm install-scripts approve udp-ring`, compiles nothing); or choose the slower " +
          "pure-TypeScript backend explicitly (options.backend 'dgram', or 'auto' for native when it loads; " +
          'UDP_RING_BACKEND=dgram|auto), which receives on the event loop. '
        : "The native receiver is Linux-only; elsewhere the pure-TypeScript backend (options.backend 'dgram') runs. ") +
      `Cause: ${(cause as Error)?.message ?? String(cause)}`,
    { cause },
  );
  (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_NATIVE';
  return error;
}

export { runtime } from '../../core/runtime.js';

// node-gyp-build takes musl for Alpine only (/etc/alpine-release) unless LIBC says so: any runtime
// whose own C library is musl (another musl distribution, Bun's musl build) gets the musl prebuild.
function detectMusl(): void {
  if (process.platform !== 'linux' || process.env.LIBC || existsSync('/etc/alpine-release')) return;
  try {
    // Alpine maps /lib/ld-musl-<arch>.so.1; Debian's musl package /usr/lib/<arch>-linux-musl/libc.so.
    if (/\/ld-musl-[^/\s]*\.so|\/libc\.musl-|-linux-musl\/libc\.so/.test(readFileSync('/proc/self/maps', 'utf8'))) process.env.LIBC = 'musl';
  } catch {
    // No /proc: leave node-gyp-build to its own test.
  }
}

function load(): { binding: NativeBinding | null; file: string | null; error: Error | null } {
  const require = createRequire(here);
  detectMusl();
  let file: string | null = null;
  try {
    const nodeGypBuild = require('node-gyp-build') as ((dir: string) => unknown) & { resolve?(dir: string): string };
    if (typeof nodeGypBuild.resolve !== 'function') return { binding: nodeGypBuild(root) as NativeBinding, file, error: null };
    file = nodeGypBuild.resolve(root);
    return { binding: require(file) as NativeBinding, file, error: null };
  } catch (cause) {
    return { binding: null, file, error: loadError(cause) };
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
      magic: 0, version: 0, controlBytes: 0, descriptorSize: 0, timestampSize: 8, packetInfoSize: 24, packetInfoTos: 1,
      payloadAlign: 1, payloadReserve: 0,
      bytesPerDescriptor: 0, maxRingBytes: 2 ** 31, flagTruncated: 0, maxMessageSize: 65535,
      control: zeros(['magic', 'version', 'descriptorSize', 'descriptorCount', 'descriptorsOffset', 'payloadOffset',
        'payloadCapacity', 'maxMessageSize', 'timestampsOffset', 'packetInfoOffset', 'descriptorTail', 'payloadTailOffset',
        'descriptorHead', 'consumerWaiting', 'producerWaiting', 'packets', 'bytes', 'batches', 'kernelDrops', 'ringDrops',
        'truncated', 'ringHighWater', 'wakeups', 'producerStalls', 'receiveCalls', 'directBatches', 'coalesced',
        'discarded', 'threadWakeups', 'windows'] as const),
      descriptor: zeros(['offset', 'size', 'port', 'family', 'flags', 'wireSize', 'scopeId', 'address'] as const),
      packetInfo: zeros(['destination', 'interfaceIndex', 'destinationFamily', 'tos', 'flags'] as const),
    },
    computeLayout: fail,
    minimumPayloadCapacity: fail,
    realtimeMicros: fail,
    monotonicMicros: fail,
    interfaceName: fail,
    socketMemInfo: () => null,
    discardQueued: () => null,
    // recvmmsg's batch cap in the addon; options are validated the same with or without it.
    maxBatchSize: 1024,
  };
}

const loaded = load();

/** Why the addon did not load, or null when it did. */
export const nativeLoadError: Error | null = loaded.error;

/** The addon's state for `doctor` and the error texts: the file loaded (or tried), or why not. */
export const nativeAddon: { loaded: boolean; file: string | null; error: string | null } = {
  loaded: loaded.binding !== null,
  file: loaded.file,
  error: loaded.error?.message ?? null,
};

export const native: NativeBinding = loaded.binding ?? unavailable(loaded.error!);
