// What the benchmark's two C receive loops share (bench/recvmmsg-loop.c and
// bench/iouring-loop.c): the socket they receive on, and the counting of
// datagrams, sequence gaps and kernel drops that their "stats" line reports.
// Header-only (static functions), so bench/native-loop.mjs and the io_uring
// test still build each loop from its one .c file.
#pragma once

#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

// The socket options older libc headers lack: the addon's own definitions.
#include "../native/sockopt_compat.h"

static uint64_t received, kernel_drops, gaps, start_ns, last_ns;
static uint32_t expected_seq, last_socket_drops;

static inline uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// The socket's drop counter (SO_RXQ_OVFL's cmsg, or SO_MEMINFO): a u32 that wraps.
static inline void note_drops(uint32_t socket_drops) {
  uint32_t delta = socket_drops - last_socket_drops;
  if (delta != 0 && delta < (1u << 31)) {
    kernel_drops += delta;
    last_socket_drops = socket_drops;
  }
}

// Before a "stats" answer: drops the socket counted since its last cmsg.
static inline void refresh_drops(int fd) {
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof(meminfo);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0) note_drops(meminfo[SK_MEMINFO_DROPS]);
}

// One datagram: counted, its sequence number (bytes 0-3, u32 LE) checked
// against the one expected. Returns the sequence number.
static inline uint32_t note_sequence(const uint8_t* data, size_t size) {
  uint32_t seq = 0;
  if (size >= 4) memcpy(&seq, data, 4);
  if (seq != expected_seq) gaps++;
  expected_seq = seq + 1;
  received++;
  return seq;
}

// The loop's socket: UDP on 127.0.0.1, an ephemeral port, non-blocking,
// SO_RXQ_OVFL on, UDP_GRO if asked, the receive buffer forced to `requested`
// where allowed (else SO_RCVBUF). Prints "ready <port> <granted> <forced>".
// Returns the descriptor, or -1 after perror().
static inline int open_loop_socket(int requested, int gro) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return perror("socket"), -1;
  int one = 1, forced = 0;
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
  if (gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) != 0) return perror("UDP_GRO"), -1;
  if (requested > 0) {
    forced = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &requested, sizeof(requested)) == 0;
    if (!forced) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &requested, sizeof(requested));
  }
  int granted = 0;
  socklen_t length = sizeof(granted);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &length);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr*)&local, sizeof(local)) != 0) return perror("bind"), -1;
  length = sizeof(local);
  getsockname(fd, (struct sockaddr*)&local, &length);
  printf("ready %u %d %d\n", ntohs(local.sin_port), granted, forced);
  fflush(stdout);
  return fd;
}
