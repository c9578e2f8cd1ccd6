#include "receiver.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "socket.h"

namespace udpring {

// The JavaScript side of a wakeup needs nothing from native: the wake function
// only resolves the promise a waiting next() holds.
struct WakeContext {};

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
               Find(&libuv.ref, "uv_ref") && Find(&libuv.unref, "uv_unref");
}

bool HaveLibuv() {
  pthread_once(&libuvOnce, FindLibuv);
  return libuvFound;
}
}  // namespace

void CallWake(Napi::Env env, Napi::Function wake, WakeContext*, void*) {
  if (env == nullptr || wake.IsEmpty()) return;
  // Not wake.Call(): a wakeup dispatched while the environment tears down
  // (process ending with a next() pending) cannot run JavaScript, and
  // Call()'s failure path turns that into a fatal napi_throw. Nobody is left
  // to wake then, so the status is deliberately ignored.
  napi_value ignored;
  napi_call_function(env, env.Undefined(), wake, 0, nullptr, &ignored);
}

Napi::Function Receiver::Init(Napi::Env env) {
  return DefineClass(env, "Receiver",
                     {
                         InstanceMethod<&Receiver::Open>("open"),
                         InstanceMethod<&Receiver::Close>("close"),
                         InstanceMethod<&Receiver::NotifySpace>("notifySpace"),
                         InstanceMethod<&Receiver::Ref>("ref"),
                         InstanceMethod<&Receiver::Unref>("unref"),
                         InstanceMethod<&Receiver::LocalAddress>("localAddress"),
                         InstanceMethod<&Receiver::SocketInfo>("socketInfo"),
                         InstanceMethod<&Receiver::Failure>("failure"),
                         InstanceMethod<&Receiver::SetOption>("setOption"),
                         InstanceMethod<&Receiver::GetOption>("getOption"),
                         InstanceMethod<&Receiver::SendTo>("sendTo"),
                         InstanceMethod<&Receiver::Connect>("connect"),
                         InstanceMethod<&Receiver::WatchErrors>("watchErrors"),
                         InstanceMethod<&Receiver::WaitDirect>("waitDirect"),
                         InstanceMethod<&Receiver::StopDirect>("stopDirect"),
                         StaticValue("socketOptions", SocketOptionNames(env)),
                     });
}

// The setsockopt levels and names the TypeScript layer may use, from the
// system headers, so no number is restated in TypeScript.
Napi::Object Receiver::SocketOptionNames(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
#define UDP_RING_NAME(name) o.Set(#name, Napi::Number::New(env, name))
  UDP_RING_NAME(SOL_SOCKET); UDP_RING_NAME(SO_RCVBUF); UDP_RING_NAME(SO_SNDBUF); UDP_RING_NAME(SO_BROADCAST);
  UDP_RING_NAME(IPPROTO_IP); UDP_RING_NAME(IP_TTL); UDP_RING_NAME(IP_MULTICAST_TTL); UDP_RING_NAME(IP_MULTICAST_LOOP);
  UDP_RING_NAME(IP_MULTICAST_IF); UDP_RING_NAME(IP_ADD_MEMBERSHIP); UDP_RING_NAME(IP_DROP_MEMBERSHIP);
  UDP_RING_NAME(IP_ADD_SOURCE_MEMBERSHIP); UDP_RING_NAME(IP_DROP_SOURCE_MEMBERSHIP);
  UDP_RING_NAME(IPPROTO_IPV6); UDP_RING_NAME(IPV6_UNICAST_HOPS); UDP_RING_NAME(IPV6_MULTICAST_HOPS);
  UDP_RING_NAME(IPV6_MULTICAST_LOOP); UDP_RING_NAME(IPV6_MULTICAST_IF); UDP_RING_NAME(IPV6_JOIN_GROUP);
  UDP_RING_NAME(IPV6_LEAVE_GROUP); UDP_RING_NAME(MCAST_JOIN_SOURCE_GROUP); UDP_RING_NAME(MCAST_LEAVE_SOURCE_GROUP);
#undef UDP_RING_NAME
  o.Set("sizeofGroupSourceReq", Napi::Number::New(env, sizeof(struct group_source_req)));
  o.Set("offsetofGsrGroup", Napi::Number::New(env, offsetof(struct group_source_req, gsr_group)));
  o.Set("offsetofGsrSource", Napi::Number::New(env, offsetof(struct group_source_req, gsr_source)));
  return o;
}

Receiver::Receiver(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Receiver>(info), env_(info.Env()) {}

Receiver::~Receiver() { Shutdown(); }

void Receiver::CleanupHook(void* self) {
  auto* receiver = static_cast<Receiver*>(self);
  receiver->hookAdded_ = false;  // the environment is running it; nothing to remove
  receiver->Shutdown();
}

// open(ring: ArrayBuffer, options: object, wake: Function): { recvBufferSize, forced }
Napi::Value Receiver::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (open_ || closed_) {
    Napi::Error::New(env, "receiver handle already used").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() < 3 || !(info[0].IsArrayBuffer() || info[0].IsTypedArray()) || !info[1].IsObject() ||
      !info[2].IsFunction()) {
    Napi::TypeError::New(env, "open(ring, options, wake)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // The ring: a Uint8Array over a SharedArrayBuffer (which user code cannot
  // detach or transfer, so the thread never writes into memory freed under
  // it), or a plain ArrayBuffer.
  void* ringData = nullptr;
  size_t ringLength = 0;
  if (info[0].IsTypedArray()) {
    napi_typedarray_type type;
    napi_value arrayBuffer;
    size_t byteOffset;
    if (napi_get_typedarray_info(env, info[0], &type, &ringLength, &ringData, &arrayBuffer, &byteOffset) != napi_ok ||
        type != napi_uint8_array) {
      Napi::TypeError::New(env, "ring must be a Uint8Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  } else {
    Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
    ringData = buffer.Data();
    ringLength = buffer.ByteLength();
  }
  Napi::Object options = info[1].As<Napi::Object>();
  open_ = true;  // from here on, Shutdown() undoes whatever was done

  uint32_t maxMessageSize = GetUint32(options, "maxMessageSize", 65535);
  batchSize_ = GetUint32(options, "batchSize", 64);
  bool drop = GetUint32(options, "overflow", 0) == 1;
  ReceiveFeatures features;
  features.timestamps = GetBool(options, "timestamps", false);
  features.gro = GetBool(options, "gro", false);
  features.packetInfo = GetBool(options, "pktinfo", false) || GetBool(options, "tos", false);
  if (batchSize_ == 0 || batchSize_ > 1024) {
    Napi::RangeError::New(env, "batchSize must be 1 to 1024").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  int err = 0;
  const char* syscall = nullptr;
  if (const char* why = loop_.Init(static_cast<uint8_t*>(ringData), ringLength, maxMessageSize, batchSize_, drop,
                                   features, &err, &syscall)) {
    if (err != 0) ThrowSystemError(env, err, syscall);
    else Napi::RangeError::New(env, why).ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  // For tests: positions that start short of the 32-bit wrap, so a test
  // crosses it within a few datagrams (JavaScript starts from the head it finds).
  if (const char* start = getenv("UDP_RING_TEST_START_POSITION")) {
    loop_.writer().StartAt(static_cast<uint32_t>(strtoul(start, nullptr, 0)));
  }
  if (!SetUpSocket(env, options)) {
    Shutdown();
    return env.Undefined();
  }
  if (loop_.UseSocket(fd_, &err, &syscall) != nullptr) {
    ThrowSystemError(env, err, syscall);
    Shutdown();
    return env.Undefined();
  }
  ringRef_ = Napi::Persistent(info[0].As<Napi::Object>());

  // Created before the cleanup hook is added: hooks run in reverse order, so
  // ours releases the function before Node tears the function down.
  wake_ = WakeFunction::New(env, info[2].As<Napi::Function>(), "udp-ring wake", 1, 1, new WakeContext(),
                            [](Napi::Env, void*, WakeContext* context) { delete context; });
  tsfnLive_ = true;
  wakeRef_ = Napi::Persistent(info[2].As<Napi::Function>());
  napi_value resourceName;
  if (napi_create_string_utf8(env, "udp-ring", NAPI_AUTO_LENGTH, &resourceName) != napi_ok ||
      napi_async_init(env, nullptr, resourceName, &asyncContext_) != napi_ok) {
    asyncContext_ = nullptr;
    Napi::Error::New(env, "napi_async_init failed").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  if (napi_add_env_cleanup_hook(env, CleanupHook, this) != napi_ok) {
    Napi::Error::New(env, "napi_add_env_cleanup_hook failed").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  hookAdded_ = true;

  err = loop_.Start(WakeFromThread, SocketErrorFromLoop, this);
  if (err != 0) {
    ThrowSystemError(env, err, "pthread_create");
    Shutdown();
    return env.Undefined();
  }
  loopStarted_ = true;

  Napi::Object result = Napi::Object::New(env);
  result.Set("recvBufferSize", Napi::Number::New(env, recvBufferGranted_));
  result.Set("forced", Napi::Boolean::New(env, forced_));
  return result;
}

bool Receiver::SetUpSocket(Napi::Env env, Napi::Object options) {
  int one = 1;
  int family = GetUint32(options, "family", 4) == 6 ? 6 : 4;
  // fd > 0: adopt a socket the process inherited (systemd socket activation, dgram's
  // bind({ fd })), already bound; it must be a datagram socket. Not closed on failure: it is the caller's.
  uint32_t adopt = GetUint32(options, "fd", 0);
  sockaddr_storage bindAddress;
  socklen_t bindLength = 0;
  if (adopt > 0) {
    int type = 0;
    socklen_t typeLength = sizeof(type);
    if (getsockopt(static_cast<int>(adopt), SOL_SOCKET, SO_TYPE, &type, &typeLength) != 0 || type != SOCK_DGRAM) {
      ThrowSystemError(env, errno != 0 && type == 0 ? errno : EINVAL, "open");
      return false;
    }
    int flags = fcntl(static_cast<int>(adopt), F_GETFL);
    if (flags < 0 || fcntl(static_cast<int>(adopt), F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(static_cast<int>(adopt), F_SETFD, FD_CLOEXEC) != 0) {
      ThrowSystemError(env, errno, "open");
      return false;
    }
    // dupFd: receive on a duplicate, so the caller may close its own descriptor (the dgram
    // facade moving a socket from node:dgram's event loop onto the thread).
    fd_ = GetBool(options, "dupFd", false) ? fcntl(static_cast<int>(adopt), F_DUPFD_CLOEXEC, 3) : static_cast<int>(adopt);
    if (fd_ < 0) {
      ThrowSystemError(env, errno, "open");
      return false;
    }
  } else {
  std::string address = GetString(options, "address");
  uint32_t port = GetUint32(options, "port", 0);
  bindLength = MakeSockaddr(family, address, static_cast<uint16_t>(port), &bindAddress);
  if (bindLength == 0 || port > 65535) {
    Napi::TypeError::New(env, "address is not a numeric IPv" + std::to_string(family) + " address")
        .ThrowAsJavaScriptException();
    return false;
  }

  fd_ = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    ThrowSystemError(env, errno, "socket");
    return false;
  }
  if (GetBool(options, "reuseAddr", false) && setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  if (GetBool(options, "reusePort", false) && setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  if (family == 6) {
    int v6only = GetBool(options, "ipv6Only", false) ? 1 : 0;
    if (setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
      ThrowSystemError(env, errno, "setsockopt");
      return false;
    }
  }
  }
  if (setsockopt(fd_, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  if (GetBool(options, "timestamps", false) && setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  // Asked for, so refused is an error (ENOPROTOOPT: a kernel before 5.0), not a silent fallback.
  if (GetBool(options, "gro", false) && setsockopt(fd_, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) != 0) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  // On an IPv6 socket, IPv4 datagrams (v4-mapped) report their destination
  // through IPV6_PKTINFO but their TOS only through IP_TOS: ask for both.
  const bool dualStack = family == 6 && !GetBool(options, "ipv6Only", false);
  if (GetBool(options, "pktinfo", false) &&
      (family == 6 ? setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one))
                   : setsockopt(fd_, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))) != 0) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  if (GetBool(options, "tos", false) &&
      ((family == 6 ? setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one)) : 0) != 0 ||
       ((family == 4 || dualStack) && setsockopt(fd_, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)) != 0))) {
    ThrowSystemError(env, errno, "setsockopt");
    return false;
  }
  // As large as the system allows: SO_RCVBUFFORCE needs CAP_NET_ADMIN; without
  // it SO_RCVBUF is capped by net.core.rmem_max. Neither failing is fatal.
  int requested = static_cast<int>(GetUint32(options, "recvBufferSize", 0));
  if (requested > 0) {
    forced_ = setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &requested, sizeof(requested)) == 0;
    if (!forced_) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &requested, sizeof(requested));
  }
  int granted = 0;
  socklen_t grantedLength = sizeof(granted);
  if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &granted, &grantedLength) == 0) {
    recvBufferGranted_ = static_cast<uint32_t>(granted);
  }

  if (adopt == 0 && bind(fd_, reinterpret_cast<sockaddr*>(&bindAddress), bindLength) != 0) {
    ThrowSystemError(env, errno, "bind");
    return false;
  }
  socklen_t localLength = sizeof(local_);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local_), &localLength) != 0) {
    ThrowSystemError(env, errno, "getsockname");
    return false;
  }
  return true;
}

// From the receive thread: a consumer waits, or the thread failed. A full
// queue (napi_queue_full) means a wakeup is already on its way; napi_closing,
// that the receiver is closing. Neither needs anything more.
void Receiver::WakeFromThread(void* self) { static_cast<Receiver*>(self)->wake_.NonBlockingCall(); }

void Receiver::Shutdown() {
  if (closed_) return;
  closed_ = true;
  // Joins the thread first: nothing writes into the ring after this.
  loop_.Stop();
  loopStarted_ = false;
  if (Napi::ThreadSafeFunction* errors = socketErrors_.exchange(nullptr)) {
    errors->Release();
    delete errors;
  }
  // The poll handle goes before the socket it watches; libuv frees it later.
  if (poll_ != nullptr) {
    StopPoll();
    poll_->data = nullptr;
    libuv.close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
  }
  if (asyncContext_ != nullptr) {
    napi_async_destroy(env_, asyncContext_);
    asyncContext_ = nullptr;
  }
  if (!wakeRef_.IsEmpty()) wakeRef_.Reset();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (tsfnLive_) {
    wake_.Release();
    tsfnLive_ = false;
  }
  if (hookAdded_) {
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hookAdded_ = false;
  }
  if (!ringRef_.IsEmpty()) ringRef_.Reset();
}

Napi::Value Receiver::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

Napi::Value Receiver::NotifySpace(const Napi::CallbackInfo& info) {
  if (!closed_) {
    int err = loop_.NotifySpace();
    if (err != 0) ThrowSystemError(info.Env(), err, "write");
  }
  return info.Env().Undefined();
}

Napi::Value Receiver::Ref(const Napi::CallbackInfo& info) {
  if (tsfnLive_) wake_.Ref(info.Env());
  refed_ = true;
  if (poll_ != nullptr) libuv.ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value Receiver::Unref(const Napi::CallbackInfo& info) {
  if (tsfnLive_) wake_.Unref(info.Env());
  refed_ = false;
  if (poll_ != nullptr) libuv.unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

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
  if (n > 0) return Napi::Number::New(env, n);
  if (n < 0) return Napi::Number::New(env, 0);  // the thread is on it
  if (waking_) {
    // Waiting again inside the wake the poll delivered: the poll is still
    // running, and stays so (no epoll_ctl pair per batch).
    rearmed_ = true;
    return Napi::Number::New(env, 0);
  }
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto* handle = new uv_poll_t();
    int err = libuv.pollInitSocket(loop, handle, fd_);
    if (err != 0) {
      delete handle;
      ThrowSystemError(env, -err, "uv_poll_init");
      return env.Undefined();
    }
    handle->data = this;
    poll_ = handle;
    if (!refed_) libuv.unref(reinterpret_cast<uv_handle_t*>(poll_));
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

void Receiver::StopPoll() {
  if (!pollActive_) return;
  pollActive_ = false;
  loop_.SetDirectArmed(false);
  libuv.pollStop(poll_);
}

void Receiver::OnPollable(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Receiver*>(handle->data);
  if (self == nullptr || !self->pollActive_) return;
  // An error from the poll itself (the socket gone bad) is left to the
  // thread, which meets it on its next receive; a busy lock means the thread
  // is receiving and wakes JavaScript itself. Either way stop polling.
  int n = status == 0 ? self->loop_.ReceiveDirect() : -1;
  if (n == 0) return;  // nothing there after all: keep polling
  if (n < 0) {
    self->StopPoll();
    return;
  }
  self->drained_ = static_cast<uint32_t>(n) < self->batchSize_;
  // The poll keeps running while JavaScript takes the batch: a consumer that
  // handles it synchronously and waits again (waitDirect) leaves it on, one
  // that does not (an async handler, a yield, the iterator's loop body after
  // a microtask) has it stopped when the wake returns.
  self->waking_ = true;
  self->rearmed_ = false;
  self->WakeDirect();
  // JavaScript may have closed the receiver (Shutdown() stopped and released
  // the poll, cleared its data) but not freed it: the wrapper is alive while
  // its method runs, and the finalizer runs only from a GC, never inside a
  // callback that holds a handle to the object. Checked through the handle.
  if (handle->data == nullptr) return;
  self->waking_ = false;
  if (!self->rearmed_) self->StopPoll();
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

Napi::Value Receiver::LocalAddress(const Napi::CallbackInfo& info) {
  if (!open_) return info.Env().Null();
  return SockaddrToObject(info.Env(), local_);
}

// socketInfo(): { queuedBytes, recvBufferSize, socketDrops } from SO_MEMINFO, or null.
Napi::Value Receiver::SocketInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || fd_ < 0) return env.Null();
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof(meminfo);
  if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0) return env.Null();
  Napi::Object result = Napi::Object::New(env);
  result.Set("queuedBytes", Napi::Number::New(env, meminfo[SK_MEMINFO_RMEM_ALLOC]));
  result.Set("recvBufferSize", Napi::Number::New(env, meminfo[SK_MEMINFO_RCVBUF]));
  result.Set("socketDrops", Napi::Number::New(env, meminfo[SK_MEMINFO_DROPS]));
  return result;
}

// failure(): null, or { errno, syscall } when the receive thread stopped on an error.
Napi::Value Receiver::Failure(const Napi::CallbackInfo& info) {
  // Raw napi calls whose failures are ignored: next() calls this while a
  // worker may be terminating, when no value can be made and node-addon-api's
  // throw-on-failure path would be fatal. Nothing is returned then.
  napi_env env = info.Env();
  napi_value result = nullptr;
  int err = loop_.failureErrno();
  if (err == 0) {
    if (napi_get_null(env, &result) != napi_ok) result = nullptr;
    return Napi::Value(env, result);
  }
  napi_value number = nullptr;
  napi_value name = nullptr;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, err, &number) != napi_ok ||
      napi_create_string_utf8(env, loop_.failureSyscall() ? loop_.failureSyscall() : "recvmmsg", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_set_named_property(env, result, "errno", number) != napi_ok ||
      napi_set_named_property(env, result, "syscall", name) != napi_ok) {
    return Napi::Value(env, nullptr);
  }
  return Napi::Value(env, result);
}

// setOption(level, name, value: number | Uint8Array): setsockopt on the bound
// socket, for options the TypeScript layer sets after open (multicast, TTL...).
Napi::Value Receiver::SetOption(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || fd_ < 0) {
    ThrowSystemError(env, EBADF, "setsockopt");
    return env.Undefined();
  }
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !(info[2].IsNumber() || info[2].IsTypedArray())) {
    Napi::TypeError::New(env, "setOption(level, name, value)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int level = info[0].As<Napi::Number>().Int32Value();
  int name = info[1].As<Napi::Number>().Int32Value();
  int r;
  if (info[2].IsNumber()) {
    int value = info[2].As<Napi::Number>().Int32Value();
    r = setsockopt(fd_, level, name, &value, sizeof(value));
  } else {
    Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
    r = setsockopt(fd_, level, name, bytes.Data(), static_cast<socklen_t>(bytes.ByteLength()));
  }
  if (r != 0) ThrowSystemError(env, errno, "setsockopt");
  return env.Undefined();
}

// getOption(level, name): an int socket option.
Napi::Value Receiver::GetOption(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || fd_ < 0) {
    ThrowSystemError(env, EBADF, "getsockopt");
    return env.Undefined();
  }
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "getOption(level, name)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int value = 0;
  socklen_t length = sizeof(value);
  if (getsockopt(fd_, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), &value, &length) != 0) {
    ThrowSystemError(env, errno, "getsockopt");
    return env.Undefined();
  }
  return Napi::Number::New(env, value);
}

// sendTo(data: Uint8Array, family, address, port): one datagram from the bound
// socket, so replies leave from the port peers sent to (as dgram's send does).
// Non-blocking: a full send buffer is an EAGAIN error, not a wait.
Napi::Value Receiver::SendTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || fd_ < 0) {
    ThrowSystemError(env, EBADF, "send");
    return env.Undefined();
  }
  if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "sendTo(data, family, address, port)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  sockaddr_storage to;
  socklen_t length = MakeSockaddr(info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::String>().Utf8Value(),
                                  static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value()), &to);
  if (length == 0) {
    ThrowSystemError(env, EINVAL, "send");
    return env.Undefined();
  }
  // A fifth argument: the local address to send from (a datagram's destination, from pktinfo), so a
  // server bound to the wildcard answers from the address it was asked on. IPv4 sockets say so with
  // IP_PKTINFO, IPv6 ones with IPV6_PKTINFO (v4-mapped for an IPv4 peer on a dual-stack socket).
  std::string source = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : std::string();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  iovec iov{data.Data(), data.ByteLength()};
  msghdr message{};
  message.msg_name = &to;
  message.msg_namelen = length;
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (!source.empty()) {
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    bool parsed;
    if (local_.ss_family == AF_INET) {
      in_pktinfo pktinfo{};
      parsed = inet_pton(AF_INET, source.c_str(), &pktinfo.ipi_spec_dst) == 1;
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(pktinfo));
      memcpy(CMSG_DATA(c), &pktinfo, sizeof(pktinfo));
      message.msg_controllen = CMSG_SPACE(sizeof(pktinfo));
    } else {
      in6_pktinfo pktinfo{};
      parsed = inet_pton(AF_INET6, source.c_str(), &pktinfo.ipi6_addr) == 1;
      in_addr v4;
      if (!parsed && inet_pton(AF_INET, source.c_str(), &v4) == 1) {
        pktinfo.ipi6_addr.s6_addr[10] = 0xff;
        pktinfo.ipi6_addr.s6_addr[11] = 0xff;
        memcpy(&pktinfo.ipi6_addr.s6_addr[12], &v4, 4);
        parsed = true;
      }
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(pktinfo));
      memcpy(CMSG_DATA(c), &pktinfo, sizeof(pktinfo));
      message.msg_controllen = CMSG_SPACE(sizeof(pktinfo));
    }
    if (!parsed) {
      ThrowSystemError(env, EINVAL, "send");
      return env.Undefined();
    }
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd_, &message, MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    ThrowSystemError(env, errno, "send");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// connect(family, address, port): connects the socket, as dgram's connect()
// does: the kernel then takes datagrams from that peer only, and an ICMP error
// for what is sent to it comes back on the next send or receive. Port 0
// disconnects (AF_UNSPEC).
Napi::Value Receiver::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || fd_ < 0) {
    ThrowSystemError(env, EBADF, "connect");
    return env.Undefined();
  }
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "connect(family, address, port)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  sockaddr_storage to{};
  socklen_t length = sizeof(sockaddr);
  if (port == 0) {
    to.ss_family = AF_UNSPEC;
  } else {
    length = MakeSockaddr(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::String>().Utf8Value(),
                          static_cast<uint16_t>(port), &to);
    if (length == 0 || port > 65535) {
      ThrowSystemError(env, EINVAL, "connect");
      return env.Undefined();
    }
  }
  if (connect(fd_, reinterpret_cast<sockaddr*>(&to), length) != 0) ThrowSystemError(env, errno, "connect");
  return env.Undefined();
}

// watchErrors(callback(errno)): ICMP errors that receives meet on a connected
// socket are passed to callback, one call each, from the event loop. Does not
// keep the process alive. Once per receiver.
Napi::Value Receiver::WatchErrors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || socketErrors_.load() != nullptr || info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(env, "watchErrors(callback) once, on an open receiver").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* errors = new Napi::ThreadSafeFunction(
      Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "udp-ring socket errors", 0, 1));
  errors->Unref(env);
  socketErrors_.store(errors, std::memory_order_release);
  return env.Undefined();
}

void Receiver::SocketErrorFromLoop(void* self, int err) { static_cast<Receiver*>(self)->ReportSocketError(err); }

void Receiver::ReportSocketError(int err) {
  Napi::ThreadSafeFunction* errors = socketErrors_.load(std::memory_order_acquire);
  if (errors == nullptr) return;
  // The errno rides in the data pointer: nothing is allocated here for it.
  errors->NonBlockingCall(reinterpret_cast<int*>(static_cast<intptr_t>(err)), [](Napi::Env env, Napi::Function callback, int* data) {
    if (env == nullptr || callback.IsEmpty()) return;
    napi_value argument = Napi::Number::New(env, static_cast<double>(reinterpret_cast<intptr_t>(data)));
    napi_value ignored;
    napi_call_function(env, env.Undefined(), callback, 1, &argument, &ignored);
  });
}

}  // namespace udpring
