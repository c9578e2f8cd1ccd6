#include "ring_writer.h"

#include <netinet/in.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace udpring {

const char* RingWriter::Attach(uint8_t* base, uint64_t length, uint32_t maxMessageSize, uint32_t batchSize,
                               bool timestamps, bool packetInfo) {
  if (!ComputeLayout(length, timestamps, packetInfo, &layout_)) return "ring is too small or too large";
  if (base == nullptr || reinterpret_cast<uintptr_t>(base) % 8 != 0) return "ring memory is missing or not 8-byte aligned";
  if (maxMessageSize == 0 || maxMessageSize > kMaxMessageSize) return "maxMessageSize must be 1 to 65535";
  if (batchSize == 0 || layout_.descriptorCount < batchSize ||
      layout_.payloadCapacity < MinimumPayloadCapacity(batchSize, maxMessageSize)) {
    return "ring cannot hold one batch of maxMessageSize datagrams at the wrap";
  }
  base_ = base;
  maxMessageSize_ = maxMessageSize;
  mask_ = layout_.descriptorCount - 1;
  control_ = reinterpret_cast<Control*>(base_);
  memset(control_, 0, sizeof(Control));
  descriptors_ = reinterpret_cast<Descriptor*>(base_ + layout_.descriptorsOffset);
  timestamps_ = timestamps ? reinterpret_cast<Timestamp*>(base_ + layout_.timestampsOffset) : nullptr;
  packetInfo_ = packetInfo ? reinterpret_cast<PacketInfo*>(base_ + layout_.packetInfoOffset) : nullptr;
  payload_ = base_ + layout_.payloadOffset;
  control_->magic = kMagic;
  control_->version = kLayoutVersion;
  control_->descriptorSize = sizeof(Descriptor);
  control_->descriptorCount = layout_.descriptorCount;
  control_->descriptorsOffset = layout_.descriptorsOffset;
  control_->payloadOffset = layout_.payloadOffset;
  control_->payloadCapacity = layout_.payloadCapacity;
  control_->maxMessageSize = maxMessageSize_;
  control_->timestampsOffset = layout_.timestampsOffset;
  control_->packetInfoOffset = layout_.packetInfoOffset;
  return nullptr;
}

// The payload position the consumer has released up to, given its descriptor
// head: the first unreleased payload starts at that descriptor's offset; any
// wrap padding before it was released with the descriptors before it.
uint64_t RingWriter::PayloadHeadFor(uint32_t descriptorHead) const {
  if (descriptorHead == descriptorTail_) return payloadTail_;
  const uint64_t capacity = layout_.payloadCapacity;
  const uint64_t headOffset = descriptors_[descriptorHead & mask_].offset - layout_.payloadOffset;
  // Never ambiguous: the producer keeps kPayloadReserve bytes free, so 0 means
  // "nothing outstanding" (only zero-length datagrams), never "full".
  const uint64_t used =
      payloadTailOffset_ >= headOffset ? payloadTailOffset_ - headOffset : payloadTailOffset_ + capacity - headOffset;
  return payloadTail_ - used;
}

bool RingWriter::RefreshHead() {
  const uint32_t head = LoadAcquire(&control_->descriptorHead);
  const bool moved = head != cachedDescriptorHead_;
  cachedDescriptorHead_ = head;
  cachedPayloadHead_ = PayloadHeadFor(head);
  return moved;
}

bool RingWriter::Place(const uint8_t* data, uint32_t landed, uint32_t wireSize, bool truncated, const sockaddr* from,
                       const Timestamp& received, const PacketInfo* info) {
  const uint64_t capacity = layout_.payloadCapacity;
  const uint32_t size = landed < maxMessageSize_ ? landed : maxMessageSize_;
  const uint64_t need = AlignPayload(size);
  uint64_t at = payloadTailOffset_;
  const uint64_t padding = at + need > capacity ? capacity - at : 0;
  const uint64_t end = payloadTail_ + padding + need;
  auto full = [&] {
    return static_cast<uint32_t>(descriptorTail_ - cachedDescriptorHead_) >= layout_.descriptorCount ||
           end - cachedPayloadHead_ > capacity - kPayloadReserve;
  };
  if (full()) {
    RefreshHead();
    if (full()) {
      fullAtHead_ = cachedDescriptorHead_;
      return false;
    }
  }
  if (padding != 0) {
    at = 0;
    counters.wraps++;
  }
  // Received straight into the ring: in place, or moved down past a shorter
  // datagram before it (memmove: the two may overlap).
  if (payload_ + at != data) {
    memmove(payload_ + at, data, size);
  } else {
    counters.inPlace++;
  }

  const uint32_t slot = descriptorTail_ & mask_;
  if (timestamps_ != nullptr) timestamps_[slot] = received;
  if (packetInfo_ != nullptr) packetInfo_[slot] = info != nullptr ? *info : PacketInfo{};
  Descriptor& d = descriptors_[slot];
  d.offset = static_cast<uint32_t>(layout_.payloadOffset + at);
  d.size = static_cast<uint16_t>(size);
  d.wireSize = static_cast<uint16_t>(wireSize > kMaxMessageSize ? kMaxMessageSize : wireSize);
  d.flags = truncated ? kFlagTruncated : 0;
  // Counted here, once placed: `truncated` counts flagged datagrams delivered, not ring drops.
  if (truncated) counters.truncated++;
  if (from != nullptr && from->sa_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(from);
    d.family = 6;
    d.port = ntohs(sin6->sin6_port);
    d.scopeId = sin6->sin6_scope_id;
    memcpy(d.address, &sin6->sin6_addr, 16);
  } else {
    d.family = 4;
    d.port = 0;
    d.scopeId = 0;
    memset(d.address, 0, 16);
    if (from != nullptr) {
      auto* sin = reinterpret_cast<const sockaddr_in*>(from);
      d.port = ntohs(sin->sin_port);
      memcpy(d.address, &sin->sin_addr, 4);
    }
  }
  payloadTail_ = end;
  payloadTailOffset_ = at + need == capacity ? 0 : at + need;
  descriptorTail_++;
  counters.packets++;
  counters.bytes += size;
  return true;
}

uint8_t* RingWriter::Reserve(uint64_t want, uint64_t* granted) {
  const uint64_t capacity = layout_.payloadCapacity;
  const uint64_t contiguous = capacity - payloadTailOffset_;
  auto available = [&] {
    const uint64_t free = capacity - kPayloadReserve - (payloadTail_ - cachedPayloadHead_);
    return free < contiguous ? free : contiguous;
  };
  uint64_t bytes = available();
  if (bytes < want) {
    RefreshHead();
    bytes = available();
  }
  *granted = bytes < want ? bytes : want;
  return payload_ + payloadTailOffset_;
}

bool RingWriter::RestartIfEmpty() {
  if (payloadTailOffset_ == 0) return false;
  // Everything placed is released only when the consumer's head is our own
  // tail, which counts placed datagrams not yet published too. The acquire
  // pairs with the consumer's release: it has read every payload it released.
  const uint32_t head = LoadAcquire(&control_->descriptorHead);
  cachedDescriptorHead_ = head;
  if (head != descriptorTail_) {
    cachedPayloadHead_ = PayloadHeadFor(head);
    return false;
  }
  // As if a datagram had not fitted before the wrap: payloadTail_ stays the
  // bytes ever placed, padding included, and a multiple of the capacity here.
  payloadTail_ += layout_.payloadCapacity - payloadTailOffset_;
  payloadTailOffset_ = 0;
  cachedPayloadHead_ = payloadTail_;
  counters.restarts++;
  return true;
}

void RingWriter::StartAt(uint32_t position) {
  descriptorTail_ = position;
  cachedDescriptorHead_ = position;
  fullAtHead_ = position;
  StoreSeqCst(&control_->descriptorTail, position);
  StoreSeqCst(&control_->descriptorHead, position);
}

void RingWriter::StoreCounters() {
  const ProducerCounters& c = counters;
  StoreRelaxed(&control_->packets, c.packets);
  StoreRelaxed(&control_->bytes, c.bytes);
  StoreRelaxed(&control_->batches, c.batches);
  StoreRelaxed(&control_->kernelDrops, c.kernelDrops);
  StoreRelaxed(&control_->ringDrops, c.ringDrops);
  StoreRelaxed(&control_->truncated, c.truncated);
  StoreRelaxed(&control_->ringHighWater, c.highWater);
  StoreRelaxed(&control_->wakeups, c.wakeups);
  StoreRelaxed(&control_->producerStalls, c.producerStalls);
  StoreRelaxed(&control_->receiveCalls, c.receiveCalls);
  StoreRelaxed(&control_->directBatches, c.directBatches);
  StoreRelaxed(&control_->coalesced, c.coalesced);
}

bool RingWriter::Publish() {
  // Once per batch, see how far the consumer has got: the cached head may be
  // far behind when the ring has room, and would overstate the high-water mark.
  RefreshHead();
  const uint64_t used = (payloadTail_ - cachedPayloadHead_) +
                        uint64_t{static_cast<uint32_t>(descriptorTail_ - cachedDescriptorHead_)} * sizeof(Descriptor);
  if (used > counters.highWater) counters.highWater = used;
  StoreCounters();
  StoreRelaxed(&control_->payloadTailOffset, static_cast<uint32_t>(payloadTailOffset_));
#ifdef RING_STRESS_RELAXED_PUBLISH
  // Deliberately wrong, for the TSan script's self-check only: no release, so
  // TSan must report the consumer's reads of descriptors and payloads as races.
  StoreRelaxed(&control_->descriptorTail, descriptorTail_);
#else
  // The one publishing store. Sequentially consistent so that it is ordered
  // before the read of consumerWaiting below (a store-load pair).
  StoreSeqCst(&control_->descriptorTail, descriptorTail_);
#endif
  return ExchangeSeqCst(&control_->consumerWaiting, 0u) != 0;
}

bool RingWriter::AnnounceWaitForSpace() {
  counters.producerStalls++;
  StoreRelaxed(&control_->producerStalls, counters.producerStalls);
  StoreSeqCst(&control_->producerWaiting, 1u);
  // Re-check after announcing: the consumer may have released just before.
  return ConsumerMoved();
}

void RingWriter::EndWaitForSpace() {
  StoreSeqCst(&control_->producerWaiting, 0u);
  RefreshHead();
}

void RingWriter::Prefault(const std::atomic<bool>& stop) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t start = (reinterpret_cast<uintptr_t>(descriptors_) + page - 1) & ~(page - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(payload_) + layout_.payloadCapacity) & ~(page - 1);
  const uintptr_t chunk = uintptr_t{1} << 20;
  bool populate = true;
  for (uintptr_t at = start; at < end && !stop.load(std::memory_order_acquire); at += chunk) {
    uintptr_t length = end - at < chunk ? end - at : chunk;
    // MADV_POPULATE_WRITE needs Linux 5.14; older kernels get one write per page.
    if (populate && madvise(reinterpret_cast<void*>(at), length, MADV_POPULATE_WRITE) == 0) continue;
    populate = false;
    for (uintptr_t p = at; p < at + length; p += page) {
      // Nothing is published yet (see ReceiveLoop::ready_): these bytes are ours alone.
      *reinterpret_cast<volatile uint8_t*>(p) = 0;
    }
  }
}

}  // namespace udpring
