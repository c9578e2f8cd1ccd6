// Module entry: the Receiver and Sender classes and the ring layout.
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <napi.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>

#include <cstdint>
#include <ctime>
#include <string>

#include "receiver.h"
#include "ring.h"
#include "sender.h"

namespace udpring {
namespace {

#define OFFSET(field) Napi::Number::New(env, offsetof(Control, field))

Napi::Object LayoutObject(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("magic", Napi::Number::New(env, kMagic));
  o.Set("version", Napi::Number::New(env, kLayoutVersion));
  o.Set("controlBytes", Napi::Number::New(env, sizeof(Control)));
  o.Set("descriptorSize", Napi::Number::New(env, sizeof(Descriptor)));
  o.Set("timestampSize", Napi::Number::New(env, sizeof(Timestamp)));
  o.Set("packetInfoSize", Napi::Number::New(env, sizeof(PacketInfo)));
  o.Set("packetInfoTos", Napi::Number::New(env, kPacketInfoTos));
  o.Set("payloadAlign", Napi::Number::New(env, kPayloadAlign));
  o.Set("payloadReserve", Napi::Number::New(env, kPayloadReserve));
  o.Set("bytesPerDescriptor", Napi::Number::New(env, kBytesPerDescriptor));
  o.Set("maxRingBytes", Napi::Number::New(env, static_cast<double>(kMaxRingBytes)));
  o.Set("flagTruncated", Napi::Number::New(env, kFlagTruncated));
  o.Set("maxMessageSize", Napi::Number::New(env, kMaxMessageSize));

  Napi::Object control = Napi::Object::New(env);
  control.Set("magic", OFFSET(magic));
  control.Set("version", OFFSET(version));
  control.Set("descriptorSize", OFFSET(descriptorSize));
  control.Set("descriptorCount", OFFSET(descriptorCount));
  control.Set("descriptorsOffset", OFFSET(descriptorsOffset));
  control.Set("payloadOffset", OFFSET(payloadOffset));
  control.Set("payloadCapacity", OFFSET(payloadCapacity));
  control.Set("maxMessageSize", OFFSET(maxMessageSize));
  control.Set("timestampsOffset", OFFSET(timestampsOffset));
  control.Set("packetInfoOffset", OFFSET(packetInfoOffset));
  control.Set("descriptorTail", OFFSET(descriptorTail));
  control.Set("payloadTailOffset", OFFSET(payloadTailOffset));
  control.Set("descriptorHead", OFFSET(descriptorHead));
  control.Set("consumerWaiting", OFFSET(consumerWaiting));
  control.Set("producerWaiting", OFFSET(producerWaiting));
  control.Set("packets", OFFSET(packets));
  control.Set("bytes", OFFSET(bytes));
  control.Set("batches", OFFSET(batches));
  control.Set("kernelDrops", OFFSET(kernelDrops));
  control.Set("ringDrops", OFFSET(ringDrops));
  control.Set("truncated", OFFSET(truncated));
  control.Set("ringHighWater", OFFSET(ringHighWater));
  control.Set("wakeups", OFFSET(wakeups));
  control.Set("producerStalls", OFFSET(producerStalls));
  control.Set("receiveCalls", OFFSET(receiveCalls));
  control.Set("directBatches", OFFSET(directBatches));
  control.Set("coalesced", OFFSET(coalesced));
  control.Set("discarded", OFFSET(discarded));
  control.Set("threadWakeups", OFFSET(threadWakeups));
  control.Set("windows", OFFSET(windows));
  o.Set("control", control);

  Napi::Object descriptor = Napi::Object::New(env);
  descriptor.Set("offset", Napi::Number::New(env, offsetof(Descriptor, offset)));
  descriptor.Set("size", Napi::Number::New(env, offsetof(Descriptor, size)));
  descriptor.Set("port", Napi::Number::New(env, offsetof(Descriptor, port)));
  descriptor.Set("family", Napi::Number::New(env, offsetof(Descriptor, family)));
  descriptor.Set("flags", Napi::Number::New(env, offsetof(Descriptor, flags)));
  descriptor.Set("wireSize", Napi::Number::New(env, offsetof(Descriptor, wireSize)));
  descriptor.Set("scopeId", Napi::Number::New(env, offsetof(Descriptor, scopeId)));
  descriptor.Set("address", Napi::Number::New(env, offsetof(Descriptor, address)));
  o.Set("descriptor", descriptor);

  Napi::Object packetInfo = Napi::Object::New(env);
  packetInfo.Set("destination", Napi::Number::New(env, offsetof(PacketInfo, destination)));
  packetInfo.Set("interfaceIndex", Napi::Number::New(env, offsetof(PacketInfo, interfaceIndex)));
  packetInfo.Set("destinationFamily", Napi::Number::New(env, offsetof(PacketInfo, destinationFamily)));
  packetInfo.Set("tos", Napi::Number::New(env, offsetof(PacketInfo, tos)));
  packetInfo.Set("flags", Napi::Number::New(env, offsetof(PacketInfo, flags)));
  o.Set("packetInfo", packetInfo);
  return o;
}

#undef OFFSET

// computeLayout(ringBytes, timestamps?, packetInfo?): { descriptorCount, descriptorsOffset, timestampsOffset,
// packetInfoOffset, payloadOffset, payloadCapacity } or null.
Napi::Value ComputeLayoutJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "computeLayout(ringBytes, timestamps?, packetInfo?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double bytes = info[0].As<Napi::Number>().DoubleValue();
  Layout layout;
  if (!(bytes >= 0) || bytes > static_cast<double>(kMaxRingBytes) ||
      !ComputeLayout(static_cast<uint64_t>(bytes), info.Length() > 1 && info[1].ToBoolean().Value(),
                     info.Length() > 2 && info[2].ToBoolean().Value(), &layout)) {
    return env.Null();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("descriptorCount", Napi::Number::New(env, layout.descriptorCount));
  o.Set("descriptorsOffset", Napi::Number::New(env, layout.descriptorsOffset));
  o.Set("timestampsOffset", Napi::Number::New(env, layout.timestampsOffset));
  o.Set("packetInfoOffset", Napi::Number::New(env, layout.packetInfoOffset));
  o.Set("payloadOffset", Napi::Number::New(env, layout.payloadOffset));
  o.Set("payloadCapacity", Napi::Number::New(env, layout.payloadCapacity));
  return o;
}

// minimumPayloadCapacity(batchSize, maxMessageSize): payload bytes a ring needs (see ring.h).
Napi::Value MinimumPayloadCapacityJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "minimumPayloadCapacity(batchSize, maxMessageSize)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t batchSize = info[0].As<Napi::Number>().Uint32Value();
  uint32_t maxMessageSize = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(env, static_cast<double>(MinimumPayloadCapacity(batchSize, maxMessageSize)));
}

// realtimeMicros(): CLOCK_REALTIME in microseconds, the clock of the kernel's
// receive timestamps, so a queueing delay is measured against the same clock.
Napi::Value RealtimeMicrosJs(const Napi::CallbackInfo& info) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return Napi::Number::New(info.Env(), static_cast<double>(now.tv_sec) * 1e6 + static_cast<double>(now.tv_nsec) / 1e3);
}

// monotonicMicros(): CLOCK_MONOTONIC in microseconds, wrapping at 2^30 (every
// ~17.9 minutes), for the delivery turn's budget. A small integer, so reading
// it allocates nothing in the V8 heap (performance.now() allocates 32 B a call
// on Node 20, and the turn clock is read at most wakeups: docs/cost-floor.md).
Napi::Value MonotonicMicrosJs(const Napi::CallbackInfo& info) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t micros = static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
  napi_value result;
  if (napi_create_uint32(info.Env(), static_cast<uint32_t>(micros & 0x3fffffffu), &result) != napi_ok) {
    Napi::Error::New(info.Env(), "napi_create_uint32 failed").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Value(info.Env(), result);
}

// interfaceName(index): if_indextoname, or null: the '%scope' of a link-local address.
Napi::Value InterfaceNameJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "interfaceName(index)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  char name[IF_NAMESIZE] = {0};
  if (if_indextoname(info[0].As<Napi::Number>().Uint32Value(), name) == nullptr) return env.Null();
  return Napi::String::New(env, name);
}

// The socket's SO_MEMINFO words, or false when fd is not a socket that has them.
bool ReadMemInfo(int fd, uint32_t (&meminfo)[SK_MEMINFO_VARS]) {
  socklen_t length = sizeof(meminfo);
  return getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0 && length > SK_MEMINFO_DROPS * sizeof(uint32_t);
}

int FdArgument(const Napi::CallbackInfo& info, const char* usage) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
    return -1;
  }
  return info[0].As<Napi::Number>().Int32Value();
}

// socketMemInfo(fd): { queuedBytes, recvBufferSize, socketDrops } of any socket (SO_MEMINFO), or
// null: the dgram facade's counters while node:dgram, not the thread, receives on that fd.
Napi::Value SocketMemInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArgument(info, "socketMemInfo(fd)");
  if (fd < 0) return env.Null();
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  if (!ReadMemInfo(fd, meminfo)) return env.Null();
  Napi::Object result = Napi::Object::New(env);
  result.Set("queuedBytes", Napi::Number::New(env, meminfo[SK_MEMINFO_RMEM_ALLOC]));
  result.Set("recvBufferSize", Napi::Number::New(env, meminfo[SK_MEMINFO_RCVBUF]));
  result.Set("socketDrops", Napi::Number::New(env, meminfo[SK_MEMINFO_DROPS]));
  return result;
}

// discardQueued(fd): counts what closing the socket throws away, as the receive thread counts it
// at its own close: a filter that accepts nothing, then the queue read out datagram by datagram.
// { discarded, socketDrops }: socketDrops read after the queue, so arrivals the filter turned away
// show in it. Null when fd is not a socket with SO_MEMINFO. For a socket about to be closed only.
Napi::Value DiscardQueuedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArgument(info, "discardQueued(fd)");
  if (fd < 0) return env.Null();
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  if (!ReadMemInfo(fd, meminfo)) return env.Null();
  struct sock_filter acceptNothing = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog filter = {1, &acceptNothing};
  setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof(filter));
  double discarded = 0;
  uint8_t byte = 0;
  // Bounded: a pending socket error (ICMP) is returned once and cleared, so errors cannot repeat forever.
  for (int errors = 0; errors < 64;) {
    ssize_t n = recv(fd, &byte, sizeof(byte), MSG_DONTWAIT | MSG_TRUNC);
    if (n >= 0) {
      discarded++;
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno != EINTR) errors++;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("discarded", Napi::Number::New(env, discarded));
  result.Set("socketDrops", ReadMemInfo(fd, meminfo) ? Napi::Number::New(env, meminfo[SK_MEMINFO_DROPS]) : env.Null());
  return result;
}

#ifdef UDP_RING_SELFCHECK
// Only in the sanitizer build (scripts/test-asan.sh): one deliberate fault of
// each kind the run must catch, so a harness that reports nothing is proven
// able to report something. Never compiled into a build that ships.
Napi::Value SelfCheckFault(const Napi::CallbackInfo& info) {
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  if (kind == "heap-buffer-overflow") {
    // volatile, so the compiler can neither fold the store nor elide the allocation.
    volatile uint8_t* block = new uint8_t[32];
    volatile size_t past = 32;
    block[past] = 1;  // one byte past the end
    delete[] block;
  } else if (kind == "signed-overflow") {
    volatile int32_t big = INT32_MAX;
    volatile int32_t sum = big + static_cast<int32_t>(info.Length());
    (void)sum;
  }
  return info.Env().Undefined();
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Receiver", Receiver::Init(env));
  exports.Set("Sender", Sender::Init(env));
  exports.Set("layout", LayoutObject(env));
  exports.Set("computeLayout", Napi::Function::New(env, ComputeLayoutJs, "computeLayout"));
  exports.Set("realtimeMicros", Napi::Function::New(env, RealtimeMicrosJs, "realtimeMicros"));
  exports.Set("monotonicMicros", Napi::Function::New(env, MonotonicMicrosJs, "monotonicMicros"));
  exports.Set("interfaceName", Napi::Function::New(env, InterfaceNameJs, "interfaceName"));
  exports.Set("minimumPayloadCapacity", Napi::Function::New(env, MinimumPayloadCapacityJs, "minimumPayloadCapacity"));
  exports.Set("socketMemInfo", Napi::Function::New(env, SocketMemInfoJs, "socketMemInfo"));
  exports.Set("discardQueued", Napi::Function::New(env, DiscardQueuedJs, "discardQueued"));
  exports.Set("maxBatchSize", Napi::Number::New(env, 1024));
#ifdef UDP_RING_SELFCHECK
  exports.Set("selfCheckFault", Napi::Function::New(env, SelfCheckFault, "selfCheckFault"));
#endif
  return exports;
}

}  // namespace
}  // namespace udpring

static Napi::Object InitUdpRing(Napi::Env env, Napi::Object exports) {
  return udpring::Init(env, exports);
}

NODE_API_MODULE(udp_ring, InitUdpRing)
