// The ring layout as the addon defines it, turned into typed-array indices.
// Nothing here restates a size or offset: all come from native.layout.
import { native } from './addon.js';

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

const d = layout.descriptor;
/** Byte offsets of a descriptor's fields, checked for the widths they are read at. */
export const descriptor = {
  size: layout.descriptorSize,
  offset: (index(d.offset, 4, 'descriptor.offset'), d.offset),
  bytes: (index(d.size, 2, 'descriptor.size'), d.size),
  wireSize: (index(d.wireSize, 2, 'descriptor.wireSize'), d.wireSize),
  scopeId: (index(d.scopeId, 4, 'descriptor.scopeId'), d.scopeId),
  port: (index(d.port, 2, 'descriptor.port'), d.port),
  family: d.family,
  flags: d.flags,
  address: d.address,
} as const;

const p = layout.packetInfo;
/** Byte offsets of a PacketInfo entry's fields (the optional region beside the descriptors: pktinfo, tos). */
export const packetInfo = {
  size: layout.packetInfoSize,
  destination: p.destination,
  interfaceIndex: (index(p.interfaceIndex, 4, 'packetInfo.interfaceIndex'), p.interfaceIndex),
  destinationFamily: p.destinationFamily,
  tos: p.tos,
  flags: p.flags,
  flagTos: layout.packetInfoTos,
} as const;

if (layout.packetInfoSize % 4 !== 0) throw new Error('udp-ring: native packet-info size is not a multiple of 4');
if (layout.descriptorSize % 8 !== 0 || layout.controlBytes % 8 !== 0) {
  throw new Error('udp-ring: native layout sizes are not multiples of 8');
}

export const flagTruncated = layout.flagTruncated;
/** Bytes per timestamp slot: u32 seconds, then u32 nanoseconds. */
export const timestampSize = layout.timestampSize;
export const payloadAlign = layout.payloadAlign;
export const layoutVersion = layout.version;
export const layoutMagic = layout.magic;
export { layout as nativeLayout };
