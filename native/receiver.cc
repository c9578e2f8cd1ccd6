#include "receiver.h"

#include <dlfcn.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "socket.h"

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

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

  if (!ComputeLayout(ringLength, &layout_)) {
    Napi::RangeError::New(env, "ring is too small or too large").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  base_ = static_cast<uint8_t*>(ringData);
  if (base_ == nullptr || reinterpret_cast<uintptr_t>(base_) % 8 != 0) {
    Napi::Error::New(env, "ring memory is missing or not 8-byte aligned").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  maxMessageSize_ = GetUint32(options, "maxMessageSize", 65535);
  batchSize_ = GetUint32(options, "batchSize", 64);
  overflow_ = GetUint32(options, "overflow", kBlock) == kDrop ? kDrop : kBlock;
  if (batchSize_ == 0 || batchSize_ > 1024 || maxMessageSize_ == 0 ||
      layout_.descriptorCount < batchSize_ ||
      uint64_t{layout_.payloadCapacity} < uint64_t{batchSize_} * AlignPayload(maxMessageSize_) + kPayloadReserve) {
    Napi::RangeError::New(env, "ring cannot hold one batch of maxMessageSize datagrams").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  ringRef_ = Napi::Persistent(info[0].As<Napi::Object>());

  control_ = reinterpret_cast<Control*>(base_);
  memset(control_, 0, sizeof(Control));
  descriptors_ = reinterpret_cast<Descriptor*>(base_ + layout_.descriptorsOffset);
  payload_ = base_ + layout_.payloadOffset;
  control_->magic = kMagic;
  control_->version = kLayoutVersion;
  control_->descriptorSize = sizeof(Descriptor);
  control_->descriptorCount = layout_.descriptorCount;
  control_->descriptorsOffset = layout_.descriptorsOffset;
  control_->payloadOffset = layout_.payloadOffset;
  control_->payloadCapacity = layout_.payloadCapacity;
  control_->maxMessageSize = maxMessageSize_;

  if (!SetUpSocket(env, options) || !SetUpLanding(env)) {
    Shutdown();
    return env.Undefined();
  }

  controlFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (controlFd_ < 0) {
    ThrowSystemError(env, errno, "eventfd");
    Shutdown();
    return env.Undefined();
  }

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
  if (err == 0) pthread_setname_np(thread_, "udp-ring");
  if (err != 0) {
    ThrowSystemError(env, err, "pthread_create");
    Shutdown();
    return env.Undefined();
  }
  threadStarted_ = true;

  Napi::Object result = Napi::Object::New(env);
  result.Set("recvBufferSize", Napi::Number::New(env, recvBufferGranted_));
  result.Set("forced", Napi::Boolean::New(env, forced_));
  return result;
}

bool Receiver::SetUpSocket(Napi::Env env, Napi::Object options) {
  int family = GetUint32(options, "family", 4) == 6 ? 6 : 4;
  std::string address = GetString(options, "address");
  uint32_t port = GetUint32(options, "port", 0);
  sockaddr_storage bindAddress;
  socklen_t bindLength = MakeSockaddr(family, address, static_cast<uint16_t>(port), &bindAddress);
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
  int one = 1;
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
  if (setsockopt(fd_, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0) {
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

  if (bind(fd_, reinterpret_cast<sockaddr*>(&bindAddress), bindLength) != 0) {
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

bool Receiver::SetUpLanding(Napi::Env env) {
  controlSpace_ = CMSG_SPACE(sizeof(uint32_t));
  size_t slot = AlignPayload(maxMessageSize_);
  landing_ = static_cast<uint8_t*>(malloc(slot * batchSize_));
  messages_ = static_cast<struct mmsghdr*>(calloc(batchSize_, sizeof(struct mmsghdr)));
  iovecs_ = static_cast<struct iovec*>(calloc(batchSize_, sizeof(struct iovec)));
  names_ = static_cast<sockaddr_storage*>(calloc(batchSize_, sizeof(sockaddr_storage)));
  controls_ = static_cast<uint8_t*>(calloc(batchSize_, controlSpace_));
  if (!landing_ || !messages_ || !iovecs_ || !names_ || !controls_) {
    ThrowSystemError(env, ENOMEM, "malloc");
    return false;
  }
  for (size_t i = 0; i < batchSize_; i++) {
    iovecs_[i].iov_base = landing_ + i * slot;
    iovecs_[i].iov_len = maxMessageSize_;
    messages_[i].msg_hdr.msg_iov = &iovecs_[i];
    messages_[i].msg_hdr.msg_iovlen = 1;
    messages_[i].msg_hdr.msg_name = &names_[i];
    messages_[i].msg_hdr.msg_control = controls_ + i * controlSpace_;
  }
  ResetMessages(batchSize_);
  return true;
}

void Receiver::ResetMessages(size_t count) {
  for (size_t i = 0; i < count; i++) {
    messages_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    messages_[i].msg_hdr.msg_controllen = controlSpace_;
    messages_[i].msg_hdr.msg_flags = 0;
  }
}

void Receiver::Shutdown() {
  if (closed_) return;
  closed_ = true;
  const bool ran = threadStarted_;
  if (threadStarted_) {
    closing_.store(true, std::memory_order_release);
    uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of counter overflow.
    ssize_t written;
    do {
      written = write(controlFd_, &one, sizeof(one));
    } while (written < 0 && errno == EINTR);
    pthread_join(thread_, nullptr);
    threadStarted_ = false;
  }
  // The poll handle goes before the socket it watches; libuv frees it later.
  if (poll_ != nullptr) {
    StopPoll();
    poll_->data = nullptr;
    libuv.close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
  }
  // Nothing leaves uncounted: what the socket took but the ring never got
  // (the landing zone waiting for space, the kernel queue) is read and
  // counted as discarded. The thread is joined: the producer state is ours.
  if (ran && control_ != nullptr && fd_ >= 0) {
    uint64_t discarded = pendingCount_;
    pendingCount_ = 0;
    // kernelDrops ends here. From now on the socket takes nothing (a filter
    // that accepts no datagram), so the queue is all there is, and what the
    // filter turns away shows in the socket's drop counter, read below.
    RefreshKernelDrops();
    struct sock_filter acceptNothing = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog filter = {1, &acceptNothing};
    setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof(filter));
    for (;;) {
      ResetMessages(batchSize_);
      int n = recvmmsg(fd_, messages_, batchSize_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // empty (or failing: nothing more can be read)
      for (int i = 0; i < n; i++) {
        const struct msghdr& header = messages_[i].msg_hdr;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
             c = CMSG_NXTHDR(const_cast<struct msghdr*>(&header), c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(c), sizeof(drops));
            NoteKernelDrops(drops);  // without SO_MEMINFO, the only word on earlier drops
          }
        }
      }
      discarded += static_cast<uint64_t>(n);
    }
    uint32_t meminfo[SK_MEMINFO_VARS] = {0};
    socklen_t length = sizeof(meminfo);
    if (memInfoWorks_ && getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0 &&
        length > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
      uint32_t turnedAway = meminfo[SK_MEMINFO_DROPS] - lastSocketDrops_;
      if (turnedAway < (1u << 31)) discarded += turnedAway;
    }
    StoreRelaxed(&control_->kernelDrops, kernelDrops_);
    StoreRelaxed(&control_->discarded, discarded);
  }
  if (asyncContext_ != nullptr) {
    napi_async_destroy(env_, asyncContext_);
    asyncContext_ = nullptr;
  }
  if (!wakeRef_.IsEmpty()) wakeRef_.Reset();
  if (fd_ >= 0) close(fd_);
  if (controlFd_ >= 0) close(controlFd_);
  fd_ = controlFd_ = -1;
  if (tsfnLive_) {
    wake_.Release();
    tsfnLive_ = false;
  }
  if (hookAdded_) {
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hookAdded_ = false;
  }
  if (!ringRef_.IsEmpty()) ringRef_.Reset();
  free(landing_);
  free(messages_);
  free(iovecs_);
  free(names_);
  free(controls_);
  landing_ = nullptr;
  messages_ = nullptr;
  iovecs_ = nullptr;
  names_ = nullptr;
  controls_ = nullptr;
  base_ = nullptr;
  control_ = nullptr;
}

Napi::Value Receiver::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

Napi::Value Receiver::NotifySpace(const Napi::CallbackInfo& info) {
  if (!closed_ && controlFd_ >= 0) {
    uint64_t one = 1;
    if (write(controlFd_, &one, sizeof(one)) < 0 && errno != EAGAIN) {
      ThrowSystemError(info.Env(), errno, "write");
    }
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
// work never leaves the socket unread for more than kGraceMs.

// Returns datagrams received (> 0), 0 if the queue was empty, -1 if the
// thread holds the producer lock (it is receiving and will wake JavaScript).
int Receiver::ReceiveDirect() {
  if (closed_ || fd_ < 0 || closing_.load(std::memory_order_acquire)) return 0;
  if (pthread_mutex_trylock(&producer_) != 0) return -1;
  int result = -1;
  bool failed = false;
  if (pendingCount_ == 0) {
    int n;
    do {
      n = recvmmsg(fd_, messages_, batchSize_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    receiveCalls_++;
    StoreRelaxed(&control_->receiveCalls, receiveCalls_);
    if (n > 0) {
      directBatches_++;
      StoreRelaxed(&control_->directBatches, directBatches_);
      Absorb(n, true);
      result = n;
    } else {
      result = 0;
      // Anything but an empty queue is the thread's to meet and report: wake it.
      failed = n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != ECONNREFUSED && err != EHOSTUNREACH &&
               err != ENETUNREACH;
      if (failed) result = -1;
    }
  }
  bool threadNeeded = failed || pendingCount_ > 0;
  pthread_mutex_unlock(&producer_);
  if (threadNeeded) {
    uint64_t one = 1;
    // Best effort: the thread also wakes on the socket by itself.
    if (write(controlFd_, &one, sizeof(one)) < 0) {}
  }
  return result;
}

// waitDirect(): called by JavaScript when it is about to wait, with
// consumerWaiting already set. Receives at once if anything is queued
// (returns the count); otherwise starts polling the socket and returns 0.
// Returns -1 where libuv cannot be found: JavaScript stops asking.
Napi::Value Receiver::WaitDirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!HaveLibuv()) return Napi::Number::New(env, -1);
  if (closed_ || !threadStarted_) return Napi::Number::New(env, 0);
  // Just after a direct receive that emptied the queue, skip the recvmmsg
  // that would most likely find EAGAIN: anything since makes the poll fire.
  int n = drained_ ? 0 : ReceiveDirect();
  drained_ = false;
  if (n > 0) return Napi::Number::New(env, n);
  if (n < 0) return Napi::Number::New(env, 0);  // the thread is on it
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
    directArmed_.store(true, std::memory_order_release);
  }
  return Napi::Number::New(env, 0);
}

// stopDirect(): JavaScript stopped waiting (woken by the thread, or closed).
Napi::Value Receiver::StopDirect(const Napi::CallbackInfo& info) {
  StopPoll();
  return info.Env().Undefined();
}

void Receiver::StopPoll() {
  if (!pollActive_) return;
  pollActive_ = false;
  directArmed_.store(false, std::memory_order_release);
  libuv.pollStop(poll_);
}

void Receiver::OnPollable(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Receiver*>(handle->data);
  if (self == nullptr || !self->pollActive_) return;
  // An error from the poll itself (the socket gone bad) is left to the
  // thread, which meets it on its next receive; a busy lock means the thread
  // is receiving and wakes JavaScript itself. Either way stop polling.
  int n = status == 0 ? self->ReceiveDirect() : -1;
  if (n == 0) return;  // nothing there after all: keep polling
  self->StopPoll();
  self->drained_ = n > 0 && static_cast<uint32_t>(n) < self->batchSize_;
  if (n > 0) self->WakeDirect();  // the last use of self: JavaScript may close and drop it
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
  int err = failErrno_.load(std::memory_order_acquire);
  if (err == 0) {
    if (napi_get_null(env, &result) != napi_ok) result = nullptr;
    return Napi::Value(env, result);
  }
  napi_value number = nullptr;
  napi_value name = nullptr;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, err, &number) != napi_ok ||
      napi_create_string_utf8(env, failSyscall_ ? failSyscall_ : "recvmmsg", NAPI_AUTO_LENGTH, &name) != napi_ok ||
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
  ssize_t sent;
  do {
    sent = sendto(fd_, data.Data(), data.ByteLength(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    ThrowSystemError(env, errno, "send");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// ---- The receive thread ---------------------------------------------------

void* Receiver::ThreadMain(void* self) {
  static_cast<Receiver*>(self)->Run();
  return nullptr;
}

void Receiver::Fail(int err, const char* syscall) {
  failSyscall_ = syscall;
  failErrno_.store(err, std::memory_order_release);
  // Wake JavaScript whether or not it waits: the next next() must reject.
  StoreSeqCst(&control_->consumerWaiting, 0u);
  wake_.NonBlockingCall();
}

// Touches the ring's pages before the first datagram, so the first pass
// around the ring does not take a page fault every few datagrams. Any traffic
// that arrives meanwhile waits in the kernel queue. Chunked, so close() is
// never held up by a large ring.
void Receiver::Prefault() {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t start = (reinterpret_cast<uintptr_t>(descriptors_) + page - 1) & ~(page - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(payload_) + layout_.payloadCapacity) & ~(page - 1);
  const uintptr_t chunk = uintptr_t{1} << 20;
  bool populate = true;
  for (uintptr_t at = start; at < end && !closing_.load(std::memory_order_acquire); at += chunk) {
    uintptr_t length = end - at < chunk ? end - at : chunk;
    // MADV_POPULATE_WRITE needs Linux 5.14; older kernels get one write per page.
    if (populate && madvise(reinterpret_cast<void*>(at), length, MADV_POPULATE_WRITE) == 0) continue;
    populate = false;
    for (uintptr_t p = at; p < at + length; p += page) {
      // Nothing is published yet: these bytes are the thread's alone.
      *reinterpret_cast<volatile uint8_t*>(p) = 0;
    }
  }
}

void Receiver::Run() {
  // Held throughout, but for the waits in WaitReadable(): the event loop's
  // direct receive only ever try-locks, so it never waits for the thread.
  pthread_mutex_lock(&producer_);
  Prefault();
  RunLocked();
  pthread_mutex_unlock(&producer_);
}

void Receiver::RunLocked() {
  while (!closing_.load(std::memory_order_acquire)) {
    if (pendingCount_ > 0) {
      // 'block': datagrams left in the landing zone wait for ring space.
      size_t placed = PlaceFrom(pendingFirst_, pendingCount_);
      pendingFirst_ += placed;
      pendingCount_ -= placed;
      if (placed > 0) Publish(false);
      if (pendingCount_ > 0) {
        WaitForSpace();
        continue;
      }
      ResetMessages(batchSize_);
    }
    int n = recvmmsg(fd_, messages_, batchSize_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    receiveCalls_++;
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        StoreRelaxed(&control_->receiveCalls, receiveCalls_);
        if (!WaitReadable(&producer_)) return;
        continue;
      }
      // ICMP errors reported on the socket are not ours to stop for.
      if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH) continue;
      Fail(err, "recvmmsg");
      return;
    }
    if (n == 0) continue;
    Absorb(n, false);
    // Fewer than asked for means the queue was empty a moment ago: wait in
    // poll rather than spend a recvmmsg on finding EAGAIN.
    if (static_cast<unsigned>(n) < batchSize_ && pendingCount_ == 0 && !WaitReadable(&producer_)) return;
  }
}

// Takes the n datagrams recvmmsg just landed: drop counts, placement, publish.
void Receiver::Absorb(int n, bool direct) {
  batches_++;
  for (int i = 0; i < n; i++) {
    const struct msghdr& header = messages_[i].msg_hdr;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
         c = CMSG_NXTHDR(const_cast<struct msghdr*>(&header), c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
        uint32_t drops;
        memcpy(&drops, CMSG_DATA(c), sizeof(drops));
        NoteKernelDrops(drops);
      }
    }
  }
  size_t placed = PlaceFrom(0, static_cast<size_t>(n));
  if (placed < static_cast<size_t>(n)) {
    if (overflow_ == kDrop) {
      // PlaceFrom already skipped and counted what did not fit.
      ResetMessages(n);
    } else {
      pendingFirst_ = placed;
      pendingCount_ = n - placed;
    }
  } else {
    ResetMessages(n);
  }
  Publish(direct);
  dropsUnchecked_ = true;
}

// Places messages [first, first + count) of the landing zone into the ring.
// Returns how many were consumed: in 'block' mode it stops at the first that
// does not fit; in 'drop' mode it counts those as ring drops and goes on.
size_t Receiver::PlaceFrom(size_t first, size_t count) {
  size_t i = 0;
  for (; i < count; i++) {
    const struct mmsghdr& message = messages_[first + i];
    const uint8_t* data = static_cast<const uint8_t*>(message.msg_hdr.msg_iov->iov_base);
    if (!Place(message, data)) {
      if (overflow_ == kBlock) break;
      ringDrops_++;
    }
  }
  return i;
}

bool Receiver::Place(const struct mmsghdr& message, const uint8_t* data) {
  const uint64_t capacity = layout_.payloadCapacity;
  const uint32_t wireSize = message.msg_len;
  const uint32_t size = wireSize < maxMessageSize_ ? wireSize : maxMessageSize_;
  const uint64_t need = AlignPayload(size);

  if (descriptorTail_ - cachedDescriptorHead_ >= layout_.descriptorCount) {
    cachedDescriptorHead_ = LoadAcquire(&control_->descriptorHead);
    if (descriptorTail_ - cachedDescriptorHead_ >= layout_.descriptorCount) return false;
  }
  uint64_t at = payloadTail_ % capacity;
  uint64_t padding = (at + need > capacity) ? capacity - at : 0;
  uint64_t end = payloadTail_ + padding + need;
  if (end - cachedPayloadHead_ > capacity - kPayloadReserve) {
    cachedPayloadHead_ = LoadAcquire(&control_->payloadHead);
    if (end - cachedPayloadHead_ > capacity - kPayloadReserve) return false;
  }
  at = (payloadTail_ + padding) % capacity;
  memcpy(payload_ + at, data, size);

  Descriptor& d = descriptors_[descriptorTail_ & (layout_.descriptorCount - 1)];
  d.offset = static_cast<uint32_t>(layout_.payloadOffset + at);
  d.size = size;
  d.wireSize = wireSize;
  d.flags = (message.msg_hdr.msg_flags & MSG_TRUNC) ? kFlagTruncated : 0;
  // Counted here, once placed: `truncated` counts flagged datagrams delivered, not ring drops.
  if (d.flags & kFlagTruncated) truncated_++;
  const sockaddr_storage* name = static_cast<const sockaddr_storage*>(message.msg_hdr.msg_name);
  if (name->ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(name);
    d.family = 6;
    d.port = ntohs(sin6->sin6_port);
    memcpy(d.address, &sin6->sin6_addr, 16);
  } else {
    auto* sin = reinterpret_cast<const sockaddr_in*>(name);
    d.family = 4;
    d.port = ntohs(sin->sin_port);
    memcpy(d.address, &sin->sin_addr, 4);
    memset(d.address + 4, 0, 12);
  }
  payloadTail_ = end;
  descriptorTail_++;
  packets_++;
  bytes_ += size;
  return true;
}

// direct: published by the event loop's thread, which wakes JavaScript itself.
void Receiver::Publish(bool direct) {
  // Once per batch, see how far the consumer has got: the cached heads may be
  // far behind when the ring has room, and would overstate the high-water mark.
  cachedDescriptorHead_ = LoadAcquire(&control_->descriptorHead);
  cachedPayloadHead_ = LoadAcquire(&control_->payloadHead);
  uint64_t used = (payloadTail_ - cachedPayloadHead_) + (descriptorTail_ - cachedDescriptorHead_) * sizeof(Descriptor);
  if (used > highWater_) highWater_ = used;
  StoreRelaxed(&control_->packets, packets_);
  StoreRelaxed(&control_->bytes, bytes_);
  StoreRelaxed(&control_->batches, batches_);
  StoreRelaxed(&control_->kernelDrops, kernelDrops_);
  StoreRelaxed(&control_->ringDrops, ringDrops_);
  StoreRelaxed(&control_->truncated, truncated_);
  StoreRelaxed(&control_->ringHighWater, highWater_);
  StoreRelaxed(&control_->receiveCalls, receiveCalls_);
  StoreRelaxed(&control_->payloadTail, payloadTail_);
  // The one publishing store. Sequentially consistent so that it is ordered
  // before the read of consumerWaiting below (a store-load pair).
  StoreSeqCst(&control_->descriptorTail, descriptorTail_);
  if (ExchangeSeqCst(&control_->consumerWaiting, 0u) != 0 && !direct) {
    wakeups_++;
    StoreRelaxed(&control_->wakeups, wakeups_);
    // napi_queue_full means a wakeup is already on its way; napi_closing
    // means the receiver is closing. Neither needs anything more.
    wake_.NonBlockingCall();
  }
}

void Receiver::NoteKernelDrops(uint32_t socketDrops) {
  // The socket's drop counter is a u32 that wraps; keep a 64-bit total.
  uint32_t delta = socketDrops - lastSocketDrops_;
  if (delta != 0 && delta < (1u << 31)) {
    kernelDrops_ += delta;
    lastSocketDrops_ = socketDrops;
  }
}

void Receiver::RefreshKernelDrops() {
  // SO_RXQ_OVFL only reports drops with the next datagram received; once the
  // queue is empty, SO_MEMINFO reads the same counter now.
  if (!memInfoWorks_) return;
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof(meminfo);
  if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0 || length <= SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    memInfoWorks_ = false;
    return;
  }
  uint64_t before = kernelDrops_;
  NoteKernelDrops(meminfo[SK_MEMINFO_DROPS]);
  if (kernelDrops_ != before) StoreRelaxed(&control_->kernelDrops, kernelDrops_);
}

// Called and returns with `lock` held; releases it while it waits.
bool Receiver::WaitReadable(pthread_mutex_t* lock) {
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {controlFd_, POLLIN, 0}};
  for (;;) {
    // SO_RXQ_OVFL reports drops only with the next datagram; when traffic
    // stops, read the socket's drop counter once after a short quiet spell.
    int timeout = dropsUnchecked_ ? kQuietMs : -1;
    pthread_mutex_unlock(lock);
    int r = poll(fds, 2, timeout);
    int err = errno;
    if (r > 0 && fds[0].revents != 0 && fds[1].revents == 0 && directArmed_.load(std::memory_order_acquire)) {
      // The event loop is polling the socket for a waiting consumer: leave
      // the datagram to it, unless the loop is held up past the grace.
      struct pollfd control = {controlFd_, POLLIN, 0};
      if (poll(&control, 1, kGraceMs) > 0) fds[1].revents = control.revents;
    }
    pthread_mutex_lock(lock);
    if (r < 0) {
      if (err == EINTR) continue;
      Fail(err, "poll");
      return false;
    }
    if (r == 0) {
      RefreshKernelDrops();
      dropsUnchecked_ = false;
      continue;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t value;
      if (read(controlFd_, &value, sizeof(value)) < 0 && errno != EAGAIN) {
        Fail(errno, "read");
        return false;
      }
      if (closing_.load(std::memory_order_acquire)) return false;
    }
    if (fds[0].revents) return true;
  }
}

void Receiver::WaitForSpace() {
  stalls_++;
  StoreRelaxed(&control_->producerStalls, stalls_);
  StoreSeqCst(&control_->producerWaiting, 1u);
  for (;;) {
    // Re-check after announcing: the consumer may have released just before.
    uint64_t descriptorHead = LoadSeqCst(&control_->descriptorHead);
    uint64_t payloadHead = LoadSeqCst(&control_->payloadHead);
    if (descriptorHead != cachedDescriptorHead_ || payloadHead != cachedPayloadHead_) break;
    if (closing_.load(std::memory_order_acquire)) break;
    struct pollfd fds[1] = {{controlFd_, POLLIN, 0}};
    // While the ring is full the socket is not read, so SO_RXQ_OVFL reports
    // nothing: read the kernel's drop counter every quiet spell instead, so
    // kernelDrops stays live while the consumer stalls.
    int r = poll(fds, 1, kQuietMs);
    if (r < 0) {
      if (errno == EINTR) continue;
      Fail(errno, "poll");
      closing_.store(true, std::memory_order_release);
      break;
    }
    if (r == 0) {
      RefreshKernelDrops();
      continue;
    }
    uint64_t value;
    if (read(controlFd_, &value, sizeof(value)) < 0 && errno != EAGAIN) {
      Fail(errno, "read");
      closing_.store(true, std::memory_order_release);
      break;
    }
  }
  StoreSeqCst(&control_->producerWaiting, 0u);
  cachedDescriptorHead_ = LoadAcquire(&control_->descriptorHead);
  cachedPayloadHead_ = LoadAcquire(&control_->payloadHead);
}

}  // namespace udpring
