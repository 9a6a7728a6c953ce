#include "serve/http_server.h"

#include <sys/socket.h>

#include "serve/api_error.h"
#include "serve/openai_response.h"

namespace brisk::serve {

void set_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

namespace {

// Pending connections the kernel queues before accept(). cpp-httplib listens with 5, which reset
// 5-13% of connections at 150-200 concurrent clients; 4096 is the usual somaxconn ceiling.
constexpr int kListenBacklog = 4096;

}  // namespace

HttpServer::HttpServer(HttpOptions options) : options_(std::move(options)) {
  // SO_REUSEADDR only: a restart may bind over TIME_WAIT sockets, but a second server on a port
  // that is in use fails (cpp-httplib's default SO_REUSEPORT let both start and split traffic).
  server_.set_socket_options([this](int fd) {
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd_ = fd;
  });
  const size_t threads = size_t(std::max(options_.threads, 4));
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_.set_payload_max_length(options_.max_body_bytes);
  // A streamed token may wait behind a long prefill; a slow reader must not hold a slot forever.
  server_.set_read_timeout(30);
  server_.set_write_timeout(30);
  server_.set_keep_alive_timeout(10);
  server_.set_keep_alive_max_count(1000);
  // Every error page is OpenAI-shaped JSON; pages a handler already wrote are left alone.
  server_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.content_length_ > 0 || res.content_provider_) return;
    ApiError error{res.status, "", "invalid_request_error", "", ""};
    if (res.status == 404) {
      error.message = "no such endpoint: " + req.method + " " + req.path;
      error.code = "not_found";
    } else if (res.status == 413) {
      error.message = "the request body is too large";
    } else if (res.status == 405) {
      error.message = "method not allowed";
    } else {
      error.message = "the HTTP request could not be handled (status " + std::to_string(res.status) + ")";
      if (res.status >= 500) error.type = "server_error";
    }
    set_json(res, res.status, dump_json(error_json(error)));
  });
  server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    set_json(res, 500, dump_json(error_json(ApiError{500, "internal error: " + what, "server_error", "", ""})));
  });
}

Result<int> HttpServer::bind() {
  int port = options_.port;
  if (port == 0) {
    port = server_.bind_to_any_port(options_.host);
    if (port <= 0) return make_error("cannot listen on " + options_.host + " (any port)");
  } else if (!server_.bind_to_port(options_.host, port)) {
    return make_error("cannot listen on " + options_.host + ":" + std::to_string(port) +
                      " (in use, or not an address of this machine)");
  }
  // listen() again on the bound socket raises cpp-httplib's backlog (Linux updates it in place).
  if (listen_fd_ >= 0) ::listen(listen_fd_, kListenBacklog);
  return port;
}

void HttpServer::run() { server_.listen_after_bind(); }

}  // namespace brisk::serve
