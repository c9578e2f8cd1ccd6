// The outside ceiling for the drain table: a plain C recvmmsg loop, no ring,
// no JavaScript. It binds 127.0.0.1, forces its receive buffer, and reads
// each datagram's sequence number (bytes 0-3, u32 LE) as the benchmark's
// receivers do. Built by the benchmark with cc (bench/native-loop.mjs).
//
// Usage: recvmmsg-loop <recvBufferSize> [gro] [epoll] [linger=<us>] [info]
// Prints "ready <port> <granted> <forced>", then obeys one command a line on stdin:
//   hold <file>  stop reading until <file> exists, then note the start time
//   mark         the next datagram read should be sequence number 0 (a new send)
//   stats        print "stats <received> <kernelDrops> <gaps> <startNs> <lastNs>
//                wakeups=<n> calls=<n>" (waits that found the socket readable,
//                recvmmsg calls that returned datagrams) and, with "info",
//                " withInfo=<n>" (datagrams that carried both the destination and the TOS)
// and exits at end of input. With "gro", UDP_GRO is on and a coalesced
// buffer counts as the datagrams it carries (its segment size from the cmsg).
// With "epoll", it waits in epoll_wait (level-triggered, the socket and stdin)
// instead of poll: what libuv does, for the cost table's floor (bench/floor.mjs).
// With "linger=<us>", after the socket is empty it keeps trying recvmmsg
// (non-blocking) until <us> microseconds have passed without a datagram before
// it waits again (the kernel's busy_poll idea, in user space).
// With "info", IP_PKTINFO and IP_RECVTOS are on and each datagram's
// destination, interface and TOS are read from their cmsgs into a record, as
// udp-ring's packet info does: the floor of what those options cost (the
// kernel's put_cmsg and one parse), with no ring behind it.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loop-common.h"

enum { kBatch = 64, kSlot = 65536 + 64 };

// Its own counters, beside loop-common.h's: waits that found the socket readable, recvmmsg calls that returned datagrams.
static uint64_t wakeups, calls;
// With "info": datagrams whose destination and TOS both arrived (printed, so the reads are not optimised away).
static uint64_t with_info;

int main(int argc, char** argv) {
  int requested = argc > 1 ? atoi(argv[1]) : 0;
  int gro = 0, use_epoll = 0, info = 0;
  uint64_t linger_ns = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "gro") == 0) gro = 1;
    else if (strcmp(argv[i], "epoll") == 0) use_epoll = 1;
    else if (strcmp(argv[i], "info") == 0) info = 1;
    else if (strncmp(argv[i], "linger=", 7) == 0) linger_ns = (uint64_t)atoi(argv[i] + 7) * 1000u;
    else return fprintf(stderr, "unknown option %s\n", argv[i]), 1;
  }
  int fd = open_loop_socket(requested, gro);
  if (fd < 0) return 1;
  // After the ready line: the warm-up may arrive without them, but each phase counts withInfo from its own start.
  int one = 1;
  if (info && (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) != 0 ||
               setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)) != 0)) {
    return perror("IP_PKTINFO / IP_RECVTOS"), 1;
  }

  uint8_t* landing = malloc((size_t)kBatch * kSlot);
  static struct mmsghdr messages[kBatch];
  static struct iovec iovecs[kBatch];
  static uint8_t controls[kBatch][CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int)) +
                                  CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int))];
  // Where "info" puts each datagram's destination, interface and TOS (as udp-ring's PacketInfo).
  static struct { uint8_t destination[16]; uint32_t interface_index; uint8_t family, tos, flags, reserved; } infos[kBatch];
  if (landing == NULL) return perror("malloc"), 1;
  for (int i = 0; i < kBatch; i++) {
    iovecs[i].iov_base = landing + (size_t)i * kSlot;
    iovecs[i].iov_len = 65535;
    messages[i].msg_hdr.msg_iov = &iovecs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }

  int ep = -1;
  if (use_epoll) {
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return perror("epoll_create1"), 1;
    struct epoll_event in = {.events = EPOLLIN, .data.fd = 0}, sock = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &sock) != 0) return perror("epoll_ctl"), 1;
  }

  char line[4096];
  size_t used = 0;
  const char* gate = NULL;
  char gate_path[4096];
  for (;;) {
    struct pollfd fds[2] = {{0, POLLIN, 0}, {fd, POLLIN, 0}};
    int r;
    if (ep >= 0 && !gate) {
      struct epoll_event events[2];
      r = epoll_wait(ep, events, 2, -1);
      if (r < 0 && errno != EINTR) return perror("epoll_wait"), 1;
      for (int i = 0; i < r; i++) fds[events[i].data.fd == 0 ? 0 : 1].revents = (short)events[i].events;
    } else {
      r = poll(fds, gate ? 1 : 2, gate ? 1 : -1);
      if (r < 0 && errno != EINTR) return perror("poll"), 1;
    }
    if (gate) {
      struct stat st;
      if (stat(gate, &st) == 0) {
        gate = NULL;
        start_ns = now_ns();
      }
    }
    if (fds[0].revents) {
      ssize_t got = read(0, line + used, sizeof(line) - 1 - used);
      if (got <= 0) return 0;
      used += (size_t)got;
      char* end;
      while ((end = memchr(line, '\n', used)) != NULL) {
        *end = '\0';
        if (strncmp(line, "hold ", 5) == 0) {
          snprintf(gate_path, sizeof(gate_path), "%s", line + 5);
          gate = gate_path;
          expected_seq = 0;
        } else if (strcmp(line, "mark") == 0) {
          expected_seq = 0;
        } else if (strcmp(line, "stats") == 0) {
          refresh_drops(fd);
          printf("stats %llu %llu %llu %llu %llu wakeups=%llu calls=%llu", (unsigned long long)received,
                 (unsigned long long)kernel_drops, (unsigned long long)gaps, (unsigned long long)start_ns,
                 (unsigned long long)last_ns, (unsigned long long)wakeups, (unsigned long long)calls);
          if (info) printf(" withInfo=%llu", (unsigned long long)with_info);
          printf("\n");
          fflush(stdout);
        }
        size_t rest = used - (size_t)(end + 1 - line);
        memmove(line, end + 1, rest);
        used = rest;
      }
    }
    if (gate || !(fds[1].revents & POLLIN)) continue;
    wakeups++;
    uint64_t got_at = now_ns();
    for (;;) {
      for (int i = 0; i < kBatch; i++) {
        messages[i].msg_hdr.msg_control = controls[i];
        messages[i].msg_hdr.msg_controllen = sizeof(controls[i]);
      }
      int n = recvmmsg(fd, messages, kBatch, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          if (linger_ns > 0 && now_ns() - got_at < linger_ns) continue;
          break;
        }
        return perror("recvmmsg"), 1;
      }
      got_at = now_ns();
      calls++;
      for (int i = 0; i < n; i++) {
        const uint8_t* data = iovecs[i].iov_base;
        size_t size = messages[i].msg_len;
        size_t segment = size;
        struct msghdr* header = &messages[i].msg_hdr;
        if (info) memset(&infos[i], 0, sizeof(infos[i]));
        for (struct cmsghdr* c = CMSG_FIRSTHDR(header); c != NULL; c = CMSG_NXTHDR(header, c)) {
          if (info && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pktinfo;
            memcpy(&pktinfo, CMSG_DATA(c), sizeof(pktinfo));
            memcpy(infos[i].destination, &pktinfo.ipi_addr, 4);
            infos[i].interface_index = (uint32_t)pktinfo.ipi_ifindex;
            infos[i].family = 4;
          } else if (info && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
            infos[i].tos = *CMSG_DATA(c);
            infos[i].flags |= 1;
          } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(c), sizeof(drops));
            note_drops(drops);
          } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
            int gso;
            memcpy(&gso, CMSG_DATA(c), sizeof(gso));
            if (gso > 0) segment = (size_t)gso;
          }
        }
        if (info && infos[i].family == 4 && infos[i].flags == 1) with_info++;
        if (segment == 0) segment = 1;
        for (size_t at = 0; at < size || (size == 0 && at == 0); at += segment) {
          note_sequence(data + at, size - at < segment ? size - at : segment);
          if (size == 0) break;
        }
      }
      last_ns = now_ns();
    }
  }
}
