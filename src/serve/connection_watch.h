// Notices clients that hang up while their request is still queued or generating, so the
// scheduler can drop it at once instead of computing tokens nobody reads. cpp-httplib only
// notices a dead peer when a write fails (and a non-streaming request writes nothing until the
// end), so one thread polls the sockets of in-flight requests for POLLRDHUP.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace brisk::serve {

class ConnectionWatch {
 public:
  ConnectionWatch();
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // While the guard lives, on_hangup runs once (on the watch thread) if the peer closes `fd`.
  // The guard must be dropped before the socket is closed.
  class Guard {
   public:
    Guard() = default;
    Guard(ConnectionWatch* watch, uint64_t id) : watch_(watch), id_(id) {}
    Guard(Guard&& other) noexcept : watch_(other.watch_), id_(other.id_) { other.watch_ = nullptr; }
    Guard& operator=(Guard&& other) noexcept;
    ~Guard();

   private:
    ConnectionWatch* watch_ = nullptr;
    uint64_t id_ = 0;
  };
  Guard watch(int fd, std::function<void()> on_hangup);

 private:
  struct Entry {
    int fd;
    std::function<void()> on_hangup;
  };
  void unwatch(uint64_t id);
  void loop();
  void wake();

  std::mutex mutex_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
  int wake_fd_ = -1;  // eventfd: the set of sockets changed
  std::thread thread_;
};

// The connected socket whose local and remote endpoints are these (what cpp-httplib reports in
// Request::local_port / remote_addr / remote_port); -1 when none matches.
int find_connection_socket(int local_port, const std::string& remote_addr, int remote_port);

}  // namespace brisk::serve
