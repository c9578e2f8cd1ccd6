// The io_uring counterpart of bench/recvmmsg-loop.c (issue 13, "io_uring,
// measured, not assumed"): the same job, counting datagrams and reading each
// one's sequence number (bytes 0-3, u32 LE), done with one multishot
// IORING_OP_RECVMSG that takes its buffers from a registered provided-buffer
// ring (kernel >= 6.0). Raw syscalls and <linux/io_uring.h> only: liburing is
// not a dependency udp-ring could ship. Built by the benchmark with cc
// (bench/native-loop.mjs).
//
// Usage: iouring-loop <recvBufferSize> [option...]
//   defer      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: completions
//              are produced only inside io_uring_enter, never by interrupting the loop
//   coop       IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG (without defer)
//   single     IORING_SETUP_SINGLE_ISSUER alone
//   batch      reap every ready completion, then publish the CQ head and the recycled
//              buffers once (default: per completion, as a first port of the loop would)
//   wait=N     wait for up to N completions per io_uring_enter: once one is there, for
//              at most waitus more (the kernel's min_wait_usec, Linux 6.12; before that
//              a timeout of waitus, which also wakes an idle loop every waitus)
//   waitus=U   that wait, in microseconds (default 50)
//   buffers=N  provided buffers (a power of two, default 256)
//   size=N     payload bytes per buffer (default 65535, udp-ring's maxMessageSize; each
//              buffer is spaced like udp-ring's landing slots)
// Prints "ready <port> <granted> <forced>", or "refused <syscall> <errno> <reason>" and exits 3
// when the kernel will not run it (io_uring disabled or missing, or too old for multishot
// recvmsg). Then obeys one command a line on stdin, as recvmmsg-loop does:
//   hold <file>  stop receiving (cancel the multishot receive) until <file> exists, then
//                note the start time and receive again; prints "held" once the receive
//                has ended (from then on the kernel queues everything)
//   stats        "stats <received> <kernelDrops> <gaps> <startNs> <lastNs>" and then
//                key=value fields: cmsgDrops (the drop count SO_RXQ_OVFL carried),
//                enobufs, rearms, enters, cqes, truncated
//   sample <seq> keep a copy of the next datagram whose sequence number is <seq> (up to 8)
//   show         one line per sample kept: "sample <seq> <length> <hex>", then "shown"
// and exits at end of input.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "loop-common.h"

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
// Linux 6.12: io_uring_getevents_arg's pad is min_wait_usec (headers before 6.12 call it pad).
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

enum { kTagRecv = 1, kTagInput = 2, kTagCancel = 3 };
enum { kMaxSamples = 8, kNameSpace = sizeof(struct sockaddr_in) };
// One cmsg: SO_RXQ_OVFL's u32 drop counter.
#define kControlSpace CMSG_SPACE(sizeof(uint32_t))

// ---- the ring: raw syscalls ------------------------------------------------

static int sys_setup(unsigned entries, struct io_uring_params* p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags, void* arg, size_t size) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, arg, size);
}
static int sys_register(int fd, unsigned op, void* arg, unsigned n) {
  return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

static struct {
  int fd;
  unsigned *sq_tail, *sq_mask, *sq_array, *sq_flags;
  struct io_uring_sqe* sqes;
  unsigned sq_pending;  // filled, not yet handed to the kernel
  unsigned sq_next;     // our copy of the SQ tail
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe* cqes;
} ring;

static struct io_uring_sqe* next_sqe(void) {
  unsigned index = ring.sq_next & *ring.sq_mask;
  struct io_uring_sqe* sqe = &ring.sqes[index];
  memset(sqe, 0, sizeof(*sqe));
  ring.sq_array[index] = index;
  ring.sq_next++;
  ring.sq_pending++;
  __atomic_store_n(ring.sq_tail, ring.sq_next, __ATOMIC_RELEASE);
  return sqe;
}

// ---- options and state -----------------------------------------------------

static unsigned setup_flags;
static int batch = 0;
static unsigned wait_for = 1, wait_us = 50;
static unsigned buffer_count = 256, payload_size = 65535;
static int min_timeout;  // the kernel has min_wait_usec

static int fd;  // the socket
static uint8_t* buffers;
static size_t stride;  // bytes from one buffer to the next
static unsigned buffer_length;  // bytes the kernel may write into one
static struct io_uring_buf_ring* buf_ring;
static unsigned short buf_tail;

static uint64_t cmsg_drops;  // the rest of the counts are loop-common.h's
static uint64_t enobufs, rearms, enters, cqes_seen, truncated;
static int armed, cancelling;
static const char* gate;
static char gate_path[4096];
static char input[4096];
static size_t input_used;
static int input_armed;

static struct {
  uint32_t seq;
  int wanted, kept;
  uint32_t length;
  uint8_t* data;
} samples[kMaxSamples];
static int sample_count;

static void note(const uint8_t* data, uint32_t size) {
  uint32_t seq = note_sequence(data, size);
  for (int k = 0; k < sample_count; k++) {
    if (samples[k].wanted && samples[k].seq == seq && size >= 4) {
      memcpy(samples[k].data, data, size);
      samples[k].length = size;
      samples[k].wanted = 0;
      samples[k].kept = 1;
    }
  }
}

static void publish_buffers(void) { __atomic_store_n(&buf_ring->tail, buf_tail, __ATOMIC_RELEASE); }

// Hands buffer `bid` back to the kernel. Never touches bufs[].resv: the ring's
// tail lives in bufs[0].resv.
static void recycle(unsigned bid) {
  struct io_uring_buf* b = &buf_ring->bufs[buf_tail & (buffer_count - 1)];
  b->addr = (uint64_t)(uintptr_t)(buffers + (size_t)bid * stride);
  b->len = buffer_length;
  b->bid = (uint16_t)bid;
  buf_tail++;
  if (!batch) publish_buffers();
}

// One datagram as multishot recvmsg lays it out in a provided buffer: the
// io_uring_recvmsg_out header, the name (the space msg_namelen reserved), the
// control messages (msg_controllen reserved), then the payload.
static void absorb(const uint8_t* buffer, int res) {
  const struct io_uring_recvmsg_out* out = (const void*)buffer;
  size_t head = sizeof(*out) + kNameSpace + kControlSpace;
  if ((size_t)res < head) {
    fprintf(stderr, "iouring-loop: a completion of %d bytes, shorter than its header\n", res);
    exit(1);
  }
  const uint8_t* control = buffer + sizeof(*out) + kNameSpace;
  for (size_t at = 0; at + sizeof(struct cmsghdr) <= out->controllen;) {
    struct cmsghdr c;
    memcpy(&c, control + at, sizeof(c));
    if (c.cmsg_len < sizeof(c)) break;
    if (c.cmsg_level == SOL_SOCKET && c.cmsg_type == SO_RXQ_OVFL) {
      uint32_t drops;
      memcpy(&drops, control + at + CMSG_LEN(0), sizeof(drops));
      if (drops > cmsg_drops) cmsg_drops = drops;
      note_drops(drops);
    }
    at += CMSG_ALIGN(c.cmsg_len);
  }
  if (out->flags & MSG_TRUNC) truncated++;
  note(buffer + head, (uint32_t)((size_t)res - head));
}

// The multishot receive: one SQE, then a completion per datagram while the
// kernel has buffers, until it ends (no IORING_CQE_F_MORE).
static void arm(void) {
  static struct msghdr header;  // read again by the kernel for each datagram: must outlive the request
  header.msg_namelen = kNameSpace;
  header.msg_controllen = kControlSpace;
  struct io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_RECVMSG;
  sqe->fd = fd;
  sqe->addr = (uint64_t)(uintptr_t)&header;
  sqe->len = 1;
  sqe->msg_flags = MSG_TRUNC;  // the datagram's own length in payloadlen, cut or not
  sqe->flags = IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  sqe->ioprio = IORING_RECV_MULTISHOT;
  sqe->user_data = kTagRecv;
  armed = 1;
}

static void arm_input(void) {
  struct io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_READ;
  sqe->fd = 0;
  sqe->addr = (uint64_t)(uintptr_t)(input + input_used);
  sqe->len = (unsigned)(sizeof(input) - 1 - input_used);
  sqe->off = (uint64_t)-1;  // the pipe's current position
  sqe->user_data = kTagInput;
  input_armed = 1;
}

static void cancel_receive(void) {
  struct io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_ASYNC_CANCEL;
  sqe->addr = kTagRecv;
  sqe->user_data = kTagCancel;
  cancelling = 1;
}

static void say_held(void) {
  printf("held\n");
  fflush(stdout);
}

static void print_hex(const uint8_t* data, uint32_t length) {
  static const char digits[] = "0123456789abcdef";
  for (uint32_t k = 0; k < length; k++) {
    putchar(digits[data[k] >> 4]);
    putchar(digits[data[k] & 15]);
  }
}

static void command(const char* line) {
  if (strncmp(line, "hold ", 5) == 0) {
    snprintf(gate_path, sizeof(gate_path), "%s", line + 5);
    gate = gate_path;
    expected_seq = 0;
    if (armed && !cancelling) cancel_receive();
    else if (!armed) say_held();
  } else if (strcmp(line, "stats") == 0) {
    refresh_drops(fd);
    printf("stats %llu %llu %llu %llu %llu cmsgDrops=%llu enobufs=%llu rearms=%llu enters=%llu cqes=%llu truncated=%llu\n",
           (unsigned long long)received, (unsigned long long)kernel_drops, (unsigned long long)gaps,
           (unsigned long long)start_ns, (unsigned long long)last_ns, (unsigned long long)cmsg_drops,
           (unsigned long long)enobufs, (unsigned long long)rearms, (unsigned long long)enters,
           (unsigned long long)cqes_seen, (unsigned long long)truncated);
    fflush(stdout);
  } else if (strncmp(line, "sample ", 7) == 0) {
    if (sample_count < kMaxSamples) {
      samples[sample_count].seq = (uint32_t)strtoul(line + 7, NULL, 10);
      samples[sample_count].wanted = 1;
      samples[sample_count].kept = 0;
      if (samples[sample_count].data == NULL) samples[sample_count].data = malloc(payload_size);
      if (samples[sample_count].data == NULL) {
        perror("malloc");
        exit(1);
      }
      sample_count++;
    }
  } else if (strcmp(line, "show") == 0) {
    for (int k = 0; k < sample_count; k++) {
      if (!samples[k].kept) {
        printf("sample %u -1\n", samples[k].seq);
        continue;
      }
      printf("sample %u %u ", samples[k].seq, samples[k].length);
      print_hex(samples[k].data, samples[k].length);
      putchar('\n');
    }
    printf("shown\n");
    fflush(stdout);
  }
}

// Lines read from stdin; 0 at end of input.
static int take_input(int res) {
  input_armed = 0;
  if (res <= 0) return 0;
  input_used += (size_t)res;
  char* end;
  while ((end = memchr(input, '\n', input_used)) != NULL) {
    *end = '\0';
    command(input);
    size_t rest = input_used - (size_t)(end + 1 - input);
    memmove(input, end + 1, rest);
    input_used = rest;
  }
  if (input_used == sizeof(input) - 1) input_used = 0;  // a line too long for anything we obey
  arm_input();
  return 1;
}

static int refuse(const char* call, int err, const char* reason) {
  printf("refused %s %d %s\n", call, err, reason);
  fflush(stdout);
  return 3;
}

static int parse_options(int argc, char** argv) {
  for (int k = 2; k < argc; k++) {
    const char* o = argv[k];
    if (strcmp(o, "defer") == 0) setup_flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    else if (strcmp(o, "coop") == 0) setup_flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    else if (strcmp(o, "single") == 0) setup_flags |= IORING_SETUP_SINGLE_ISSUER;
    else if (strcmp(o, "batch") == 0) batch = 1;
    else if (strncmp(o, "wait=", 5) == 0) wait_for = (unsigned)atoi(o + 5);
    else if (strncmp(o, "waitus=", 7) == 0) wait_us = (unsigned)atoi(o + 7);
    else if (strncmp(o, "buffers=", 8) == 0) buffer_count = (unsigned)atoi(o + 8);
    else if (strncmp(o, "size=", 5) == 0) payload_size = (unsigned)atoi(o + 5);
    else {
      fprintf(stderr, "iouring-loop: unknown option %s\n", o);
      return 0;
    }
  }
  if (buffer_count == 0 || buffer_count > 32768 || (buffer_count & (buffer_count - 1)) != 0) {
    fprintf(stderr, "iouring-loop: buffers must be a power of two up to 32768\n");
    return 0;
  }
  if (payload_size < 4 || payload_size > 65535 || wait_for == 0) {
    fprintf(stderr, "iouring-loop: size must be 4 to 65535, wait at least 1\n");
    return 0;
  }
  return 1;
}

static int open_ring(void) {
  // Multishot recvmsg came with 6.0; an older kernel would fail the first receive with EINVAL.
  struct utsname name;
  int major = 0, minor = 0;
  if (uname(&name) == 0 && sscanf(name.release, "%d.%d", &major, &minor) == 2 && major < 6) {
    char why[128];
    snprintf(why, sizeof(why), "kernel %d.%d has no multishot recvmsg (6.0)", major, minor);
    return refuse("uname", ENOSYS, why);
  }
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  p.flags = setup_flags | IORING_SETUP_CQSIZE;
  // Every buffer can be a completion waiting to be reaped, plus the input read and a cancel.
  p.cq_entries = buffer_count * 2;
  ring.fd = sys_setup(8, &p);
  if (ring.fd < 0) return refuse("io_uring_setup", errno, strerror(errno));
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_EXT_ARG)) {
    return refuse("io_uring_setup", ENOSYS, "no IORING_FEAT_SINGLE_MMAP or IORING_FEAT_EXT_ARG");
  }
  min_timeout = (p.features & IORING_FEAT_MIN_TIMEOUT) != 0;
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  size_t size = sq_size > cq_size ? sq_size : cq_size;
  uint8_t* rings = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQ_RING);
  struct io_uring_sqe* sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
  if (rings == MAP_FAILED || sqes == MAP_FAILED) return perror("mmap io_uring"), 1;
  ring.sq_tail = (unsigned*)(rings + p.sq_off.tail);
  ring.sq_mask = (unsigned*)(rings + p.sq_off.ring_mask);
  ring.sq_array = (unsigned*)(rings + p.sq_off.array);
  ring.sq_flags = (unsigned*)(rings + p.sq_off.flags);
  ring.sq_next = *ring.sq_tail;
  ring.sqes = sqes;
  ring.cq_head = (unsigned*)(rings + p.cq_off.head);
  ring.cq_tail = (unsigned*)(rings + p.cq_off.tail);
  ring.cq_mask = (unsigned*)(rings + p.cq_off.ring_mask);
  ring.cqes = (struct io_uring_cqe*)(rings + p.cq_off.cqes);

  // The provided buffers: each takes a datagram's header, name, control and payload,
  // spaced as udp-ring spaces its landing slots (64-byte aligned, one line more than that).
  buffer_length = (unsigned)(sizeof(struct io_uring_recvmsg_out) + kNameSpace + kControlSpace + payload_size);
  stride = (((size_t)buffer_length + 63) & ~(size_t)63) + 64;
  buffers = mmap(NULL, stride * buffer_count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  size_t ring_size = (sizeof(struct io_uring_buf) * buffer_count + 4095) & ~(size_t)4095;
  buf_ring = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (buffers == MAP_FAILED || buf_ring == MAP_FAILED) return perror("mmap buffers"), 1;
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof(reg));
  reg.ring_addr = (uint64_t)(uintptr_t)buf_ring;
  reg.ring_entries = buffer_count;
  reg.bgid = 0;
  if (sys_register(ring.fd, IORING_REGISTER_PBUF_RING, &reg, 1) != 0) {
    return refuse("io_uring_register(PBUF_RING)", errno, strerror(errno));
  }
  buf_tail = 0;
  for (unsigned bid = 0; bid < buffer_count; bid++) recycle(bid);
  publish_buffers();
  return 0;
}

int main(int argc, char** argv) {
  int requested = argc > 1 ? atoi(argv[1]) : 0;
  if (!parse_options(argc, argv)) return 2;
  int status = open_ring();
  if (status != 0) return status;

  fd = open_loop_socket(requested, 0);
  if (fd < 0) return 1;

  arm_input();
  arm();
  for (;;) {
    // Wait: for the gate, a millisecond at a time; else for one completion (or, with
    // wait=N, for N or waitus).
    struct __kernel_timespec timeout = {0, 0};
    struct io_uring_getevents_arg arg;
    memset(&arg, 0, sizeof(arg));
    unsigned want = 1;
    if (gate) {
      timeout.tv_nsec = 1000000;
    } else if (wait_for > 1) {
      want = wait_for;
      // min_wait_usec, with an overall timeout: without one the kernel returns after min_wait
      // with no completion at all (6.18), and an idle loop would wake every waitus.
      if (min_timeout) {
        arg.pad = wait_us;
        timeout.tv_sec = 1;
      } else {
        timeout.tv_nsec = (long long)wait_us * 1000;
      }
    }
    if (timeout.tv_sec != 0 || timeout.tv_nsec != 0) arg.ts = (uint64_t)(uintptr_t)&timeout;
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    unsigned ready = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE) - *ring.cq_head;
    // Completions already waiting need no call, unless task work must run to make more.
    int need = ring.sq_pending > 0 || ready == 0 ||
               ((setup_flags & IORING_SETUP_TASKRUN_FLAG) && (__atomic_load_n(ring.sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN));
    if (need) {
      int r = sys_enter(ring.fd, ring.sq_pending, ready == 0 ? want : 0, flags, &arg, sizeof(arg));
      enters++;
      if (r < 0 && errno != EINTR && errno != ETIME && errno != EBUSY && errno != EAGAIN) {
        return perror("io_uring_enter"), 1;
      }
      if (r >= 0) ring.sq_pending -= (unsigned)r < ring.sq_pending ? (unsigned)r : ring.sq_pending;
    }
    if (gate) {
      struct stat st;
      if (stat(gate, &st) == 0) {
        gate = NULL;
        start_ns = now_ns();
        if (!armed) arm();
      }
    }

    unsigned head = *ring.cq_head;
    unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
    int got_data = 0;
    for (; head != tail; head++) {
      const struct io_uring_cqe* cqe = &ring.cqes[head & *ring.cq_mask];
      uint64_t tag = cqe->user_data;
      int res = cqe->res;
      unsigned cflags = cqe->flags;
      cqes_seen++;
      if (tag == kTagRecv) {
        if (cflags & IORING_CQE_F_BUFFER) {
          unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
          if (res >= 0) absorb(buffers + (size_t)bid * stride, res);
          recycle(bid);
          got_data = 1;
        }
        if (!(cflags & IORING_CQE_F_MORE)) {
          // The multishot receive ended: buffers ran out (ENOBUFS), it was cancelled, or the
          // kernel stopped it (a full CQ, for one). Receive again unless holding.
          armed = 0;
          if (gate) say_held();
          if (res == -ENOBUFS) enobufs++;
          else if (res < 0 && res != -ECANCELED) {
            fprintf(stderr, "iouring-loop: recvmsg: %s\n", strerror(-res));
            return 1;
          }
        }
      } else if (tag == kTagInput) {
        if (!take_input(res)) return 0;
      } else if (tag == kTagCancel) {
        cancelling = 0;
      }
      if (!batch) __atomic_store_n(ring.cq_head, head + 1, __ATOMIC_RELEASE);
    }
    if (batch) {
      __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
      publish_buffers();
    }
    if (got_data) last_ns = now_ns();
    if (!armed && !gate && !cancelling) {
      arm();
      rearms++;
    }
  }
}
