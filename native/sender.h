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

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value Errors(const Napi::CallbackInfo& info);
  void DrainErrors();
  void Shutdown();
  static void CleanupHook(void* self);

  Napi::Env env_;
  int fd_ = -1;
  bool hookAdded_ = false;
  // ICMP errors for datagrams already sent, read from the socket's error
  // queue (IP_RECVERR): port unreachable, and every other kind.
  double refused_ = 0;
  double icmpErrors_ = 0;
  struct mmsghdr messages_[kMaxBatch];
  struct iovec iovecs_[kMaxBatch];
};

}  // namespace udpring
