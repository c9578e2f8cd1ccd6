// The receiver's socket, from JavaScript: the socket option names the
// TypeScript layer may use, setOption/getOption, sendTo (replies from the bound
// port), connect, and the ICMP errors a connected socket reports (watchErrors).
// Argument checking and conversion around one system call each; the rest of
// the receiver object is receiver.cc.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "receiver.h"
#include "socket.h"

namespace udpring {

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
