// config.cpp — config file loading (see config.h).
#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.h"
#include "read_file.h"

namespace onebox {
namespace {

// A config is a few hundred bytes; anything this big is the wrong file.
constexpr size_t kMaxConfigBytes = 1 << 20;

proto::ConfigError file_error(const std::string& what, int err) {
    return {false, 0, "", what + ": " + std::strerror(err)};
}

proto::ConfigError read_file(const std::string& path, std::string& text) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return file_error("cannot open", errno);
    struct stat st {};
    if (::fstat(fd, &st) == 0 && (st.st_mode & S_IROTH)) {
        // The file holds the preshared key: anyone who can read it can join the tunnel.
        log::warn("%s is readable by every user; it holds the preshared key (chmod 600)", path.c_str());
    }
    text.clear();
    const int err = read_all(fd, text, kMaxConfigBytes);
    ::close(fd);
    if (err == EFBIG) return {false, 0, "", "file too large (over 1 MiB)"};
    if (err != 0) return file_error("cannot read", err);
    return {};
}

}  // namespace

proto::ConfigError load_config_file(const std::string& path, proto::Role role, proto::Config& out) {
    std::string text;
    if (proto::ConfigError e = read_file(path, text); !e.ok) return e;
    return proto::parse_config(text, role, out);
}

std::string format_config_error(const std::string& path, const proto::ConfigError& error) {
    std::string line = path;
    if (error.line > 0) line += ":" + std::to_string(error.line);
    line += ": ";
    if (!error.key.empty()) line += error.key + ": ";
    return line + error.message;
}

}  // namespace onebox
