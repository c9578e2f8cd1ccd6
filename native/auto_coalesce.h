// coalesceMs: 'auto', adaptive coalescing as a NIC's adaptive interrupt
// moderation does it: while datagrams arrive slower than kEnterPerMs a
// millisecond, each is received at once (no added latency); once they have
// arrived faster for kEnterSpanMs, every receive waits a window first, so a
// window's datagrams share one wakeup, until a window's rate falls below
// kExitPerMs. One per receiving side (the event loop's direct receive, the
// thread), each touched by its own thread only.
#pragma once

#include <stdint.h>
#include <time.h>

namespace udpring {

class AutoCoalesce {
 public:
  // Rates are datagrams per millisecond (32 = 32k/s). The light load the
  // benchmark's latency targets use (10k/s) stays well below kEnterPerMs, and
  // below kExitPerMs too: a burst that catches up after a stall (the sender's
  // or this side's) must not leave a steady 10k/s waiting in windows. Entry is
  // judged over kEnterSpanMs, so such a burst seldom starts them at all, and
  // if it does the first window at 10k/s ends them.
  static constexpr uint64_t kEnterPerMs = 32;
  static constexpr uint64_t kExitPerMs = 16;
  static constexpr uint64_t kEnterSpanMs = 4;

  // Datagrams this side received (any receive, including the ones between windows).
  void Add(uint64_t datagrams) { count_ += datagrams; }

  // Before the next wait: whether it should be a window. windowEnded: the
  // receive just done followed a window. While receiving at once a rate is
  // judged over at least kEnterSpanMs; while windowing over at least a
  // millisecond and only when a window ends: the event loop's windows last
  // anything from a few microseconds to a millisecond (libuv's clock), and
  // bursty traffic leaves some of them empty.
  bool Decide(bool windowEnded) {
    const uint64_t now = NowNs();
    const uint64_t elapsed = now - markNs_;
    if (windowing_ ? (!windowEnded || elapsed < kNsPerMs) : elapsed < kEnterSpanMs * kNsPerMs) return windowing_;
    windowing_ = count_ * kNsPerMs >= (windowing_ ? kExitPerMs : kEnterPerMs) * elapsed;
    markNs_ = now;
    count_ = 0;
    return windowing_;
  }

  // The socket turned readable after a wait: a window only if this side was
  // windowing and the rate, judged afresh, still holds (a spell long over
  // never brings its windows back). Receiving at once, this reads no clock:
  // whether to start windowing is decided after the receive.
  bool OnReadable() { return windowing_ && Decide(true); }

 private:
  static constexpr uint64_t kNsPerMs = 1000000;
  static uint64_t NowNs() {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
  }

  bool windowing_ = false;
  uint64_t markNs_ = 0;
  uint64_t count_ = 0;
};

}  // namespace udpring
