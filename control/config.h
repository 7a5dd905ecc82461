// config.h — reading a config file from disk and reporting its errors.
// The parsing itself is proto::parse_config (pure, fuzzed).
#pragma once

#include <string>

#include "../proto/config.h"

namespace onebox {

// Reads `path` and parses it for `role`. A missing or unreadable file is an
// error (line 0) whose message carries strerror. `out` is only written on success.
proto::ConfigError load_config_file(const std::string& path, proto::Role role, proto::Config& out);

// One line for the log / terminal:
//   "/etc/onebox/client.conf:7: client.server_port: port 70000 out of range (1-65535)"
//   "/etc/onebox/client.conf: missing preshared_key"
std::string format_config_error(const std::string& path, const proto::ConfigError& error);

}  // namespace onebox
