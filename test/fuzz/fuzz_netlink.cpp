// fuzz_netlink.cpp — the rtnetlink parsers of control/wan_links.cpp on
// arbitrary bytes, read as a stream of netlink messages with
// wan::for_each_message(), as wan::Monitor::drain() reads a receive buffer. They must never
// crash, hang or read out of bounds (the input is copied into a buffer of
// exactly its size, so ASan sees any read past it), and what they accept must
// satisfy the invariants discover() relies on.
//
// Seeds in corpus/netlink/: real RTM_GETLINK / RTM_GETADDR / RTM_GETROUTE
// dump replies and link/address/route events captured in a network namespace.
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "control/wan_links.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > (1u << 20)) return 0;
    // Exactly `size` bytes; operator new[] aligns it for nlmsghdr.
    std::unique_ptr<char[]> buf(new char[size ? size : 1]);
    if (size) std::memcpy(buf.get(), data, size);

    std::vector<onebox::wan::LinkMsg> links;
    std::vector<onebox::wan::AddrMsg> addrs;
    std::vector<onebox::wan::RouteInfo> routes;
    onebox::wan::for_each_message(buf.get(), size, [&](const nlmsghdr* nlh) {
        check(nlh->nlmsg_len >= sizeof(nlmsghdr));
        check(reinterpret_cast<const char*>(nlh) + nlh->nlmsg_len <= buf.get() + size);
        (void)onebox::wan::relevant_event(nlh);

        onebox::wan::LinkMsg l;
        if (onebox::wan::parse_link_msg(nlh, l)) {
            check(l.ifindex != 0);
            check(l.ifname.size() < IFNAMSIZ);
            check(l.ifname.find('\0') == std::string::npos);
            links.push_back(std::move(l));
        }
        onebox::wan::AddrMsg a;
        if (onebox::wan::parse_addr_msg(nlh, a)) addrs.push_back(a);
        onebox::wan::RouteInfo r;
        if (onebox::wan::parse_route_msg(nlh, r)) {
            check(r.nexthops.size() <= onebox::wan::kMaxNextHops);
            if (r.family == AF_INET) check(r.dst_len <= 32);
            routes.push_back(std::move(r));
        }
    });

    const auto picked = onebox::wan::select_links(links, addrs, routes, "onebox0", {});
    check(picked.size() <= links.size());
    for (size_t k = 0; k < picked.size(); ++k) {
        check(!picked[k].ifname.empty() && picked[k].ifname != "onebox0");
        for (size_t m = 0; m < k; ++m) check(picked[m].ifindex != picked[k].ifindex);  // one entry per interface
        if (k > 0) {
            check(picked[k - 1].metric < picked[k].metric ||
                  (picked[k - 1].metric == picked[k].metric && picked[k - 1].ifname <= picked[k].ifname));
        }
    }
    return 0;
}
