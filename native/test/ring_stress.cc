// Stress test of the ring's discipline for ThreadSanitizer. The producer side
// is the real RingWriter (ring_writer.cc), driven by two producers under one
// lock, as in receive_loop.cc: a "thread" that waits for the lock and for
// space, and an "event loop" that only try-locks and leaves what does not fit
// to the thread. The consumer side reads and releases batches the way
// lib/receiver.ts does (32-bit positions, one release store per batch). Every
// payload is checked byte for byte and in order; a lost wakeup shows up as a
// watchdog timeout. Positions start just short of 2^32, so they wrap.
//
//   g++ -std=c++17 -O1 -g -fsanitize=thread -Inative native/test/ring_stress.cc native/ring_writer.cc -o ring_stress -lpthread
//   ./ring_stress [datagrams] [ringBytes|min] [block|drop] [maxMessageSize] [batchSize] [landing|ring]
//
// With `ring`, the producers receive as receive_batch.cc does for large
// datagrams: each datagram is written straight into ring space the writer
// reserved (RingWriter::Reserve), `stride` bytes apart, a longer one's tail
// into its landing slot, then placed in place or moved down, the datagrams
// behind a longer one moved out to their landing slots first.
// Before each batch the producer starts an empty ring again at its beginning
// (RingWriter::RestartIfEmpty, as ReceiveLoop::ArmMessages does).
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ring_writer.h"

using namespace udpring;

namespace {

constexpr int kWatchdogMs = 10000;
constexpr uint32_t kStartPosition = 0xFFFFFFFFu - 5000;

struct Shared {
  RingWriter writer;
  uint8_t* base = nullptr;
  Layout layout{};
  bool drop = false;
  bool intoRing = false;
  uint64_t total = 0;
  uint32_t maxMessage = 0;
  uint32_t batch = 0;
  int spaceFd = -1;  // consumer -> producer: space freed (receive_loop.cc's controlFd_)
  int wakeFd = -1;   // producer -> consumer: data published (the thread-safe function)
  std::atomic<bool> failed{false};
  std::atomic<bool> done{false};
  // Producer state, under `lock`: the next sequence number to place.
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  uint64_t next = 0;
  uint64_t placedByLoop = 0, placedByThread = 0;
  uint32_t stride = 0;  // the largest datagram of the batch before, aligned (receive_batch.cc's stride_)
  uint64_t inRing = 0;  // datagrams written straight into ring space
};

uint32_t SizeOf(uint64_t seq, uint32_t maxMessage) {
  uint32_t h = static_cast<uint32_t>(seq * 2654435761u);
  if (seq % 13 == 0) return 4 + h % (maxMessage - 3);  // the odd large one, up to maxMessage
  if (seq % 101 == 0) return maxMessage;
  return 4 + h % 200;
}

uint8_t ByteOf(uint64_t seq, uint32_t k) { return static_cast<uint8_t>(seq * 31 + k * 7 + 13); }

void Fill(uint8_t* out, uint64_t seq, uint32_t size) {
  for (uint32_t k = 0; k < size; k++) out[k] = ByteOf(seq, k);
  uint32_t low = static_cast<uint32_t>(seq);
  memcpy(out, &low, 4);
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

// One batch of up to s->batch datagrams, with the lock held. Returns false
// when, in 'block' mode, a datagram did not fit (it stays next in line).
bool ProduceBatch(Shared* s, std::vector<uint8_t>& landing, uint64_t* placed) {
  uint64_t end = s->next + 1 + (s->next * 7919) % s->batch;
  if (end > s->total) end = s->total;
  const uint32_t count = static_cast<uint32_t>(end - s->next);
  const uint32_t slot = s->maxMessage + 64;
  // Between batches, as ReceiveLoop::ArmMessages does: an empty ring starts again at its beginning.
  s->writer.RestartIfEmpty();
  // "Receive" the batch: into ring space (the first `inRing`, up to `stride` bytes each) or the landing slots.
  std::vector<const uint8_t*> source(count);
  uint32_t inRing = 0, largest = 0;
  uint8_t* ring = nullptr;
  if (s->intoRing && s->stride != 0) {
    uint64_t granted;
    ring = s->writer.Reserve(uint64_t{s->stride} * count, &granted);
    inRing = static_cast<uint32_t>(granted / s->stride);
  }
  const uint32_t stride = s->stride;
  for (uint32_t k = 0; k < count; k++) {
    const uint32_t size = SizeOf(s->next + k, s->maxMessage);
    uint8_t* slotBytes = landing.data() + size_t{k} * slot;
    Fill(slotBytes, s->next + k, size);
    if (size > largest) largest = size;
    if (k < inRing) {
      // The head goes to ring space, as the kernel would write it; a tail past
      // the stride stays in the slot. The slot's copy of the head is spoilt, so
      // a datagram placed from the wrong place shows.
      const uint32_t head = size < stride ? size : stride;
      memcpy(ring + size_t{k} * stride, slotBytes, head);
      memset(slotBytes, 0xEE, head);
      source[k] = ring + size_t{k} * stride;
    } else {
      source[k] = slotBytes;
    }
  }
  s->inRing += inRing;
  s->stride = s->intoRing ? static_cast<uint32_t>(AlignPayload(largest)) : 0;
  bool fitted = true;
  for (uint32_t k = 0; k < count; k++) {
    const uint32_t size = SizeOf(s->next, s->maxMessage);
    if (k < inRing && source[k] != landing.data() + size_t{k} * slot && size > stride) {
      // Longer than its ring slot: placing it may write over the ones behind it, so they move out first.
      for (uint32_t j = k; j < inRing; j++) {
        uint8_t* slotBytes = landing.data() + size_t{j} * slot;
        if (source[j] == slotBytes) continue;
        const uint32_t length = SizeOf(s->next + (j - k), s->maxMessage);
        memcpy(slotBytes, source[j], length < stride ? length : stride);
        source[j] = slotBytes;
      }
    }
    if (s->writer.Place(source[k], size, false, nullptr)) {
      (*placed)++;
    } else if (s->drop) {
      s->writer.counters.ringDrops++;
    } else {
      fitted = false;
      break;
    }
    s->next++;
  }
  s->writer.counters.batches++;
  if (s->writer.Publish()) Signal(s->wakeFd);
  return fitted;
}

// The receive thread: waits for the lock; in 'block' mode waits for space
// while holding it, as ReceiveLoop::WaitForSpace does.
void* ThreadProducer(void* p) {
  auto* s = static_cast<Shared*>(p);
  std::vector<uint8_t> landing(size_t{s->batch} * (s->maxMessage + 64));
  for (;;) {
    pthread_mutex_lock(&s->lock);
    if (s->next >= s->total || s->failed) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    if (!ProduceBatch(s, landing, &s->placedByThread)) {
      bool moved = s->writer.AnnounceWaitForSpace();
      while (!moved && !s->failed) {
        if (!WaitFd(s, s->spaceFd, "space")) break;
        moved = s->writer.ConsumerMoved();
      }
      s->writer.EndWaitForSpace();
    }
    pthread_mutex_unlock(&s->lock);
    if (s->drop) sched_yield();
  }
  s->done = true;
  return nullptr;
}

// The event loop's direct receive: only ever try-locks; what does not fit is
// left to the thread.
void* LoopProducer(void* p) {
  auto* s = static_cast<Shared*>(p);
  std::vector<uint8_t> landing(size_t{s->batch} * (s->maxMessage + 64));
  while (!s->done && !s->failed) {
    if (pthread_mutex_trylock(&s->lock) != 0) {
      sched_yield();
      continue;
    }
    if (s->next < s->total) ProduceBatch(s, landing, &s->placedByLoop);
    bool finished = s->next >= s->total;
    pthread_mutex_unlock(&s->lock);
    if (finished) break;
    sched_yield();
  }
  return nullptr;
}

// ---- consumer: receiver.ts's #fill / #release / #wait ---------------------
struct Consumer {
  Shared* s;
  uint32_t head = kStartPosition;
  uint64_t delivered = 0, lastSeq = 0, errors = 0, batches = 0;
  bool any = false;

  uint64_t Drops() { return LoadRelaxed(&s->writer.control()->ringDrops); }

  void Run() {
    Control* control = s->writer.control();
    const Layout& l = s->layout;
    const Descriptor* descriptors = reinterpret_cast<const Descriptor*>(s->base + l.descriptorsOffset);
    for (;;) {
      uint32_t tail = LoadSeqCst(&control->descriptorTail);
      if (tail == head) {
        if (delivered + Drops() == s->total || s->failed) return;
        StoreSeqCst(&control->consumerWaiting, 1u);
        tail = LoadSeqCst(&control->descriptorTail);  // re-check after announcing
        if (tail == head) {
          if (delivered + Drops() == s->total) return;
          if (!WaitFd(s, s->wakeFd, "wakeup")) return;
          continue;
        }
        StoreSeqCst(&control->consumerWaiting, 0u);
      }
      uint32_t length = tail - head;
      if (length > 256) length = 256;  // maxBatchLength
      // Every fourth batch leaves its last datagram for the next: the ring is
      // not empty then, so the producer wraps rather than starting again.
      if (length > 1 && ++batches % 4 == 0) length--;
      for (uint32_t i = 0; i < length; i++) {
        const Descriptor& d = descriptors[(head + i) & (l.descriptorCount - 1)];
        const uint8_t* payload = s->base + d.offset;
        uint32_t low;
        memcpy(&low, payload, 4);
        // The full sequence number: the next expected one's high bits with these low ones.
        uint64_t expected = any ? lastSeq + 1 : 0;
        uint64_t seq = (expected & ~uint64_t{0xFFFFFFFF}) | low;
        if (seq < expected) seq += uint64_t{1} << 32;
        if (any && seq <= lastSeq) { fprintf(stderr, "order: %lu after %lu\n", (unsigned long)seq, (unsigned long)lastSeq); errors++; }
        if (!s->drop && seq != expected) { fprintf(stderr, "gap under block at %lu\n", (unsigned long)seq); errors++; }
        any = true;
        lastSeq = seq;
        uint32_t size = SizeOf(seq, s->maxMessage);
        if (d.size != size || d.wireSize != size) { fprintf(stderr, "size of %lu\n", (unsigned long)seq); errors++; }
        if (d.offset < l.payloadOffset || d.offset + size > l.payloadOffset + l.payloadCapacity) {
          fprintf(stderr, "payload of %lu outside the ring\n", (unsigned long)seq);
          errors++;
          continue;
        }
        for (uint32_t k = 4; k < d.size; k++) {
          if (payload[k] != ByteOf(seq, k)) { fprintf(stderr, "byte %u of %lu\n", k, (unsigned long)seq); errors++; break; }
        }
      }
      delivered += length;
      // Release: one store of the 32-bit head; the producer derives the payload space.
      head += length;
      StoreSeqCst(&control->descriptorHead, head);
      if (LoadSeqCst(&control->producerWaiting) != 0) Signal(s->spaceFd);
      if (errors > 20) { s->failed = true; return; }
    }
  }
};

void* ConsumerMain(void* p) { static_cast<Consumer*>(p)->Run(); return nullptr; }

}  // namespace

int main(int argc, char** argv) {
  uint64_t total = argc > 1 ? strtoull(argv[1], nullptr, 10) : 2000000;
  const char* ringArg = argc > 2 ? argv[2] : "262144";
  bool drop = argc > 3 && strcmp(argv[3], "drop") == 0;
  uint32_t maxMessage = argc > 4 ? static_cast<uint32_t>(strtoul(argv[4], nullptr, 10)) : 1500;
  uint32_t batch = argc > 5 ? static_cast<uint32_t>(strtoul(argv[5], nullptr, 10)) : 32;
  bool intoRing = argc > 6 && strcmp(argv[6], "ring") == 0;
  uint64_t ringBytes = strtoull(ringArg, nullptr, 10);
  if (strcmp(ringArg, "min") == 0) {
    // The smallest ring the writer accepts for this batch and message size.
    for (ringBytes = 4096;; ringBytes += 4096) {
      Layout l;
      if (ComputeLayout(ringBytes, false, false, &l) && l.descriptorCount >= batch &&
          l.payloadCapacity >= MinimumPayloadCapacity(batch, maxMessage)) break;
    }
  }
  Shared s;
  std::vector<uint64_t> memory(ringBytes / 8 + 1, 0);
  s.base = reinterpret_cast<uint8_t*>(memory.data());
  if (const char* why = s.writer.Attach(s.base, ringBytes, maxMessage, batch, false)) {
    fprintf(stderr, "attach: %s\n", why);
    return 2;
  }
  s.layout = s.writer.layout();
  s.drop = drop;
  s.intoRing = intoRing;
  s.total = total;
  s.maxMessage = maxMessage;
  s.batch = batch;
  s.spaceFd = eventfd(0, EFD_NONBLOCK);
  s.wakeFd = eventfd(0, EFD_NONBLOCK);
  s.writer.StartAt(kStartPosition);
  Consumer consumer{&s};
  pthread_t thread, loop, ct;
  pthread_create(&ct, nullptr, ConsumerMain, &consumer);
  pthread_create(&thread, nullptr, ThreadProducer, &s);
  pthread_create(&loop, nullptr, LoopProducer, &s);
  pthread_join(thread, nullptr);
  pthread_join(loop, nullptr);
  pthread_join(ct, nullptr);
  uint64_t drops = LoadRelaxed(&s.writer.control()->ringDrops);
  uint64_t placed = s.placedByThread + s.placedByLoop;
  bool ok = !s.failed && consumer.errors == 0 && consumer.delivered + drops == total && consumer.delivered == placed &&
            (drop || drops == 0);
  // Restarts of the empty ring depend on when the consumer catches up: one
  // run may have none, so scripts/test-tsan.sh requires them over all runs.
  if (s.writer.counters.wraps == 0) {
    fprintf(stderr, "the ring never wrapped\n");
    ok = false;
  }
  if (intoRing && s.inRing == 0) {
    fprintf(stderr, "no datagram was received into ring space\n");
    ok = false;
  }
  printf("%s: %s%s, ring %lu bytes (%u descriptors), datagrams up to %u bytes in batches up to %u, %lu datagrams: "
         "%lu delivered and checked (%lu placed by the thread, %lu by the event loop), %lu ring drops, %lu errors, %lu received into ring space, "
         "%lu wraps, %lu restarts of the empty ring\n",
         ok ? "OK" : "FAIL", drop ? "drop" : "block", intoRing ? " into the ring" : "", (unsigned long)ringBytes, s.layout.descriptorCount, maxMessage,
         batch, (unsigned long)total, (unsigned long)consumer.delivered, (unsigned long)s.placedByThread,
         (unsigned long)s.placedByLoop, (unsigned long)drops, (unsigned long)consumer.errors, (unsigned long)s.inRing,
         (unsigned long)s.writer.counters.wraps, (unsigned long)s.writer.counters.restarts);
  close(s.spaceFd);
  close(s.wakeFd);
  return ok ? 0 : 1;
}
