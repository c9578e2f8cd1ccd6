// The receive thread half of ReceiveLoop (receive_loop.h): start and stop,
// the thread's loop (Run, WaitReadable, WaitForSpace), the watch that bounds a
// busy event loop's hold on the socket, the eventfd wake, failure, kernel-drop
// refresh, and the event loop's direct receive under the producer lock. How a
// batch is armed and placed into the ring is in receive_batch.cc.
#include "receive_loop.h"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace udpring {

namespace {
void Signal(int fd) {
  uint64_t one = 1;
  ssize_t written;
  do {
    written = write(fd, &one, sizeof(one));
  } while (written < 0 && errno == EINTR);
}
}  // namespace

ReceiveLoop::~ReceiveLoop() { Stop(); }

const char* ReceiveLoop::UseSocket(int fd, int* err, const char** syscall) {
  fd_ = fd;
  controlFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (controlFd_ < 0) {
    *err = errno;
    *syscall = "eventfd";
    return "eventfd failed";
  }
  return nullptr;
}

int ReceiveLoop::Start(WakeFn wake, SocketErrorFn socketError, void* context) {
  wake_ = wake;
  socketError_ = socketError;
  wakeContext_ = context;
  // The thread takes no signals (they belong to the event loop's thread) and
  // needs little stack: it only polls, receives and copies.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, 256 * 1024);
  int err = pthread_create(&thread_, &attributes, ThreadMain, this);
  pthread_attr_destroy(&attributes);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (err != 0) return err;
  pthread_setname_np(thread_, "udp-ring");
  threadStarted_ = true;
  return 0;
}

void ReceiveLoop::RequestStop() {
  closing_.store(true, std::memory_order_release);
  // An eventfd write of 1 cannot fail short of counter overflow.
  if (controlFd_ >= 0) Signal(controlFd_);
}

void ReceiveLoop::Stop() {
  RequestStop();
  if (threadStarted_) {
    pthread_join(thread_, nullptr);
    threadStarted_ = false;
    CountDiscarded();
  }
  if (controlFd_ >= 0) close(controlFd_);
  controlFd_ = -1;
  FreeLanding();
}

int ReceiveLoop::NotifySpace() {
  if (controlFd_ < 0) return 0;
  uint64_t one = 1;
  if (write(controlFd_, &one, sizeof(one)) < 0 && errno != EAGAIN) return errno;
  return 0;
}

void ReceiveLoop::Wake() {
  if (wake_ != nullptr) wake_(wakeContext_);
}

void ReceiveLoop::ReportSocketError(int err) {
  if (socketError_ != nullptr) socketError_(wakeContext_, err);
}

void ReceiveLoop::Fail(int err, const char* syscall) {
  failSyscall_ = syscall;
  failErrno_.store(err, std::memory_order_release);
  // Wake JavaScript whether or not it waits: the next next() must reject.
  StoreSeqCst(&writer_.control()->consumerWaiting, 0u);
  Wake();
}

// ---- Direct receive, on the event loop's thread ----------------------------
//
// The thread's path costs two wakeups per quiet-time datagram: the kernel
// wakes the thread, the thread wakes the event loop. While JavaScript waits
// (the ring is empty and the loop idle), the loop can take the datagram
// itself, as node:dgram would. Both paths produce under producer_, so the ring
// still has one producer at a time. The thread keeps polling the socket
// throughout, so a loop held up by other work never leaves the socket unread
// for more than two ticks of graceMs.
int ReceiveLoop::ReceiveDirect() {
  if (fd_ < 0 || closing_.load(std::memory_order_acquire) || !ready_.load(std::memory_order_acquire)) return -1;
  if (pthread_mutex_trylock(&producer_) != 0) {
    // The thread holds the lock: receiving, or only between two of its waits
    // (a watch tick). The caller stops polling and leaves the socket to the
    // thread, so the thread must look at it now, not a tick later: say so,
    // and wake it if it may already be on its way into a wait. With both
    // sides seq_cst, either the thread sees the flag before it waits or this
    // side sees it waiting (see WaitReadable).
    directMissed_.store(true, std::memory_order_seq_cst);
    if (threadPolling_.load(std::memory_order_seq_cst)) Signal(controlFd_);
    return -1;
  }
  int result = -1;
  bool failed = false;
  bool wakeThread = false;
  if (pendingCount_ == 0) {
    ArmMessages(true);
    int n;
    do {
      n = recvmmsg(fd_, messages_, batchSize_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    writer_.counters.receiveCalls++;
    StoreRelaxed(&writer_.control()->receiveCalls, writer_.counters.receiveCalls);
    if (n > 0) {
      writer_.counters.directBatches++;
      Absorb(n, true);
      result = n;
      // The thread sleeps on the socket and did not see this datagram (the
      // loop took it first): wake it once, to watch and read the drops later.
      wakeThread = sleeping_.exchange(false, std::memory_order_seq_cst);
    } else {
      result = 0;
      // Anything but an empty queue is the thread's to meet and report: wake it.
      bool icmp = n < 0 && (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH);
      if (icmp) ReportSocketError(err);
      failed = n < 0 && !icmp && err != EAGAIN && err != EWOULDBLOCK;
      if (failed) result = -1;
    }
  }
  // Leftovers that did not fit are the thread's to place as space frees.
  bool threadNeeded = failed || pendingCount_ > 0 || wakeThread;
  pthread_mutex_unlock(&producer_);
  if (threadNeeded) Signal(controlFd_);
  return result;
}

// ---- The receive thread ---------------------------------------------------

void* ReceiveLoop::ThreadMain(void* self) {
  static_cast<ReceiveLoop*>(self)->Run();
  return nullptr;
}

void ReceiveLoop::Prepare() {
  writer_.Prefault(closing_);
  ready_.store(true, std::memory_order_release);
}

void ReceiveLoop::Run() {
  // Held throughout, but for the waits in WaitReadable(): the event loop's
  // direct receive only ever try-locks, so it never waits for the thread.
  pthread_mutex_lock(&producer_);
  Prepare();
  RunLocked();
  pthread_mutex_unlock(&producer_);
}

void ReceiveLoop::RunLocked() {
  while (!closing_.load(std::memory_order_acquire)) {
    if (pendingCount_ > 0) {
      // 'block', or the event loop's leftovers: datagrams in the landing zone wait for ring space.
      const uint64_t before = writer_.counters.packets;
      size_t placed = PlaceFrom(pendingFirst_, pendingCount_);
      pendingFirst_ += placed;
      pendingCount_ -= placed;
      // Segments of a coalesced buffer may be placed while the buffer itself is not yet consumed.
      if (writer_.counters.packets != before) Publish(false);
      if (pendingCount_ > 0) {
        WaitForSpace();
        continue;
      }
      ResetMessages(batchSize_);
    }
    ArmMessages(true);
    int n = recvmmsg(fd_, messages_, batchSize_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    writer_.counters.receiveCalls++;
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        StoreRelaxed(&writer_.control()->receiveCalls, writer_.counters.receiveCalls);
        // Nothing came: with 'auto', windows go on while the rate holds;
        // otherwise the socket is polled.
        if (WindowNext(false) ? !Coalesce() : !WaitReadable()) return;
        continue;
      }
      // ICMP errors reported on the socket are not ours to stop for (dgram reports them, and so does the facade).
      if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH) {
        ReportSocketError(err);
        continue;
      }
      Fail(err, "recvmmsg");
      return;
    }
    if (n == 0) continue;
    Absorb(n, false);
    if (coalesceAuto) auto_.Add(static_cast<uint64_t>(n));
    // Fewer than asked for means the queue was empty a moment ago: wait in
    // poll rather than spend a recvmmsg on finding EAGAIN. Coalescing, wait
    // the window instead and receive again: under steady traffic that is one
    // thread wakeup per window (a receive that finds nothing goes to poll).
    // coalesceMs 'auto' windows only while the rate is high.
    // (While the event loop polls for a waiting consumer, it coalesces itself: the thread watches.)
    if (static_cast<unsigned>(n) < batchSize_ && pendingCount_ == 0) {
      const bool coalesce = WindowNext(true);
      if (coalesce ? !Coalesce() : !WaitReadable()) return;
      // The event loop began polling during the window: the socket is its to read.
      if (coalesce && directArmed_.load(std::memory_order_acquire) && !WaitReadable()) return;
    }
  }
}

void ReceiveLoop::NoteKernelDrops(uint32_t socketDrops) {
  // The socket's drop counter is a u32 that wraps; keep a 64-bit total.
  uint32_t delta = socketDrops - lastSocketDrops_;
  if (delta != 0 && delta < (1u << 31)) {
    writer_.counters.kernelDrops += delta;
    lastSocketDrops_ = socketDrops;
  }
}

void ReceiveLoop::RefreshKernelDrops() {
  // SO_RXQ_OVFL only reports drops with the next datagram received; once the
  // queue is empty, SO_MEMINFO reads the same counter now.
  if (!memInfoWorks_) return;
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof(meminfo);
  if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0 || length <= SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    memInfoWorks_ = false;
    return;
  }
  uint64_t before = writer_.counters.kernelDrops;
  NoteKernelDrops(meminfo[SK_MEMINFO_DROPS]);
  if (writer_.counters.kernelDrops != before) {
    StoreRelaxed(&writer_.control()->kernelDrops, writer_.counters.kernelDrops);
  }
}

void ReceiveLoop::StartWatch() {
  watching_ = true;
  watchedDirect_ = writer_.counters.directBatches;
  watchedPackets_ = writer_.counters.packets;
  watchMs_ = graceMs;
}

void ReceiveLoop::CountWakeup() {
  threadWakeups_++;
  StoreRelaxed(&writer_.control()->threadWakeups, threadWakeups_);
}

// Called and returns with producer_ held; releases it while it waits.
bool ReceiveLoop::WaitReadable() {
  for (;;) {
    // A direct receive that found the lock taken left the socket to this
    // thread (ReceiveDirect): receive before waiting, whatever the watch says.
    threadPolling_.store(true, std::memory_order_seq_cst);
    if (directMissed_.exchange(false, std::memory_order_seq_cst)) {
      threadPolling_.store(false, std::memory_order_relaxed);
      return true;
    }
    // While the event loop takes the datagrams itself (it polls the socket for
    // a waiting consumer), the thread does not wake for each one: it watches
    // the eventfd and, every tick, whether the loop keeps up. It takes the
    // socket back only when a datagram waits and the loop received nothing
    // for a whole tick (it is held up); a tick with no datagram and no direct
    // receive ends the watch, and the thread sleeps on the socket again.
    // A tick is graceMs at first, then as long as about kWatchDatagrams take
    // to arrive at the rate just seen (at most kMaxWatchMs): a held-up loop
    // leaves about that many datagrams in the kernel queue before the thread
    // takes over, and a light load costs the thread few wakeups per second.
    const bool watch = watching_ && directArmed_.load(std::memory_order_acquire);
    struct pollfd fds[2] = {{controlFd_, POLLIN, 0}, {fd_, POLLIN, 0}};
    // SO_RXQ_OVFL reports drops only with the next datagram; when traffic
    // stops, read the socket's drop counter once after a short quiet spell.
    int timeout = watch ? watchMs_ : dropsUnchecked_ ? kQuietMs : -1;
    // Asleep for good: a direct receive must wake the thread (once) to watch,
    // or the drops of a spell the event loop took would never be read.
    if (timeout < 0) sleeping_.store(true, std::memory_order_seq_cst);
    pthread_mutex_unlock(&producer_);
    int r = poll(fds, watch ? 1 : 2, timeout);
    int err = errno;
    pthread_mutex_lock(&producer_);
    threadPolling_.store(false, std::memory_order_relaxed);
    sleeping_.store(false, std::memory_order_relaxed);
    CountWakeup();
    if (r < 0) {
      if (err == EINTR) continue;
      Fail(err, "poll");
      return false;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t value;
      if (read(controlFd_, &value, sizeof(value)) < 0 && errno != EAGAIN) {
        Fail(errno, "read");
        return false;
      }
      if (closing_.load(std::memory_order_acquire)) return false;
      // The event loop left datagrams it could not place: place them now,
      // whether or not more traffic comes.
      if (pendingCount_ > 0) return true;
      // Or it received while the thread slept: watch from now on.
      if (!watch && directArmed_.load(std::memory_order_acquire)) {
        StartWatch();
        continue;
      }
    }
    if (watch) {
      if (r > 0) continue;  // the eventfd, not the tick
      const bool progressed = writer_.counters.directBatches != watchedDirect_;
      watchedDirect_ = writer_.counters.directBatches;
      const uint64_t arrived = writer_.counters.packets - watchedPackets_;
      watchedPackets_ = writer_.counters.packets;
      const uint64_t next = arrived == 0 ? kMaxWatchMs : kWatchDatagrams * static_cast<uint64_t>(watchMs_) / arrived;
      // Never below graceMs, which may exceed kMaxWatchMs (a coalescing window).
      watchMs_ = std::max(graceMs, static_cast<int>(std::min<uint64_t>(next, kMaxWatchMs)));
      if (progressed) continue;
      struct pollfd socket = {fd_, POLLIN, 0};
      if (poll(&socket, 1, 0) > 0) return true;  // waiting, and nobody took anything for a tick: the loop is held up
      watching_ = false;
      if (dropsUnchecked_) {
        RefreshKernelDrops();
        dropsUnchecked_ = false;
      }
      continue;
    }
    if (r == 0) {
      RefreshKernelDrops();
      dropsUnchecked_ = false;
      continue;
    }
    if (fds[1].revents) {
      // The event loop polls the socket for a waiting consumer: leave the
      // datagram to it and watch from now on (the first tick is its grace).
      if (directArmed_.load(std::memory_order_acquire)) {
        StartWatch();
        continue;
      }
      // ('auto': the rate is judged afresh, so windows of a spell long over do not come back.)
      return coalesceUs == 0 || (coalesceAuto && !auto_.OnReadable()) || Coalesce();
    }
  }
}

// Whether the thread's next wait is a coalescing window rather than the
// poll: never while the event loop polls the socket (it coalesces itself);
// with 'auto' while the rate the thread received at holds; with a fixed
// window, as the caller says (after a receive: fixedWindow true).
bool ReceiveLoop::WindowNext(bool fixedWindow) {
  bool window = coalesceUs > 0 && !directArmed_.load(std::memory_order_acquire) &&
                (coalesceAuto ? auto_.Decide(windowed_) : fixedWindow);
  windowed_ = false;
  return window;
}

// The socket turned readable after a quiet spell: wait coalesceUs before
// receiving, so that what arrives meanwhile shares this wakeup (and one of
// JavaScript). Only close ends the wait early. Called and returns with
// producer_ held; false when closing or failed.
bool ReceiveLoop::Coalesce() {
  struct timespec now, until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_nsec += static_cast<long>(coalesceUs % 1000000) * 1000;
  until.tv_sec += coalesceUs / 1000000 + until.tv_nsec / 1000000000;
  until.tv_nsec %= 1000000000;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = (until.tv_sec - now.tv_sec) * 1000000000LL + (until.tv_nsec - now.tv_nsec);
    if (left <= 0) {
      windowed_ = true;
      AddRelaxed(&writer_.control()->windows, uint64_t{1});
      return true;
    }
    struct timespec timeout = {static_cast<time_t>(left / 1000000000LL), static_cast<long>(left % 1000000000LL)};
    struct pollfd control = {controlFd_, POLLIN, 0};
    pthread_mutex_unlock(&producer_);
    int r = ppoll(&control, 1, &timeout, nullptr);
    int err = errno;
    pthread_mutex_lock(&producer_);
    CountWakeup();
    if (r < 0) {
      if (err == EINTR) continue;
      Fail(err, "ppoll");
      return false;
    }
    if (r > 0) {
      uint64_t value;
      if (read(controlFd_, &value, sizeof(value)) < 0 && errno != EAGAIN) {
        Fail(errno, "read");
        return false;
      }
      if (closing_.load(std::memory_order_acquire)) return false;
    }
  }
}

void ReceiveLoop::WaitForSpace() {
  bool moved = writer_.AnnounceWaitForSpace();
  while (!moved && !closing_.load(std::memory_order_acquire)) {
    struct pollfd fds[1] = {{controlFd_, POLLIN, 0}};
    // While the ring is full the socket is not read, so SO_RXQ_OVFL reports
    // nothing: read the kernel's drop counter every quiet spell instead, so
    // kernelDrops stays live while the consumer stalls.
    int r = poll(fds, 1, kQuietMs);
    CountWakeup();
    if (r < 0) {
      if (errno == EINTR) continue;
      Fail(errno, "poll");
      closing_.store(true, std::memory_order_release);
      break;
    }
    if (r == 0) {
      RefreshKernelDrops();
    } else {
      uint64_t value;
      if (read(controlFd_, &value, sizeof(value)) < 0 && errno != EAGAIN) {
        Fail(errno, "read");
        closing_.store(true, std::memory_order_release);
        break;
      }
    }
    moved = writer_.ConsumerMoved();
  }
  writer_.EndWaitForSpace();
}

}  // namespace udpring
