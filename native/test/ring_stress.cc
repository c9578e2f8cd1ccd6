// Stress test of the ring's discipline for ThreadSanitizer: one producer
// thread that places and publishes batches the way receiver.cc does, one
// consumer thread that fills and releases batches the way receiver.ts does,
// over the layout of ring.h. Every payload is checked byte for byte and in
// order; a lost wakeup shows up as a watchdog timeout.
//
//   g++ -std=c++17 -O1 -g -fsanitize=thread -Inative native/test/ring_stress.cc -o ring_stress -lpthread
//   ./ring_stress [datagrams] [ringBytes] [block|drop]
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <vector>

#include "ring.h"

using namespace udpring;

namespace {

constexpr uint32_t kMaxMessage = 1500;
constexpr uint32_t kBatch = 32;
constexpr int kWatchdogMs = 10000;

struct Shared {
  uint8_t* base;
  Control* control;
  Descriptor* descriptors;
  uint8_t* payload;
  Layout layout;
  bool drop;
  uint64_t total;
  int spaceFd;  // consumer -> producer: space freed (receiver.cc's controlFd_)
  int wakeFd;   // producer -> consumer: data published (the thread-safe function)
  std::atomic<bool> failed;
};

uint32_t SizeOf(uint64_t seq) {
  uint32_t h = static_cast<uint32_t>(seq * 2654435761u);
  if (seq % 97 == 0) return 4 + h % (kMaxMessage - 3);
  return 4 + h % 200;
}

uint8_t ByteOf(uint64_t seq, uint32_t k) { return static_cast<uint8_t>(seq * 31 + k * 7 + 13); }

void Fill(uint8_t* out, uint64_t seq, uint32_t size) {
  for (uint32_t k = 0; k < size; k++) out[k] = ByteOf(seq, k);
  memcpy(out, &seq, 4);
}

void Signal(int fd) {
  uint64_t one = 1;
  if (write(fd, &one, sizeof(one)) < 0) {}
}

bool WaitFd(Shared* s, int fd, const char* what) {
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, kWatchdogMs);
  if (r <= 0) {
    fprintf(stderr, "watchdog: no %s within %d ms (lost wakeup?)\n", what, kWatchdogMs);
    s->failed = true;
    return false;
  }
  uint64_t v;
  if (read(fd, &v, sizeof(v)) < 0) {}
  return true;
}

// ---- producer: receiver.cc's Place / Publish / WaitForSpace ---------------
struct Producer {
  Shared* s;
  uint64_t descriptorTail = 0, payloadTail = 0, cachedDescriptorHead = 0, cachedPayloadHead = 0;
  uint64_t packets = 0, ringDrops = 0;
  uint8_t landing[kMaxMessage] = {};

  bool Place(uint64_t seq, uint32_t size) {
    const uint64_t capacity = s->layout.payloadCapacity;
    const uint64_t need = AlignPayload(size);
    if (descriptorTail - cachedDescriptorHead >= s->layout.descriptorCount) {
      cachedDescriptorHead = LoadAcquire(&s->control->descriptorHead);
      if (descriptorTail - cachedDescriptorHead >= s->layout.descriptorCount) return false;
    }
    uint64_t at = payloadTail % capacity;
    uint64_t padding = (at + need > capacity) ? capacity - at : 0;
    uint64_t end = payloadTail + padding + need;
    if (end - cachedPayloadHead > capacity - kPayloadReserve) {
      cachedPayloadHead = LoadAcquire(&s->control->payloadHead);
      if (end - cachedPayloadHead > capacity - kPayloadReserve) return false;
    }
    at = (payloadTail + padding) % capacity;
    Fill(landing, seq, size);
    memcpy(s->payload + at, landing, size);
    Descriptor& d = s->descriptors[descriptorTail & (s->layout.descriptorCount - 1)];
    d.offset = static_cast<uint32_t>(s->layout.payloadOffset + at);
    d.size = size;
    d.wireSize = static_cast<uint32_t>(seq);  // the test's sequence number rides here
    payloadTail = end;
    descriptorTail++;
    packets++;
    return true;
  }

  void Publish() {
    StoreRelaxed(&s->control->packets, packets);
    StoreRelaxed(&s->control->ringDrops, ringDrops);
    StoreRelaxed(&s->control->payloadTail, payloadTail);
#ifdef RING_STRESS_RELAXED_PUBLISH
    // Deliberately wrong, for the script's self-check: no release, so TSan must
    // report the consumer's reads of descriptors and payloads as races.
    StoreRelaxed(&s->control->descriptorTail, descriptorTail);
#else
    StoreSeqCst(&s->control->descriptorTail, descriptorTail);
#endif
    if (ExchangeSeqCst(&s->control->consumerWaiting, 0u) != 0) Signal(s->wakeFd);
  }

  void WaitForSpace() {
    StoreSeqCst(&s->control->producerWaiting, 1u);
    uint64_t dh = LoadSeqCst(&s->control->descriptorHead);
    uint64_t ph = LoadSeqCst(&s->control->payloadHead);
    if (dh == cachedDescriptorHead && ph == cachedPayloadHead && !WaitFd(s, s->spaceFd, "space")) {
      fprintf(stderr, "producer: tail %lu payloadTail %lu | heads %lu %lu | cached %lu %lu | capacity %u count %u\n",
              (unsigned long)descriptorTail, (unsigned long)payloadTail, (unsigned long)dh, (unsigned long)ph,
              (unsigned long)cachedDescriptorHead, (unsigned long)cachedPayloadHead, s->layout.payloadCapacity,
              s->layout.descriptorCount);
    }
    StoreSeqCst(&s->control->producerWaiting, 0u);
    cachedDescriptorHead = LoadAcquire(&s->control->descriptorHead);
    cachedPayloadHead = LoadAcquire(&s->control->payloadHead);
  }

  void Run() {
    uint64_t seq = 0;
    while (seq < s->total && !s->failed) {
      uint64_t batchEnd = seq + 1 + (seq * 7919) % kBatch;
      if (batchEnd > s->total) batchEnd = s->total;
      while (seq < batchEnd && !s->failed) {
        if (Place(seq, SizeOf(seq))) {
          seq++;
        } else if (s->drop) {
          ringDrops++;
          seq++;
        } else {
          Publish();
          WaitForSpace();
        }
      }
      Publish();
      // A recvmmsg call per batch in the real thread: give the consumer a chance.
      if (s->drop) sched_yield();
    }
  }
};

// ---- consumer: receiver.ts's #fill / #release / #wait ---------------------
struct Consumer {
  Shared* s;
  uint64_t head = 0, payloadHead = 0, delivered = 0, lastSeq = 0, errors = 0;
  bool any = false;

  void Run() {
    const Layout& l = s->layout;
    for (;;) {
      uint64_t tail = LoadSeqCst(&s->control->descriptorTail);
      if (tail == head) {
        uint64_t drops = LoadRelaxed(&s->control->ringDrops);
        if (delivered + drops == s->total || s->failed) return;
        StoreSeqCst(&s->control->consumerWaiting, 1u);
        tail = LoadSeqCst(&s->control->descriptorTail);  // re-check after announcing
        if (tail == head) {
          drops = LoadRelaxed(&s->control->ringDrops);
          if (delivered + drops == s->total) return;
          if (!WaitFd(s, s->wakeFd, "wakeup")) return;
          continue;
        }
        StoreSeqCst(&s->control->consumerWaiting, 0u);
      }
      uint64_t length = tail - head;
      if (length > 256) length = 256;  // maxBatchLength
      uint64_t endOffset = 0;
      for (uint64_t i = 0; i < length; i++) {
        const Descriptor& d = s->descriptors[(head + i) & (l.descriptorCount - 1)];
        uint64_t seq = d.wireSize;
        if (any && seq <= lastSeq) { fprintf(stderr, "order: %lu after %lu\n", (unsigned long)seq, (unsigned long)lastSeq); errors++; }
        if (!s->drop && seq != (any ? lastSeq + 1 : 0)) { fprintf(stderr, "gap under block at %lu\n", (unsigned long)seq); errors++; }
        any = true;
        lastSeq = seq;
        if (d.size != SizeOf(seq)) { fprintf(stderr, "size of %lu\n", (unsigned long)seq); errors++; }
        const uint8_t* p = s->base + d.offset;
        uint32_t got;
        memcpy(&got, p, 4);
        if (got != static_cast<uint32_t>(seq)) errors++;
        for (uint32_t k = 4; k < d.size; k++) {
          if (p[k] != ByteOf(seq, k)) { fprintf(stderr, "byte %u of %lu\n", k, (unsigned long)seq); errors++; break; }
        }
        endOffset = d.offset - l.payloadOffset + AlignPayload(d.size);
      }
      delivered += length;
      // Release: the payload head follows from the last descriptor, as in receiver.ts.
      // Signed, as JavaScript's numbers are: unsigned wrap-around is not a multiple of capacity.
      int64_t capacity = l.payloadCapacity;
      int64_t distance = static_cast<int64_t>(endOffset) - static_cast<int64_t>(payloadHead % capacity);
      int64_t advance = (distance % capacity + capacity) % capacity;
      payloadHead += advance;
      head += length;
      StoreSeqCst(&s->control->payloadHead, payloadHead);
      StoreSeqCst(&s->control->descriptorHead, head);
      if (LoadSeqCst(&s->control->producerWaiting) != 0) Signal(s->spaceFd);
      if (errors > 20) { s->failed = true; return; }
    }
  }
};

void* ProducerMain(void* p) { static_cast<Producer*>(p)->Run(); return nullptr; }
void* ConsumerMain(void* p) { static_cast<Consumer*>(p)->Run(); return nullptr; }

}  // namespace

int main(int argc, char** argv) {
  uint64_t total = argc > 1 ? strtoull(argv[1], nullptr, 10) : 2000000;
  uint64_t ringBytes = argc > 2 ? strtoull(argv[2], nullptr, 10) : 256 * 1024;
  bool drop = argc > 3 && strcmp(argv[3], "drop") == 0;
  Shared s{};
  if (!ComputeLayout(ringBytes, &s.layout)) { fprintf(stderr, "bad ring size\n"); return 2; }
  std::vector<uint64_t> memory(ringBytes / 8 + 1, 0);
  s.base = reinterpret_cast<uint8_t*>(memory.data());
  s.control = reinterpret_cast<Control*>(s.base);
  s.descriptors = reinterpret_cast<Descriptor*>(s.base + s.layout.descriptorsOffset);
  s.payload = s.base + s.layout.payloadOffset;
  s.drop = drop;
  s.total = total;
  s.spaceFd = eventfd(0, EFD_NONBLOCK);
  s.wakeFd = eventfd(0, EFD_NONBLOCK);
  Producer producer{&s};
  Consumer consumer{&s};
  pthread_t pt, ct;
  pthread_create(&ct, nullptr, ConsumerMain, &consumer);
  pthread_create(&pt, nullptr, ProducerMain, &producer);
  pthread_join(pt, nullptr);
  pthread_join(ct, nullptr);
  uint64_t drops = LoadRelaxed(&s.control->ringDrops);
  bool ok = !s.failed && consumer.errors == 0 && consumer.delivered + drops == total &&
            consumer.delivered == producer.packets;
  printf("%s: %s, ring %lu bytes (%u descriptors), %lu datagrams: %lu delivered and checked, %lu ring drops, %lu errors\n",
         ok ? "OK" : "FAIL", drop ? "drop" : "block", (unsigned long)ringBytes, s.layout.descriptorCount,
         (unsigned long)total, (unsigned long)consumer.delivered, (unsigned long)drops, (unsigned long)consumer.errors);
  close(s.spaceFd);
  close(s.wakeFd);
  return ok ? 0 : 1;
}
