#include "read_file.h"

#include <unistd.h>

#include <cerrno>

namespace onebox {

int read_all(int fd, std::string& out, size_t max_bytes) {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return 0;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max_bytes) return EFBIG;
    }
}

}  // namespace onebox
