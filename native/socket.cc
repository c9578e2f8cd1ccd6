#include "socket.h"

#include <arpa/inet.h>

#include <cstring>

namespace udpring {

void ThrowSystemError(Napi::Env env, int err, const char* syscall) {
  Napi::Error error = Napi::Error::New(env, std::string(syscall) + " failed: " + strerror(err));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  error.ThrowAsJavaScriptException();
}

socklen_t MakeSockaddr(int family, const std::string& address, uint16_t port,
                       sockaddr_storage* out) {
  memset(out, 0, sizeof(*out));
  if (family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) return 0;
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) return 0;
  return sizeof(sockaddr_in6);
}

Napi::Object SockaddrToObject(Napi::Env env, const sockaddr_storage& sa) {
  Napi::Object o = Napi::Object::New(env);
  char text[INET6_ADDRSTRLEN] = {0};
  if (sa.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    o.Set("family", "IPv4");
    o.Set("port", Napi::Number::New(env, ntohs(sin->sin_port)));
  } else {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    o.Set("family", "IPv6");
    o.Set("port", Napi::Number::New(env, ntohs(sin6->sin6_port)));
  }
  o.Set("address", Napi::String::New(env, text));
  return o;
}

uint32_t GetUint32(Napi::Object o, const char* key, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : fallback;
}

bool GetBool(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

std::string GetString(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

}  // namespace udpring
