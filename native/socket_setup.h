// Socket setup, free of Node-API: numeric addresses and the receive socket's
// creation (or adoption), options and bind, in plain C++ values. The Node-API
// side (receiver.cc, sender.cc) reads its options into these and turns an
// error code and syscall name into a JavaScript error (socket.h).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace udpring {

// Fills `out` from a numeric address; returns its length, or 0 when the text
// is not an address of `family` (4 or 6).
socklen_t MakeSockaddr(int family, const std::string& address, uint16_t port,
                       sockaddr_storage* out);

// What open() asks of the receive socket, from its options.
struct SocketSetup {
  int family = 4;              // 4 or 6
  uint32_t adopt = 0;          // > 0: a descriptor to adopt (already bound) instead of a new socket
  bool dupFd = false;          // with adopt: receive on a duplicate, the caller keeps its own
  std::string address;         // numeric, to bind (not with adopt)
  uint32_t port = 0;
  bool reuseAddr = false;
  bool reusePort = false;
  bool ipv6Only = false;
  bool timestamps = false;     // SO_TIMESTAMPNS
  bool gro = false;            // UDP_GRO
  bool pktinfo = false;        // IP_PKTINFO / IPV6_RECVPKTINFO
  bool tos = false;            // IP_RECVTOS / IPV6_RECVTCLASS
  int recvBufferSize = 0;      // > 0: SO_RCVBUFFORCE, else SO_RCVBUF
};

// What it got. fd is set as soon as there is one, on failure too: the caller closes it.
struct SocketState {
  int fd = -1;
  sockaddr_storage local{};        // getsockname() after bind
  uint32_t recvBufferGranted = 0;  // SO_RCVBUF as the kernel reports it
  bool forced = false;             // SO_RCVBUFFORCE was allowed
  bool notAnAddress = false;       // the failure is a bad address (or port), not a system call
};

// Creates (or adopts), sets up and binds the receive socket. Returns nullptr,
// or the name of the system call that failed with *err its errno (with
// notAnAddress set: the address is not a numeric one of the family, *err EINVAL).
const char* SetUpReceiveSocket(const SocketSetup& setup, SocketState* out, int* err);

}  // namespace udpring
