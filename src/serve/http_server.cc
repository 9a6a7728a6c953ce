#include "serve/http_server.h"

#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "serve/http_body.h"
#include "serve/server_log.h"

namespace brisk::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Pending connections the kernel queues before accept() (the usual somaxconn ceiling): a backlog
// of 5 reset 5-13% of connections at 150-200 concurrent clients.
constexpr int kListenBacklog = 4096;
// After a half-close, when to look for the reset that a closed client's kernel sends back to the
// probe (a loopback reset arrives within microseconds, a distant one within a round trip).
constexpr std::chrono::milliseconds kProbeChecks[] = {50ms, 250ms, 1000ms, 4000ms};
// The interim response a non-streaming request's probe sends (clients skip 1xx responses).
constexpr std::string_view kProcessingProbe = "HTTP/1.1 102 Processing\r\n\r\n";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// A read that ended because the client closed, reset or stopped mid-message, or because the
// connection was closed here (a deadline): nothing to answer.
bool client_went_away(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
         ec == asio::error::bad_descriptor;
}

std::string reason_phrase(int status) {
  if (status == 499) return "Client Closed Request";
  const beast::string_view reason = http::obsolete_reason(http::int_to_status(unsigned(status)));
  return reason == "<unknown-status>" ? "Status" : std::string(reason);
}

std::string head_bytes(int status, const std::string& content_type, const HttpHeaders& headers, bool keep_alive,
                       std::optional<size_t> content_length) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Server: brisk\r\n";
  if (!content_type.empty()) out += "Content-Type: " + content_type + "\r\n";
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  if (content_length)
    out += "Content-Length: " + std::to_string(*content_length) + "\r\n";
  else
    out += "Transfer-Encoding: chunked\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out;
}

std::string chunk_bytes(std::string_view piece) {
  char size[32];
  const int n = std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
  std::string out(size, size_t(n));
  out.append(piece);
  out += "\r\n";
  return out;
}

HttpResponse default_error_page(int status, const std::string& message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) escaped += c;
  }
  return json_response(status, "{\"error\":{\"message\":\"" + escaped + "\"}}");
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) return value;
  return "";
}

HttpResponse json_response(int status, std::string body) {
  return HttpResponse{status, "application/json", std::move(body), {}};
}

struct Route {
  std::string method, path;
  RunOn run_on;
  HttpHandler handler;
  bool matches_path(const std::string& p) const {
    return path.back() == '/' ? p.size() > path.size() && p.compare(0, path.size(), path) == 0 : p == path;
  }
};

class Connection;

struct HttpServer::Impl {
  HttpOptions options;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::acceptor acceptor{io};
  asio::thread_pool handlers;
  std::vector<Route> routes;
  HttpGate gate;
  std::function<HttpResponse(int, const std::string&)> error_page = default_error_page;
  std::atomic<bool> accepting{true};
  std::atomic<uint64_t> next_request_id{1};
  std::atomic<int64_t> requests_in_progress{0};
  std::mutex connections_mutex;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;

  explicit Impl(HttpOptions o)
      : options(std::move(o)),
        handlers(size_t(options.handler_threads > 0 ? options.handler_threads
                                                    : std::max(2u, std::thread::hardware_concurrency()))) {}
  void accept_next();
  void for_each_connection(const std::function<void(const std::shared_ptr<Connection>&)>& f);
};

// One request being answered; the handler's handle on the connection. Its state is read and
// written on the connection's strand only (the public calls post there).
class Exchange final : public HttpExchange, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Connection> connection, const HttpRequest& request, Clock::time_point start)
      : connection_(std::move(connection)), id_(request.id), version_(request.version), method_(request.method),
        path_(request.path), start_(start) {}
  void respond(HttpResponse response) override;
  void begin_stream(int status, std::string content_type, HttpHeaders headers, std::string heartbeat) override;
  void send(std::string piece) override;
  void end_stream() override;
  void post(std::function<void()> task) override;
  void on_abandon(std::function<void()> callback) override;
  void note_tokens(int64_t prompt_tokens, int64_t completion_tokens, double ttft_seconds) override {
    prompt_tokens_ = prompt_tokens;
    completion_tokens_ = completion_tokens;
    ttft_ = ttft_seconds;
  }
  void note_speculation(int64_t speculated_tokens, int64_t accepted_tokens) override {
    speculated_tokens_ = speculated_tokens;
    accepted_tokens_ = accepted_tokens;
  }

  std::shared_ptr<Connection> connection_;
  uint64_t id_;
  int version_;
  std::string method_, path_;
  Clock::time_point start_;
  int status_ = 0;
  bool answered_ = false;   // the whole response is queued: nothing more will be written
  bool streaming_ = false;  // begin_stream() seen
  bool finished_ = false;   // completed (last byte written) or abandoned; logged
  bool abandoned_ = false;
  bool dispatched_ = false;  // reached a handler (counted in requests_in_progress)
  std::string heartbeat_;
  std::function<void()> on_abandon_;
  std::atomic<int64_t> prompt_tokens_{-1}, completion_tokens_{-1};
  std::atomic<double> ttft_{-1};
  std::atomic<int64_t> speculated_tokens_{0}, accepted_tokens_{0};
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Impl& server, tcp::socket socket)
      : server_(server),
        socket_(std::move(socket)),
        read_deadline_(socket_.get_executor()),
        write_deadline_(socket_.get_executor()),
        probe_(socket_.get_executor()) {}

  void start() { read_request(); }
  asio::any_io_executor executor() { return socket_.get_executor(); }

  // The rest runs on the connection's strand.
  bool writable() const { return phase_ == Phase::Handling; }
  bool keep_alive() const { return keep_alive_; }
  void end_keep_alive() {
    keep_alive_ = false;
    if (phase_ == Phase::Idle || phase_ == Phase::Head) close();
  }
  void queue(std::string bytes) {
    out_.push_back(std::move(bytes));
    write_next();
  }
  // The exchange's response is complete once what is queued is written.
  void write_next();
  // Closes the socket at once; an unfinished exchange is abandoned (its callback runs, 499).
  void close();

 private:
  enum class Phase { Idle, Head, Body, Handling, Closing, Closed };

  void arm(asio::steady_timer& timer, std::chrono::milliseconds timeout);
  void read_request();
  void read_head();
  void on_head(beast::error_code ec);
  void on_body(beast::error_code ec);
  // Answers from the transport itself; `keep` when the request was read whole.
  void refuse(int status, const std::string& message, bool keep);
  void dispatch(Clock::time_point start);
  void finish(Exchange& exchange);
  void log(const Exchange& exchange) const;
  void watch_peer();
  void on_peer_event(beast::error_code ec);
  void check_probe(size_t attempt);
  void linger_close();
  void drain_discard();

  HttpServer::Impl& server_;
  tcp::socket socket_;
  asio::steady_timer read_deadline_;
  asio::steady_timer write_deadline_;
  asio::steady_timer probe_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::Idle;
  bool keep_alive_ = true;
  HttpRequest request_;
  Clock::time_point head_start_;
  std::shared_ptr<Exchange> exchange_;
  std::deque<std::string> out_;
  bool writing_ = false;
  std::unique_ptr<char[]> discard_;  // allocated when closing: idle connections stay small
  std::array<char, 1> peek_;
};

// ---- Exchange: every call hops to the connection's strand.

void Exchange::post(std::function<void()> task) { asio::post(connection_->executor(), std::move(task)); }

void Exchange::respond(HttpResponse response) {
  post([self = shared_from_this(), response = std::move(response)]() mutable {
    Connection& c = *self->connection_;
    if (self->answered_ || self->streaming_ || self->finished_ || !c.writable()) return;
    self->answered_ = true;
    self->status_ = response.status;
    std::string bytes = head_bytes(response.status, response.content_type, response.headers, c.keep_alive(),
                                   response.body.size());
    bytes += response.body;
    c.queue(std::move(bytes));
  });
}

void Exchange::begin_stream(int status, std::string content_type, HttpHeaders headers, std::string heartbeat) {
  post([self = shared_from_this(), status, content_type = std::move(content_type), headers = std::move(headers),
        heartbeat = std::move(heartbeat)]() mutable {
    Connection& c = *self->connection_;
    if (self->answered_ || self->streaming_ || self->finished_ || !c.writable()) return;
    self->streaming_ = true;
    self->status_ = status;
    self->heartbeat_ = std::move(heartbeat);
    c.queue(head_bytes(status, content_type, headers, c.keep_alive(), std::nullopt));
  });
}

void Exchange::send(std::string piece) {
  if (piece.empty()) return;  // an empty chunk would end the body
  post([self = shared_from_this(), piece = std::move(piece)] {
    if (!self->streaming_ || self->answered_ || self->finished_ || !self->connection_->writable()) return;
    self->connection_->queue(chunk_bytes(piece));
  });
}

void Exchange::end_stream() {
  post([self = shared_from_this()] {
    if (!self->streaming_ || self->answered_ || self->finished_ || !self->connection_->writable()) return;
    self->answered_ = true;
    self->connection_->queue("0\r\n\r\n");
  });
}

void Exchange::on_abandon(std::function<void()> callback) {
  post([self = shared_from_this(), callback = std::move(callback)]() mutable {
    if (self->abandoned_)
      callback();
    else if (!self->finished_)
      self->on_abandon_ = std::move(callback);
  });
}

// ---- Connection

void Connection::arm(asio::steady_timer& timer, std::chrono::milliseconds timeout) {
  timer.expires_after(timeout);
  timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->close();  // expired (a cancelled or re-armed wait reports operation_aborted)
  });
}

void Connection::read_request() {
  phase_ = Phase::Idle;
  parser_.emplace();
  parser_->header_limit(uint32_t(std::min<size_t>(server_.options.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(server_.options.max_body_bytes);
  request_ = HttpRequest{};
  if (buffer_.size() > 0) return read_head();  // a pipelined request is already here
  // Idle: wait for the first byte without a thread and without the head's deadline.
  arm(read_deadline_, server_.options.idle_timeout);
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (!ec && self->phase_ == Phase::Idle) self->read_head();
  });
}

void Connection::read_head() {
  phase_ = Phase::Head;
  head_start_ = Clock::now();
  request_.id = server_.next_request_id++;
  // The whole head within head_timeout of its first byte: a client trickling header lines
  // (slowloris) is closed, however steadily it trickles.
  arm(read_deadline_, server_.options.head_timeout);
  http::async_read_header(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->on_head(ec);
  });
}

void Connection::on_head(beast::error_code ec) {
  if (phase_ != Phase::Head) return;
  if (ec) {
    if (ec == http::error::header_limit)
      return refuse(431, "the request head is larger than " + std::to_string(server_.options.max_header_bytes) + " bytes", false);
    if (ec == http::error::body_limit)  // a Content-Length over the bound, seen with the head
      return refuse(413, "the request body is larger than " + std::to_string(server_.options.max_body_bytes) + " bytes", false);
    if (client_went_away(ec)) return close();
    return refuse(400, "malformed HTTP request: " + ec.message(), false);
  }
  const auto& message = parser_->get();
  request_.method = std::string(message.method_string());
  request_.target = std::string(message.target());
  request_.path = request_.target.substr(0, request_.target.find('?'));
  request_.version = message.version() == 10 ? 10 : 11;
  for (const auto& field : message) request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  keep_alive_ = keep_alive_ && message.keep_alive() && server_.accepting;
  if (!server_.accepting) return refuse(503, "the server is shutting down", false);
  if (request_.path.empty() || request_.path[0] != '/') return refuse(400, "the request target must be a path", false);
  if (server_.gate)
    if (std::optional<HttpResponse> answer = server_.gate(request_)) {
      keep_alive_ = false;  // its body stays unread
      exchange_ = std::make_shared<Exchange>(shared_from_this(), request_, head_start_);
      phase_ = Phase::Handling;
      exchange_->respond(std::move(*answer));
      return;
    }
  if (const auto length = parser_->content_length(); length && *length > server_.options.max_body_bytes)
    return refuse(413, "the request body (" + std::to_string(*length) + " bytes) is larger than " +
                           std::to_string(server_.options.max_body_bytes) + " bytes", false);
  if (request_.version == 11 && iequals(request_.header("Expect"), "100-continue") && !parser_->is_done())
    queue("HTTP/1.1 100 Continue\r\n\r\n");
  phase_ = Phase::Body;
  arm(read_deadline_, server_.options.body_timeout);
  http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->on_body(ec);
  });
}

void Connection::on_body(beast::error_code ec) {
  if (phase_ != Phase::Body) return;
  if (ec) {
    if (ec == http::error::body_limit)
      return refuse(413, "the request body is larger than " + std::to_string(server_.options.max_body_bytes) + " bytes", false);
    if (client_went_away(ec)) return close();
    return refuse(400, "malformed HTTP request body: " + ec.message(), false);
  }
  read_deadline_.cancel();
  DecodedBody decoded =
      decode_body(std::move(parser_->get().body()), request_.header("Content-Encoding"), server_.options.max_body_bytes);
  if (decoded.status != 200) return refuse(decoded.status, decoded.message, true);
  request_.body = std::move(decoded.body);
  dispatch(head_start_);
}

void Connection::refuse(int status, const std::string& message, bool keep) {
  if (!keep) keep_alive_ = false;
  read_deadline_.cancel();
  phase_ = Phase::Handling;
  exchange_ = std::make_shared<Exchange>(shared_from_this(), request_, head_start_);
  HttpResponse page = server_.error_page(status, message);
  page.status = status;
  exchange_->respond(std::move(page));
}

void Connection::dispatch(Clock::time_point start) {
  const Route* route = nullptr;
  bool path_known = false;
  for (const Route& r : server_.routes) {
    if (!r.matches_path(request_.path)) continue;
    path_known = true;
    if (r.method == request_.method) {
      route = &r;
      break;
    }
  }
  if (!route)
    return path_known ? refuse(405, "method " + request_.method + " is not allowed on " + request_.path, true)
                      : refuse(404, "no such endpoint: " + request_.method + " " + request_.path, true);
  phase_ = Phase::Handling;
  exchange_ = std::make_shared<Exchange>(shared_from_this(), request_, start);
  exchange_->dispatched_ = true;
  ++server_.requests_in_progress;
  watch_peer();
  auto run = [&server = server_, handler = &route->handler](const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
    try {
      (*handler)(request, exchange);
    } catch (const std::exception& e) {
      exchange->respond(server.error_page(500, std::string("internal error: ") + e.what()));
    }
  };
  if (route->run_on == RunOn::IoThread) return run(request_, exchange_);
  asio::post(server_.handlers, [run, request = std::move(request_), exchange = exchange_]() mutable { run(request, exchange); });
}

void Connection::write_next() {
  if (writing_ || phase_ == Phase::Closed || phase_ == Phase::Closing) return;
  if (out_.empty()) {
    write_deadline_.cancel();
    if (exchange_ && exchange_->answered_) finish(*exchange_);
    return;
  }
  writing_ = true;
  arm(write_deadline_, server_.options.write_timeout);  // no progress for this long: the client is gone
  asio::async_write(socket_, asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
    self->writing_ = false;
    if (ec) return self->close();
    self->out_.pop_front();
    self->write_next();
  });
}

void Connection::finish(Exchange& exchange) {
  if (exchange.finished_) return;
  exchange.finished_ = true;
  exchange.on_abandon_ = nullptr;
  probe_.cancel();
  log(exchange);
  if (exchange.dispatched_) --server_.requests_in_progress;
  if (&exchange == exchange_.get()) exchange_.reset();  // the exchange holds the connection: break the cycle
  if (phase_ == Phase::Closed) return;
  if (keep_alive_ && server_.accepting) return read_request();
  linger_close();
}

void Connection::log(const Exchange& e) const {
  const double seconds = std::chrono::duration<double>(Clock::now() - e.start_).count();
  std::string line = "request " + std::to_string(e.id_) + " " + (e.method_.empty() ? "-" : e.method_) + " " +
                     (e.path_.empty() ? "-" : e.path_) + " " + std::to_string(e.status_);
  char figures[160];
  std::snprintf(figures, sizeof(figures), " %.3f s", seconds);
  line += figures;
  if (e.prompt_tokens_ >= 0) {
    std::snprintf(figures, sizeof(figures), " prompt=%lld completion=%lld ttft=%.3f s", (long long)e.prompt_tokens_.load(),
                  (long long)e.completion_tokens_.load(), e.ttft_.load());
    line += figures;
  }
  if (e.speculated_tokens_ > 0) {
    std::snprintf(figures, sizeof(figures), " speculated=%lld accepted=%lld", (long long)e.speculated_tokens_.load(),
                  (long long)e.accepted_tokens_.load());
    line += figures;
  }
  if (e.status_ >= 500)
    server_log().warn("{}", line);
  else
    server_log().info("{}", line);
}

// While a request is handled, the socket is watched for the client going away, so a request
// nobody will read is cancelled at once (not after it has run to its end).
void Connection::watch_peer() {
  // A receive that peeks: it completes when the client sends more, half-closes or resets, and
  // consumes nothing (a pipelined request stays for the next read).
  socket_.async_receive(asio::buffer(peek_), tcp::socket::message_peek,
                        [self = shared_from_this(), watched = std::weak_ptr<Exchange>(exchange_)](beast::error_code ec, size_t) {
                          const auto exchange = watched.lock();
                          if (!exchange || exchange != self->exchange_ || exchange->finished_) return;
                          self->on_peer_event(ec);
                        });
}

void Connection::on_peer_event(beast::error_code ec) {
  if (!ec) return;  // the next pipelined request: read once this one is answered
  if (ec == asio::error::operation_aborted) return;
  if (ec != asio::error::eof) return close();  // reset
  // End of stream: the client closed, or only half-closed and still reads. Send something it
  // ignores; a closed client's kernel answers it with a reset, which the checks below see.
  keep_alive_ = false;
  Exchange& exchange = *exchange_;
  if (exchange.version_ == 10) return close();  // HTTP/1.0 has no interim responses
  if (exchange.answered_) return;               // the response's own bytes will tell
  if (!exchange.streaming_)
    queue(std::string(kProcessingProbe));
  else if (!exchange.heartbeat_.empty())
    queue(chunk_bytes(exchange.heartbeat_));
  check_probe(0);
}

void Connection::check_probe(size_t attempt) {
  if (attempt >= std::size(kProbeChecks)) return;  // half-closed and still reading
  probe_.expires_after(kProbeChecks[attempt]);
  probe_.async_wait([self = shared_from_this(), attempt](beast::error_code ec) {
    if (ec || !self->exchange_ || self->exchange_->finished_) return;
    // After the peer's FIN, recv() reports end of stream even once a reset has arrived; the TCP
    // state tells: CLOSE_WAIT while the client may still read, CLOSE after its reset.
    tcp_info info{};
    socklen_t size = sizeof(info);
    if (getsockopt(self->socket_.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) != 0 || info.tcpi_state == TCP_CLOSE)
      return self->close();
    self->check_probe(attempt + 1);
  });
}

// "Connection: close" after the response: stop sending, then read and discard what the client
// still sends (an unread body) for a moment, so the close does not reset the connection before
// the client has read the response.
void Connection::linger_close() {
  phase_ = Phase::Closing;
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  arm(read_deadline_, std::chrono::milliseconds(2000));
  drain_discard();
}

void Connection::drain_discard() {
  constexpr size_t kDiscardBytes = 4096;
  if (!discard_) discard_ = std::make_unique<char[]>(kDiscardBytes);
  socket_.async_read_some(asio::buffer(discard_.get(), kDiscardBytes), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) return self->close();
    self->drain_discard();
  });
}

void Connection::close() {
  if (phase_ == Phase::Closed) return;
  phase_ = Phase::Closed;
  read_deadline_.cancel();
  write_deadline_.cancel();
  probe_.cancel();
  beast::error_code ignored;
  socket_.close(ignored);
  out_.clear();
  if (std::shared_ptr<Exchange> exchange = exchange_; exchange && !exchange->finished_) {
    exchange->abandoned_ = true;
    if (!exchange->answered_ || exchange->status_ == 0) exchange->status_ = 499;
    if (auto callback = std::move(exchange->on_abandon_)) callback();
    finish(*exchange);
  }
  exchange_.reset();
  std::lock_guard lock(server_.connections_mutex);
  server_.connections.erase(this);
}

// ---- Server

void HttpServer::Impl::accept_next() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (ec) {
      // Out of descriptors (EMFILE/ENFILE): pause instead of spinning on the pending connection.
      auto retry = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(100));
      retry->async_wait([this, retry](beast::error_code) { accept_next(); });
      return;
    }
    if (!accepting) return;
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // a streamed token goes out at once
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard lock(connections_mutex);
      if (connections.size() < size_t(options.max_connections)) {
        connection = std::make_shared<Connection>(*this, std::move(socket));
        connections.emplace(connection.get(), connection);
      }
    }
    if (connection) {
      asio::post(connection->executor(), [connection] { connection->start(); });
    } else {
      const std::string body = error_page(503, "too many open connections").body;
      const std::string bytes = head_bytes(503, "application/json", {{"Retry-After", "1"}}, false, body.size()) + body;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(bytes), ignored);
      socket.close(ignored);
    }
    accept_next();
  });
}

void HttpServer::Impl::for_each_connection(const std::function<void(const std::shared_ptr<Connection>&)>& f) {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(connections_mutex);
    for (auto& [_, weak] : connections)
      if (auto c = weak.lock()) open.push_back(std::move(c));
  }
  for (auto& c : open) f(c);
}

HttpServer::HttpServer(HttpOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() {
  impl_->handlers.join();
}

void HttpServer::route(std::string method, std::string path, RunOn run_on, HttpHandler handler) {
  impl_->routes.push_back(Route{std::move(method), std::move(path), run_on, std::move(handler)});
}

void HttpServer::set_gate(HttpGate gate) { impl_->gate = std::move(gate); }

void HttpServer::set_error_page(std::function<HttpResponse(int, const std::string&)> page) {
  impl_->error_page = std::move(page);
}

Result<int> HttpServer::bind() {
  Impl& s = *impl_;
  const std::string where = s.options.host + ":" + std::to_string(s.options.port);
  beast::error_code ec;
  tcp::resolver resolver(s.io);
  const auto endpoints = resolver.resolve(s.options.host, std::to_string(s.options.port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) return make_error("cannot listen on " + where + ": " + ec.message());
  const tcp::endpoint endpoint = *endpoints.begin();
  s.acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only: a restart may bind over TIME_WAIT sockets, but a second server on a port
  // in use fails (SO_REUSEPORT would let both start and split the traffic).
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(kListenBacklog, ec);
  if (ec) {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    return make_error("cannot listen on " + where + ": " + ec.message() +
                      (ec == asio::error::address_in_use ? " (another server has the port)" : ""));
  }
  // Every connection is a descriptor: take the hard limit, and keep a margin for model files.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    if (files.rlim_cur != RLIM_INFINITY && files.rlim_cur > 128)
      s.options.max_connections = int(std::min<rlim_t>(rlim_t(s.options.max_connections), files.rlim_cur - 64));
  }
  return int(s.acceptor.local_endpoint().port());
}

void HttpServer::run() {
  impl_->accept_next();
  impl_->io.run();
}

void HttpServer::stop_accepting() {
  Impl& s = *impl_;
  s.accepting = false;
  asio::post(s.io, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  s.for_each_connection([](const std::shared_ptr<Connection>& c) { asio::post(c->executor(), [c] { c->end_keep_alive(); }); });
}

void HttpServer::stop() {
  stop_accepting();
  Impl& s = *impl_;
  s.for_each_connection([](const std::shared_ptr<Connection>& c) { asio::post(c->executor(), [c] { c->close(); }); });
  s.work.reset();  // run() returns once the last connection's handlers have run
}

int HttpServer::max_connections() const { return impl_->options.max_connections; }

HttpServer::Counts HttpServer::counts() const {
  std::lock_guard lock(impl_->connections_mutex);
  return {int64_t(impl_->connections.size()), impl_->requests_in_progress.load()};
}

}  // namespace brisk::serve
