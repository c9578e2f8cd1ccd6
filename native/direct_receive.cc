// The event loop's direct receive: while JavaScript waits, the event loop
// polls the socket with libuv and receives into the ring itself (under the
// same producer lock as the thread, through ReceiveLoop::ReceiveDirect), then
// runs the wake function as a callback. Also libuv's lookup at run time, and
// the poll handle's ref, unref and close for the receiver (receiver.cc).
#include <dlfcn.h>
#include <pthread.h>

#include "receiver.h"
#include "socket.h"

namespace udpring {

// libuv, found at run time in the process that loaded us (Node exports it),
// so the addon links against Node-API alone and loads where libuv is absent;
// there the event loop never receives and the thread does it all.
namespace {
struct Libuv {
  int (*pollInitSocket)(uv_loop_t*, uv_poll_t*, uv_os_sock_t);
  int (*pollStart)(uv_poll_t*, int, uv_poll_cb);
  int (*pollStop)(uv_poll_t*);
  void (*close)(uv_handle_t*, uv_close_cb);
  void (*ref)(uv_handle_t*);
  void (*unref)(uv_handle_t*);
  int (*timerInit)(uv_loop_t*, uv_timer_t*);
  int (*timerStart)(uv_timer_t*, uv_timer_cb, uint64_t, uint64_t);
  int (*timerStop)(uv_timer_t*);
};
Libuv libuv;
bool libuvFound = false;
pthread_once_t libuvOnce = PTHREAD_ONCE_INIT;

template <typename F>
bool Find(F* slot, const char* name) {
  *slot = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
  return *slot != nullptr;
}

void FindLibuv() {
  libuvFound = Find(&libuv.pollInitSocket, "uv_poll_init_socket") && Find(&libuv.pollStart, "uv_poll_start") &&
               Find(&libuv.pollStop, "uv_poll_stop") && Find(&libuv.close, "uv_close") &&
               Find(&libuv.ref, "uv_ref") && Find(&libuv.unref, "uv_unref") && Find(&libuv.timerInit, "uv_timer_init") &&
               Find(&libuv.timerStart, "uv_timer_start") && Find(&libuv.timerStop, "uv_timer_stop");
}

bool HaveLibuv() {
  pthread_once(&libuvOnce, FindLibuv);
  return libuvFound;
}

// A new libuv handle made by init(handle), pointing back at its receiver and
// unreferenced when the receiver is; nullptr, with the error thrown to
// JavaScript, when libuv refuses it.
template <typename Handle, typename Init>
Handle* NewHandle(Napi::Env env, Receiver* owner, bool refed, const char* syscall, Init init) {
  auto* handle = new Handle();
  int err = init(handle);
  if (err != 0) {
    delete handle;
    ThrowSystemError(env, -err, syscall);
    return nullptr;
  }
  handle->data = owner;
  if (!refed) libuv.unref(reinterpret_cast<uv_handle_t*>(handle));
  return handle;
}
}  // namespace

// ---- Direct receive, on the event loop's thread ----------------------------
//
// The thread's path costs two wakeups per quiet-time datagram: the kernel
// wakes the thread, the thread wakes the event loop. While JavaScript waits
// (the ring is empty and the loop idle), the loop can take the datagram
// itself, as node:dgram would: waitDirect() tries one recvmmsg at once, and if
// the queue is empty polls the socket with libuv until it is readable. Both
// paths produce under producer_, so the ring still has one producer at a time.
// The thread keeps polling the socket throughout, so a loop held up by other
// work never leaves the socket unread for more than two ticks of graceMs.

// waitDirect(): called by JavaScript when it is about to wait, with
// consumerWaiting already set. Receives at once if anything is queued
// (returns the count); otherwise polls the socket and returns 0.
// Returns -1 where libuv cannot be found: JavaScript stops asking.
Napi::Value Receiver::WaitDirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!HaveLibuv()) return Napi::Number::New(env, -1);
  if (closed_ || !loopStarted_) return Napi::Number::New(env, 0);
  // Just after a direct receive that emptied the queue, skip the recvmmsg
  // that would most likely find EAGAIN: anything since makes the poll fire.
  int n = drained_ ? 0 : loop_.ReceiveDirect();
  drained_ = false;
  if (n > 0) {
    loopAuto_.Add(static_cast<uint64_t>(n));
    return Napi::Number::New(env, n);
  }
  if (n < 0) return Napi::Number::New(env, 0);  // the thread is on it
  if (waking_) {
    // Waiting again inside the wake the poll delivered: the poll is still
    // running, and stays so (no epoll_ctl pair per batch).
    rearmed_ = true;
    return Napi::Number::New(env, 0);
  }
  // A window already running receives when it ends.
  if (windowActive_) return Napi::Number::New(env, 0);
  uv_loop_t* loop = nullptr;
  if (poll_ == nullptr && (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)) {
    Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (poll_ == nullptr) {
    poll_ = NewHandle<uv_poll_t>(env, this, refed_, "uv_poll_init",
                                 [&](uv_poll_t* handle) { return libuv.pollInitSocket(loop, handle, fd_); });
    if (poll_ == nullptr) return env.Undefined();
  }
  if (loop_.coalesceUs > 0 && window_ == nullptr) {
    window_ = NewHandle<uv_timer_t>(env, this, refed_, "uv_timer_init",
                                    [&](uv_timer_t* handle) { return libuv.timerInit(loop, handle); });
    if (window_ == nullptr) return env.Undefined();
  }
  if (!pollActive_) {
    int err = libuv.pollStart(poll_, UV_READABLE, OnPollable);
    if (err != 0) {
      ThrowSystemError(env, -err, "uv_poll_start");
      return env.Undefined();
    }
    pollActive_ = true;
    loop_.SetDirectArmed(true);
  }
  return Napi::Number::New(env, 0);
}

// stopDirect(): JavaScript stopped waiting (woken by the thread, or closed).
// Inside a wake from the poll, only noted: the poll stops when the wake ends
// unless JavaScript waits again before that.
Napi::Value Receiver::StopDirect(const Napi::CallbackInfo& info) {
  if (waking_) rearmed_ = false;
  else StopPoll();
  return info.Env().Undefined();
}

// JavaScript no longer waits: neither the poll nor a window runs.
void Receiver::StopPoll() {
  if (windowActive_) {
    windowActive_ = false;
    libuv.timerStop(window_);
  }
  if (pollActive_) {
    pollActive_ = false;
    libuv.pollStop(poll_);
  }
  loop_.SetDirectArmed(false);
}

// From a window back to the poll, JavaScript still waiting. False when libuv refused.
bool Receiver::StartPoll() {
  if (pollActive_) return true;
  if (libuv.pollStart(poll_, UV_READABLE, OnPollable) != 0) return false;
  pollActive_ = true;
  return true;
}

// A coalescing window instead of the poll: the receive runs when it ends.
bool Receiver::StartWindow() {
  if (pollActive_) {
    pollActive_ = false;
    libuv.pollStop(poll_);
  }
  uint64_t ms = (loop_.coalesceUs + 999) / 1000;
  if (libuv.timerStart(window_, OnWindowEnd, ms, 0) != 0) return false;
  windowActive_ = true;
  AddRelaxed(&loop_.writer().control()->windows, uint64_t{1});
  return true;
}

void Receiver::OnPollable(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Receiver*>(handle->data);
  if (self == nullptr || !self->pollActive_) return;
  // Coalescing: the first datagram after a quiet spell opens a window; what
  // arrives in it is received with it when it ends ('auto': only while busy).
  if (status == 0 && self->loop_.coalesceUs > 0 && self->window_ != nullptr &&
      (!self->loop_.coalesceAuto || self->loopAuto_.OnReadable())) {
    if (!self->StartWindow()) self->StopPoll();  // the thread takes the socket back
    return;
  }
  self->ReceiveAndWake(false);
}

void Receiver::OnWindowEnd(uv_timer_t* handle) {
  auto* self = static_cast<Receiver*>(handle->data);
  if (self == nullptr || !self->windowActive_) return;
  self->windowActive_ = false;
  self->ReceiveAndWake(true);
}

// The poll found the socket readable, or a window ended: receive, and run the
// wake function if anything came.
void Receiver::ReceiveAndWake(bool fromWindow) {
  uv_poll_t* handle = poll_;
  // An error from the poll itself (the socket gone bad) is left to the
  // thread, which meets it on its next receive; a busy lock means the thread
  // is receiving and wakes JavaScript itself. Either way stop polling.
  int n = loop_.ReceiveDirect();
  if (n == 0) {
    // Nothing there after all: keep polling (after a window, poll again;
    // with 'auto', windows go on unless the rate fell).
    if (!fromWindow) return;
    bool window = loop_.coalesceAuto && loopAuto_.Decide(true);
    if (!(window ? StartWindow() : StartPoll())) StopPoll();
    return;
  }
  if (n < 0) {
    StopPoll();
    return;
  }
  drained_ = static_cast<uint32_t>(n) < batchSize_;
  loopAuto_.Add(static_cast<uint64_t>(n));
  // The poll keeps running while JavaScript takes the batch: a consumer that
  // handles it synchronously and waits again (waitDirect) leaves it on, one
  // that does not (an async handler, a yield, the iterator's loop body after
  // a microtask) has it stopped when the wake returns.
  waking_ = true;
  rearmed_ = false;
  WakeDirect();
  // JavaScript may have closed the receiver (Shutdown() stopped and released
  // the poll, cleared its data) but not freed it: the wrapper is alive while
  // its method runs, and the finalizer runs only from a GC, never inside a
  // callback that holds a handle to the object. Checked through the handle.
  if (handle->data == nullptr) return;
  waking_ = false;
  if (!rearmed_) {
    StopPoll();
    return;
  }
  // Waiting again. After a window that received more than one datagram,
  // traffic goes on: the next window follows at once (one wakeup a window).
  // Otherwise the poll waits for the next quiet spell to end. With 'auto',
  // the rate the loop received at decides.
  bool window = loop_.coalesceAuto ? loopAuto_.Decide(fromWindow) : fromWindow && n > 1;
  bool ok = window ? StartWindow() : StartPoll();
  if (!ok) StopPoll();
}

// Runs the wake function from the event loop, as a callback: the promise it
// resolves and the loop body awaiting it run before this returns.
void Receiver::WakeDirect() {
  napi_env env = env_;
  napi_async_context context = asyncContext_;
  if (wakeRef_.IsEmpty() || context == nullptr) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value wake = wakeRef_.Value();
  napi_value receiver;  // napi_make_callback wants an object here, not undefined
  napi_value ignored;
  if (wake != nullptr && napi_get_global(env, &receiver) == napi_ok) {
    napi_make_callback(env, context, receiver, wake, 0, nullptr, &ignored);
  }
  // As for any callback: an exception nobody catches is the process's, and
  // none is left pending for the next Node-API call to trip over.
  bool pending = false;
  napi_value error;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
      napi_get_and_clear_last_exception(env, &error) == napi_ok) {
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

// Shutdown()'s part: the poll handle goes before the socket it watches; libuv frees it later.
void Receiver::ClosePoll() {
  if (poll_ != nullptr) {
    StopPoll();
    poll_->data = nullptr;
    libuv.close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
  }
  if (window_ != nullptr) {
    window_->data = nullptr;
    libuv.close(reinterpret_cast<uv_handle_t*>(window_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
    window_ = nullptr;
  }
}

// ref()/unref()'s part: the poll handle, if there is one, keeps the loop alive as the receiver does.
void Receiver::RefPoll(bool refed) {
  for (uv_handle_t* handle : {reinterpret_cast<uv_handle_t*>(poll_), reinterpret_cast<uv_handle_t*>(window_)}) {
    if (handle == nullptr) continue;
    if (refed) libuv.ref(handle);
    else libuv.unref(handle);
  }
}

}  // namespace udpring
