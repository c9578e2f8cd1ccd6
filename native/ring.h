// The ring's memory layout, defined once. TypeScript reads every size and
// offset from the `layout` object the addon exports (see addon.cc), never
// from constants of its own.
//
// One ArrayBuffer, allocated by JavaScript:
//   [ Control | Descriptor x descriptorCount | (Timestamp x descriptorCount)
//     | (PacketInfo x descriptorCount) | payload bytes ]
// The timestamps region is there only when the receiver asked for kernel
// receive timestamps, the packet-info region only when it asked for the
// destination address (pktinfo) or the TOS byte (tos); slot i's entry in
// either belongs to descriptor slot i.
// Descriptors form a ring indexed by a 32-bit datagram position that wraps
// (the descriptor count is a power of two below 2^31, so position & (count-1)
// is the slot and tail - head, in 32-bit arithmetic, the number outstanding).
// Payloads form a byte ring; only the producer keeps a byte position, and it
// derives the consumer's payload head from the descriptor head (the first
// unreleased descriptor's offset), so JavaScript writes one u32 per batch.
// One producer at a time, JavaScript the only consumer: the receive thread, or
// the event loop's thread while JavaScript waits for data (see
// receive_loop.cc, direct_receive.cc), each holding the producer lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace udpring {

constexpr uint32_t kMagic = 0x52504455;  // "UDPR" little-endian
constexpr uint32_t kLayoutVersion = 4;
// Two cache lines: keeps adjacent-line prefetch from pairing the producer's
// and the consumer's positions.
constexpr size_t kLine = 128;
constexpr uint32_t kPayloadAlign = 8;
// The producer never fills the payload ring completely, so "empty" and "full"
// differ when it derives the payload head from descriptor offsets.
constexpr uint32_t kPayloadReserve = kPayloadAlign;
// One descriptor per this many ring bytes (rounded down to a power of two):
// 256 keeps room for ~128k datagrams of 200 bytes in a 32 MiB ring.
constexpr uint32_t kBytesPerDescriptor = 256;
constexpr uint32_t kMinDescriptors = 64;

constexpr uint8_t kFlagTruncated = 1;

// A UDP payload is at most 65,527 bytes (65,535 less the UDP header), so both
// sizes fit 16 bits and maxMessageSize is capped at kMaxMessageSize.
constexpr uint32_t kMaxMessageSize = 65535;

struct Descriptor {
  uint32_t offset;      // payload's byte offset from the start of the ArrayBuffer
  uint16_t size;        // bytes stored (never more than maxMessageSize)
  uint16_t wireSize;    // the datagram's length as sent; > size when truncated
  uint16_t port;        // source port, host byte order
  uint8_t family;       // 4 or 6
  uint8_t flags;        // kFlagTruncated
  uint32_t scopeId;     // IPv6 source's scope (interface index); 0 for IPv4 and global addresses
  uint8_t address[16];  // source address, network order (IPv4 in the first 4)
};
static_assert(sizeof(Descriptor) == 32, "descriptor must stay 32 bytes");

// When the kernel received a datagram (SO_TIMESTAMPNS: CLOCK_REALTIME).
struct Timestamp {
  uint32_t seconds;      // since the Unix epoch (u32: until 2106)
  uint32_t nanoseconds;  // 0 to 999,999,999
};
static_assert(sizeof(Timestamp) == 8, "timestamp must stay 8 bytes");

// Where a datagram was sent to (IP_PKTINFO / IPV6_RECVPKTINFO) and its IP
// TOS / traffic class byte (IP_RECVTOS / IPV6_RECVTCLASS), as far as asked for.
struct PacketInfo {
  uint8_t destination[16];    // local address it was sent to, network order (IPv4 in the first 4)
  uint32_t interfaceIndex;    // interface it arrived on; 0 when unknown
  uint8_t destinationFamily;  // 4 or 6; 0 when the kernel gave none (pktinfo off)
  uint8_t tos;                // TOS / traffic class; ECN is its low 2 bits
  uint8_t flags;              // kPacketInfoTos: tos is known
  uint8_t reserved;
};
static_assert(sizeof(PacketInfo) == 24, "packet info must stay 24 bytes");
constexpr uint8_t kPacketInfoTos = 1;

struct Control {
  // Written once by native when the ring is attached.
  alignas(kLine) uint32_t magic;
  uint32_t version;
  uint32_t descriptorSize;
  uint32_t descriptorCount;
  uint32_t descriptorsOffset;
  uint32_t payloadOffset;
  uint32_t payloadCapacity;
  uint32_t maxMessageSize;
  uint32_t timestampsOffset;  // 0 when the ring carries no timestamps
  uint32_t packetInfoOffset;  // 0 when the ring carries no packet info
  // Producer line: published with one store per batch.
  alignas(kLine) uint32_t descriptorTail;  // datagrams published so far, mod 2^32
  uint32_t payloadTailOffset;              // where the next payload goes, from the payload area's start (stats only)
  // Consumer line: written by JavaScript once per batch.
  alignas(kLine) uint32_t descriptorHead;  // datagrams released so far, mod 2^32
  // Set by JavaScript when it waits for data; the producer clears it and wakes.
  alignas(kLine) uint32_t consumerWaiting;
  // Set by the producer when it waits for space ('block'); JavaScript then
  // calls notifySpace() after releasing a batch.
  alignas(kLine) uint32_t producerWaiting;
  // Counters, written only by the receive thread (relaxed), read by JS.
  alignas(kLine) uint64_t packets;      // datagrams placed in the ring
  uint64_t bytes;                       // payload bytes placed in the ring
  uint64_t batches;                     // recvmmsg calls that returned data
  uint64_t kernelDrops;                 // SO_RXQ_OVFL / SK_MEMINFO_DROPS, 64-bit
  uint64_t ringDrops;                   // datagrams dropped because the ring was full
  uint64_t truncated;                   // datagrams longer than maxMessageSize
  uint64_t ringHighWater;               // most bytes in use, as the producer saw it
  uint64_t wakeups;                     // times the thread woke the event loop
  uint64_t producerStalls;              // times the thread waited for space ('block')
  uint64_t receiveCalls;                // recvmmsg calls, including empty ones
  uint64_t directBatches;               // batches the event loop received itself while JS waited
  uint64_t coalesced;                   // datagrams that arrived as segments of a GRO buffer of two or more
  // Written once, by close: datagrams the socket had taken but the ring never
  // got (landing zone, kernel queue, arrivals while closing).
  uint64_t discarded;
  // Times the receive thread woke from a wait (poll on the socket, the
  // eventfd, or a watch tick while the event loop receives).
  uint64_t threadWakeups;
  // Coalescing windows waited (coalesceMs), by the thread and the event loop
  // alike: each adds with an atomic add.
  uint64_t windows;
};

static_assert(offsetof(Control, descriptorTail) % kLine == 0, "layout");
static_assert(offsetof(Control, descriptorHead) % kLine == 0, "layout");
static_assert(sizeof(Control) % kLine == 0, "control block fills whole lines");

struct Layout {
  uint32_t descriptorCount;
  uint32_t descriptorsOffset;
  uint32_t timestampsOffset;  // 0: no timestamps region
  uint32_t packetInfoOffset;  // 0: no packet-info region
  uint32_t payloadOffset;
  uint32_t payloadCapacity;
};

constexpr uint64_t kMaxRingBytes = uint64_t{1} << 31;


inline uint64_t AlignPayload(uint64_t n) {
  return (n + kPayloadAlign - 1) & ~uint64_t{kPayloadAlign - 1};
}

// Payload bytes a ring needs so that a whole batch of the largest datagrams
// always fits into an empty ring: a datagram that does not fit before the wrap
// costs the padding to the end (less than one slot) plus its own slot, so one
// slot more than the batch. Below this, 'block' could stall for good and
// 'drop' drop forever with the ring empty.
inline uint64_t MinimumPayloadCapacity(uint32_t batchSize, uint32_t maxMessageSize) {
  return (uint64_t{batchSize} + 1) * AlignPayload(maxMessageSize) + kPayloadReserve;
}

// Splits a ring of `ringBytes` into its regions. Returns false when the ring
// is too small to hold the control block and the minimum descriptors.
inline bool ComputeLayout(uint64_t ringBytes, bool timestamps, bool packetInfo, Layout* out) {
  if (ringBytes > kMaxRingBytes) return false;
  uint64_t count = kMinDescriptors;
  while (count * 2 <= ringBytes / kBytesPerDescriptor) count *= 2;
  uint64_t descriptorsOffset = sizeof(Control);
  uint64_t timestampsOffset = descriptorsOffset + count * sizeof(Descriptor);
  uint64_t packetInfoOffset = timestampsOffset + (timestamps ? count * sizeof(Timestamp) : 0);
  uint64_t payloadOffset = packetInfoOffset + (packetInfo ? count * sizeof(PacketInfo) : 0);
  if (ringBytes <= payloadOffset + kPayloadReserve) return false;
  uint64_t capacity = (ringBytes - payloadOffset) & ~uint64_t{kPayloadAlign - 1};
  out->descriptorCount = static_cast<uint32_t>(count);
  out->descriptorsOffset = static_cast<uint32_t>(descriptorsOffset);
  out->timestampsOffset = timestamps ? static_cast<uint32_t>(timestampsOffset) : 0;
  out->packetInfoOffset = packetInfo ? static_cast<uint32_t>(packetInfoOffset) : 0;
  out->payloadOffset = static_cast<uint32_t>(payloadOffset);
  out->payloadCapacity = static_cast<uint32_t>(capacity);
  return true;
}

// Atomic access to fields of the shared control block.
template <typename T>
inline T LoadAcquire(const T* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
template <typename T>
inline T LoadSeqCst(const T* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
template <typename T>
inline T LoadRelaxed(const T* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
template <typename T>
inline void StoreRelaxed(T* p, T v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
template <typename T>
inline void AddRelaxed(T* p, T v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
template <typename T>
inline void StoreSeqCst(T* p, T v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
template <typename T>
inline T ExchangeSeqCst(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }

}  // namespace udpring
