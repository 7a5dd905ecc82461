// netlink.h — the few rtnetlink operations onebox needs, over libmnl.
//
// Every call opens its own NETLINK_ROUTE socket in the calling thread's
// network namespace, sends one request with NLM_F_ACK and waits for the ack,
// so errors come back as values with the kernel's errno. Control thread only.
#pragma once

#include <cstdint>
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
};
Status rule_add(const Rule& r);
Status rule_del(const Rule& r);
// Deletes every IPv4 rule whose priority is `priority` (crash cleanup).
Status rule_del_priority(uint32_t priority);

}  // namespace onebox::netlink
