// netlink.h — the few rtnetlink operations onebox needs, over libmnl.
//
// Every call opens its own NETLINK_ROUTE socket in the calling thread's
// network namespace, sends one request with NLM_F_ACK and waits for the ack,
// so errors come back as values with the kernel's errno. Control thread only.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "result.h"

namespace onebox::netlink {

Status link_set_up(const std::string& ifname, unsigned mtu);      // mtu 0 = leave
Status link_delete(const std::string& ifname);                     // ENODEV if absent
bool link_exists(const std::string& ifname);
// What rtnetlink says about a link: index, IFLA_INFO_KIND ("tun", "dummy", ...;
// empty if the driver has none), MTU and IFF_UP. ENODEV if absent. Reads the
// caller's namespace, unlike /sys/class/net (which shows the namespace sysfs
// was mounted in).
struct LinkInfo {
    unsigned index = 0;
    std::string kind;
    unsigned mtu = 0;
    bool up = false;
};
Status link_get(const std::string& ifname, LinkInfo& out);
Status addr_add(const std::string& ifname, uint32_t ip, int prefix);  // host order

struct Route {
    uint32_t dst = 0;      // host order
    int prefix = 0;
    uint32_t gateway = 0;  // 0 = none
    std::string ifname;    // empty = none
    uint32_t table = 254;  // RT_TABLE_MAIN
    uint32_t metric = 0;
};
Status route_add(const Route& r);      // NLM_F_CREATE|NLM_F_REPLACE
Status route_del(const Route& r);
// Every IPv4 route in `table` (for tests and for cleanup of our own table).
Status route_list(uint32_t table, std::vector<Route>& out);
Status route_flush_table(uint32_t table);

struct Rule {
    uint32_t priority = 0;
    uint32_t table = 0;
    uint32_t fwmark = 0;        // with invert: "not fwmark X"
    bool invert = false;
    int suppress_prefixlen = -1;  // >= 0: "suppress_prefixlength N"
    uint32_t fwmask = 0xffffffffu;  // FRA_FWMASK with fwmark: "fwmark X/MASK" (only sent when fwmark != 0)
};
Status rule_add(const Rule& r);
Status rule_del(const Rule& r);
// Deletes every IPv4 rule whose priority is `priority` (crash cleanup).
Status rule_del_priority(uint32_t priority);

// A dump request (RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE) for `family`
// (AF_UNSPEC, AF_INET...): every reply message goes to `each`, which must
// check the message itself (see wan_links.h for parsers). An interrupted
// dump (NLM_F_DUMP_INTR: the tables changed meanwhile) fails with EINTR.
using MessageFn = std::function<void(const nlmsghdr*)>;
Status dump(uint16_t type, uint8_t family, const MessageFn& each, const std::string& what);

}  // namespace onebox::netlink
