#include "pidfile.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>

namespace onebox::pidfile {

int running_pid(const std::string& path) {
    std::ifstream in(path);
    int pid = 0;
    if (!(in >> pid) || pid <= 0) return 0;
    if (::kill(pid, 0) < 0 && errno == ESRCH) return 0;
    return pid;
}

static void make_parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    ::mkdir(path.substr(0, slash).c_str(), 0755);  // one level: /run/onebox
}

Status claim(const std::string& path) {
    int other = running_pid(path);
    if (other > 0 && other != ::getpid())
        return Status::fail(EEXIST, "claim " + path + " (already running as pid " +
                                        std::to_string(other) + ")");
    make_parent_dir(path);
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Status::fail(errno, "write " + tmp);
    std::string text = std::to_string(::getpid()) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) < 0) return Status::fail(errno, "write " + path);
    return Status::success();
}

void release(const std::string& path) { ::unlink(path.c_str()); }

}  // namespace onebox::pidfile
