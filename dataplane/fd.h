// fd.h — an owned file descriptor, closed on destruction.
#pragma once

#include <unistd.h>

#include <utility>

namespace onebox::dataplane {

struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) { reset(); fd = std::exchange(o.fd, -1); }
        return *this;
    }
    ~Fd() { reset(); }
    void reset() { if (fd >= 0) ::close(fd); fd = -1; }
    int get() const { return fd; }
    bool valid() const { return fd >= 0; }
};

}  // namespace onebox::dataplane
