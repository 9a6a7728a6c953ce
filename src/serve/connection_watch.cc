#include "serve/connection_watch.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"

namespace brisk::serve {

ConnectionWatch::ConnectionWatch() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  BRISK_CHECK(wake_fd_ >= 0, "eventfd failed");
  thread_ = std::thread([this] { loop(); });
}

ConnectionWatch::~ConnectionWatch() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake();
  thread_.join();
  close(wake_fd_);
}

ConnectionWatch::Guard& ConnectionWatch::Guard::operator=(Guard&& other) noexcept {
  if (this != &other) {
    if (watch_) watch_->unwatch(id_);
    watch_ = other.watch_;
    id_ = other.id_;
    other.watch_ = nullptr;
  }
  return *this;
}

ConnectionWatch::Guard::~Guard() {
  if (watch_) watch_->unwatch(id_);
}

ConnectionWatch::Guard ConnectionWatch::watch(int fd, std::function<void()> on_hangup) {
  if (fd < 0) return {};
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = next_id_++;
    entries_[id] = Entry{fd, std::move(on_hangup)};
  }
  wake();
  return Guard(this, id);
}

void ConnectionWatch::unwatch(uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    entries_.erase(id);
  }
  wake();
}

void ConnectionWatch::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void ConnectionWatch::loop() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  while (true) {
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    ids.assign(1, 0);
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      for (const auto& [id, entry] : entries_) {
        fds.push_back(pollfd{entry.fd, POLLRDHUP, 0});
        ids.push_back(id);
      }
    }
    if (poll(fds.data(), fds.size(), 1000) < 0) continue;  // EINTR: rebuild and retry
    if (fds[0].revents & POLLIN) {
      uint64_t drained;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &drained, sizeof drained);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR))) continue;
      std::function<void()> on_hangup;
      {
        // The guard may have gone (and the fd been reused) since the snapshot: only entries still
        // registered count.
        std::lock_guard lock(mutex_);
        auto it = entries_.find(ids[i]);
        if (it == entries_.end()) continue;
        on_hangup = std::move(it->second.on_hangup);
        entries_.erase(it);
      }
      if (on_hangup) on_hangup();
    }
  }
}

namespace {

bool endpoint_of(int fd, bool peer, std::string& host, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0 || (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)) return false;
  char host_buf[NI_MAXHOST], port_buf[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host_buf, sizeof host_buf, port_buf, sizeof port_buf,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  host = host_buf;
  port = std::atoi(port_buf);
  return true;
}

}  // namespace

int find_connection_socket(int local_port, const std::string& remote_addr, int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    std::string host;
    int port = 0;
    if (!endpoint_of(int(fd), false, host, port) || port != local_port) continue;
    if (!endpoint_of(int(fd), true, host, port) || port != remote_port || host != remote_addr) continue;
    found = int(fd);
    break;
  }
  closedir(dir);
  return found;
}

}  // namespace brisk::serve
