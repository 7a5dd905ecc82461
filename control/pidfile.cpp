#include "pidfile.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
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

// The lock is held for the life of the process: two `start`s at the same
// moment cannot both win, and a crashed instance's lock dies with it.
static int g_lock_fd = -1;

Status claim(const std::string& path) {
    make_parent_dir(path);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::fail(errno, "open " + path);
    if (::flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        ::close(fd);
        int other = running_pid(path);
        if (err == EWOULDBLOCK)
            return Status::fail(EEXIST, "start: already running" +
                                            (other > 0 ? " as pid " + std::to_string(other) : std::string()) +
                                            " (" + path + ")");
        return Status::fail(err, "lock " + path);
    }
    std::string text = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) < 0 || ::pwrite(fd, text.data(), text.size(), 0) != ssize_t(text.size())) {
        int err = errno;
        ::close(fd);
        return Status::fail(err, "write " + path);
    }
    g_lock_fd = fd;
    return Status::success();
}

void release(const std::string& path) {
    ::unlink(path.c_str());
    if (g_lock_fd >= 0) ::close(g_lock_fd);
    g_lock_fd = -1;
}


}  // namespace onebox::pidfile
