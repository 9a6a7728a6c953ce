// The HTTP transport: cpp-httplib with a thread per in-flight connection from a fixed pool (a
// streaming response holds its thread until the last token), JSON error pages, and bind/run/stop.
// Routes are registered by the OpenAI layer on routes().
#pragma once

#include <httplib.h>

#include <string>

#include "core/error.h"

namespace brisk::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port
  int threads = 256;                // concurrent connections served; more wait in the accept queue
  size_t max_body_bytes = 32 << 20;
};

class HttpServer {
 public:
  explicit HttpServer(HttpOptions options);

  httplib::Server& routes() { return server_; }
  // Binds the listening socket; returns the port (the chosen one when options.port is 0).
  Result<int> bind();
  // Serves until stop(); returns after in-flight connections have finished.
  void run();
  void stop() { server_.stop(); }

 private:
  HttpOptions options_;
  httplib::Server server_;
  int listen_fd_ = -1;  // the listening socket, seen by the socket-options hook
};

// Writes a JSON body with its content type.
void set_json(httplib::Response& res, int status, const std::string& body);

}  // namespace brisk::serve
