#include "sender.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "socket.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // Linux 4.18
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace udpring {

Napi::Function Sender::Init(Napi::Env env) {
  return DefineClass(env, "Sender",
                     {
                         InstanceMethod<&Sender::Open>("open"),
                         InstanceMethod<&Sender::Send>("send"),
                         InstanceMethod<&Sender::Close>("close"),
                         InstanceMethod<&Sender::LocalAddress>("localAddress"),
                         InstanceMethod<&Sender::Errors>("errors"),
                         InstanceMethod<&Sender::Segmentation>("segmentation"),
                     });
}

Sender::Sender(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sender>(info), env_(info.Env()) {
  memset(messages_, 0, sizeof(messages_));
}

Sender::~Sender() { Shutdown(); }

void Sender::CleanupHook(void* self) {
  auto* sender = static_cast<Sender*>(self);
  sender->hookAdded_ = false;
  sender->Shutdown();
}

void Sender::Shutdown() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (hookAdded_) {
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hookAdded_ = false;
  }
}

// open({ family, address, port, sendBufferSize, localAddress? }): connects the socket.
Napi::Value Sender::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ >= 0 || info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "open(options) on a fresh sender").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object options = info[0].As<Napi::Object>();
  int family = GetUint32(options, "family", 4) == 6 ? 6 : 4;
  uint32_t port = GetUint32(options, "port", 0);
  sockaddr_storage destination;
  socklen_t length = MakeSockaddr(family, GetString(options, "address"), static_cast<uint16_t>(port), &destination);
  if (length == 0 || port == 0 || port > 65535) {
    Napi::TypeError::New(env, "destination is not a numeric address and port").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  fd_ = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    ThrowSystemError(env, errno, "socket");
    return env.Undefined();
  }
  // Every ICMP error for a sent datagram is queued, one entry each, so that
  // refusals are counted; without it a connected socket keeps one pending
  // error, which sendmmsg consumes and discards after its first datagram.
  int on = 1;
  if (family == 6) setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof(on));
  else setsockopt(fd_, IPPROTO_IP, IP_RECVERR, &on, sizeof(on));
  int sendBuffer = static_cast<int>(GetUint32(options, "sendBufferSize", 0));
  if (sendBuffer > 0 && setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &sendBuffer, sizeof(sendBuffer)) != 0) {
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sendBuffer, sizeof(sendBuffer));
  }
  // The TOS byte (IPv6: traffic class) every datagram carries: DSCP and ECN. -1: the system's default.
  Napi::Value tos = options.Get("tos");
  if (tos.IsNumber()) {
    int value = static_cast<int>(tos.As<Napi::Number>().Int32Value());
    int set = family == 6 ? setsockopt(fd_, IPPROTO_IPV6, IPV6_TCLASS, &value, sizeof(value))
                          : setsockopt(fd_, IPPROTO_IP, IP_TOS, &value, sizeof(value));
    if (set != 0) {
      int err = errno;
      Shutdown();
      ThrowSystemError(env, err, "setsockopt");
      return env.Undefined();
    }
  }
  std::string local = GetString(options, "localAddress");
  if (!local.empty()) {
    sockaddr_storage source;
    socklen_t sourceLength = MakeSockaddr(family, local, static_cast<uint16_t>(GetUint32(options, "localPort", 0)), &source);
    if (sourceLength == 0 || bind(fd_, reinterpret_cast<sockaddr*>(&source), sourceLength) != 0) {
      int err = sourceLength == 0 ? EINVAL : errno;
      Shutdown();
      ThrowSystemError(env, err, "bind");
      return env.Undefined();
    }
  }
  if (connect(fd_, reinterpret_cast<sockaddr*>(&destination), length) != 0) {
    int err = errno;
    Shutdown();
    ThrowSystemError(env, err, "connect");
    return env.Undefined();
  }
  // GSO where the kernel has it (reading UDP_SEGMENT fails with ENOPROTOOPT before 4.18).
  int segment = 0;
  socklen_t segmentLength = sizeof(segment);
  gso_ = GetBool(options, "gso", false) && getsockopt(fd_, SOL_UDP, UDP_SEGMENT, &segment, &segmentLength) == 0;
  gsoLimit_ = 65535;
  gsoMaxBytes_ = family == 6 ? 65527 : 65507;
  if (napi_add_env_cleanup_hook(env, CleanupHook, this) == napi_ok) hookAdded_ = true;
  return env.Undefined();
}

// Lays out messages_ for datagrams [first, count) from byte `offset` of `bytes`:
// with `gso`, each run of equal sizes (up to 64, a shorter last one allowed,
// at most a UDP datagram's payload in all) becomes one UDP_SEGMENT message.
// Returns the messages laid out; *overrun when datagram `first + ...` runs
// past `available` before any message could be laid out for it.
size_t Sender::PlanBatch(const uint8_t* bytes, size_t available, const Napi::Uint32Array& sizes, size_t first,
                         size_t count, size_t offset, bool gso, unsigned* segmentCounts, bool* overrun) {
  size_t messages = 0;
  size_t cursor = offset;
  size_t next = first;
  *overrun = false;
  while (messages < kMaxBatch && next < count) {
    const size_t size = sizes[next];
    if (cursor + size > available) {
      *overrun = true;
      return messages;
    }
    unsigned segments = 1;
    size_t total = size;
    if (gso && size > 0 && size <= gsoLimit_) {
      const size_t most = gsoMaxBytes_ / size < kMaxSegments ? gsoMaxBytes_ / size : kMaxSegments;
      while (segments < most && next + segments < count) {
        const size_t following = sizes[next + segments];
        if (following == 0 || following > size || cursor + total + following > available) break;
        total += following;
        segments++;
        if (following < size) break;  // only the last segment may be shorter
      }
    }
    struct msghdr& header = messages_[messages].msg_hdr;
    iovecs_[messages].iov_base = const_cast<uint8_t*>(bytes) + cursor;
    iovecs_[messages].iov_len = total;
    header.msg_iov = &iovecs_[messages];
    header.msg_iovlen = 1;
    if (segments > 1) {
      header.msg_control = controls_[messages];
      header.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr* c = CMSG_FIRSTHDR(&header);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t segmentSize = static_cast<uint16_t>(size);
      memcpy(CMSG_DATA(c), &segmentSize, sizeof(segmentSize));
    } else {
      header.msg_control = nullptr;
      header.msg_controllen = 0;
    }
    segmentCounts[messages] = segments;
    cursor += total;
    next += segments;
    messages++;
  }
  return messages;
}

// send(data: Uint8Array, sizes: Uint32Array, count: number): number sent.
// Datagram k is `sizes[k]` bytes long and follows datagram k-1 in `data`.
Napi::Value Sender::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) {
    ThrowSystemError(env, EBADF, "sendmmsg");
    return env.Undefined();
  }
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "send(data, sizes, count)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array sizes = info[1].As<Napi::Uint32Array>();
  size_t count = info[2].As<Napi::Number>().Uint32Value();
  if (data.TypedArrayType() != napi_uint8_array || sizes.TypedArrayType() != napi_uint32_array ||
      count > sizes.ElementLength()) {
    Napi::TypeError::New(env, "send(data: Uint8Array, sizes: Uint32Array, count <= sizes.length)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t* bytes = data.Data();
  size_t available = data.ByteLength();
  size_t offset = 0;
  size_t sent = 0;
  while (sent < count) {
    bool overrun = false;
    const bool gso = gso_;
    size_t batch = PlanBatch(bytes, available, sizes, sent, count, offset, gso, segments_, &overrun);
    if (overrun) {
      Napi::RangeError::New(env, "sizes add up to more than data.byteLength").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int n = sendmmsg(fd_, messages_, static_cast<unsigned>(batch), 0);
    int err = n < 0 ? errno : 0;
    calls_++;
    // Loopback delivers the ICMP error within the call: count it now, while the queue is short.
    int icmp = DrainErrors();
    // A destination that answers with ICMP gets one error per message, not per
    // segment: from the first, send per datagram, so that each refusal counts one.
    if (icmp > 0) gso_ = false;
    if (n < 0) {
      if (gso && segments_[0] > 1 &&
          (err == EIO || err == EINVAL || err == EOPNOTSUPP || err == ENOPROTOOPT || err == EMSGSIZE)) {
        // GSO refused: by the device or kernel (EIO, EOPNOTSUPP, ENOPROTOOPT: never again), or for this
        // segment size on this route (EINVAL, EMSGSIZE: a segment above the path MTU; smaller ones may go).
        const uint32_t segment = sizes[sent];
        if (err == EINVAL || err == EMSGSIZE) gsoLimit_ = segment - 1;
        if (gsoLimit_ == 0 || !(err == EINVAL || err == EMSGSIZE)) gso_ = false;
        continue;
      }
      // The socket's pending error is an ICMP error for an earlier datagram,
      // already counted from the error queue; nothing of this batch was sent.
      if (err == EINTR || err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == ENOBUFS) continue;
      if (sent > 0) break;
      ThrowSystemError(env, err, "sendmmsg");
      return env.Undefined();
    }
    for (int k = 0; k < n; k++) {
      offset += iovecs_[k].iov_len;
      sent += segments_[k];
    }
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// Reads the error queue empty, counting ICMP errors by kind. Local errors
// (ee_origin LOCAL) were already returned by the send that met them.
int Sender::DrainErrors() {
  if (fd_ < 0) return 0;
  bool drained = false;
  int icmp = 0;
  for (;;) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(sock_extended_err) + sizeof(sockaddr_in6))];
    msghdr message = {};
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t r = recvmsg(fd_, &message, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: the queue is empty
    }
    drained = true;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v4 && !v6) continue;
      const auto* e = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
      if (e->ee_origin != SO_EE_ORIGIN_ICMP && e->ee_origin != SO_EE_ORIGIN_ICMP6) continue;
      icmp++;
      if (e->ee_errno == ECONNREFUSED) refused_++;
      else icmpErrors_++;
    }
  }
  if (!drained) return 0;
  // The socket's pending error repeats the last entry: clear it, so the next send does not fail on it.
  int pending = 0;
  socklen_t length = sizeof(pending);
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &pending, &length);
  return icmp;
}

// segmentation(): { gso, gsoLimit, calls }: whether sends still use UDP_SEGMENT, the
// largest segment size they may, and the send calls made since open.
Napi::Value Sender::Segmentation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("gso", Napi::Boolean::New(env, gso_));
  result.Set("gsoLimit", Napi::Number::New(env, gso_ ? gsoLimit_ : 0));
  result.Set("calls", Napi::Number::New(env, calls_));
  return result;
}

// errors(): { refused, icmpErrors } since open, after reading what has arrived.
Napi::Value Sender::Errors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DrainErrors();
  Napi::Object result = Napi::Object::New(env);
  result.Set("refused", Napi::Number::New(env, refused_));
  result.Set("icmpErrors", Napi::Number::New(env, icmpErrors_));
  return result;
}

Napi::Value Sender::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

Napi::Value Sender::LocalAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) return env.Null();
  sockaddr_storage local;
  socklen_t length = sizeof(local);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length) != 0) return env.Null();
  return SockaddrToObject(env, local);
}

}  // namespace udpring
