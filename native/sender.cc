#include "sender.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "socket.h"

namespace udpring {

Napi::Function Sender::Init(Napi::Env env) {
  return DefineClass(env, "Sender",
                     {
                         InstanceMethod<&Sender::Open>("open"),
                         InstanceMethod<&Sender::Send>("send"),
                         InstanceMethod<&Sender::Close>("close"),
                         InstanceMethod<&Sender::LocalAddress>("localAddress"),
                         InstanceMethod<&Sender::Errors>("errors"),
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
  if (napi_add_env_cleanup_hook(env, CleanupHook, this) == napi_ok) hookAdded_ = true;
  return env.Undefined();
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
    unsigned batch = 0;
    size_t cursor = offset;
    while (batch < kMaxBatch && sent + batch < count) {
      size_t size = sizes[sent + batch];
      if (cursor + size > available) {
        Napi::RangeError::New(env, "sizes add up to more than data.byteLength").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      iovecs_[batch].iov_base = bytes + cursor;
      iovecs_[batch].iov_len = size;
      messages_[batch].msg_hdr.msg_iov = &iovecs_[batch];
      messages_[batch].msg_hdr.msg_iovlen = 1;
      cursor += size;
      batch++;
    }
    int n = sendmmsg(fd_, messages_, batch, 0);
    int err = n < 0 ? errno : 0;
    // Loopback delivers the ICMP error within the call: count it now, while the queue is short.
    DrainErrors();
    if (n < 0) {
      // The socket's pending error is an ICMP error for an earlier datagram,
      // already counted from the error queue; nothing of this batch was sent.
      if (err == EINTR || err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == ENOBUFS) continue;
      if (sent > 0) break;
      ThrowSystemError(env, err, "sendmmsg");
      return env.Undefined();
    }
    for (int k = 0; k < n; k++) offset += sizes[sent + k];
    sent += n;
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// Reads the error queue empty, counting ICMP errors by kind. Local errors
// (ee_origin LOCAL) were already returned by the send that met them.
void Sender::DrainErrors() {
  if (fd_ < 0) return;
  bool drained = false;
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
      if (e->ee_errno == ECONNREFUSED) refused_++;
      else icmpErrors_++;
    }
  }
  if (!drained) return;
  // The socket's pending error repeats the last entry: clear it, so the next send does not fail on it.
  int pending = 0;
  socklen_t length = sizeof(pending);
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &pending, &length);
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
