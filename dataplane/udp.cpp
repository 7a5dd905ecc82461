#include "udp.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace onebox::dataplane {
namespace {

// Large socket buffers absorb bursts between two ring iterations. The FORCE
// variants ignore rmem_max/wmem_max (we have CAP_NET_ADMIN); fall back to the
// plain ones, which the kernel caps, if they are refused.
void grow_buffers(int fd) {
    int size = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

// DF on everything, and the kernel's path MTU (from ICMP) honoured: a
// datagram too big for the path fails at once with EMSGSIZE instead of being
// fragmented, and the path MTU search (proto/pmtu.h) hears of it. Local
// fragmentation would hide a smaller path from the search and cost every
// fragment's loss twice.
void set_dont_fragment(int fd) {
    int v = IP_PMTUDISC_DO;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
}

int fail(int fd) {
    int err = errno;
    ::close(fd);
    return -err;
}

}  // namespace

int open_client_socket(const sockaddr_in& server, uint32_t fwmark) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) < 0) return fail(fd);
    grow_buffers(fd);
    set_dont_fragment(fd);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) < 0)
        return fail(fd);
    return fd;
}

int open_link_socket(const sockaddr_in& server, uint32_t fwmark, const char* ifname) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) < 0) return fail(fd);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, socklen_t(std::strlen(ifname))) < 0)
        return fail(fd);
    grow_buffers(fd);
    set_dont_fragment(fd);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) < 0) return fail(fd);
    return fd;
}

int open_server_socket(uint32_t addr_host_order, uint16_t port, bool reuseport) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) return fail(fd);
    grow_buffers(fd);
    set_dont_fragment(fd);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(addr_host_order);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0) return fail(fd);
    return fd;
}

}  // namespace onebox::dataplane
