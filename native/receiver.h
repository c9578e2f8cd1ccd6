// A bound UDP socket and the thread that drains it into the ring: the
// JavaScript-facing object. Its methods are defined by job in receiver.cc
// (lifecycle, open's conversion), receiver_socket.cc (socket options, send,
// connect, ICMP errors) and direct_receive.cc (the event loop's receive).
#pragma once

#include <napi.h>
#include <sys/socket.h>
#include <uv.h>

#include <atomic>
#include <cstdint>

#include "receive_loop.h"

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

  // The event loop's own receive, while JavaScript waits (direct_receive.cc).
  void StopPoll();
  void ClosePoll();
  void RefPoll(bool refed);
  void WakeDirect();
  static void OnPollable(uv_poll_t* handle, int status, int events);
  static void OnWindowEnd(uv_timer_t* handle);
  void ReceiveAndWake(bool fromWindow);
  bool StartPoll();
  bool StartWindow();
  static void WakeFromThread(void* self);

  // The one close: shared by close(), the finalizer and the cleanup hook.
  void Shutdown();
  static void CleanupHook(void* self);

  // Reads open()'s socket options; the work is SetUpReceiveSocket (socket_setup.h).
  bool SetUpSocket(Napi::Env env, Napi::Object options);

  Napi::Env env_;
  bool open_ = false;
  bool closed_ = false;
  bool hookAdded_ = false;
  bool tsfnLive_ = false;
  bool loopStarted_ = false;

  int fd_ = -1;
  ReceiveLoop loop_;  // the thread, the landing zone and the ring's producer
  WakeFunction wake_;
  Napi::ObjectReference ringRef_;  // keeps the ring's memory alive while the thread runs

  // Direct receive: while JavaScript waits, the event loop polls the socket
  // too and receives into the ring itself, so a datagram reaches JavaScript
  // with one wakeup instead of two (see receive_loop.h).
  uv_poll_t* poll_ = nullptr;
  bool pollActive_ = false;
  bool drained_ = false;
  // Inside WakeDirect() from the poll: whether JavaScript waited again (the poll stays on).
  bool waking_ = false;
  bool rearmed_ = false;
  bool refed_ = true;
  // options.coalesceMs (loop_.coalesceUs) on the event loop: the socket's
  // first readable event starts a window (a timer) instead of a receive; the
  // receive runs when it ends, and while traffic goes on the next window
  // follows without the poll.
  uv_timer_t* window_ = nullptr;
  bool windowActive_ = false;
  // coalesceMs 'auto' (loop_.coalesceAuto): the event loop's own rate decides
  // whether a window or the poll comes next (auto_coalesce.h).
  AutoCoalesce loopAuto_;
  uint32_t batchSize_ = 0;
  Napi::FunctionReference wakeRef_;
  napi_async_context asyncContext_ = nullptr;
  // Set once by watchErrors() (the dgram facade, for a connected socket), released after the thread is joined.
  std::atomic<Napi::ThreadSafeFunction*> socketErrors_{nullptr};
  static void SocketErrorFromLoop(void* self, int err);

  // Local address, for localAddress().
  struct sockaddr_storage local_ {};
  uint32_t recvBufferGranted_ = 0;
  bool forced_ = false;
};

}  // namespace udpring
