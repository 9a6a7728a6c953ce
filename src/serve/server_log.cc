#include "serve/server_log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace brisk::serve {

spdlog::logger& server_log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("brisk", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    l->flush_on(spdlog::level::info);  // a log read by people and tests as it happens
    return l;
  }();
  return *logger;
}

}  // namespace brisk::serve
