#include "socket_setup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "sockopt_compat.h"

namespace udpring {

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
  // A link-local address names its interface after '%': a name or an index.
  size_t percent = address.find('%');
  if (inet_pton(AF_INET6, address.substr(0, percent).c_str(), &sin6->sin6_addr) != 1) return 0;
  if (percent != std::string::npos) {
    std::string scope = address.substr(percent + 1);
    unsigned index = if_nametoindex(scope.c_str());
    if (index == 0) {
      char* end = nullptr;
      unsigned long number = strtoul(scope.c_str(), &end, 10);
      if (scope.empty() || *end != '\0' || number > UINT32_MAX) return 0;
      index = static_cast<unsigned>(number);
    }
    sin6->sin6_scope_id = index;
  }
  return sizeof(sockaddr_in6);
}

const char* SetUpReceiveSocket(const SocketSetup& setup, SocketState* out, int* err) {
  int one = 1;
  const int family = setup.family == 6 ? 6 : 4;
  // fd > 0: adopt a socket the process inherited (systemd socket activation, dgram's
  // bind({ fd })), already bound; it must be a datagram socket. Not closed on failure: it is the caller's.
  const uint32_t adopt = setup.adopt;
  sockaddr_storage bindAddress;
  socklen_t bindLength = 0;
  if (adopt > 0) {
    int type = 0;
    socklen_t typeLength = sizeof(type);
    if (getsockopt(static_cast<int>(adopt), SOL_SOCKET, SO_TYPE, &type, &typeLength) != 0 || type != SOCK_DGRAM) {
      *err = errno != 0 && type == 0 ? errno : EINVAL;
      return "open";
    }
    int flags = fcntl(static_cast<int>(adopt), F_GETFL);
    if (flags < 0 || fcntl(static_cast<int>(adopt), F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(static_cast<int>(adopt), F_SETFD, FD_CLOEXEC) != 0) {
      *err = errno;
      return "open";
    }
    // dupFd: receive on a duplicate, so the caller may close its own descriptor (the dgram
    // facade moving a socket from node:dgram's event loop onto the thread).
    out->fd = setup.dupFd ? fcntl(static_cast<int>(adopt), F_DUPFD_CLOEXEC, 3) : static_cast<int>(adopt);
    if (out->fd < 0) {
      *err = errno;
      return "open";
    }
  } else {
  const std::string& address = setup.address;
  uint32_t port = setup.port;
  bindLength = MakeSockaddr(family, address, static_cast<uint16_t>(port), &bindAddress);
  if (bindLength == 0 || port > 65535) {
    out->notAnAddress = true;
    *err = EINVAL;
    return "bind";
  }

  out->fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (out->fd < 0) {
    *err = errno;
    return "socket";
  }
  if (setup.reuseAddr && setsockopt(out->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    *err = errno;
    return "setsockopt";
  }
  if (setup.reusePort && setsockopt(out->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    *err = errno;
    return "setsockopt";
  }
  if (family == 6) {
    int v6only = setup.ipv6Only ? 1 : 0;
    if (setsockopt(out->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
      *err = errno;
      return "setsockopt";
    }
  }
  }
  if (setsockopt(out->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0) {
    *err = errno;
    return "setsockopt";
  }
  if (setup.timestamps && setsockopt(out->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0) {
    *err = errno;
    return "setsockopt";
  }
  // Asked for, so refused is an error (ENOPROTOOPT: a kernel before 5.0), not a silent fallback.
  if (setup.gro && setsockopt(out->fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) != 0) {
    *err = errno;
    return "setsockopt";
  }
  // On an IPv6 socket, IPv4 datagrams (v4-mapped) report their destination
  // through IPV6_PKTINFO but their TOS only through IP_TOS: ask for both.
  const bool dualStack = family == 6 && !setup.ipv6Only;
  if (setup.pktinfo &&
      (family == 6 ? setsockopt(out->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one))
                   : setsockopt(out->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))) != 0) {
    *err = errno;
    return "setsockopt";
  }
  if (setup.tos &&
      ((family == 6 ? setsockopt(out->fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one)) : 0) != 0 ||
       ((family == 4 || dualStack) && setsockopt(out->fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)) != 0))) {
    *err = errno;
    return "setsockopt";
  }
  // As large as the system allows: SO_RCVBUFFORCE needs CAP_NET_ADMIN; without
  // it SO_RCVBUF is capped by net.core.rmem_max. Neither failing is fatal.
  int requested = setup.recvBufferSize;
  if (requested > 0) {
    out->forced = setsockopt(out->fd, SOL_SOCKET, SO_RCVBUFFORCE, &requested, sizeof(requested)) == 0;
    if (!out->forced) setsockopt(out->fd, SOL_SOCKET, SO_RCVBUF, &requested, sizeof(requested));
  }
  int granted = 0;
  socklen_t grantedLength = sizeof(granted);
  if (getsockopt(out->fd, SOL_SOCKET, SO_RCVBUF, &granted, &grantedLength) == 0) {
    out->recvBufferGranted = static_cast<uint32_t>(granted);
  }

  if (adopt == 0 && bind(out->fd, reinterpret_cast<sockaddr*>(&bindAddress), bindLength) != 0) {
    *err = errno;
    return "bind";
  }
  socklen_t localLength = sizeof(out->local);
  if (getsockname(out->fd, reinterpret_cast<sockaddr*>(&out->local), &localLength) != 0) {
    *err = errno;
    return "getsockname";
  }
  return nullptr;
}
}  // namespace udpring
