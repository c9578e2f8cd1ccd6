// Socket helpers shared by the receiver and the sender.
#pragma once

#include <napi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace udpring {

// Throws a JavaScript Error carrying `errno` (positive) and `syscall`; the
// TypeScript layer turns it into a Node-style system error.
void ThrowSystemError(Napi::Env env, int err, const char* syscall);

// Fills `out` from a numeric address; returns its length, or 0 when the text
// is not an address of `family` (4 or 6).
socklen_t MakeSockaddr(int family, const std::string& address, uint16_t port,
                       sockaddr_storage* out);

// { address, family: 'IPv4'|'IPv6', port } from a sockaddr.
Napi::Object SockaddrToObject(Napi::Env env, const sockaddr_storage& sa);

// Reads a property as a number / bool / string with a fallback.
uint32_t GetUint32(Napi::Object o, const char* key, uint32_t fallback);
bool GetBool(Napi::Object o, const char* key, bool fallback);
std::string GetString(Napi::Object o, const char* key);

}  // namespace udpring
