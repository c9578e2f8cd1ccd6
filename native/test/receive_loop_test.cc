// Native tests of the receive loop's hand-over between the event loop's
// direct receive and the receive thread, on a real UDP socket on loopback.
// Each case prints "ok <name>" or "not ok <name>: why"; the exit code is the
// number of failures. Run by test/native-loop.test.ts (it builds this file
// with the system's C++ compiler).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "receive_loop.h"

using namespace udpring;

namespace {

int failures = 0;

void Report(bool ok, const char* name, const char* why) {
  if (ok) {
    printf("ok %s\n", name);
  } else {
    printf("not ok %s: %s\n", name, why);
    failures++;
  }
}

struct Pair {
  int receiver = -1, sender = -1;
  // forceBuffer > 0: the receiver's kernel buffer forced to that (root), so a burst is not dropped.
  explicit Pair(int forceBuffer = 0) {
    receiver = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sender = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(receiver, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t length = sizeof(a);
    getsockname(receiver, reinterpret_cast<sockaddr*>(&a), &length);
    connect(sender, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    if (forceBuffer > 0) setsockopt(receiver, SOL_SOCKET, SO_RCVBUFFORCE, &forceBuffer, sizeof(forceBuffer));
  }
  ~Pair() {
    close(receiver);
    close(sender);
  }
  void Send(int count, size_t size) {
    std::vector<uint8_t> data(size, 0x5a);
    for (int i = 0; i < count; i++) {
      data[0] = static_cast<uint8_t>(i);
      if (send(sender, data.data(), data.size(), 0) < 0) perror("send");
    }
  }
};

// Lays a receive loop over `memory` for datagrams of up to `maxMessageSize`
// bytes in batches of `batchSize`, on the pair's receiving socket. Returns
// nullptr, or why the ring cannot serve that.
const char* Open(ReceiveLoop& loop, std::vector<uint64_t>& memory, const Pair& pair, uint32_t maxMessageSize,
                 uint32_t batchSize, bool drop = false, const ReceiveFeatures& features = ReceiveFeatures{}) {
  int err;
  const char* syscall;
  const char* why = loop.Init(reinterpret_cast<uint8_t*>(memory.data()), memory.size() * 8, maxMessageSize, batchSize, drop,
                              features, &err, &syscall);
  if (why == nullptr) loop.UseSocket(pair.receiver, &err, &syscall);
  return why;
}

// What a test reads of the ring laid over `memory`.
struct RingView {
  const Layout& layout;
  Control* control;
  const uint8_t* base;
  const Descriptor* descriptors;
  RingView(ReceiveLoop& loop, std::vector<uint64_t>& memory)
      : layout(loop.writer().layout()),
        control(loop.writer().control()),
        base(reinterpret_cast<const uint8_t*>(memory.data())),
        descriptors(reinterpret_cast<const Descriptor*>(base + layout.descriptorsOffset)) {}
};

uint8_t PatternByte(uint32_t seq, uint32_t k) { return static_cast<uint8_t>(seq * 31 + k * 7 + 13); }

// A loop over 192 KiB of ring (batches of 16 x 9000 B fit) on a fresh socket
// pair, prepared for direct receives that the test makes itself, so each step
// is known. `why` is nullptr, or why it could not be laid.
struct DirectRing {
  Pair pair;
  std::vector<uint64_t> memory;
  ReceiveLoop loop;
  const char* why;
  explicit DirectRing(int forceBuffer) : pair(forceBuffer), memory((192 * 1024) / 8) {
    why = Open(loop, memory, pair, 9000, 16);
    if (why == nullptr) loop.Prepare();
  }
  // Sends datagrams [from, from + count) of `size` bytes (seq first, then the
  // pattern), lets them arrive, and receives once on the event loop's path.
  int SendAndReceive(uint32_t from, uint32_t count, uint32_t size) {
    std::vector<uint8_t> data(size);
    for (uint32_t seq = from; seq < from + count; seq++) {
      for (uint32_t b = 0; b < size; b++) data[b] = PatternByte(seq, b);
      memcpy(data.data(), &seq, 4);
      if (send(pair.sender, data.data(), size, 0) < 0) perror("send");
    }
    usleep(20000);
    return loop.ReceiveDirect();
  }
  // The first of the placed datagrams [from, upTo) that is not datagram `at`
  // of `size` bytes where its descriptor says, or -1 when all are intact.
  int64_t FirstDiffering(uint32_t from, uint32_t upTo, uint32_t size) {
    const RingView view(loop, memory);
    for (uint32_t at = from; at < upTo; at++) {
      const Descriptor& d = view.descriptors[at & (view.layout.descriptorCount - 1)];
      uint32_t seq;
      memcpy(&seq, view.base + d.offset, 4);
      bool same = seq == at && d.size == size;
      for (uint32_t b = 4; same && b < size; b++) same = view.base[d.offset + b] == PatternByte(seq, b);
      if (!same) return at;
    }
    return -1;
  }
};

// Until the thread has prefaulted the ring, the event loop must not receive:
// the prefault of an old kernel writes a zero into every page.
void DirectWaitsForTheRing() {
  Pair pair;
  std::vector<uint64_t> memory(1 << 17);
  ReceiveLoop loop;
  const char* why = Open(loop, memory, pair, 1500, 8);
  if (why != nullptr) return Report(false, "direct receive waits until the ring is ready", why);
  pair.Send(1, 100);
  usleep(20000);
  int before = loop.ReceiveDirect();
  loop.Prepare();
  int after = loop.ReceiveDirect();
  char text[128];
  snprintf(text, sizeof(text), "before the prefault it returned %d (want -1), after %d (want 1)", before, after);
  Report(before == -1 && after == 1, "direct receive waits until the ring is ready", text);
}

struct Waiter {
  ReceiveLoop* loop;
  std::atomic<int> result{-1};
};

void* WaitMain(void* p) {
  auto* w = static_cast<Waiter*>(p);
  pthread_mutex_lock(w->loop->producerLock());
  bool readable = w->loop->WaitReadable();
  pthread_mutex_unlock(w->loop->producerLock());
  w->result = readable ? 1 : 0;
  return nullptr;
}

// Datagrams the event loop received but could not place are the thread's: it
// must go and place them when signalled, even if no more traffic comes.
void LeftoversAreNotStranded() {
  const char* name = "leftovers of a direct receive are placed without more traffic";
  Pair pair;
  // 16 KiB: 64 descriptors, room for far more payload; the descriptors run out first.
  std::vector<uint64_t> memory(16384 / 8);
  ReceiveLoop loop;
  const char* why = Open(loop, memory, pair, 64, 8);
  if (why != nullptr) return Report(false, name, why);
  uint32_t slots = loop.writer().layout().descriptorCount;
  loop.Prepare();
  pair.Send(static_cast<int>(slots) + 1, 8);
  usleep(20000);
  int received = 0;
  for (int n; (n = loop.ReceiveDirect()) > 0;) received += n;
  Control* control = loop.writer().control();
  uint32_t published = LoadAcquire(&control->descriptorTail);
  if (loop.pending() != 1 || published != slots || received != static_cast<int>(slots) + 1) {
    char text[160];
    snprintf(text, sizeof(text), "setup: received %d, published %u, pending %zu (want %u, %u, 1)", received, published,
             loop.pending(), slots + 1, slots);
    return Report(false, name, text);
  }
  // The consumer reads and releases everything; the socket is empty now.
  StoreSeqCst(&control->descriptorHead, published);
  Waiter waiter{&loop};
  pthread_t thread;
  pthread_create(&thread, nullptr, WaitMain, &waiter);
  for (int ms = 0; ms < 3000 && waiter.result < 0; ms++) usleep(1000);
  bool returned = waiter.result == 1;
  loop.RequestStop();  // releases a wait that never returned
  pthread_join(thread, nullptr);
  Report(returned, name, "the thread's wait did not return within 3 s: the leftover is stranded");
}

// A direct receive that finds the producer lock taken (the thread holds it
// between two waits) stops polling and leaves the datagram to the thread,
// which must take it at once, not a watch tick later (at 10k/s a tick is
// 8 ms: the stalls of 80-odd datagrams at 8.5 ms seen in bench/tail.mjs).
// The tick here is a minute, so only the hand-over can return the wait.
void MissedDirectReceiveIsTaken(bool whileWatching) {
  const char* name = whileWatching ? "a direct receive missed while the thread watches wakes it"
                                   : "a direct receive missed between the thread's waits is taken before it waits";
  Pair pair;
  std::vector<uint64_t> memory(1 << 17);
  ReceiveLoop loop;
  const char* why = Open(loop, memory, pair, 1500, 8);
  if (why != nullptr) return Report(false, name, why);
  loop.graceMs = 60000;
  loop.Prepare();
  loop.SetDirectArmed(true);  // the event loop polls the socket for a waiting consumer
  Waiter waiter{&loop};
  pthread_t thread;
  int direct = 0;
  if (whileWatching) {
    // The thread sleeps on the socket, sees a datagram the loop polls for and
    // watches; the loop's receive then meets the lock held (here, by the test).
    pthread_create(&thread, nullptr, WaitMain, &waiter);
    usleep(20000);
    pair.Send(1, 100);
    usleep(20000);
    pthread_mutex_lock(loop.producerLock());
    direct = loop.ReceiveDirect();
    pthread_mutex_unlock(loop.producerLock());
  } else {
    pair.Send(1, 100);
    usleep(20000);
    pthread_mutex_lock(loop.producerLock());
    direct = loop.ReceiveDirect();
    pthread_mutex_unlock(loop.producerLock());
    pthread_create(&thread, nullptr, WaitMain, &waiter);
  }
  for (int ms = 0; ms < 3000 && waiter.result < 0; ms++) usleep(1000);
  bool returned = waiter.result == 1;
  loop.RequestStop();  // releases a wait that never returned
  pthread_join(thread, nullptr);
  char text[160];
  snprintf(text, sizeof(text), "direct receive returned %d (want -1); the thread's wait %s", direct,
           returned ? "returned" : "did not return within 3 s: the datagram waits for a watch tick");
  Report(direct == -1 && returned, name, text);
}

// A coalesced (GRO) buffer larger than the ring's free space is placed over
// several waits for space; each part must be published as it is placed, even
// though the buffer itself is not yet consumed (it was not, before the fix: the
// thread then waited for space the consumer could never free).
void CoalescedPartsArePublished() {
  const char* name = "the parts of a coalesced buffer are published as they are placed";
  Pair pair;
  int one = 1;
  if (setsockopt(pair.receiver, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) != 0) return Report(true, name, "");
  // 16 KiB: room for about 13 segments of 1000 bytes; the buffer holds 40, placed over at least 4 waits.
  std::vector<uint64_t> memory(16384 / 8);
  ReceiveLoop loop;
  ReceiveFeatures features;
  features.gro = true;
  const char* why = Open(loop, memory, pair, 1000, 4, false, features);
  if (why != nullptr) return Report(false, name, why);
  std::vector<uint8_t> data(40 * 1000, 0x5a);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))] = {};
  iovec iov{data.data(), data.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&message);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t segment = 1000;
  memcpy(CMSG_DATA(c), &segment, sizeof(segment));
  if (sendmsg(pair.sender, &message, 0) != static_cast<ssize_t>(data.size())) return Report(true, name, "");  // no GSO here
  if (loop.Start([](void*) {}, nullptr, nullptr) != 0) return Report(false, name, "pthread_create failed");
  Control* ring = loop.writer().control();
  // The consumer: releases whatever is published, until all 40 are or 3 s pass.
  uint32_t published = 0;
  for (int ms = 0; ms < 3000 && published < 40; ms++) {
    published = LoadAcquire(&ring->descriptorTail);
    StoreSeqCst(&ring->descriptorHead, published);
    if (LoadSeqCst(&ring->producerWaiting) != 0) loop.NotifySpace();
    usleep(1000);
  }
  loop.Stop();
  char text[96];
  snprintf(text, sizeof(text), "%u of 40 segments published within 3 s", published);
  Report(published == 40, name, text);
}

// Runs of one size, sizes that grow past the stride, shrink, alternate.
uint32_t ScheduledSize(uint32_t seq) {
  switch ((seq / 24) % 5) {
    case 0: return 1400;
    case 1: return 8192;
    case 2: return seq % 3 == 0 ? 9000 : 1400;
    case 3: return 600 + (seq * 2654435761u) % 8400;
    default: return seq % 4 == 0 ? 100 : 4000;
  }
}

// A nearly full ring: less than a batch of strides is free, so the receive
// points only the messages that fit at ring space and lands the rest; those
// wait ('block') and are placed, byte for byte and in order, once the consumer
// releases (by the thread, with no more traffic). Direct receives, so each
// step is known, of 16 x 8000 B each: the first lands (no stride yet) and is
// copied, then released but for its last datagram (an empty ring would start
// again at its beginning); the second gets ring space up to the end (k
// strides), the rest of it wraps to the start; the third finds the space
// bounded by the consumer's head (the first batch's last datagram, unreleased),
// room for k - 2 strides.
void NearlyFullArmsFewer() {
  const char* name = "a nearly full ring: fewer messages armed into it, the rest landed and placed after a release";
  DirectRing ring(16 << 20);
  if (ring.why != nullptr) return Report(false, name, ring.why);
  const auto [layout, control, base, descriptors] = RingView(ring.loop, ring.memory);
  const ProducerCounters& c = ring.loop.writer().counters;
  const uint32_t size = 8000;
  // Strides before the end once the first batch is placed; the third batch gets two fewer (see above).
  const uint32_t k = (layout.payloadCapacity - 16 * size) / size;
  char text[240] = "";
  uint32_t head = 0, bad = 0;
  auto receive = [&](uint32_t from) { return ring.SendAndReceive(from, 16, size); };
  // Checks datagrams [from, upTo) in place, without releasing them.
  auto check = [&](uint32_t from, uint32_t upTo) {
    const int64_t at = bad == 0 ? ring.FirstDiffering(from, upTo, size) : -1;
    if (at < 0) return;
    bad++;
    snprintf(text, sizeof(text), "datagram %ld: its seq, size or bytes differ", static_cast<long>(at));
  };
  int first = receive(0);
  check(0, 16);
  head = 15;
  StoreSeqCst(&control->descriptorHead, head);
  int second = receive(16);
  const size_t armedSecond = ring.loop.armedInRing();
  int third = receive(32);
  const size_t armedThird = ring.loop.armedInRing();
  if (first != 16 || second != 16 || third != 16 || k < 3 || k >= 16 || armedSecond != k || armedThird != k - 2 ||
      c.inPlace != 2 * k - 2 || ring.loop.pending() != 16 - (k - 2) || c.packets != 32 + (k - 2) || c.restarts != 0) {
    snprintf(text, sizeof(text), "received %d, %d, %d; armed into the ring %zu then %zu, in place %lu, pending %zu, "
             "packets %lu, restarts %lu (want 16 each; %u then %u, %u, %u, %u, 0)", first, second, third, armedSecond, armedThird,
             (unsigned long)c.inPlace, ring.loop.pending(), (unsigned long)c.packets, (unsigned long)c.restarts, k, k - 2, 2 * k - 2,
             16 - (k - 2), 32 + (k - 2));
    return Report(false, name, text);
  }
  // The held datagram and the second batch are intact after the third was received next to them; then released.
  check(15, 32 + (k - 2));
  head = 32;
  StoreSeqCst(&control->descriptorHead, head);
  // Prepare() ran already; the thread's own Prepare() populates again (MADV_POPULATE_WRITE keeps the contents).
  if (bad == 0 && ring.loop.Start([](void*) {}, nullptr, nullptr) != 0) return Report(false, name, "pthread_create failed");
  for (int ms = 0; ms < 3000 && bad == 0 && LoadAcquire(&control->descriptorTail) != 48; ms++) usleep(1000);
  const uint32_t published = LoadAcquire(&control->descriptorTail);
  check(32, published);
  ring.loop.Stop();
  if (bad == 0 && published != 48) {
    snprintf(text, sizeof(text), "%u of 48 published within 3 s of the release: the leftovers were not placed", published);
    bad++;
  }
  Report(bad == 0, name, text);
}

// Large datagrams go straight into ring space (ArmMessages) and are placed
// there, or moved down, or (longer than the stride) split between the ring and
// the landing zone and placed after the messages behind them were moved out.
// Through the receive thread, over a ring that wraps every few batches and
// fills (the consumer lags, and sometimes holds one datagram back so that the
// ring is not empty), with every byte checked.
// With landingOnly (UDP_RING_INTERNAL_LANDING_ONLY=1, the benchmark's "before"), the same traffic
// lands in the landing zone and is copied: every byte the same, nothing placed where it was received.
void ReceivedIntoTheRing(bool drop, bool landingOnly = false) {
  const char* name = landingOnly ? "UDP_RING_INTERNAL_LANDING_ONLY=1: the same traffic copied from the landing zone ('block')"
                     : drop      ? "received into the ring: in place, moved, split, at the wrap, full ('drop')"
                                 : "received into the ring: in place, moved, split, at the wrap, full ('block')";
  Pair pair(16 << 20);
  // About 160 KiB of payload: the smallest ring for 16 x 9000 is ~150 KiB.
  std::vector<uint64_t> memory((192 * 1024) / 8);
  ReceiveLoop loop;
  if (landingOnly) setenv("UDP_RING_INTERNAL_LANDING_ONLY", "1", 1);
  const char* why = Open(loop, memory, pair, 9000, 16, drop);
  unsetenv("UDP_RING_INTERNAL_LANDING_ONLY");
  if (why != nullptr) return Report(false, name, why);
  if (loop.Start([](void*) {}, nullptr, nullptr) != 0) return Report(false, name, "pthread_create failed");
  const auto [layout, control, base, descriptors] = RingView(loop, memory);
  std::vector<uint8_t> data(9000);
  const uint32_t total = 3000;
  uint32_t sent = 0, delivered = 0, head = 0, bad = 0, lastSeq = 0;
  uint64_t drops = 0;
  bool any = false;
  char text[200] = "";
  for (int turn = 0; turn < 20000 && bad == 0; turn++) {
    for (uint32_t k = 0; k < 24 && sent < total; k++, sent++) {
      uint32_t size = ScheduledSize(sent);
      for (uint32_t b = 0; b < size; b++) data[b] = PatternByte(sent, b);
      memcpy(data.data(), &sent, 4);
      if (send(pair.sender, data.data(), size, 0) < 0) perror("send");
    }
    usleep(500);
    // The consumer lags: it reads one turn in three, so the ring fills. Every
    // other time it leaves the last datagram unread: the ring is not empty, so
    // the producer does not start again at its beginning but wraps.
    if (turn % 3 != 0) continue;
    uint32_t tail = LoadAcquire(&control->descriptorTail);
    if (turn % 6 == 3 && tail != head) tail--;
    for (; head != tail && bad == 0; head++, delivered++) {
      const Descriptor& d = descriptors[head & (layout.descriptorCount - 1)];
      uint32_t seq;
      memcpy(&seq, base + d.offset, 4);
      if ((any && seq <= lastSeq) || (!drop && seq != (any ? lastSeq + 1 : 0)) || d.size != ScheduledSize(seq) ||
          d.offset < layout.payloadOffset || d.offset + d.size > layout.payloadOffset + layout.payloadCapacity) {
        bad++;
        snprintf(text, sizeof(text), "datagram %u: seq %u after %u, size %u", delivered, seq, lastSeq, d.size);
      } else {
        for (uint32_t b = 4; b < d.size; b++) {
          if (base[d.offset + b] != PatternByte(seq, b)) {
            bad++;
            snprintf(text, sizeof(text), "seq %u (%u B): byte %u differs", seq, d.size, b);
            break;
          }
        }
      }
      any = true;
      lastSeq = seq;
    }
    StoreSeqCst(&control->descriptorHead, head);
    if (LoadSeqCst(&control->producerWaiting) != 0) loop.NotifySpace();
    drops = LoadRelaxed(&control->ringDrops) + LoadRelaxed(&control->kernelDrops);
    if (sent == total && delivered + drops == total) break;
  }
  loop.Stop();
  const ProducerCounters& c = loop.writer().counters;
  if (bad == 0 && delivered + drops != total) {
    snprintf(text, sizeof(text), "sent %u, delivered %u, ring drops %lu, kernel drops %lu", total, delivered,
             (unsigned long)c.ringDrops, (unsigned long)c.kernelDrops);
    bad++;
  } else if (bad == 0 && landingOnly && c.inPlace != 0) {
    snprintf(text, sizeof(text), "%lu placed where they were received: the switch did not hold", (unsigned long)c.inPlace);
    bad++;
  } else if (bad == 0 && !landingOnly && c.inPlace == 0) {
    snprintf(text, sizeof(text), "%lu of %u placed where they were received: the ring receive never ran", (unsigned long)c.inPlace, delivered);
    bad++;
  } else if (bad == 0 && (drop ? c.ringDrops == 0 : c.producerStalls == 0)) {
    snprintf(text, sizeof(text), "the ring never filled (%lu ring drops, %lu stalls)", (unsigned long)c.ringDrops,
             (unsigned long)c.producerStalls);
    bad++;
  } else if (bad == 0 && c.wraps == 0) {
    snprintf(text, sizeof(text), "no datagram was placed at the wrap (%lu restarts)", (unsigned long)c.restarts);
    bad++;
  } else if (bad == 0 && landingOnly && c.restarts != 0) {
    snprintf(text, sizeof(text), "%lu restarts of an empty ring: the switch did not hold", (unsigned long)c.restarts);
    bad++;
  }
  Report(bad == 0, name, text);
}

// An empty ring starts again at its beginning (RingWriter::RestartIfEmpty),
// and only an empty one: while the consumer holds any datagram, the next
// batch goes after the last, and every held byte stays as it was. Direct
// receives of 8 x 1400 B (into ring space from the second on), so each step
// is known; every datagram is checked byte for byte after each receive.
void EmptyRingStartsAgain() {
  const char* name = "an empty ring starts again at its beginning, a held batch is never written over";
  DirectRing ring(4 << 20);
  if (ring.why != nullptr) return Report(false, name, ring.why);
  const auto [layout, control, base, descriptors] = RingView(ring.loop, ring.memory);
  const ProducerCounters& c = ring.loop.writer().counters;
  const uint32_t size = 1400, batch = 8;
  char text[240] = "";
  uint32_t bad = 0, head = 0, next = 0;
  auto receive = [&]() {
    next += batch;
    return ring.SendAndReceive(next - batch, batch, size) == static_cast<int>(batch);
  };
  auto offsetOf = [&](uint32_t at) { return descriptors[at & (layout.descriptorCount - 1)].offset - layout.payloadOffset; };
  // Datagrams [head, next) unreleased: each intact where its descriptor says.
  auto check = [&](const char* step) {
    const int64_t at = bad == 0 ? ring.FirstDiffering(head, next, size) : -1;
    if (at < 0) return;
    bad++;
    snprintf(text, sizeof(text), "%s: datagram %ld (at offset %u) differs", step, static_cast<long>(at),
             offsetOf(static_cast<uint32_t>(at)));
  };
  auto release = [&](uint32_t upTo) {
    head = upTo;
    StoreSeqCst(&control->descriptorHead, head);
  };
  auto expect = [&](bool ok, const char* step) {
    if (bad != 0 || ok) return;
    bad++;
    snprintf(text, sizeof(text), "%s: first offset %u, restarts %lu, in place %lu", step, offsetOf(next - batch),
             (unsigned long)c.restarts, (unsigned long)c.inPlace);
  };
  // Each batch's bytes are checked first (with the ones still held), then where it went.
  bool received;
  // A: landed and copied to the start. B, with A held: after A, A intact.
  received = receive();
  check("first batch");
  expect(received, "first receive");
  received = receive();
  check("second batch, the first held");
  expect(received && offsetOf(8) == 8 * size && c.restarts == 0, "second batch, the first held");
  // A released, B held: C after B.
  release(8);
  received = receive();
  check("third batch, the second held");
  expect(received && offsetOf(16) == 16 * size && c.restarts == 0, "third batch, the second held");
  // All but the last released: still not empty.
  release(23);
  received = receive();
  check("fourth batch, one datagram held");
  expect(received && offsetOf(24) == 24 * size && c.restarts == 0, "fourth batch, one datagram held");
  // Everything released: E at the start again, received there (in place).
  release(32);
  const uint64_t inPlace = c.inPlace;
  received = receive();
  check("fifth batch, the ring empty");
  expect(received && offsetOf(32) == 0 && c.restarts == 1 && c.inPlace == inPlace + batch, "fifth batch, the ring empty");
  // E held: F after it.
  received = receive();
  check("sixth batch, the fifth held");
  expect(received && offsetOf(40) == batch * size && c.restarts == 1, "sixth batch, the fifth held");
  const uint32_t published = LoadAcquire(&control->descriptorTail);
  if (bad == 0 && (published != 48 || c.packets != 48 || c.wraps != 0 || ring.loop.pending() != 0)) {
    snprintf(text, sizeof(text), "published %u, packets %lu, wraps %lu, pending %zu (want 48, 48, 0, 0)", published,
             (unsigned long)c.packets, (unsigned long)c.wraps, ring.loop.pending());
    bad++;
  }
  ring.loop.Stop();
  Report(bad == 0, name, text);
}

}  // namespace

int main() {
  DirectWaitsForTheRing();
  LeftoversAreNotStranded();
  CoalescedPartsArePublished();
  ReceivedIntoTheRing(false);
  ReceivedIntoTheRing(true);
  ReceivedIntoTheRing(false, true);
  NearlyFullArmsFewer();
  MissedDirectReceiveIsTaken(false);
  MissedDirectReceiveIsTaken(true);
  EmptyRingStartsAgain();
  printf("%d passed, %d failed\n", 10 - failures, failures);
  return failures;
}
