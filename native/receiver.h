// A bound UDP socket and the thread that drains it into the ring.
#pragma once

#include <napi.h>
#include <pthread.h>
#include <sys/socket.h>
#include <uv.h>

#include <atomic>
#include <cstdint>

#include "ring.h"

namespace udpring {

struct WakeContext;
void CallWake(Napi::Env env, Napi::Function wake, WakeContext* context, void* data);
using WakeFunction = Napi::TypedThreadSafeFunction<WakeContext, void, CallWake>;

class Receiver : public Napi::ObjectWrap<Receiver> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Receiver(const Napi::CallbackInfo& info);
  ~Receiver() override;

 private:
  enum Overflow : uint32_t { kBlock = 0, kDrop = 1 };

  // JavaScript methods.
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value NotifySpace(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value SocketInfo(const Napi::CallbackInfo& info);
  Napi::Value SetOption(const Napi::CallbackInfo& info);
  Napi::Value GetOption(const Napi::CallbackInfo& info);
  Napi::Value SendTo(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value WatchErrors(const Napi::CallbackInfo& info);
  // An ICMP error the socket reported to a receive (a connected socket only): to JavaScript, if it listens.
  void ReportSocketError(int err);
  static Napi::Object SocketOptionNames(Napi::Env env);
  Napi::Value Failure(const Napi::CallbackInfo& info);
  Napi::Value WaitDirect(const Napi::CallbackInfo& info);
  Napi::Value StopDirect(const Napi::CallbackInfo& info);

  // The event loop's own receive, while JavaScript waits (see receiver.cc).
  int ReceiveDirect();
  void StopPoll();
  void WakeDirect();
  static void OnPollable(uv_poll_t* handle, int status, int events);

  // The one close: shared by close(), the finalizer and the cleanup hook.
  void Shutdown();
  static void CleanupHook(void* self);

  bool SetUpSocket(Napi::Env env, Napi::Object options);
  bool SetUpLanding(Napi::Env env);

  // Receive thread.
  static void* ThreadMain(void* self);
  void Run();
  void RunLocked();
  void Prefault();
  bool WaitReadable(pthread_mutex_t* lock);
  void Absorb(int received, bool direct);
  void WaitForSpace();
  void Fail(int err, const char* syscall);
  size_t PlaceFrom(size_t first, size_t count);
  bool Place(const struct mmsghdr& message, const uint8_t* data);
  void Publish(bool direct);
  void NoteKernelDrops(uint32_t socketDrops);
  void RefreshKernelDrops();
  void ResetMessages(size_t count);

  Napi::Env env_;
  bool open_ = false;
  bool closed_ = false;
  bool hookAdded_ = false;
  bool tsfnLive_ = false;
  bool threadStarted_ = false;

  int fd_ = -1;
  int controlFd_ = -1;  // eventfd: close requested, or space freed
  pthread_t thread_{};
  std::atomic<bool> closing_{false};
  WakeFunction wake_;
  Napi::ObjectReference ringRef_;  // keeps the ring's memory alive while the thread runs

  // Ring (memory owned by the JavaScript ArrayBuffer).
  uint8_t* base_ = nullptr;
  Control* control_ = nullptr;
  Descriptor* descriptors_ = nullptr;
  uint8_t* payload_ = nullptr;
  Layout layout_{};
  uint32_t maxMessageSize_ = 0;
  uint32_t batchSize_ = 0;
  Overflow overflow_ = kBlock;

  // Producer state, touched only with producer_ held: by the receive thread,
  // or by the event loop's thread in ReceiveDirect().
  pthread_mutex_t producer_ = PTHREAD_MUTEX_INITIALIZER;
  uint64_t descriptorTail_ = 0;
  uint64_t payloadTail_ = 0;
  uint64_t cachedDescriptorHead_ = 0;
  uint64_t cachedPayloadHead_ = 0;
  uint64_t packets_ = 0, bytes_ = 0, batches_ = 0, ringDrops_ = 0, truncated_ = 0;
  uint64_t kernelDrops_ = 0, highWater_ = 0, wakeups_ = 0, stalls_ = 0, receiveCalls_ = 0, directBatches_ = 0;
  uint32_t lastSocketDrops_ = 0;
  size_t pendingFirst_ = 0, pendingCount_ = 0;
  bool memInfoWorks_ = true;
  bool dropsUnchecked_ = false;  // datagrams arrived since the drop counter was last read
  static constexpr int kQuietMs = 10;

  // Direct receive: while JavaScript waits, the event loop polls the socket
  // too and receives into the ring itself, so a datagram reaches JavaScript
  // with one wakeup instead of two. The thread, seeing directArmed_, leaves the
  // socket to it for up to kGraceMs, and reads as ever once the grace is over.
  uv_poll_t* poll_ = nullptr;
  bool pollActive_ = false;
  bool drained_ = false;
  bool refed_ = true;
  std::atomic<bool> directArmed_{false};
  Napi::FunctionReference wakeRef_;
  napi_async_context asyncContext_ = nullptr;
  static constexpr int kGraceMs = 1;

  // Landing zone: recvmmsg writes here, then datagrams are packed into the ring.
  uint8_t* landing_ = nullptr;
  struct mmsghdr* messages_ = nullptr;
  struct iovec* iovecs_ = nullptr;
  struct sockaddr_storage* names_ = nullptr;
  uint8_t* controls_ = nullptr;
  size_t controlSpace_ = 0;

  // Set once by watchErrors() (the dgram facade, for a connected socket), released after the thread is joined.
  std::atomic<Napi::ThreadSafeFunction*> socketErrors_{nullptr};
  // Failure of the thread, read by JavaScript after it is woken.
  std::atomic<int> failErrno_{0};
  const char* failSyscall_ = nullptr;

  // Local address, for localAddress().
  struct sockaddr_storage local_ {};
  uint32_t recvBufferGranted_ = 0;
  bool forced_ = false;
};

}  // namespace udpring
