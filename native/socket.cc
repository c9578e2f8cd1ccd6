#include "socket.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace udpring {

void ThrowSystemError(Napi::Env env, int err, const char* syscall) {
  Napi::Error error = Napi::Error::New(env, std::string(syscall) + " failed: " + strerror(err));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  error.ThrowAsJavaScriptException();
}

Napi::Object SockaddrToObject(Napi::Env env, const sockaddr_storage& sa) {
  Napi::Object o = Napi::Object::New(env);
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1] = {0};
  if (sa.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    o.Set("family", "IPv4");
    o.Set("port", Napi::Number::New(env, ntohs(sin->sin_port)));
  } else {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    // As Node prints a link-local address: with '%' and its interface.
    if (sin6->sin6_scope_id != 0) {
      char name[IF_NAMESIZE] = {0};
      std::string scope = if_indextoname(sin6->sin6_scope_id, name) ? name : std::to_string(sin6->sin6_scope_id);
      snprintf(text + strlen(text), sizeof(text) - strlen(text), "%%%s", scope.c_str());
    }
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
