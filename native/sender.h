// A connected UDP socket that sends batches of datagrams with sendmmsg: the
// load generator for tests and the benchmark, faster than dgram.send.
#pragma once

#include <napi.h>
#include <sys/socket.h>

namespace udpring {

class Sender : public Napi::ObjectWrap<Sender> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Sender(const Napi::CallbackInfo& info);
  ~Sender() override;

  static constexpr unsigned kMaxBatch = 1024;  // UIO_MAXIOV
  static constexpr unsigned kMaxSegments = 64;  // UDP_MAX_SEGMENTS

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value Errors(const Napi::CallbackInfo& info);
  Napi::Value Segmentation(const Napi::CallbackInfo& info);
  int DrainErrors();
  size_t PlanBatch(const uint8_t* bytes, size_t available, const Napi::Uint32Array& sizes, size_t first, size_t count,
                   size_t offset, bool gso, unsigned* segmentCounts, bool* overrun);
  void Shutdown();
  static void CleanupHook(void* self);

  Napi::Env env_;
  int fd_ = -1;
  bool hookAdded_ = false;
  // ICMP errors for datagrams already sent, read from the socket's error
  // queue (IP_RECVERR): port unreachable, and every other kind.
  double refused_ = 0;
  double icmpErrors_ = 0;
  // UDP_SEGMENT (GSO): a run of equal-size datagrams (the last may be shorter)
  // goes as one message the kernel splits. Off when the kernel lacks it, when
  // asked, or after it was refused; gsoLimit_ is the largest segment size the
  // route took (sizes above it go by plain sendmmsg).
  bool gso_ = false;
  uint32_t gsoLimit_ = 0;
  uint32_t gsoMaxBytes_ = 0;  // a UDP datagram's payload limit: 65507 (IPv4) or 65527 (IPv6)
  double calls_ = 0;
  struct mmsghdr messages_[kMaxBatch];
  struct iovec iovecs_[kMaxBatch];
  unsigned segments_[kMaxBatch];
  alignas(struct cmsghdr) uint8_t controls_[kMaxBatch][CMSG_SPACE(sizeof(uint16_t))];
};

}  // namespace udpring
