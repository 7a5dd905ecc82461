// wan_links.cpp — WAN link discovery and change monitoring (see wan_links.h).
//
// Attributes are walked here with explicit offsets bounded by nlmsg_len, not
// with mnl_attr_parse(): libmnl bounds the walk by MNL_ALIGN(nlmsg_len), which
// for a message whose length is not a multiple of 4 (never from the kernel,
// but possible in fuzzed input) lies up to 3 bytes past the message, and so
// possibly past the buffer.
// Likewise messages are split by for_each_message(), not mnl_nlmsg_ok()/next(),
// which compare (int)nlmsg_len and so accept a length of 2^31 or more.
#include "wan_links.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "netlink.h"

namespace onebox::wan {
namespace {

constexpr uint32_t kMainTable = RT_TABLE_MAIN;  // 254
constexpr int kDumpAttempts = 3;                // EINTR (interrupted dump) retries
constexpr int kMaxReadsPerDrain = 1024;         // bounds drain() under an event flood
constexpr size_t kReceiveSize = 32768;          // a whole multicast message, or a dump chunk
constexpr int kReceiveBuffer = 1 << 20;         // SO_RCVBUF: room for bursts (link down = many events)

constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

// One attribute's payload, bounded by its message.
struct Attr {
    const char* data = nullptr;
    size_t len = 0;
    explicit operator bool() const { return data != nullptr; }
};

// Attributes of one message or nested block, indexed by type; types above
// kMaxAttr are skipped (we need none of them).
constexpr uint16_t kMaxAttr = 63;
using Attrs = std::array<Attr, kMaxAttr + 1>;

// Walks the attributes in [p, p + len). False if one is malformed (nla_len
// shorter than its header or longer than what is left); trailing bytes too
// short for an attribute header are ignored, as the kernel does.
bool collect_attrs(const char* p, size_t len, Attrs& out) {
    out = Attrs{};
    size_t off = 0;
    while (len - off >= sizeof(nlattr)) {
        nlattr a;
        std::memcpy(&a, p + off, sizeof a);
        if (a.nla_len < sizeof(nlattr) || a.nla_len > len - off) return false;
        const uint16_t type = a.nla_type & NLA_TYPE_MASK;
        if (type <= kMaxAttr) out[type] = {p + off + sizeof(nlattr), a.nla_len - sizeof(nlattr)};
        const size_t step = align4(a.nla_len);
        if (step >= len - off) break;
        off += step;
    }
    return true;
}

// The attributes of a whole message after its fixed header of `header` bytes.
bool message_attrs(const nlmsghdr* nlh, size_t header, Attrs& out) {
    const size_t start = align4(sizeof(nlmsghdr)) + align4(header);
    if (nlh->nlmsg_len < sizeof(nlmsghdr) + header) return false;
    const char* base = reinterpret_cast<const char*>(nlh);
    if (nlh->nlmsg_len <= start) {
        out = Attrs{};
        return true;
    }
    return collect_attrs(base + start, nlh->nlmsg_len - start, out);
}

template <typename T>
bool fixed_header(const nlmsghdr* nlh, T& out) {
    if (nlh->nlmsg_len < sizeof(nlmsghdr) + sizeof(T)) return false;
    std::memcpy(&out, reinterpret_cast<const char*>(nlh) + align4(sizeof(nlmsghdr)), sizeof(T));
    return true;
}

// An absent attribute leaves `out` alone and is fine; a present one must be exactly 4 bytes.
bool read_u32(const Attr& a, uint32_t& out) {
    if (!a) return true;
    if (a.len != sizeof(uint32_t)) return false;
    std::memcpy(&out, a.data, sizeof out);
    return true;
}

// IPv4 address attributes are in network order.
bool read_ipv4(const Attr& a, uint32_t& out) {
    uint32_t net = 0;
    if (!a) return true;
    if (!read_u32(a, net)) return false;
    out = ntohl(net);
    return true;
}

// RTA_MULTIPATH: a sequence of rtnexthop, each followed by its own attributes.
bool parse_multipath(const Attr& a, std::vector<NextHop>& out) {
    size_t off = 0;
    while (a.len - off >= sizeof(rtnexthop)) {
        rtnexthop nh;
        std::memcpy(&nh, a.data + off, sizeof nh);
        if (nh.rtnh_len < sizeof(rtnexthop) || nh.rtnh_len > a.len - off) return false;
        if (out.size() < kMaxNextHops) {
            NextHop hop;
            hop.ifindex = nh.rtnh_ifindex > 0 ? static_cast<unsigned>(nh.rtnh_ifindex) : 0;
            const size_t attrs_at = align4(sizeof(rtnexthop));
            if (nh.rtnh_len > attrs_at) {
                Attrs attrs;
                if (!collect_attrs(a.data + off + attrs_at, nh.rtnh_len - attrs_at, attrs)) return false;
                if (!read_ipv4(attrs[RTA_GATEWAY], hop.gateway)) return false;
            }
            out.push_back(hop);
        }
        const size_t step = align4(nh.rtnh_len);
        if (step >= a.len - off) break;
        off += step;
    }
    return true;
}

bool up_and_running(unsigned flags) { return (flags & IFF_UP) && (flags & IFF_RUNNING); }

// ---- dumps -----------------------------------------------------------------------

struct Dumps {
    std::vector<LinkMsg> links;
    std::vector<AddrMsg> addrs;
    std::vector<RouteInfo> routes;
};

Status dump_all(Dumps& d) {
    Status s = netlink::dump(
        RTM_GETLINK, AF_UNSPEC,
        [&](const nlmsghdr* nlh) {
            LinkMsg m;
            if (parse_link_msg(nlh, m) && !m.deleted) d.links.push_back(std::move(m));
        },
        "list links");
    if (!s.ok()) return s;
    s = netlink::dump(
        RTM_GETADDR, AF_INET,
        [&](const nlmsghdr* nlh) {
            AddrMsg m;
            if (parse_addr_msg(nlh, m) && !m.deleted) d.addrs.push_back(m);
        },
        "list IPv4 addresses");
    if (!s.ok()) return s;
    return netlink::dump(
        RTM_GETROUTE, AF_INET,
        [&](const nlmsghdr* nlh) {
            RouteInfo r;
            if (parse_route_msg(nlh, r) && !r.deleted) d.routes.push_back(std::move(r));
        },
        "list IPv4 routes");
}

}  // namespace

// ---- parsers -------------------------------------------------------------------------

void for_each_message(const void* buf, size_t len, const std::function<void(const nlmsghdr*)>& fn) {
    const char* base = static_cast<const char*>(buf);
    size_t off = 0;
    while (len - off >= sizeof(nlmsghdr)) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(base + off);
        if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > len - off) return;
        fn(nlh);
        const size_t step = align4(nlh->nlmsg_len);
        if (step >= len - off) return;
        off += step;
    }
}

bool parse_link_msg(const nlmsghdr* nlh, LinkMsg& out) {
    if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) return false;
    ifinfomsg ifm;
    Attrs attrs;
    if (!fixed_header(nlh, ifm) || !message_attrs(nlh, sizeof ifm, attrs)) return false;
    out = LinkMsg{};
    out.deleted = nlh->nlmsg_type == RTM_DELLINK;
    if (ifm.ifi_index <= 0) return false;
    out.ifindex = static_cast<unsigned>(ifm.ifi_index);
    out.flags = ifm.ifi_flags;
    if (const Attr& name = attrs[IFLA_IFNAME]) {
        const size_t n = ::strnlen(name.data, name.len);
        if (n == 0 || n >= IFNAMSIZ) return false;  // the kernel's names are 1-15 bytes
        out.ifname.assign(name.data, n);
    }
    if (!read_u32(attrs[IFLA_MTU], out.mtu)) return false;
    return true;
}

bool parse_addr_msg(const nlmsghdr* nlh, AddrMsg& out) {
    if (nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR) return false;
    ifaddrmsg ifa;
    Attrs attrs;
    if (!fixed_header(nlh, ifa) || !message_attrs(nlh, sizeof ifa, attrs)) return false;
    out = AddrMsg{};
    out.deleted = nlh->nlmsg_type == RTM_DELADDR;
    out.family = ifa.ifa_family;
    out.ifindex = ifa.ifa_index;
    out.prefixlen = ifa.ifa_prefixlen;
    out.flags = ifa.ifa_flags;
    if (!read_u32(attrs[IFA_FLAGS], out.flags)) return false;
    if (out.family != AF_INET) return true;
    const Attr& local = attrs[IFA_LOCAL] ? attrs[IFA_LOCAL] : attrs[IFA_ADDRESS];
    return read_ipv4(local, out.address);
}

bool parse_route_msg(const nlmsghdr* nlh, RouteInfo& out) {
    if (nlh->nlmsg_type != RTM_NEWROUTE && nlh->nlmsg_type != RTM_DELROUTE) return false;
    rtmsg rtm;
    Attrs attrs;
    if (!fixed_header(nlh, rtm) || !message_attrs(nlh, sizeof rtm, attrs)) return false;
    out = RouteInfo{};
    out.deleted = nlh->nlmsg_type == RTM_DELROUTE;
    out.family = rtm.rtm_family;
    out.dst_len = rtm.rtm_dst_len;
    out.type = rtm.rtm_type;
    out.table = rtm.rtm_table;
    if (!read_u32(attrs[RTA_TABLE], out.table) || !read_u32(attrs[RTA_PRIORITY], out.metric)) return false;
    if (out.family != AF_INET) return true;  // the rest is IPv4-specific
    if (out.dst_len > 32 || !read_ipv4(attrs[RTA_DST], out.dst)) return false;
    out.unsupported_nexthop = attrs[RTA_NH_ID] || attrs[RTA_VIA];
    if (const Attr& mp = attrs[RTA_MULTIPATH]) return parse_multipath(mp, out.nexthops);
    NextHop hop;
    uint32_t oif = 0;
    if (!read_u32(attrs[RTA_OIF], oif) || !read_ipv4(attrs[RTA_GATEWAY], hop.gateway)) return false;
    if (oif != 0) {
        hop.ifindex = oif;
        out.nexthops.push_back(hop);
    }
    return true;
}

bool relevant_event(const nlmsghdr* nlh) {
    switch (nlh->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
            return true;
        case RTM_NEWADDR:
        case RTM_DELADDR: {
            AddrMsg a;
            // Unreadable: we cannot tell, so assume it matters (one more discover()).
            return !parse_addr_msg(nlh, a) || a.family == AF_INET;
        }
        case RTM_NEWROUTE:
        case RTM_DELROUTE: {
            RouteInfo r;
            if (!parse_route_msg(nlh, r)) return true;
            return r.family == AF_INET && r.table == kMainTable && r.dst_len == 0;
        }
        default:
            return false;
    }
}

std::vector<WanLink> select_links(const std::vector<LinkMsg>& links, const std::vector<AddrMsg>& addrs,
                                  const std::vector<RouteInfo>& routes, const std::string& tun,
                                  const std::vector<std::string>& allowed) {
    // The lowest-metric default route out of each interface.
    std::map<unsigned, std::pair<uint32_t, uint32_t>> best;  // ifindex -> (metric, gateway)
    for (const auto& r : routes) {
        if (r.deleted || r.family != AF_INET || r.table != kMainTable || r.dst_len != 0 || r.type != RTN_UNICAST) {
            continue;
        }
        for (const auto& hop : r.nexthops) {
            if (hop.ifindex == 0) continue;
            auto it = best.find(hop.ifindex);
            if (it == best.end() || r.metric < it->second.first) best[hop.ifindex] = {r.metric, hop.gateway};
        }
    }
    std::vector<WanLink> out;
    for (const auto& l : links) {
        if (l.deleted || l.ifname.empty() || l.ifname == tun || (l.flags & IFF_LOOPBACK) || !up_and_running(l.flags)) {
            continue;
        }
        if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), l.ifname) == allowed.end()) continue;
        const auto route = best.find(l.ifindex);
        if (route == best.end()) continue;
        if (std::any_of(out.begin(), out.end(), [&](const WanLink& w) { return w.ifindex == l.ifindex; })) continue;
        WanLink w;
        w.ifname = l.ifname;
        w.ifindex = l.ifindex;
        w.mtu = l.mtu;
        w.metric = route->second.first;
        w.gateway = route->second.second;
        for (const auto& a : addrs) {
            if (!a.deleted && a.family == AF_INET && a.ifindex == l.ifindex && !(a.flags & IFA_F_SECONDARY) &&
                a.address != 0) {
                w.address = a.address;
                break;
            }
        }
        out.push_back(std::move(w));
    }
    std::sort(out.begin(), out.end(), [](const WanLink& a, const WanLink& b) {
        return a.metric != b.metric ? a.metric < b.metric : a.ifname < b.ifname;
    });
    return out;
}

// ---- discover ------------------------------------------------------------------------

Status discover(const std::string& tun, const std::vector<std::string>& allowed, std::vector<WanLink>& out) {
    Status s;
    for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
        Dumps d;
        s = dump_all(d);
        if (s.ok()) {
            out = select_links(d.links, d.addrs, d.routes, tun, allowed);
            return s;
        }
        if (s.err != EINTR) return s;  // EINTR: the kernel says the dump was interrupted by a change
    }
    return s;
}

// ---- Monitor -------------------------------------------------------------------------

Status Monitor::open() {
    close();
    const int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (s < 0) return Status::fail(errno, "open netlink monitor socket");
    // Best effort: a bigger buffer makes ENOBUFS (lost events) less likely.
    (void)::setsockopt(s, SOL_SOCKET, SO_RCVBUF, &kReceiveBuffer, sizeof kReceiveBuffer);
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE;
    if (::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::close(s);
        return Status::fail(err, "subscribe to link, address and route events");
    }
    fd = s;
    return Status::success();
}

bool Monitor::drain() {
    if (fd < 0) return false;
    bool changed = false;
    std::vector<uint32_t> storage(kReceiveSize / sizeof(uint32_t));  // aligned for nlmsghdr
    char* buf = reinterpret_cast<char*>(storage.data());
    for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
        sockaddr_nl from{};
        iovec iov{buf, kReceiveSize};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        const ssize_t n = ::recvmsg(fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {  // events were dropped: anything may have changed
                changed = true;
                continue;
            }
            return changed;  // EAGAIN: all read
        }
        if (n == 0) return changed;
        if (from.nl_pid != 0) continue;  // only the kernel's word counts
        if (msg.msg_flags & MSG_TRUNC) {  // a message we could not read whole
            changed = true;
            continue;
        }
        for_each_message(buf, static_cast<size_t>(n), [&](const nlmsghdr* nlh) {
            if (relevant_event(nlh)) changed = true;
        });
    }
    return true;  // still more coming: report a change rather than spin here
}

void Monitor::close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

Monitor& Monitor::operator=(Monitor&& other) noexcept {
    if (this != &other) {
        close();
        fd = std::exchange(other.fd, -1);
    }
    return *this;
}

Monitor::~Monitor() { close(); }

}  // namespace onebox::wan
