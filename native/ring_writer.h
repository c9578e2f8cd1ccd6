// The producer side of the ring: placement, the wrap, publishing and the
// counters JavaScript reads. Free of Node-API and of sockets, so the
// ThreadSanitizer stress test (native/test/ring_stress.cc) drives this very
// code. Not thread-safe by itself: one producer at a time, which
// ReceiveLoop guarantees with its producer lock.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>

#include "ring.h"

namespace udpring {

// Everything the producer counts; stored into the Control block on publish.
struct ProducerCounters {
  uint64_t packets = 0, bytes = 0, batches = 0, kernelDrops = 0, ringDrops = 0, truncated = 0;
  uint64_t highWater = 0, wakeups = 0, producerStalls = 0, receiveCalls = 0, directBatches = 0, coalesced = 0;
  // Native only (not in the Control block): datagrams placed where they were received, without a copy;
  // times the payload tail went back to the start of the payload region: a datagram that did not fit
  // before the end (wraps), an empty ring started again (restarts, RestartIfEmpty).
  uint64_t inPlace = 0, wraps = 0, restarts = 0;
};

class RingWriter {
 public:
  // Lays the control block out over `length` bytes at `base` (8-byte aligned).
  // Returns nullptr, or why the ring cannot serve batches of `batchSize`
  // datagrams of up to `maxMessageSize` bytes.
  // With `timestamps`, the ring has a timestamp slot per descriptor; with
  // `packetInfo`, a PacketInfo slot.
  const char* Attach(uint8_t* base, uint64_t length, uint32_t maxMessageSize, uint32_t batchSize, bool timestamps,
                     bool packetInfo = false);

  // Places one datagram of `wireSize` bytes, of which `size` are at `data`
  // (fewer when the receive cut it; the ring keeps at most maxMessageSize);
  // `received` is its kernel timestamp and `info` its packet info, where the
  // ring keeps them. False when the ring has no room for it now.
  // `data` may lie in space Reserve() gave, at or after where the datagram
  // goes: already in place it is not copied, otherwise it is moved down.
  bool Place(const uint8_t* data, uint32_t size, uint32_t wireSize, bool truncated, const sockaddr* from,
             const Timestamp& received, const PacketInfo* info);
  bool Place(const uint8_t* data, uint32_t wireSize, bool truncated, const sockaddr* from,
             const Timestamp& received = Timestamp{}) {
    return Place(data, wireSize, wireSize, truncated, from, received, nullptr);
  }

  // Ring space to receive straight into: up to `want` contiguous bytes at the
  // payload tail, before the wrap, that the consumer has released. Returns
  // where they start; *granted says how many (0: none free before the wrap).
  // Nothing is claimed: the space stays unpublished until Place() puts
  // datagrams there, and the next Place() or Reserve() may hand it out again.
  uint8_t* Reserve(uint64_t want, uint64_t* granted);

  // When the consumer has released everything placed, moves the payload tail
  // back to the start of the payload region (the bytes up to the end count as
  // wrap padding). A consumer that keeps up then has the producer write into
  // the same few hundred KiB again, still in cache, rather than sweep the
  // whole ring. Returns true when the tail moved. Call only between batches:
  // never while space Reserve() gave is still to be placed into.
  bool RestartIfEmpty();

  // Publishes what was placed with one store, and the counters. Returns true
  // when the consumer was waiting for data (the caller wakes it).
  bool Publish();

  // Before anything is placed: both positions start at `position`, so a test
  // crosses the 32-bit wrap within a few datagrams (the consumer starts from
  // the head it finds in the control block).
  void StartAt(uint32_t position);

  // Stores the counters alone (no datagrams to publish).
  void StoreCounters();

  // Announces that the producer waits for space and checks once more; true
  // when the consumer released since the last Place() found the ring full (no
  // need to wait).
  bool AnnounceWaitForSpace();
  // True when the consumer released since the last Place() found the ring
  // full. Not "since the writer last looked": Publish() looks too, and a
  // release between the failed Place() and Publish() must still count, or
  // the producer waits for a consumer that has nothing left to release.
  bool ConsumerMoved() const { return LoadSeqCst(&control_->descriptorHead) != fullAtHead_; }
  // Ends the wait: clears the announcement and re-reads the consumer's head.
  void EndWaitForSpace();

  // Touches every page of the descriptors and payload, so the first pass round
  // the ring takes no page faults. Must run before anything is published (the
  // fallback for kernels without MADV_POPULATE_WRITE writes a zero per page).
  // Stops early when `stop` becomes true.
  void Prefault(const std::atomic<bool>& stop);

  ProducerCounters counters;
  Control* control() const { return control_; }
  const Layout& layout() const { return layout_; }

 private:
  bool RefreshHead();
  uint64_t PayloadHeadFor(uint32_t descriptorHead) const;

  uint8_t* base_ = nullptr;
  Control* control_ = nullptr;
  Descriptor* descriptors_ = nullptr;
  Timestamp* timestamps_ = nullptr;  // null: the ring keeps none
  PacketInfo* packetInfo_ = nullptr;  // null: the ring keeps none
  uint8_t* payload_ = nullptr;
  Layout layout_{};
  uint32_t maxMessageSize_ = 0;
  uint32_t mask_ = 0;

  uint32_t descriptorTail_ = 0;       // wraps with the one JavaScript reads
  uint64_t payloadTail_ = 0;          // bytes ever placed, padding included
  uint64_t payloadTailOffset_ = 0;    // payloadTail_ % capacity, kept so placing needs no division
  uint32_t cachedDescriptorHead_ = 0;
  uint64_t cachedPayloadHead_ = 0;
  uint32_t fullAtHead_ = 0;  // the consumer's head when Place() last found no room
};

}  // namespace udpring
