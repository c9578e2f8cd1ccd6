// The batch placement half of ReceiveLoop (receive_loop.h): how a recvmmsg
// batch is armed (landing slots or ring space), and how the datagrams it
// returns are absorbed: drop counts, control messages, placement into the ring
// through the RingWriter, publish. Runs under the producer lock, from the
// receive thread (receive_loop.cc) or the event loop's direct receive. The
// thread's loop itself (poll, wait, wake, fail) is in receive_loop.cc.
// Also here: the landing zone's allocation (Init, FreeLanding) and the count
// of what is left unread at close (CountDiscarded).
#include "receive_loop.h"

#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace udpring {

const char* ReceiveLoop::Init(uint8_t* ring, uint64_t ringLength, uint32_t maxMessageSize,
                              uint32_t batchSize, bool drop, const ReceiveFeatures& features, int* err,
                              const char** syscall) {
  *err = 0;
  *syscall = nullptr;
  if (const char* why = writer_.Attach(ring, ringLength, maxMessageSize, batchSize, features.timestamps,
                                       features.packetInfo)) {
    return why;
  }
  maxMessageSize_ = maxMessageSize;
  batchSize_ = batchSize;
  drop_ = drop;

  controlSpace_ = CMSG_SPACE(sizeof(uint32_t)) + (features.timestamps ? CMSG_SPACE(sizeof(struct timespec)) : 0) +
                  (features.gro ? CMSG_SPACE(sizeof(int)) : 0) +
                  (features.packetInfo ? CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) +
                                             2 * CMSG_SPACE(sizeof(int))
                                       : 0);
  // A coalesced buffer is up to 64 KiB whatever maxMessageSize is: a smaller
  // landing slot would cut it and lose the segments past the cut.
  landingSize_ = features.gro ? kMaxMessageSize : maxMessageSize_;
  // Internal and undocumented, for the benchmark's same-run before/after: every datagram lands in the
  // landing zone and is copied into the ring, and an empty ring is not started again at its beginning
  // (ArmMessages), as before large datagrams were received into ring space.
  const char* landingOnly = getenv("UDP_RING_INTERNAL_LANDING_ONLY");
  landingOnly_ = landingOnly != nullptr && strcmp(landingOnly, "1") == 0;
  // Landing slots one line apart more than a page multiple, so the same offset
  // in each slot does not map to the same cache sets.
  const size_t slot = AlignPayload(landingSize_) + 64;
  landingSlot_ = slot;
  landing_ = static_cast<uint8_t*>(malloc(slot * batchSize_));
  messages_ = static_cast<struct mmsghdr*>(calloc(batchSize_, sizeof(struct mmsghdr)));
  iovecs_ = static_cast<struct iovec*>(calloc(2 * size_t{batchSize_}, sizeof(struct iovec)));
  inRing_ = static_cast<uint32_t*>(calloc(batchSize_, sizeof(uint32_t)));
  names_ = static_cast<sockaddr_storage*>(calloc(batchSize_, sizeof(sockaddr_storage)));
  controls_ = static_cast<uint8_t*>(calloc(batchSize_, controlSpace_));
  received_ = static_cast<Timestamp*>(calloc(batchSize_, sizeof(Timestamp)));
  segmentSize_ = static_cast<uint32_t*>(calloc(batchSize_, sizeof(uint32_t)));
  if (features.packetInfo) packetInfo_ = static_cast<PacketInfo*>(calloc(batchSize_, sizeof(PacketInfo)));
  if (!landing_ || !messages_ || !iovecs_ || !inRing_ || !names_ || !controls_ || !received_ || !segmentSize_ ||
      (features.packetInfo && !packetInfo_)) {
    *err = ENOMEM;
    *syscall = "malloc";
    return "out of memory";
  }
  for (size_t i = 0; i < batchSize_; i++) {
    messages_[i].msg_hdr.msg_iov = &iovecs_[2 * i];
    messages_[i].msg_hdr.msg_name = &names_[i];
    messages_[i].msg_hdr.msg_control = controls_ + i * controlSpace_;
  }
  ResetMessages(batchSize_);
  armedInRing_ = batchSize_;  // forces the first ArmMessages to write every iovec
  ArmMessages(false);
  return nullptr;
}

// After the thread is joined (the producer state is ours): nothing leaves
// uncounted. What the socket took but the ring never got (the landing zone
// waiting for space, the kernel queue) is read and counted as discarded.
void ReceiveLoop::CountDiscarded() {
  if (fd_ < 0 || writer_.control() == nullptr || messages_ == nullptr) return;
  uint64_t discarded = 0;
  for (size_t k = 0; k < pendingCount_; k++) discarded += DatagramsIn(pendingFirst_ + k, k == 0 ? pendingOffset_ : 0);
  pendingCount_ = 0;
  pendingOffset_ = 0;
  // kernelDrops ends here. From now on the socket takes nothing (a filter that
  // accepts no datagram), so the queue is all there is, and what the filter
  // turns away shows in the socket's drop counter, read below.
  RefreshKernelDrops();
  struct sock_filter acceptNothing = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog filter = {1, &acceptNothing};
  setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof(filter));
  // Into the landing zone alone: these are only counted.
  ArmMessages(false);
  for (;;) {
    ResetMessages(batchSize_);
    int n = recvmmsg(fd_, messages_, batchSize_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // empty (or failing: nothing more can be read)
    // Without SO_MEMINFO, SO_RXQ_OVFL is the only word on earlier drops.
    ReadControlMessages(n);
    for (int k = 0; k < n; k++) discarded += DatagramsIn(k, 0);
  }
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof(meminfo);
  if (memInfoWorks_ && getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0 &&
      length > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    uint32_t turnedAway = meminfo[SK_MEMINFO_DROPS] - lastSocketDrops_;
    if (turnedAway < (1u << 31)) discarded += turnedAway;
  }
  StoreRelaxed(&writer_.control()->kernelDrops, writer_.counters.kernelDrops);
  StoreRelaxed(&writer_.control()->discarded, discarded);
}

void ReceiveLoop::FreeLanding() {
  free(landing_);
  free(messages_);
  free(iovecs_);
  free(inRing_);
  free(names_);
  free(controls_);
  free(received_);
  free(segmentSize_);
  free(packetInfo_);
  received_ = nullptr;
  segmentSize_ = nullptr;
  packetInfo_ = nullptr;
  landing_ = nullptr;
  messages_ = nullptr;
  iovecs_ = nullptr;
  inRing_ = nullptr;
  names_ = nullptr;
  controls_ = nullptr;
}

void ReceiveLoop::ResetMessages(size_t count) {
  for (size_t i = 0; i < count; i++) {
    messages_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    messages_[i].msg_hdr.msg_controllen = controlSpace_;
    messages_[i].msg_hdr.msg_flags = 0;
  }
}

// Before a receive, with nothing pending: points each message at its landing
// slot, or, intoRing with a stride chosen, the first messages' first stride_
// bytes at free ring space (as many as fit before the wrap), the rest of each
// at its landing slot past that. The space is only reserved: Place() claims
// what arrived, and PlaceFrom() keeps a later message's bytes from being
// written over before they are placed.
void ReceiveLoop::ArmMessages(bool intoRing) {
  // Between batches (nothing pending, nothing reserved): an empty ring starts
  // again at its beginning, whose bytes are still in cache. Not in the
  // benchmark's "before" (landingOnly_), which predates it.
  if (intoRing && !landingOnly_) writer_.RestartIfEmpty();
  const uint32_t stride = stride_;
  size_t inRing = 0;
  uint8_t* ring = nullptr;
  if (intoRing && stride != 0) {
    uint64_t granted;
    ring = writer_.Reserve(uint64_t{stride} * batchSize_, &granted);
    inRing = static_cast<size_t>(granted / stride);
  }
  // All in the landing zone, as armed last time: nothing to rewrite.
  if (inRing == 0 && armedInRing_ == 0) return;
  const uint32_t head = stride < landingSize_ ? stride : landingSize_;
  for (size_t i = 0; i < batchSize_; i++) {
    struct iovec* iov = &iovecs_[2 * i];
    uint8_t* slot = landing_ + i * landingSlot_;
    if (i < inRing) {
      iov[0].iov_base = ring + i * stride;
      iov[0].iov_len = head;
      iov[1].iov_base = slot + head;
      iov[1].iov_len = landingSize_ - head;
      messages_[i].msg_hdr.msg_iovlen = head < landingSize_ ? 2 : 1;
      inRing_[i] = head;
    } else {
      iov[0].iov_base = slot;
      iov[0].iov_len = landingSize_;
      messages_[i].msg_hdr.msg_iovlen = 1;
      inRing_[i] = 0;
    }
  }
  armedInRing_ = inRing;
}

// Messages [from, end) that landed in ring space move whole into their landing
// slots (the head beside the tail already there): placing the message before
// them may write over where they are.
void ReceiveLoop::Evacuate(size_t from, size_t end) {
  for (size_t j = from; j < end; j++) {
    if (inRing_[j] == 0) continue;
    struct iovec* iov = &iovecs_[2 * j];
    const uint32_t length = messages_[j].msg_len;
    const uint32_t landed = length < landingSize_ ? length : landingSize_;
    const uint32_t head = landed < inRing_[j] ? landed : inRing_[j];
    uint8_t* slot = landing_ + j * landingSlot_;
    memcpy(slot, iov[0].iov_base, head);
    iov[0].iov_base = slot;
    inRing_[j] = 0;
  }
}

// The next receive's stride: the largest datagram (or coalesced buffer) of
// this one, so that traffic of one size lands where it is placed. Small
// datagrams keep to the landing zone (kRingReceiveMinimum).
void ReceiveLoop::ChooseStride(int received) {
  uint32_t largest = 0;
  for (int i = 0; i < received; i++) {
    const uint32_t length = messages_[i].msg_len;
    if (length > largest) largest = length;
  }
  if (largest > landingSize_) largest = landingSize_;
  stride_ = largest < kRingReceiveMinimum || landingOnly_ ? 0 : static_cast<uint32_t>(AlignPayload(largest));
}

// Takes the n datagrams recvmmsg just landed: drop counts, placement, publish.
// direct: on the event loop's thread, which wakes JavaScript itself.
void ReceiveLoop::Absorb(int n, bool direct) {
  writer_.counters.batches++;
  ReadControlMessages(n);
  ChooseStride(n);
  size_t placed = PlaceFrom(0, static_cast<size_t>(n));
  if (placed < static_cast<size_t>(n) && !drop_) {
    pendingFirst_ = placed;
    pendingCount_ = n - placed;
  } else {
    // 'drop': PlaceFrom already skipped and counted what did not fit.
    ResetMessages(n);
  }
  Publish(direct);
  dropsUnchecked_ = true;
}

// Reads the control messages of the n datagrams just landed: the socket's drop
// count (SO_RXQ_OVFL) and, when asked for, each one's kernel timestamp, GRO
// segment size, destination address and TOS byte.
void ReceiveLoop::ReadControlMessages(int n) {
  for (int i = 0; i < n; i++) {
    const struct msghdr& header = messages_[i].msg_hdr;
    segmentSize_[i] = 0;
    PacketInfo* info = packetInfo_ != nullptr ? &packetInfo_[i] : nullptr;
    if (info != nullptr) *info = PacketInfo{};
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
         c = CMSG_NXTHDR(const_cast<struct msghdr*>(&header), c)) {
      if (c->cmsg_level == SOL_SOCKET) {
        if (c->cmsg_type == SO_RXQ_OVFL) {
          uint32_t drops;
          memcpy(&drops, CMSG_DATA(c), sizeof(drops));
          NoteKernelDrops(drops);
        } else if (c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec at;
          memcpy(&at, CMSG_DATA(c), sizeof(at));
          received_[i] = Timestamp{static_cast<uint32_t>(at.tv_sec), static_cast<uint32_t>(at.tv_nsec)};
        }
      } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
        int segment;
        memcpy(&segment, CMSG_DATA(c), sizeof(segment));
        segmentSize_[i] = segment > 0 ? static_cast<uint32_t>(segment) : 0;
      } else if (info == nullptr) {
        continue;
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pktinfo;
        memcpy(&pktinfo, CMSG_DATA(c), sizeof(pktinfo));
        memcpy(info->destination, &pktinfo.ipi_addr, 4);
        info->interfaceIndex = static_cast<uint32_t>(pktinfo.ipi_ifindex);
        info->destinationFamily = 4;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pktinfo;
        memcpy(&pktinfo, CMSG_DATA(c), sizeof(pktinfo));
        memcpy(info->destination, &pktinfo.ipi6_addr, 16);
        info->interfaceIndex = pktinfo.ipi6_ifindex;
        info->destinationFamily = 6;
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
        info->tos = *CMSG_DATA(c);  // one byte
        info->flags |= kPacketInfoTos;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
        int tclass;
        memcpy(&tclass, CMSG_DATA(c), sizeof(tclass));
        info->tos = static_cast<uint8_t>(tclass);
        info->flags |= kPacketInfoTos;
      }
    }
  }
}

// direct: published by the event loop's thread, which wakes JavaScript itself.
void ReceiveLoop::Publish(bool direct) {
  if (writer_.Publish() && !direct) {
    writer_.counters.wakeups++;
    StoreRelaxed(&writer_.control()->wakeups, writer_.counters.wakeups);
    // The wake function has a queue of one: a full queue means a wakeup is
    // already on its way, and closing means nobody is left to wake.
    Wake();
  }
}

// Places messages [first, first + count) of the landing zone into the ring:
// a coalesced (GRO) buffer as one datagram per segment, each with the
// buffer's source, timestamp and packet info. Returns how many messages were
// consumed: in 'block' mode it stops at the first datagram that does not fit
// (pendingOffset_ then says how much of that message is placed); in 'drop'
// mode it counts those as ring drops and goes on.
size_t ReceiveLoop::PlaceFrom(size_t first, size_t count) {
  size_t i = 0;
  for (; i < count; i++) {
    const size_t m = first + i;
    const struct mmsghdr& message = messages_[m];
    // With MSG_TRUNC, msg_len is the length the kernel had, whatever landed.
    const uint32_t length = message.msg_len;
    const uint32_t landed = length < landingSize_ ? length : landingSize_;
    const auto* from = static_cast<const sockaddr*>(message.msg_hdr.msg_name);
    const PacketInfo* info = packetInfo_ != nullptr ? &packetInfo_[m] : nullptr;
    const uint32_t segment = segmentSize_[m];
    if (inRing_[m] != 0) {
      // In ring space it is placed where it is, or moved down (never up, so
      // no later message is written over): when all it keeps landed there and
      // the segments of a coalesced buffer stay 8-byte aligned. Otherwise it
      // and every message after it go to their landing slots first.
      const bool split = segment != 0 && segment < length;
      const uint32_t kept = split || landed < maxMessageSize_ ? landed : maxMessageSize_;
      if (kept > inRing_[m] || (split && segment % kPayloadAlign != 0)) Evacuate(m, first + count);
    }
    const uint8_t* data = static_cast<const uint8_t*>(message.msg_hdr.msg_iov->iov_base);
    if (segment == 0 || segment >= length) {
      if (!writer_.Place(data, landed, length, length > maxMessageSize_, from, received_[m], info)) {
        if (!drop_) {
          pendingOffset_ = 0;
          break;
        }
        writer_.counters.ringDrops++;
      }
      continue;
    }
    uint32_t at = i == 0 ? pendingOffset_ : 0;
    for (; at < length; at += segment) {
      const uint32_t wireSize = length - at < segment ? length - at : segment;
      const uint32_t held = at >= landed ? 0 : landed - at < wireSize ? landed - at : wireSize;
      const bool truncated = held < wireSize || wireSize > maxMessageSize_;
      if (writer_.Place(held > 0 ? data + at : data, held, wireSize, truncated, from, received_[m], info)) {
        writer_.counters.coalesced++;
      } else if (drop_) {
        writer_.counters.ringDrops++;
      } else {
        break;
      }
    }
    if (at < length) {
      pendingOffset_ = at;
      return i;
    }
    pendingOffset_ = 0;
  }
  return i;
}

// Datagrams in landed message `message` from byte `from` on: one, or with GRO its segments.
uint64_t ReceiveLoop::DatagramsIn(size_t message, uint32_t from) const {
  const uint32_t length = messages_[message].msg_len;
  const uint32_t segment = segmentSize_[message];
  if (segment == 0 || segment >= length) return from == 0 ? 1 : 0;
  return from >= length ? 0 : (length - from + segment - 1) / segment;
}

}  // namespace udpring
