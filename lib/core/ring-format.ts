// The ring's datagram records as the Batch reads them: the core's contract with any backend that
// fills a ring. native/ring.h defines the same structs for the producer; the native backend checks
// at load that its addon agrees with every figure here (backends/native/layout.ts), and
// test/2-overflow-and-stats/layout.test.ts checks both against the bytes.

/** Byte offsets of a descriptor's fields (one per datagram, in ring slot order), and its size. */
export const descriptor = {
  size: 32,
  /** u32: the payload's byte offset from the start of the ring. */
  offset: 0,
  /** u16: bytes held (at most maxMessageSize). */
  bytes: 4,
  /** u16: the datagram's length on the wire; more than bytes when truncated. */
  wireSize: 6,
  /** u16: source port, host byte order. */
  port: 8,
  /** u8: 4 or 6. */
  family: 10,
  /** u8: flagTruncated. */
  flags: 11,
  /** u32: an IPv6 source's scope (interface index); 0 otherwise. */
  scopeId: 12,
  /** 16 bytes: the source address, network order (IPv4 in the first 4). */
  address: 16,
} as const;

/** A descriptor's flags: the datagram was longer than maxMessageSize and was cut. */
export const flagTruncated = 1;

/** Bytes per timestamp slot (slot i for descriptor slot i): u32 seconds, then u32 nanoseconds. */
export const timestampSize = 8;

/** Byte offsets of a PacketInfo entry's fields (slot i beside descriptor slot i: pktinfo, tos). */
export const packetInfo = {
  size: 24,
  /** 16 bytes: the local address the datagram was sent to, network order. */
  destination: 0,
  /** u32: the interface it arrived on. */
  interfaceIndex: 16,
  /** u8: 4 or 6; 0 when the kernel gave none. */
  destinationFamily: 20,
  /** u8: the TOS / traffic class byte. */
  tos: 21,
  /** u8: flagTos when tos is known. */
  flags: 22,
  flagTos: 1,
} as const;
