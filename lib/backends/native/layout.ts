// The ring layout as the addon defines it, turned into typed-array indices: the control block's
// offsets all come from native.layout; the datagram records (descriptors, timestamps, packet
// info) are the core's format (core/ring-format.ts), which the addon must match (checked here).
import { descriptor, flagTruncated, packetInfo, timestampSize } from '../../core/ring-format.js';
import { native, nativeLoadError, type NativeLayout } from './addon.js';

const { layout } = native;

function index(byteOffset: number, width: number, what: string): number {
  if (byteOffset % width !== 0) {
    throw new Error(`udp-ring: native layout puts ${what} at byte ${byteOffset}, not aligned to ${width}`);
  }
  return byteOffset / width;
}

const c = layout.control;
/** Indices into a BigUint64Array over the control block. */
export const control64 = {
  packets: index(c.packets, 8, 'packets'),
  bytes: index(c.bytes, 8, 'bytes'),
  batches: index(c.batches, 8, 'batches'),
  kernelDrops: index(c.kernelDrops, 8, 'kernelDrops'),
  ringDrops: index(c.ringDrops, 8, 'ringDrops'),
  truncated: index(c.truncated, 8, 'truncated'),
  ringHighWater: index(c.ringHighWater, 8, 'ringHighWater'),
  wakeups: index(c.wakeups, 8, 'wakeups'),
  producerStalls: index(c.producerStalls, 8, 'producerStalls'),
  receiveCalls: index(c.receiveCalls, 8, 'receiveCalls'),
  directBatches: index(c.directBatches, 8, 'directBatches'),
  coalesced: index(c.coalesced, 8, 'coalesced'),
  discarded: index(c.discarded, 8, 'discarded'),
  threadWakeups: index(c.threadWakeups, 8, 'threadWakeups'),
  windows: index(c.windows, 8, 'windows'),
} as const;

/** Indices into an Int32Array / Uint32Array over the control block. */
export const control32 = {
  magic: index(c.magic, 4, 'magic'),
  version: index(c.version, 4, 'version'),
  descriptorSize: index(c.descriptorSize, 4, 'descriptorSize'),
  descriptorCount: index(c.descriptorCount, 4, 'descriptorCount'),
  descriptorsOffset: index(c.descriptorsOffset, 4, 'descriptorsOffset'),
  payloadOffset: index(c.payloadOffset, 4, 'payloadOffset'),
  payloadCapacity: index(c.payloadCapacity, 4, 'payloadCapacity'),
  maxMessageSize: index(c.maxMessageSize, 4, 'maxMessageSize'),
  timestampsOffset: index(c.timestampsOffset, 4, 'timestampsOffset'),
  packetInfoOffset: index(c.packetInfoOffset, 4, 'packetInfoOffset'),
  // Datagram positions: 32 bits that wrap; tail - head (>>> 0) is what is outstanding.
  descriptorTail: index(c.descriptorTail, 4, 'descriptorTail'),
  descriptorHead: index(c.descriptorHead, 4, 'descriptorHead'),
  payloadTailOffset: index(c.payloadTailOffset, 4, 'payloadTailOffset'),
  consumerWaiting: index(c.consumerWaiting, 4, 'consumerWaiting'),
  producerWaiting: index(c.producerWaiting, 4, 'producerWaiting'),
} as const;

/**
 * Where the addon's layout differs from the records the Batch reads, which are the core's
 * (core/ring-format.ts): one line per figure that differs; none when they agree.
 */
export function ringFormatMismatches(native: NativeLayout): string[] {
  const d = native.descriptor;
  const p = native.packetInfo;
  const pairs: Array<[string, number, number]> = [
    ['descriptorSize', native.descriptorSize, descriptor.size],
    ['descriptor.offset', d.offset, descriptor.offset], ['descriptor.size', d.size, descriptor.bytes],
    ['descriptor.wireSize', d.wireSize, descriptor.wireSize], ['descriptor.port', d.port, descriptor.port],
    ['descriptor.family', d.family, descriptor.family], ['descriptor.flags', d.flags, descriptor.flags],
    ['descriptor.scopeId', d.scopeId, descriptor.scopeId], ['descriptor.address', d.address, descriptor.address],
    ['flagTruncated', native.flagTruncated, flagTruncated], ['timestampSize', native.timestampSize, timestampSize],
    ['packetInfoSize', native.packetInfoSize, packetInfo.size], ['packetInfo.destination', p.destination, packetInfo.destination],
    ['packetInfo.interfaceIndex', p.interfaceIndex, packetInfo.interfaceIndex],
    ['packetInfo.destinationFamily', p.destinationFamily, packetInfo.destinationFamily], ['packetInfo.tos', p.tos, packetInfo.tos],
    ['packetInfo.flags', p.flags, packetInfo.flags], ['packetInfoTos', native.packetInfoTos, packetInfo.flagTos],
  ];
  return pairs.filter(([, addon, core]) => addon !== core).map(([what, addon, core]) => `${what}: addon ${addon}, core ${core}`);
}

// Checked once, as the addon loads: a Batch over a ring written to another format would read
// wrong datagrams, so the package does not load with such an addon.
const mismatches = nativeLoadError ? [] : ringFormatMismatches(layout);
if (mismatches.length > 0) {
  throw new Error(`udp-ring: the addon's ring records differ from the core's (${mismatches.join('; ')}); rebuild the addon (npm run compile)`);
}

export { descriptor, flagTruncated, packetInfo, timestampSize };

if (layout.packetInfoSize % 4 !== 0) throw new Error('udp-ring: native packet-info size is not a multiple of 4');
if (layout.descriptorSize % 8 !== 0 || layout.controlBytes % 8 !== 0) {
  throw new Error('udp-ring: native layout sizes are not multiples of 8');
}

export const payloadAlign = layout.payloadAlign;
export const layoutVersion = layout.version;
export const layoutMagic = layout.magic;
export { layout as nativeLayout };

/**
 * Ring bytes needed so that one batch of the largest datagrams always fits an
 * empty ring, wrap included (the payload figure is native's: see ring.h).
 */
export function minimumRingBytes(batchSize: number, maxMessageSize: number, timestamps = false, packetInfo = false): number {
  const payload = native.minimumPayloadCapacity(batchSize, maxMessageSize);
  // Grow until the layout's own split leaves enough payload and descriptors.
  let bytes = layout.controlBytes + payload + 64 * layout.descriptorSize;
  for (;;) {
    const split = native.computeLayout(bytes, timestamps, packetInfo);
    if (split && split.payloadCapacity >= payload && split.descriptorCount >= batchSize) return bytes;
    bytes = Math.ceil(bytes * 1.05 / 4096) * 4096;
  }
}
