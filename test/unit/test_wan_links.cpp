// test_wan_links.cpp — WAN link discovery (control/wan_links.cpp): the pure
// netlink parsers on hand-made messages, and discover() / Monitor against a
// real kernel.
//
// Everything that changes network state runs in a forked child that first
// moves into a fresh network namespace (unshare(CLONE_NEWNET)), exactly as in
// test_setup.cpp, so the host's network is never touched. The interfaces are
// veth pairs (the dummy driver may be missing), set up with `ip` — in the test
// only. Needs root; skipped otherwise.
#include <doctest.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "control/result.h"
#include "control/wan_links.h"
#include "proto/config.h"
#include "netns_harness.h"

namespace wan = onebox::wan;
using onebox::Status;
using namespace onebox::test;

namespace {

// Runs a test-only `ip` command; they print nothing on success.
#define RUN(cmd) run((cmd), __FILE__, __LINE__)

void run(const std::string& cmd, const char* file, int line) {
    const std::string out = sh(cmd);
    expect(out.empty(), cmd + " printed: " + out, file, line);
}

uint32_t ip(const char* s) {
    uint32_t v = 0;
    onebox::proto::parse_ipv4(s, v);
    return v;
}

// Runs body in a fresh network namespace (see netns_harness.h) that can make veth pairs.
void run_isolated(const std::function<void()>& body) {
    check_in_fresh_netns("veth devices", [&] {
        if (!sh("ip link add obprobe0 type veth peer name obprobe1").empty()) skip_child();  // no veth driver
        sh("ip link del obprobe0");
        body();
    });
}

std::string describe(const std::vector<wan::WanLink>& links) {
    std::string s;
    for (const auto& l : links) {
        s += l.ifname + " gw " + onebox::proto::format_ipv4(l.gateway) + " addr " +
             onebox::proto::format_ipv4(l.address) + " metric " + std::to_string(l.metric) + "\n";
    }
    return s;
}

std::vector<std::string> names(const std::vector<wan::WanLink>& links) {
    std::vector<std::string> out;
    for (const auto& l : links) out.push_back(l.ifname);
    return out;
}

// A veth pair `name` <-> `name`p, both up (so `name` has carrier).
void veth(const std::string& name, bool peer_up = true) {
    RUN("ip link add " + name + " type veth peer name " + name + "p");
    RUN("ip link set " + name + " up");
    if (peer_up) RUN("ip link set " + name + "p up");
}

// Waits up to timeout_ms for the monitor to become readable, then drains it.
bool changed_within(wan::Monitor& m, int timeout_ms) {
    pollfd p{m.fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    return m.drain();
}

// Lets pending events arrive, then throws them away.
void settle(wan::Monitor& m) {
    pollfd p{m.fd, POLLIN, 0};
    while (::poll(&p, 1, 100) > 0) m.drain();
}

// ---- hand-made messages ----------------------------------------------------------------

struct Msg {
    alignas(nlmsghdr) std::array<char, 1024> buf{};
    nlmsghdr* nlh = nullptr;
    template <typename T>
    T* start(uint16_t type) {
        nlh = mnl_nlmsg_put_header(buf.data());
        nlh->nlmsg_type = type;
        return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh, sizeof(T)));
    }
};

}  // namespace

// ---- parsers, no root --------------------------------------------------------------------

TEST_CASE("parse_route_msg: single next hop, table attribute, metric") {
    Msg m;
    auto* rtm = m.start<rtmsg>(RTM_NEWROUTE);
    rtm->rtm_family = AF_INET;
    rtm->rtm_table = RT_TABLE_UNSPEC;
    rtm->rtm_type = RTN_UNICAST;
    mnl_attr_put_u32(m.nlh, RTA_TABLE, RT_TABLE_MAIN);
    mnl_attr_put_u32(m.nlh, RTA_GATEWAY, htonl(ip("192.0.2.1")));
    mnl_attr_put_u32(m.nlh, RTA_OIF, 7);
    mnl_attr_put_u32(m.nlh, RTA_PRIORITY, 100);
    wan::RouteInfo r;
    REQUIRE(wan::parse_route_msg(m.nlh, r));
    CHECK_FALSE(r.deleted);
    CHECK(r.table == RT_TABLE_MAIN);
    CHECK(r.dst_len == 0);
    CHECK(r.metric == 100);
    REQUIRE(r.nexthops.size() == 1);
    CHECK(r.nexthops[0].ifindex == 7);
    CHECK(r.nexthops[0].gateway == ip("192.0.2.1"));
    CHECK(wan::relevant_event(m.nlh));

    // Another table: parsed, but not an event that matters.
    mnl_attr_put_u32(m.nlh, RTA_TABLE, 100);  // a second RTA_TABLE: the last one wins
    REQUIRE(wan::parse_route_msg(m.nlh, r));
    CHECK(r.table == 100);
    CHECK_FALSE(wan::relevant_event(m.nlh));

    // A wrong-sized attribute makes the message malformed.
    Msg bad;
    auto* brtm = bad.start<rtmsg>(RTM_DELROUTE);
    brtm->rtm_family = AF_INET;
    mnl_attr_put_u16(bad.nlh, RTA_OIF, 7);
    CHECK_FALSE(wan::parse_route_msg(bad.nlh, r));
    CHECK(wan::relevant_event(bad.nlh));  // unreadable: assume it matters
}

TEST_CASE("parse_route_msg: multipath") {
    Msg m;
    auto* rtm = m.start<rtmsg>(RTM_NEWROUTE);
    rtm->rtm_family = AF_INET;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_type = RTN_UNICAST;
    nlattr* mp = mnl_attr_nest_start(m.nlh, RTA_MULTIPATH);
    for (int k = 0; k < 2; ++k) {
        auto* nh = static_cast<rtnexthop*>(mnl_nlmsg_get_payload_tail(m.nlh));
        m.nlh->nlmsg_len += MNL_ALIGN(sizeof(rtnexthop));
        std::memset(nh, 0, sizeof *nh);
        nh->rtnh_ifindex = 10 + k;
        mnl_attr_put_u32(m.nlh, RTA_GATEWAY, htonl(ip(k == 0 ? "10.2.0.1" : "10.3.0.1")));
        nh->rtnh_len = static_cast<unsigned short>(reinterpret_cast<char*>(mnl_nlmsg_get_payload_tail(m.nlh)) -
                                                   reinterpret_cast<char*>(nh));
    }
    mnl_attr_nest_end(m.nlh, mp);
    wan::RouteInfo r;
    REQUIRE(wan::parse_route_msg(m.nlh, r));
    REQUIRE(r.nexthops.size() == 2);
    CHECK(r.nexthops[0].ifindex == 10);
    CHECK(r.nexthops[0].gateway == ip("10.2.0.1"));
    CHECK(r.nexthops[1].ifindex == 11);
    CHECK(r.nexthops[1].gateway == ip("10.3.0.1"));

    // A next hop claiming more bytes than the attribute has.
    auto* first = reinterpret_cast<rtnexthop*>(static_cast<char*>(mnl_attr_get_payload(mp)));
    first->rtnh_len = 200;
    CHECK_FALSE(wan::parse_route_msg(m.nlh, r));
    first->rtnh_len = 4;  // shorter than its own header
    CHECK_FALSE(wan::parse_route_msg(m.nlh, r));
}

TEST_CASE("parsers reject short and mistyped messages") {
    Msg m;
    auto* ifm = m.start<ifinfomsg>(RTM_NEWLINK);
    ifm->ifi_index = 3;
    ifm->ifi_flags = IFF_UP | IFF_RUNNING;
    mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "wan0");
    wan::LinkMsg l;
    REQUIRE(wan::parse_link_msg(m.nlh, l));
    CHECK(l.ifname == "wan0");
    CHECK(l.ifindex == 3);
    CHECK(l.flags == (IFF_UP | IFF_RUNNING));
    wan::AddrMsg a;
    wan::RouteInfo r;
    CHECK_FALSE(wan::parse_addr_msg(m.nlh, a));  // wrong type
    CHECK_FALSE(wan::parse_route_msg(m.nlh, r));
    CHECK(wan::relevant_event(m.nlh));

    // An attribute running past the message end.
    auto* attr = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(m.nlh, sizeof(ifinfomsg)));
    attr->nla_len = 200;
    CHECK_FALSE(wan::parse_link_msg(m.nlh, l));
    attr->nla_len = 2;
    CHECK_FALSE(wan::parse_link_msg(m.nlh, l));
    // A name without its NUL within 16 bytes.
    Msg longname;
    auto* ifm2 = longname.start<ifinfomsg>(RTM_NEWLINK);
    ifm2->ifi_index = 3;
    mnl_attr_put(longname.nlh, IFLA_IFNAME, 20, "abcdefghijklmnopqrst");
    CHECK_FALSE(wan::parse_link_msg(longname.nlh, l));

    // Too short for the fixed header.
    m.nlh->nlmsg_len = sizeof(nlmsghdr) + 4;
    CHECK_FALSE(wan::parse_link_msg(m.nlh, l));

    Msg addr;
    auto* ifa = addr.start<ifaddrmsg>(RTM_NEWADDR);
    ifa->ifa_family = AF_INET;
    ifa->ifa_index = 3;
    ifa->ifa_prefixlen = 32;
    mnl_attr_put_u32(addr.nlh, IFA_ADDRESS, htonl(ip("10.1.1.1")));  // the peer
    mnl_attr_put_u32(addr.nlh, IFA_LOCAL, htonl(ip("10.1.1.2")));
    mnl_attr_put_u32(addr.nlh, IFA_FLAGS, IFA_F_SECONDARY | IFA_F_NOPREFIXROUTE);
    REQUIRE(wan::parse_addr_msg(addr.nlh, a));
    CHECK(a.address == ip("10.1.1.2"));
    CHECK(a.flags == (IFA_F_SECONDARY | IFA_F_NOPREFIXROUTE));
    CHECK(wan::relevant_event(addr.nlh));
    ifa->ifa_family = AF_INET6;
    CHECK_FALSE(wan::relevant_event(addr.nlh));

    Msg other;
    other.start<ifinfomsg>(NLMSG_DONE);
    CHECK_FALSE(wan::relevant_event(other.nlh));
}

TEST_CASE("for_each_message: bounded by the buffer") {
    alignas(nlmsghdr) std::array<char, 64> buf{};
    auto* a = reinterpret_cast<nlmsghdr*>(buf.data());
    a->nlmsg_len = 18;  // not a multiple of 4: the next one starts at 20
    auto* b = reinterpret_cast<nlmsghdr*>(buf.data() + 20);
    b->nlmsg_len = 16;
    auto* c = reinterpret_cast<nlmsghdr*>(buf.data() + 36);
    std::vector<const nlmsghdr*> seen;
    const auto collect = [&](const nlmsghdr* m) { seen.push_back(m); };
    for (uint32_t bad : {0u, 15u, 29u, 0x80000000u, 0xfffffff0u}) {  // too short, or past the end
        CAPTURE(bad);
        c->nlmsg_len = bad;
        seen.clear();
        wan::for_each_message(buf.data(), buf.size(), collect);
        CHECK(seen == std::vector<const nlmsghdr*>{a, b});
    }
    c->nlmsg_len = 28;  // exactly to the end
    seen.clear();
    wan::for_each_message(buf.data(), buf.size(), collect);
    CHECK(seen == std::vector<const nlmsghdr*>{a, b, c});
    seen.clear();
    wan::for_each_message(buf.data(), 15, collect);
    CHECK(seen.empty());
}

TEST_CASE("select_links: the rules without a kernel") {
    const unsigned up = IFF_UP | IFF_RUNNING;
    const std::vector<wan::LinkMsg> links = {
        {false, 1, up | IFF_LOOPBACK, "lo"}, {false, 2, up, "b"},  {false, 3, up, "a"},
        {false, 4, IFF_UP, "nocarrier"},     {false, 5, up, "tun"}, {false, 6, up, "noroute"},
    };
    const std::vector<wan::AddrMsg> addrs = {
        {false, AF_INET, 3, 24, IFA_F_SECONDARY, ip("192.0.2.9")},
        {false, AF_INET, 3, 24, 0, ip("192.0.2.2")},
    };
    auto route = [](unsigned ifindex, uint32_t metric, uint32_t table = RT_TABLE_MAIN, uint8_t type = RTN_UNICAST) {
        wan::RouteInfo r;
        r.family = AF_INET;
        r.table = table;
        r.type = type;
        r.metric = metric;
        r.nexthops.push_back({ifindex, 0x0a000001u + ifindex});
        return r;
    };
    std::vector<wan::RouteInfo> routes = {route(1, 1), route(2, 20), route(2, 10), route(3, 10), route(4, 1),
                                          route(5, 1), route(6, 1, 100), route(6, 1, RT_TABLE_MAIN, RTN_BLACKHOLE)};
    routes.back().nexthops.clear();
    wan::RouteInfo specific = route(6, 1);
    specific.dst_len = 24;
    routes.push_back(specific);

    auto got = wan::select_links(links, addrs, routes, "tun", {});
    REQUIRE(got.size() == 2);
    CHECK(got[0].ifname == "a");  // metric 10, then by name
    CHECK(got[0].address == ip("192.0.2.2"));
    CHECK(got[0].gateway == 0x0a000004u);
    CHECK(got[1].ifname == "b");
    CHECK(got[1].metric == 10);  // the lower of its two
    CHECK(got[1].address == 0);
    got = wan::select_links(links, addrs, routes, "tun", {"b", "zzz"});
    REQUIRE(got.size() == 1);
    CHECK(got[0].ifname == "b");
}

// ---- against the kernel, in a namespace -------------------------------------------------

TEST_CASE("discover: the right interfaces, in the right order") {
    run_isolated([] {
        for (const char* n : {"wa0", "wb0", "wc0", "wd0", "wm0", "wm1", "obtun0", "wx0"}) veth(n);
        veth("wn0", false);  // up, but its peer is down: no carrier
        RUN("ip link add wz0 type veth peer name wz0p");  // down
        RUN("ip link set lo up");
        RUN("ip addr add 192.0.2.2/24 dev wa0");
        RUN("ip addr add 192.0.2.3/24 dev wa0");  // secondary
        RUN("ip addr add 198.51.100.2/24 dev wb0");
        RUN("ip addr add 203.0.113.2/24 dev wc0");
        RUN("ip addr add 10.1.1.2/32 peer 10.1.1.1 dev wd0");  // point to point: IFA_LOCAL is ours
        RUN("ip addr add 10.2.0.2/24 dev wm0");
        RUN("ip addr add 10.3.0.2/24 dev wm1");
        RUN("ip addr add 10.9.9.2/24 dev wn0");
        RUN("ip addr add 10.7.0.2/24 dev obtun0");
        RUN("ip addr add 10.8.0.2/24 dev wx0");
        RUN("ip addr add 10.6.0.2/24 dev wz0");
        RUN("ip route add default via 192.0.2.1 dev wa0 metric 100");
        RUN("ip route add default via 198.51.100.1 dev wb0 metric 50");
        RUN("ip route add default via 198.51.100.1 dev wb0 metric 300");
        RUN("ip route append default via 203.0.113.1 dev wc0 metric 100");  // same key as wa0's: append
        RUN("ip route add default dev wd0 metric 400");
        RUN("ip route add default metric 700 nexthop via 10.2.0.1 dev wm0 nexthop via 10.3.0.1 dev wm1");
        RUN("ip route add default via 10.9.9.1 dev wn0 metric 20");
        RUN("ip route add default via 10.7.0.1 dev obtun0 metric 5");
        RUN("ip route add default dev lo metric 10");
        RUN("ip route add default via 10.8.0.1 dev wx0 table 100");  // not main
        RUN("ip route add 10.99.0.0/16 via 10.8.0.1 dev wx0");       // not a default route
        RUN("ip route add unreachable default metric 1");            // no interface

        std::vector<wan::WanLink> links;
        EXPECT_OK(wan::discover("obtun0", {}, links));
        const std::vector<std::string> want = {"wb0", "wa0", "wc0", "wd0", "wm0", "wm1"};
        expect(names(links) == want, "discovered:\n" + describe(links), __FILE__, __LINE__);
        if (names(links) == want) {
            EXPECT(links[0].metric == 50 && links[0].gateway == ip("198.51.100.1"));
            EXPECT(links[0].address == ip("198.51.100.2"));
            EXPECT(links[0].ifindex == if_nametoindex("wb0"));
            EXPECT(links[1].metric == 100 && links[1].gateway == ip("192.0.2.1"));
            EXPECT(links[1].address == ip("192.0.2.2"));  // the primary, not the secondary
            EXPECT(links[3].metric == 400 && links[3].gateway == 0 && links[3].address == ip("10.1.1.2"));
            EXPECT(links[4].metric == 700 && links[4].gateway == ip("10.2.0.1"));
            EXPECT(links[5].metric == 700 && links[5].gateway == ip("10.3.0.1"));
        }

        // The TUN name is only excluded when it is the TUN.
        EXPECT_OK(wan::discover("onebox0", {}, links));
        EXPECT(!links.empty() && links[0].ifname == "obtun0" && links[0].metric == 5);

        EXPECT_OK(wan::discover("obtun0", {"wm1", "wc0", "wn0", "lo", "nope0"}, links));
        expect(names(links) == std::vector<std::string>{"wc0", "wm1"}, "allowed:\n" + describe(links), __FILE__,
               __LINE__);

        // Carrier back: wn0 joins, first by metric.
        RUN("ip link set wn0p up");
        EXPECT_OK(wan::discover("obtun0", {}, links));
        EXPECT(!links.empty() && links[0].ifname == "wn0" && links[0].metric == 20);
        // Down: its routes go with it.
        RUN("ip link set wb0 down");
        EXPECT_OK(wan::discover("obtun0", {}, links));
        expect(names(links) == std::vector<std::string>{"wn0", "wa0", "wc0", "wd0", "wm0", "wm1"},
               "after wb0 down:\n" + describe(links), __FILE__, __LINE__);

        EXPECT_OK(wan::discover("obtun0", {"nope0"}, links));
        EXPECT(links.empty());
    });
}

TEST_CASE("discover: nothing in a fresh namespace") {
    run_isolated([] {
        std::vector<wan::WanLink> links{{"stale", 1, 0, 0, 0}};
        EXPECT_OK(wan::discover("onebox0", {}, links));
        EXPECT(links.empty());
    });
}

TEST_CASE("Monitor: reports changes that matter, and only those") {
    run_isolated([] {
        veth("wa0");
        veth("wb0");
        RUN("ip addr add 192.0.2.2/24 dev wa0");
        RUN("ip addr add 198.51.100.2/24 dev wb0");
        RUN("ip route add default via 192.0.2.1 dev wa0 metric 100");

        wan::Monitor m;
        EXPECT(!m.drain());  // not open
        EXPECT_OK(m.open());
        EXPECT(m.fd >= 0);
        EXPECT(!m.drain());  // nothing happened yet

        // Irrelevant: a route in another table, a more specific route in main.
        RUN("ip route add default via 198.51.100.1 dev wb0 table 100");
        RUN("ip route add 10.99.0.0/16 via 198.51.100.1 dev wb0");
        EXPECT(!changed_within(m, 200));
        RUN("ip route del default table 100");
        EXPECT(!changed_within(m, 200));

        // A new default route on another interface.
        RUN("ip route add default via 198.51.100.1 dev wb0 metric 50");
        EXPECT(changed_within(m, 1000));
        settle(m);
        // Its removal.
        RUN("ip route del default via 198.51.100.1 dev wb0 metric 50");
        EXPECT(changed_within(m, 1000));
        settle(m);
        // A link going down.
        RUN("ip link set wb0 down");
        EXPECT(changed_within(m, 1000));
        settle(m);
        // Carrier loss: the peer goes down.
        RUN("ip link set wa0p down");
        EXPECT(changed_within(m, 1000));
        settle(m);
        // An address deleted.
        RUN("ip addr del 192.0.2.2/24 dev wa0");
        EXPECT(changed_within(m, 1000));
        settle(m);
        // A new link.
        RUN("ip link add wc0 type veth peer name wc0p");
        EXPECT(changed_within(m, 1000));
        settle(m);

        // Quiet again.
        EXPECT(!changed_within(m, 200));
        const int old_fd = m.fd;
        wan::Monitor moved = std::move(m);
        EXPECT(m.fd == -1 && moved.fd == old_fd);
        moved.close();
        EXPECT(moved.fd == -1);
        EXPECT(!moved.drain());
    });
}
