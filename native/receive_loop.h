// The receive loop: the thread that polls the socket and an eventfd, calls
// recvmmsg into a landing zone and hands each batch to the RingWriter; and the
// event loop's direct receive, which produces under the same lock while
// JavaScript waits. Free of Node-API: the JavaScript side is reached through
// one wake callback, so native tests drive this code directly. Defined in two
// files: receive_loop.cc (the thread: start, stop, poll, wait, wake, fail,
// direct receive) and receive_batch.cc (the landing zone, arming a batch,
// placing what it returns into the ring, drop accounting).
#pragma once

#include <pthread.h>
#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "auto_coalesce.h"
#include "ring_writer.h"
#include "sockopt_compat.h"

namespace udpring {

// What the socket was set up to report, and so what the loop reads and keeps.
struct ReceiveFeatures {
  bool timestamps = false;  // SO_TIMESTAMPNS: each datagram's kernel receive time, beside its descriptor
  bool gro = false;         // UDP_GRO: a receive may return a coalesced buffer, split into its datagrams
  bool packetInfo = false;  // IP_PKTINFO / IPV6_RECVPKTINFO and/or IP_RECVTOS / IPV6_RECVTCLASS, beside each descriptor
};

class ReceiveLoop {
 public:
  // Called from the receive thread when JavaScript must look: data for a
  // waiting consumer, or a failure. Must be thread-safe and not block.
  using WakeFn = void (*)(void* context);
  // Called with an ICMP error (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH) that a
  // receive met on a connected socket, from the thread or the event loop.
  using SocketErrorFn = void (*)(void* context, int err);

  ReceiveLoop() = default;
  ~ReceiveLoop();
  ReceiveLoop(const ReceiveLoop&) = delete;
  ReceiveLoop& operator=(const ReceiveLoop&) = delete;

  // Lays the ring out over `ring` and sets up the landing zone. Returns
  // nullptr, or what failed; *err is then an errno (0 for a bad argument) and
  // *syscall the call that failed.
  // `features` says which socket options are on (see ReceiveFeatures).
  const char* Init(uint8_t* ring, uint64_t ringLength, uint32_t maxMessageSize, uint32_t batchSize,
                   bool drop, const ReceiveFeatures& features, int* err, const char** syscall);

  // The bound socket to drain (borrowed: the caller closes it after Stop()),
  // and the eventfd the thread waits on beside it. Errors as for Init().
  const char* UseSocket(int fd, int* err, const char** syscall);

  // Starts the receive thread; returns 0 or pthread_create's error.
  int Start(WakeFn wake, SocketErrorFn socketError, void* context);

  // Asks the thread (or any WaitReadable) to stop, without waiting for it.
  void RequestStop();

  // Stops and joins the thread, places nothing more, frees the landing zone.
  // Idempotent.
  void Stop();

  // The event loop's receive, while JavaScript waits: returns datagrams
  // received (> 0), 0 if the queue was empty, -1 if the thread is on it (it
  // holds the producer lock, has not yet readied the ring, or must meet an error).
  int ReceiveDirect();

  // JavaScript released space while the thread waits for it; 0 or an errno.
  int NotifySpace();

  // While armed, the thread leaves a readable socket to the event loop and
  // checks every tick (graceMs, longer at light load) that the loop keeps up:
  // it reads the socket itself only when a datagram waits and the loop
  // received nothing for a tick.
  void SetDirectArmed(bool armed) { directArmed_.store(armed, std::memory_order_release); }

  int failureErrno() const { return failErrno_.load(std::memory_order_acquire); }
  const char* failureSyscall() const { return failSyscall_; }
  int controlFd() const { return controlFd_; }
  RingWriter& writer() { return writer_; }

  // ---- For native tests: the thread's own steps, run by hand. ----
  // Prefaults the ring and marks it ready for direct receives (the thread's first step).
  void Prepare();
  // Waits until the socket is readable or datagrams left in the landing zone
  // can be placed. Called with producerLock() held; false when closing or failed.
  bool WaitReadable();
  pthread_mutex_t* producerLock() { return &producer_; }
  size_t pending() const { return pendingCount_; }
  // Messages the last receive pointed at ring space (the rest went to their landing slots).
  size_t armedInRing() const { return armedInRing_; }

  int graceMs = 1;
  // > 0: when the socket turns readable after a quiet spell, wait this long
  // before receiving, so the spell's datagrams share one wakeup (coalesceMs).
  uint32_t coalesceUs = 0;
  // coalesceMs: 'auto': the thread waits a window of coalesceUs only while
  // datagrams arrive fast (auto_coalesce.h); it receives at once otherwise.
  bool coalesceAuto = false;

 private:
  static void* ThreadMain(void* self);
  void Run();
  void RunLocked();
  void Absorb(int received, bool direct);
  void ReadControlMessages(int received);
  void CountDiscarded();
  void Publish(bool direct);
  size_t PlaceFrom(size_t first, size_t count);
  uint64_t DatagramsIn(size_t message, uint32_t from) const;
  void WaitForSpace();
  void Fail(int err, const char* syscall);
  void CountWakeup();
  bool Coalesce();
  bool WindowNext(bool fixedWindow);
  void StartWatch();
  void Wake();
  void ReportSocketError(int err);
  void NoteKernelDrops(uint32_t socketDrops);
  void RefreshKernelDrops();
  void ResetMessages(size_t count);
  void ArmMessages(bool intoRing);
  void Evacuate(size_t from, size_t end);
  void ChooseStride(int received);
  void FreeLanding();

  RingWriter writer_;
  int fd_ = -1;
  int controlFd_ = -1;  // eventfd: close requested, space freed, or leftovers to place
  uint32_t maxMessageSize_ = 0;
  uint32_t batchSize_ = 0;
  bool drop_ = false;
  WakeFn wake_ = nullptr;
  SocketErrorFn socketError_ = nullptr;
  void* wakeContext_ = nullptr;

  pthread_t thread_{};
  bool threadStarted_ = false;
  std::atomic<bool> closing_{false};
  // Set by the thread once the ring is prefaulted: until then the event loop
  // must not receive, or the prefault could write over what it published.
  std::atomic<bool> ready_{false};
  std::atomic<bool> directArmed_{false};

  // Producer state, touched only with producer_ held: by the receive thread,
  // or by the event loop's thread in ReceiveDirect() (which only try-locks).
  pthread_mutex_t producer_ = PTHREAD_MUTEX_INITIALIZER;
  uint32_t lastSocketDrops_ = 0;
  size_t pendingFirst_ = 0, pendingCount_ = 0;
  uint32_t pendingOffset_ = 0;  // bytes of message pendingFirst_ already placed (a coalesced buffer placed in part)
  bool memInfoWorks_ = true;
  bool dropsUnchecked_ = false;  // datagrams arrived since the drop counter was last read
  bool watching_ = false;        // see WaitReadable: the event loop receives, the thread only watches
  uint64_t watchedDirect_ = 0;   // directBatches at the last watch tick
  uint64_t watchedPackets_ = 0;  // packets at the last watch tick
  int watchMs_ = 1;              // the watch's current tick
  // The thread waits with no timeout: the event loop's next direct receive wakes it.
  std::atomic<bool> sleeping_{false};
  // A direct receive found the producer lock taken and left the socket to
  // the thread; the thread clears it and receives before its next wait.
  std::atomic<bool> directMissed_{false};
  // The thread is in WaitReadable, about to wait or waiting: a missed direct
  // receive must signal the eventfd to end the wait.
  std::atomic<bool> threadPolling_{false};
  static constexpr uint64_t kWatchDatagrams = 128;
  static constexpr int kMaxWatchMs = 8;
  AutoCoalesce auto_;            // coalesceAuto: the thread's own rate
  bool windowed_ = false;        // the receives since the last decision followed a window (Coalesce)
  uint64_t threadWakeups_ = 0;   // returns from the thread's waits (control: threadWakeups)
  static constexpr int kQuietMs = 10;
  // Below this, a datagram's copy costs less than the ring space receiving
  // into costs (a second iovec, moves past shorter datagrams): land it.
  static constexpr uint32_t kRingReceiveMinimum = 512;

  // Landing zone: recvmmsg writes here, then datagrams are packed into the
  // ring. When datagrams are large, each message's first `stride_` bytes go
  // straight into ring space (RingWriter::Reserve) and only a longer one's tail
  // lands here (at its slot + stride_), so most are placed without a copy.
  uint8_t* landing_ = nullptr;
  size_t landingSlot_ = 0;  // bytes from one landing slot to the next
  struct mmsghdr* messages_ = nullptr;
  struct iovec* iovecs_ = nullptr;  // two per message: ring space (or the whole landing slot), then the tail
  uint32_t* inRing_ = nullptr;      // per message: bytes it was given in ring space; 0: landed in its slot
  uint32_t stride_ = 0;             // ring bytes per message for the next receive; 0: the landing zone alone
  size_t armedInRing_ = 0;          // messages the last ArmMessages pointed at ring space
  struct sockaddr_storage* names_ = nullptr;
  uint8_t* controls_ = nullptr;
  size_t controlSpace_ = 0;
  Timestamp* received_ = nullptr;  // each landed datagram's SO_TIMESTAMPNS, when asked for
  uint32_t* segmentSize_ = nullptr;  // each landed buffer's UDP_GRO segment size; 0: one datagram
  PacketInfo* packetInfo_ = nullptr;  // each landed datagram's destination and TOS, when asked for
  uint32_t landingSize_ = 0;  // bytes each receive may land: maxMessageSize, or 65535 with GRO
  bool landingOnly_ = false;  // UDP_RING_INTERNAL_LANDING_ONLY=1: never into ring space, no restart (the benchmark's "before")

  std::atomic<int> failErrno_{0};
  const char* failSyscall_ = nullptr;
};

}  // namespace udpring
