#include "tun.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace onebox::dataplane {

namespace {

int open_with(const std::string& name, short flags) {
    int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    ifreq ifr{};
    ifr.ifr_flags = flags;
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = errno;
        ::close(fd);
        return -err;
    }
    return fd;
}

}  // namespace

int open_tun(const std::string& name, bool offloads, bool* got_offloads, bool multi_queue) {
    if (got_offloads) *got_offloads = false;
    if (name.empty() || name.size() >= IFNAMSIZ) return -EINVAL;
    // IFF_NO_PI: every read is exactly one IP packet, nothing in front of it
    // (but the virtio_net_hdr, with IFF_VNET_HDR).
    short mq = multi_queue ? IFF_MULTI_QUEUE : 0;
    if (offloads) {
        int fd = open_with(name, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | mq);
        if (fd >= 0) {
            if (::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) == 0) {
                if (got_offloads) *got_offloads = true;
                return fd;
            }
            ::close(fd);  // the device goes with its last fd: made again below, plain
        }
    }
    return open_with(name, IFF_TUN | IFF_NO_PI | mq);
}

int open_tun_queue(const std::string& name, bool vnet) {
    if (name.empty() || name.size() >= IFNAMSIZ) return -EINVAL;
    return open_with(name, IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (vnet ? IFF_VNET_HDR : 0));
}

}  // namespace onebox::dataplane
