// The HTTP/1.1 transport: event-driven on Boost.Asio, requests parsed by Boost.Beast. A few I/O
// threads hold every connection; an idle keep-alive connection or a stream waiting for its next
// token costs a socket and a small buffer, never a thread. Handlers run on a small pool and
// answer through an HttpExchange, from any thread, whenever their result is ready.
//
// Limits that hold for every connection (slow or hostile clients): a request head must arrive
// within head_timeout of its first byte, its body within body_timeout; headers and bodies are
// bounded before they are read (compressed bodies after inflating, chunked ones as they arrive);
// a write (one response, or one streamed piece) unfinished after write_timeout closes the
// connection; at most
// max_connections are open (more get a 503 and are closed). A gate sees each request head before
// its body is read (authentication refuses unauthenticated bodies unread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace brisk::serve {

using namespace std::chrono_literals;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  size_t max_body_bytes = 32 << 20;   // after inflating gzip/deflate
  size_t max_header_bytes = 64 << 10;
  int max_connections = 10000;        // open at once; raised RLIMIT_NOFILE permitting
  std::chrono::milliseconds idle_timeout = 60s;  // keep-alive: waiting for the next request
  std::chrono::milliseconds head_timeout = 10s;  // first byte to end of headers
  std::chrono::milliseconds body_timeout = 60s;  // end of headers to end of body
  std::chrono::milliseconds write_timeout = 30s; // one queued piece (a whole body, or a chunk)
  int handler_threads = 0;  // 0: the machine's hardware threads, at least 2
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  uint64_t id = 0;      // unique per server, in the request log
  std::string method;   // as sent: "GET", "POST", ...
  std::string target;   // path and query
  std::string path;     // target without the query
  HttpHeaders headers;
  std::string body;     // decoded (chunked and gzip/deflate undone)
  int version = 11;     // 10 or 11

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  HttpHeaders headers;
};

// One request's answer. Thread-safe: a handler may keep it and answer later from any thread.
// Exactly one of respond() or begin_stream() ... end_stream() is used.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void respond(HttpResponse response) = 0;
  // A chunked response whose body arrives in pieces.
  // `heartbeat` is a piece clients ignore (an SSE comment): sent when the client half-closes, to
  // tell a closed client (whose kernel answers it with a reset) from one still reading.
  virtual void begin_stream(int status, std::string content_type, HttpHeaders headers, std::string heartbeat) = 0;
  virtual void send(std::string piece) = 0;
  virtual void end_stream() = 0;
  // Runs `task` serialized with this connection's I/O (never concurrently with on_abandon's
  // callback); a stream's producer uses it to drain its events in order.
  virtual void post(std::function<void()> task) = 0;
  // `callback` runs once if the client goes away (or the server closes the connection) before
  // the response is complete; at once if it already has.
  virtual void on_abandon(std::function<void()> callback) = 0;
  // Figures for the request log line: tokens and time to the first, and (when it speculated) the
  // tokens proposed and accepted.
  virtual void note_tokens(int64_t prompt_tokens, int64_t completion_tokens, double ttft_seconds) = 0;
  virtual void note_speculation(int64_t speculated_tokens, int64_t accepted_tokens) = 0;
};

using HttpHandler = std::function<void(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange)>;

enum class RunOn {
  IoThread,    // cheap and non-blocking (health, metrics, model list)
  HandlerPool  // may parse, tokenize or wait on the engine
};

// Answers a request head before its body is read: a response to send instead (the connection is
// then closed), or nothing to go on.
using HttpGate = std::function<std::optional<HttpResponse>(const HttpRequest& head)>;

class HttpServer {
 public:
  explicit HttpServer(HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact path, or a prefix when `path` ends in '/'. Registered before bind().
  void route(std::string method, std::string path, RunOn run_on, HttpHandler handler);
  void set_gate(HttpGate gate);
  // The body of the transport's own error responses (400, 404, 413, ...), from a status and a
  // message; JSON {"error": {"message": ...}} unless set.
  void set_error_page(std::function<HttpResponse(int status, const std::string& message)> page);

  // Binds the listening socket; returns the port (the chosen one when options.port is 0).
  Result<int> bind();
  // Serves until stop(); returns once every connection is closed.
  void run();
  // Graceful first step: stops accepting, closes connections that carry no request in flight
  // (idle keep-alive, half-sent heads) and ends keep-alive on the others.
  void stop_accepting();
  // Closes everything (in-flight responses are abandoned) and makes run() return.
  void stop();

  struct Counts {
    int64_t open_connections;
    int64_t requests_in_progress;  // read and not yet fully answered
  };
  Counts counts() const;
  // After bind(): the connection limit in force (options.max_connections, capped by the
  // descriptor limit).
  int max_connections() const;

  struct Impl;  // http_server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

// A JSON response with its content type.
HttpResponse json_response(int status, std::string body);

}  // namespace brisk::serve
