// Issue 9's bisect of the V8 heap bytes allocated per event-loop wakeup:
// a test-only addon (bench/wakeup-alloc.mjs builds and drives it), never part
// of the package. A thread of its own sends one datagram at a time to a
// socket the event loop polls with libuv (lockstep: the next once the last was
// received), so every datagram is one wakeup. The poll callback receives it
// and then does one of the steps udp-ring's wake does, by mode; the JavaScript
// side measures the heap's growth over thousands of wakeups with no GC.
//
// Modes (what the poll callback does after recvmmsg):
//   recv          nothing: no Node-API and no V8 call at all
//   scope         napi_open_handle_scope / napi_close_handle_scope
//   global        + napi_get_reference_value and napi_get_global
//   make          + napi_make_callback(async context) to the JS function
//   makeNull      + napi_make_callback(NULL async context)
//   cbScope       + napi_open_callback_scope + napi_call_function + close
//   call          + napi_call_function, no callback scope
//   v8call        v8::HandleScope + v8::Function::Call (no Node-API, no Node)
//   nodeScope     node::CallbackScope opened and closed, no JavaScript called
//   nodeMake      node::MakeCallback with the async context (Node's C++ API)
//   checkpoint    v8::HandleScope + the microtask queue's checkpoint only
//   keptObjects   isolate->ClearKeptObjects() only (what a callback scope's close runs)
//   setIdle       isolate->SetIdle(true) only (what a callback scope's close runs)
// and, without the socket (the sender thread wakes the loop another way):
//   async         uv_async_send per step; its callback does nothing
#include <node.h>
#include <node_api.h>
#include <uv.h>
#include <v8.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace {

enum class Mode { kRecv, kScope, kGlobal, kMake, kMakeNull, kCbScope, kCall, kV8Call, kNodeScope, kNodeMake,
                  kCheckpoint, kKeptObjects, kSetIdle, kAsync };

struct Harness {
  napi_env env = nullptr;
  Mode mode = Mode::kRecv;
  int receiveFd = -1;
  int sendFd = -1;
  sockaddr_in address{};
  uv_poll_t poll{};
  uv_async_t async{};
  bool pollInit = false;
  bool asyncInit = false;
  napi_ref target = nullptr;  // the JS function each wakeup calls
  napi_ref done = nullptr;    // called once when the run's count is reached
  napi_ref resource = nullptr;
  napi_async_context context = nullptr;
  node::async_context nodeContext{0, 0};
  std::thread sender;
  std::mutex mutex;
  std::condition_variable received;
  uint64_t count = 0;
  uint64_t got = 0;  // guarded by mutex
  bool failed = false;
};

Harness harness;

void Step(Harness* h) {
  napi_env env = h->env;
  switch (h->mode) {
    case Mode::kRecv:
    case Mode::kAsync:
      return;
    case Mode::kKeptObjects:
      v8::Isolate::GetCurrent()->ClearKeptObjects();
      return;
    case Mode::kSetIdle:
      v8::Isolate::GetCurrent()->SetIdle(true);
      return;
    case Mode::kV8Call:
    case Mode::kCheckpoint:
    case Mode::kNodeScope:
    case Mode::kNodeMake: {
      v8::Isolate* isolate = v8::Isolate::GetCurrent();
      v8::HandleScope scope(isolate);
      napi_value targetValue;
      napi_get_reference_value(env, h->target, &targetValue);
      v8::Local<v8::Function> fn;
      memcpy(static_cast<void*>(&fn), &targetValue, sizeof(fn));
      v8::Local<v8::Context> context = fn->GetCreationContextChecked();
      v8::Context::Scope contextScope(context);
      if (h->mode == Mode::kV8Call) {
        if (fn->Call(context, context->Global(), 0, nullptr).IsEmpty()) return;
      } else if (h->mode == Mode::kCheckpoint) {
        context->GetMicrotaskQueue()->PerformCheckpoint(isolate);
      } else if (h->mode == Mode::kNodeScope) {
        node::CallbackScope callbackScope(isolate, context->Global(), h->nodeContext);
      } else {
        (void)node::MakeCallback(isolate, context->Global(), fn, 0, nullptr, h->nodeContext);
      }
      return;
    }
    default:
      break;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (h->mode != Mode::kScope) {
    napi_value fn, global, result;
    napi_get_reference_value(env, h->target, &fn);
    napi_get_global(env, &global);
    if (h->mode == Mode::kMake) {
      napi_make_callback(env, h->context, global, fn, 0, nullptr, &result);
    } else if (h->mode == Mode::kMakeNull) {
      napi_make_callback(env, nullptr, global, fn, 0, nullptr, &result);
    } else if (h->mode == Mode::kCbScope) {
      napi_value resource;
      napi_get_reference_value(env, h->resource, &resource);
      napi_callback_scope callbackScope;
      if (napi_open_callback_scope(env, resource, h->context, &callbackScope) == napi_ok) {
        napi_call_function(env, global, fn, 0, nullptr, &result);
        napi_close_callback_scope(env, callbackScope);
      }
    } else if (h->mode == Mode::kCall) {
      napi_call_function(env, global, fn, 0, nullptr, &result);
    }
  }
  napi_close_handle_scope(env, scope);
}

void Finish(Harness* h) {
  if (h->pollInit) uv_poll_stop(&h->poll);
  if (h->asyncInit) uv_unref(reinterpret_cast<uv_handle_t*>(&h->async));
  if (h->sender.joinable()) h->sender.join();
  napi_handle_scope scope;
  napi_open_handle_scope(h->env, &scope);
  napi_value fn, global, result;
  napi_get_reference_value(h->env, h->done, &fn);
  napi_get_global(h->env, &global);
  napi_make_callback(h->env, nullptr, global, fn, 0, nullptr, &result);
  napi_close_handle_scope(h->env, scope);
}

void Received(Harness* h, uint64_t n) {
  uint64_t got;
  {
    std::lock_guard<std::mutex> lock(h->mutex);
    h->got += n;
    got = h->got;
  }
  h->received.notify_one();
  Step(h);
  if (got == h->count) Finish(h);
}

void OnPollable(uv_poll_t* handle, int status, int) {
  auto* h = static_cast<Harness*>(handle->data);
  if (status != 0) return;
  mmsghdr messages[8];
  char buffers[8][256];
  iovec iovs[8];
  for (int i = 0; i < 8; i++) {
    iovs[i] = {buffers[i], sizeof buffers[i]};
    memset(&messages[i], 0, sizeof messages[i]);
    messages[i].msg_hdr.msg_iov = &iovs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(h->receiveFd, messages, 8, MSG_DONTWAIT, nullptr);
  if (n > 0) Received(h, static_cast<uint64_t>(n));
}

void OnAsync(uv_async_t* handle) { Received(static_cast<Harness*>(handle->data), 1); }

void Send(Harness* h) {
  char payload[32];
  memset(payload, 7, sizeof payload);
  for (uint64_t sent = 0; sent < h->count; sent++) {
    if (h->mode == Mode::kAsync) {
      uv_async_send(&h->async);
    } else if (sendto(h->sendFd, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&h->address),
                      sizeof h->address) < 0) {
      h->failed = true;
      return;
    }
    // Lockstep: the next datagram once this one was received.
    std::unique_lock<std::mutex> lock(h->mutex);
    h->received.wait(lock, [&] { return h->got > sent; });
  }
}

Mode ParseMode(const std::string& name, bool* ok) {
  static const std::pair<const char*, Mode> names[] = {
      {"recv", Mode::kRecv}, {"scope", Mode::kScope}, {"global", Mode::kGlobal}, {"make", Mode::kMake},
      {"makeNull", Mode::kMakeNull}, {"cbScope", Mode::kCbScope}, {"call", Mode::kCall}, {"v8call", Mode::kV8Call},
      {"nodeScope", Mode::kNodeScope}, {"nodeMake", Mode::kNodeMake}, {"checkpoint", Mode::kCheckpoint},
      {"keptObjects", Mode::kKeptObjects}, {"setIdle", Mode::kSetIdle}, {"async", Mode::kAsync}};
  for (const auto& [n, m] : names) {
    if (name == n) {
      *ok = true;
      return m;
    }
  }
  *ok = false;
  return Mode::kRecv;
}

napi_value Throw(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return nullptr;
}

// run(mode, count, target, done): starts a run; done() is called when count
// wakeups have been taken. One run at a time.
napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value args[4];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  if (argc < 4) return Throw(env, "run(mode, count, target, done)");
  char modeName[32];
  size_t length;
  napi_get_value_string_utf8(env, args[0], modeName, sizeof modeName, &length);
  bool ok;
  Harness* h = &harness;
  h->mode = ParseMode(modeName, &ok);
  if (!ok) return Throw(env, "unknown mode");
  int64_t count;
  napi_get_value_int64(env, args[1], &count);
  h->env = env;
  h->count = static_cast<uint64_t>(count);
  h->got = 0;
  if (h->target) napi_delete_reference(env, h->target);
  if (h->done) napi_delete_reference(env, h->done);
  napi_create_reference(env, args[2], 1, &h->target);
  napi_create_reference(env, args[3], 1, &h->done);
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  if (h->context == nullptr) {
    napi_value name, resource;
    napi_create_string_utf8(env, "wakeup-alloc", NAPI_AUTO_LENGTH, &name);
    napi_create_object(env, &resource);
    napi_create_reference(env, resource, 1, &h->resource);
    napi_async_init(env, resource, name, &h->context);
    v8::Local<v8::Object> resourceObject;
    memcpy(static_cast<void*>(&resourceObject), &resource, sizeof(resourceObject));
    h->nodeContext = node::EmitAsyncInit(v8::Isolate::GetCurrent(), resourceObject, "wakeup-alloc-node");
  }
  if (h->mode == Mode::kAsync) {
    if (!h->asyncInit) {
      uv_async_init(loop, &h->async, OnAsync);
      h->async.data = h;
      h->asyncInit = true;
    }
    uv_ref(reinterpret_cast<uv_handle_t*>(&h->async));
  } else {
    if (h->receiveFd < 0) {
      h->receiveFd = socket(AF_INET, SOCK_DGRAM, 0);
      h->sendFd = socket(AF_INET, SOCK_DGRAM, 0);
      h->address.sin_family = AF_INET;
      h->address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(h->receiveFd, reinterpret_cast<sockaddr*>(&h->address), sizeof h->address) != 0) {
        return Throw(env, "bind failed");
      }
      socklen_t addressLength = sizeof h->address;
      getsockname(h->receiveFd, reinterpret_cast<sockaddr*>(&h->address), &addressLength);
      uv_poll_init_socket(loop, &h->poll, h->receiveFd);
      h->poll.data = h;
      h->pollInit = true;
    }
    uv_poll_start(&h->poll, UV_READABLE, OnPollable);
  }
  h->sender = std::thread(Send, h);
  return nullptr;
}

// loopCount(): the event loop's iterations so far (libuv's metrics), for the
// bench's receivers: Node allocates once per iteration whatever it did.
napi_value LoopCount(napi_env env, napi_callback_info) {
  uv_loop_t* loop;
  uv_metrics_t metrics;
  napi_value result;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_metrics_info(loop, &metrics) != 0) {
    return Throw(env, "uv_metrics_info failed");
  }
  napi_create_double(env, static_cast<double>(metrics.loop_count), &result);
  return result;
}

// close(): lets the process exit.
napi_value Close(napi_env env, napi_callback_info) {
  Harness* h = &harness;
  if (h->pollInit) {
    uv_poll_stop(&h->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), nullptr);
    h->pollInit = false;
  }
  if (h->asyncInit) {
    uv_close(reinterpret_cast<uv_handle_t*>(&h->async), nullptr);
    h->asyncInit = false;
  }
  (void)env;
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value run, close, loopCount;
  napi_create_function(env, "run", NAPI_AUTO_LENGTH, Run, nullptr, &run);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, Close, nullptr, &close);
  napi_create_function(env, "loopCount", NAPI_AUTO_LENGTH, LoopCount, nullptr, &loopCount);
  napi_set_named_property(env, exports, "run", run);
  napi_set_named_property(env, exports, "close", close);
  napi_set_named_property(env, exports, "loopCount", loopCount);
  return exports;
}
