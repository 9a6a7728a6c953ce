// The server's log: the startup summary and one line per request (id, method, path, status,
// duration, tokens, time to first token), on stderr through spdlog.
#pragma once

#include <spdlog/logger.h>

namespace brisk::serve {

spdlog::logger& server_log();

}  // namespace brisk::serve
