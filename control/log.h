// log.h — one-line logs to stderr (journald reads them under systemd).
// Levels follow the config's log_level. printf-style; no per-packet logging.
#pragma once

#include "../proto/config.h"

namespace onebox::log {

void set_level(proto::LogLevel level);
void set_prefix(const char* prefix);  // e.g. "onebox-client"

[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warn(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...);

}  // namespace onebox::log
