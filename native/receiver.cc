// The JavaScript-facing receiver: module-level class definition, open()'s
// argument checking and conversion, close and the cleanup hook, ref/unref,
// notifySpace, localAddress, socketInfo, failure. The socket operations
// JavaScript calls on an open receiver (setOption, sendTo, connect...) are in
// receiver_socket.cc; socket setup in socket_setup.cc; the event loop's direct
// receive in direct_receive.cc; the thread and the ring in receive_loop.cc
// and receive_batch.cc.
#include "receiver.h"

#include <linux/sock_diag.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "socket.h"

namespace udpring {

// The JavaScript side of a wakeup needs nothing from native: the wake function
// only resolves the promise a waiting next() holds.
struct WakeContext {};

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
  const uint32_t coalesceUs = GetUint32(options, "coalesceUs", 0);
  if (coalesceUs > 1000000) {
    Napi::RangeError::New(env, "coalesceUs must be 0 to 1000000").ThrowAsJavaScriptException();
    Shutdown();
    return env.Undefined();
  }
  // The thread coalesces what it receives itself; while the event loop
  // receives in windows, the thread's watch ticks outlast a window, so a
  // window is not taken for a loop held up.
  loop_.coalesceUs = coalesceUs;
  loop_.coalesceAuto = coalesceUs > 0 && GetBool(options, "coalesceAuto", false);
  loop_.graceMs = std::max(loop_.graceMs, static_cast<int>((coalesceUs + 999) / 1000) + 1);
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

// The socket from open()'s options: the options read here, the socket work in
// socket_setup.cc, its failure turned into the JavaScript error.
bool Receiver::SetUpSocket(Napi::Env env, Napi::Object options) {
  SocketSetup setup;
  setup.family = GetUint32(options, "family", 4) == 6 ? 6 : 4;
  setup.adopt = GetUint32(options, "fd", 0);
  setup.dupFd = GetBool(options, "dupFd", false);
  setup.address = GetString(options, "address");
  setup.port = GetUint32(options, "port", 0);
  setup.reuseAddr = GetBool(options, "reuseAddr", false);
  setup.reusePort = GetBool(options, "reusePort", false);
  setup.ipv6Only = GetBool(options, "ipv6Only", false);
  setup.timestamps = GetBool(options, "timestamps", false);
  setup.gro = GetBool(options, "gro", false);
  setup.pktinfo = GetBool(options, "pktinfo", false);
  setup.tos = GetBool(options, "tos", false);
  setup.recvBufferSize = static_cast<int>(GetUint32(options, "recvBufferSize", 0));
  SocketState state;
  int err = 0;
  const char* syscall = SetUpReceiveSocket(setup, &state, &err);
  fd_ = state.fd;  // on failure too: Shutdown() closes it
  if (syscall != nullptr) {
    if (state.notAnAddress) {
      Napi::TypeError::New(env, "address is not a numeric IPv" + std::to_string(setup.family) + " address")
          .ThrowAsJavaScriptException();
    } else {
      ThrowSystemError(env, err, syscall);
    }
    return false;
  }
  local_ = state.local;
  recvBufferGranted_ = state.recvBufferGranted;
  forced_ = state.forced;
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
  // The poll handle goes before the socket it watches (direct_receive.cc).
  ClosePoll();
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
  RefPoll(true);
  return info.Env().Undefined();
}

Napi::Value Receiver::Unref(const Napi::CallbackInfo& info) {
  if (tsfnLive_) wake_.Unref(info.Env());
  refed_ = false;
  RefPoll(false);
  return info.Env().Undefined();
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

}  // namespace udpring
