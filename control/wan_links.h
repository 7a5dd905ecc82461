// wan_links.h — which WAN links the box has, and when that may have changed.
//
// discover() dumps links, IPv4 addresses and IPv4 routes over rtnetlink and
// keeps every usable interface with a default route in the main table.
// Monitor is a netlink socket subscribed to the events that can change that
// answer; the daemon polls it and calls discover() again when drain() says so.
//
// The netlink messages are parsed by the small pure functions at the end of
// this header (bytes in, struct out, no syscalls), so that a fuzz target
// (test/fuzz/fuzz_netlink.cpp) can feed them arbitrary bytes. Each checks the
// message length, the fixed header and every attribute it reads; none trusts
// the kernel. Control thread only.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "proto/wire.h"
#include "result.h"

namespace onebox::wan {

inline constexpr unsigned kMaxLinks = proto::kMaxLinks;  // links the data plane can bond

struct WanLink {
    std::string ifname;
    unsigned ifindex = 0;
    uint32_t gateway = 0;   // host order; 0 if the default route has no gateway (point-to-point)
    uint32_t address = 0;   // host order; the interface's primary IPv4 address (0 if none)
    uint32_t metric = 0;    // of its default route
    uint32_t mtu = 0;       // the interface's MTU (0 if the kernel did not say)
};

// Every interface that
//  - is up and running: IFF_UP and IFF_RUNNING (operationally up: carrier, and
//    for PPP and the like the link layer is up). An interface that is up
//    without carrier (cable out, Wi-Fi not associated) cannot carry anything,
//    so it is not offered;
//  - is not loopback (IFF_LOOPBACK) and is not named `tun`;
//  - has an IPv4 unicast default route (0.0.0.0/0, any metric, any TOS) in the
//    main table leaving through it: RTA_OIF, or one of the next hops of a
//    multipath route. Routes whose next hop is a nexthop object (RTA_NH_ID) or
//    an IPv6 gateway (RTA_VIA) are not understood and skipped;
// with that route's gateway (0 if none) and metric; with several such routes,
// the lowest metric. If `allowed` is non-empty, only interfaces named in it.
// Sorted by metric, then name; one entry per interface. address is the first
// IPv4 address of the interface that is not IFA_F_SECONDARY (IFA_LOCAL, else
// IFA_ADDRESS), 0 if it has none. A dump interrupted by a concurrent change is
// retried a few times, then fails with EINTR.
Status discover(const std::string& tun, const std::vector<std::string>& allowed, std::vector<WanLink>& out);

// A NETLINK_ROUTE socket subscribed to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and
// RTNLGRP_IPV4_ROUTE (non-blocking, CLOEXEC).
struct Monitor {
    int fd = -1;            // poll it for POLLIN
    Status open();          // closes an earlier socket first
    // Reads every pending message; true if any of them could change
    // discover()'s answer: any RTM_NEWLINK/RTM_DELLINK (up, down, carrier,
    // rename, new, deleted), any IPv4 RTM_NEWADDR/RTM_DELADDR, and an IPv4
    // RTM_NEWROUTE/RTM_DELROUTE for a default route (prefix length 0) in the
    // main table. Routes in other tables and more specific routes in main are
    // ignored. Also true if the kernel dropped events for us (ENOBUFS: the
    // socket buffer overflowed), since then anything may have changed. False
    // if the socket is not open. Messages not sent by the kernel are ignored.
    bool drain();
    void close();

    Monitor() = default;
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;
    Monitor(Monitor&& other) noexcept : fd(other.fd) { other.fd = -1; }
    Monitor& operator=(Monitor&& other) noexcept;
    ~Monitor();
};

// ---- pure parsers (fuzzed) -------------------------------------------------------
//
// Each takes one message that the caller has already bounded: nlh->nlmsg_len
// >= sizeof(nlmsghdr) and the whole message readable (mnl_nlmsg_ok() on the
// buffer). They return false when the message is of another type, too short
// for its fixed header, or has a malformed attribute they need; the output is
// then unspecified.

// Calls fn for each whole message in buf[0, len) (a receive buffer), in order,
// each with sizeof(nlmsghdr) <= nlmsg_len <= the bytes left; stops at the first
// that does not fit. (libmnl's mnl_nlmsg_ok() compares (int)nlmsg_len, which
// lets a length of 2^31 or more through.) buf must be aligned for nlmsghdr.
void for_each_message(const void* buf, size_t len, const std::function<void(const nlmsghdr*)>& fn);

// RTM_NEWLINK / RTM_DELLINK
struct LinkMsg {
    bool deleted = false;      // RTM_DELLINK
    unsigned ifindex = 0;
    unsigned flags = 0;        // IFF_*
    std::string ifname;        // IFLA_IFNAME, at most 15 characters; empty if absent
    uint32_t mtu = 0;          // IFLA_MTU, 0 if absent
};
bool parse_link_msg(const nlmsghdr* nlh, LinkMsg& out);

// RTM_NEWADDR / RTM_DELADDR
struct AddrMsg {
    bool deleted = false;      // RTM_DELADDR
    uint8_t family = 0;
    unsigned ifindex = 0;
    uint8_t prefixlen = 0;
    uint32_t flags = 0;        // IFA_F_* (IFA_FLAGS if present, else ifa_flags)
    uint32_t address = 0;      // host order, IPv4 only: IFA_LOCAL, else IFA_ADDRESS; 0 if neither
};
bool parse_addr_msg(const nlmsghdr* nlh, AddrMsg& out);

// RTM_NEWROUTE / RTM_DELROUTE
struct NextHop {
    unsigned ifindex = 0;
    uint32_t gateway = 0;      // host order, 0 if none
};
struct RouteInfo {
    bool deleted = false;      // RTM_DELROUTE
    uint8_t family = 0;
    uint8_t dst_len = 0;
    uint8_t type = 0;          // RTN_*
    uint32_t table = 0;        // RTA_TABLE if present, else rtm_table
    uint32_t dst = 0;          // host order (IPv4), 0 if absent
    uint32_t metric = 0;       // RTA_PRIORITY, 0 if absent
    bool unsupported_nexthop = false;  // RTA_NH_ID or RTA_VIA: next hops not listed below
    std::vector<NextHop> nexthops;     // RTA_OIF + RTA_GATEWAY, or each RTA_MULTIPATH entry
};
inline constexpr size_t kMaxNextHops = 64;  // more multipath entries are ignored
bool parse_route_msg(const nlmsghdr* nlh, RouteInfo& out);

// Would this message (a multicast event) change discover()'s answer? The
// filter Monitor::drain() applies to each message.
bool relevant_event(const nlmsghdr* nlh);

// The discovery itself, from parsed dump contents: the rule in discover()'s
// comment, without I/O.
std::vector<WanLink> select_links(const std::vector<LinkMsg>& links, const std::vector<AddrMsg>& addrs,
                                  const std::vector<RouteInfo>& routes, const std::string& tun,
                                  const std::vector<std::string>& allowed);

}  // namespace onebox::wan
