#include "tun.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace onebox::dataplane {

int open_tun(const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ) return -EINVAL;
    int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    ifreq ifr{};
    // IFF_NO_PI: every read is exactly one IP packet, nothing in front of it.
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = errno;
        ::close(fd);
        return -err;
    }
    return fd;
}

}  // namespace onebox::dataplane
