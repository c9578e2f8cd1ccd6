// Node-API conversions shared by the receiver and the sender: a failed system
// call to a JavaScript error, a sockaddr to an object, option properties to
// plain values. The socket work itself, free of Node-API, is socket_setup.h.
#pragma once

#include <napi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "socket_setup.h"

namespace udpring {

// Throws a JavaScript Error carrying `errno` (positive) and `syscall`; the
// TypeScript layer turns it into a Node-style system error.
void ThrowSystemError(Napi::Env env, int err, const char* syscall);

// { address, family: 'IPv4'|'IPv6', port } from a sockaddr.
Napi::Object SockaddrToObject(Napi::Env env, const sockaddr_storage& sa);

// Reads a property as a number / bool / string with a fallback.
uint32_t GetUint32(Napi::Object o, const char* key, uint32_t fallback);
bool GetBool(Napi::Object o, const char* key, bool fallback);
std::string GetString(Napi::Object o, const char* key);

}  // namespace udpring
