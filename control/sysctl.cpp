// sysctl.cpp — /proc/sys access. /proc/sys/net follows the caller's network
// namespace, so these affect only the namespace the process runs in.
#include "sysctl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "read_file.h"

namespace onebox::sysctl {
namespace {

// Keys are fixed strings in our code, but refuse anything that could leave /proc/sys.
bool valid_key(const std::string& key) {
    return !key.empty() && key.front() != '/' && key.find("..") == std::string::npos &&
           key.find('\0') == std::string::npos;
}

std::string path_of(const std::string& key) { return "/proc/sys/" + key; }

}  // namespace

Status read(const std::string& key, std::string& value) {
    if (!valid_key(key)) return Status::fail(EINVAL, "read sysctl " + key);
    const int fd = ::open(path_of(key).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::fail(errno, "read sysctl " + key);
    std::string text;
    const int err = read_all(fd, text, 4096);
    ::close(fd);
    if (err != 0) return Status::fail(err, "read sysctl " + key);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    value = std::move(text);
    return Status::success();
}

Status write(const std::string& key, const std::string& value) {
    const std::string what = "set sysctl " + key + "=" + value;
    if (!valid_key(key)) return Status::fail(EINVAL, what);
    const int fd = ::open(path_of(key).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Status::fail(errno, what);
    const std::string line = value + "\n";
    ssize_t n;
    do {
        n = ::write(fd, line.data(), line.size());
    } while (n < 0 && errno == EINTR);
    const int err = n < 0 ? errno : (static_cast<size_t>(n) != line.size() ? EIO : 0);
    if (::close(fd) != 0 && err == 0) return Status::fail(errno, what);
    return err ? Status::fail(err, what) : Status::success();
}

}  // namespace onebox::sysctl
