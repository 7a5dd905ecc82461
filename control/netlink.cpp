// netlink.cpp — rtnetlink requests over libmnl (see netlink.h).
//
// One socket per call: the control plane makes a handful of these at start and
// exit, and a fresh socket cannot see a stale reply from an earlier request.
#include "netlink.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "../proto/config.h"

namespace onebox::netlink {
namespace {

constexpr size_t kRequestSize = 1024;    // our requests carry a few attributes
constexpr size_t kReceiveSize = 32768;   // MNL_SOCKET_DUMP_SIZE: a whole dump chunk

// Request buffer, aligned for the netlink header it starts with.
struct Buffer {
    alignas(nlmsghdr) std::array<char, kRequestSize> bytes{};
    char* data() { return bytes.data(); }
};

// Owns one NETLINK_ROUTE socket for the duration of a call.
struct Socket {
    mnl_socket* nl = nullptr;
    unsigned portid = 0;

    Socket() = default;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket() {
        if (nl) mnl_socket_close(nl);
    }

    Status open(const std::string& what) {
        nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl) return Status::fail(errno, what + " (netlink socket)");
        if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) return Status::fail(errno, what + " (netlink bind)");
        portid = mnl_socket_get_portid(nl);
        return Status::success();
    }
};

// Sends one request and reads until the kernel is done with it: the ack for a
// plain request, NLMSG_DONE for a dump. Data messages go to cb. An error ack
// becomes a Status carrying the kernel's errno.
Status transact(nlmsghdr* nlh, mnl_cb_t cb, void* data, const std::string& what) {
    Socket sock;
    if (Status s = sock.open(what); !s.ok()) return s;
    const auto seq = static_cast<uint32_t>(std::time(nullptr));
    nlh->nlmsg_seq = seq;
    if (mnl_socket_sendto(sock.nl, nlh, nlh->nlmsg_len) < 0) return Status::fail(errno, what);

    std::vector<char> buf(kReceiveSize);
    for (;;) {
        const ssize_t n = mnl_socket_recvfrom(sock.nl, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return Status::fail(errno, what);
        }
        const int ret = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, sock.portid, cb, data);
        if (ret < 0) return Status::fail(errno, what);
        if (ret == MNL_CB_STOP) return Status::success();
    }
}

Status request(nlmsghdr* nlh, const std::string& what) { return transact(nlh, nullptr, nullptr, what); }

nlmsghdr* put_header(Buffer& buf, uint16_t type, uint16_t flags) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    return nlh;
}

Status index_of(const std::string& ifname, unsigned& index, const std::string& what) {
    index = ifname.size() < IFNAMSIZ ? if_nametoindex(ifname.c_str()) : 0;
    if (index == 0) return Status::fail(ifname.size() < IFNAMSIZ ? errno : EINVAL, what);
    return Status::success();
}

std::string name_of(unsigned index) {
    char name[IF_NAMESIZE] = {};
    return if_indextoname(index, name) ? std::string(name) : std::string();
}

// Attributes of one message, indexed by type (types beyond kMaxAttr ignored).
constexpr uint16_t kMaxAttr = 127;
struct Attrs {
    std::array<const nlattr*, kMaxAttr + 1> tb{};
    const nlattr* operator[](uint16_t type) const { return type <= kMaxAttr ? tb[type] : nullptr; }
};

int collect_attr(const nlattr* attr, void* data) {
    const uint16_t type = mnl_attr_get_type(attr);
    if (type <= kMaxAttr) static_cast<Attrs*>(data)->tb[type] = attr;
    return MNL_CB_OK;
}

bool get_u32(const nlattr* attr, uint32_t& out) {
    if (!attr || mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return false;
    out = mnl_attr_get_u32(attr);
    return true;
}

// A dumped message kept whole, to be sent back as a delete (as `ip rule flush` does).
using RawMessages = std::vector<std::vector<char>>;

void keep_message(const nlmsghdr* nlh, RawMessages& out) {
    const char* p = reinterpret_cast<const char*>(nlh);
    out.emplace_back(p, p + nlh->nlmsg_len);
}

Status delete_each(RawMessages& messages, uint16_t del_type, int ignore_errno, const std::string& what) {
    Status first;
    for (auto& m : messages) {
        auto* nlh = reinterpret_cast<nlmsghdr*>(m.data());
        nlh->nlmsg_type = del_type;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        Status s = request(nlh, what);
        if (!s.ok() && s.err != ignore_errno && first.ok()) first = s;
    }
    return first;
}

// ---- links -------------------------------------------------------------------

int parse_link(const nlmsghdr* nlh, void* data) {
    auto* out = static_cast<LinkInfo*>(data);
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) return MNL_CB_ERROR;
    const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    Attrs attrs;
    if (mnl_attr_parse(nlh, sizeof *ifm, collect_attr, &attrs) < 0) return MNL_CB_ERROR;
    out->index = static_cast<unsigned>(ifm->ifi_index);
    out->up = (ifm->ifi_flags & IFF_UP) != 0;
    uint32_t mtu = 0;
    if (get_u32(attrs[IFLA_MTU], mtu)) out->mtu = mtu;
    if (const nlattr* linkinfo = attrs[IFLA_LINKINFO]) {
        Attrs info;
        if (mnl_attr_parse_nested(linkinfo, collect_attr, &info) >= 0 && info[IFLA_INFO_KIND] &&
            mnl_attr_validate(info[IFLA_INFO_KIND], MNL_TYPE_STRING) >= 0) {
            // MNL_TYPE_STRING does not promise a NUL inside the attribute.
            const nlattr* kind = info[IFLA_INFO_KIND];
            const auto* p = static_cast<const char*>(mnl_attr_get_payload(kind));
            out->kind.assign(p, ::strnlen(p, mnl_attr_get_payload_len(kind)));
        }
    }
    return MNL_CB_OK;
}

nlmsghdr* put_link(Buffer& buf, uint16_t type, uint16_t flags, unsigned index) {
    nlmsghdr* nlh = put_header(buf, type, flags);
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = static_cast<int>(index);
    return nlh;
}

// ---- routes ------------------------------------------------------------------

std::string describe(const Route& r) {
    std::string s = proto::format_ipv4(r.dst) + "/" + std::to_string(r.prefix);
    if (r.gateway) s += " via " + proto::format_ipv4(r.gateway);
    if (!r.ifname.empty()) s += " dev " + r.ifname;
    s += " table " + std::to_string(r.table);
    if (r.metric) s += " metric " + std::to_string(r.metric);
    return s;
}

uint32_t prefix_mask(int prefix) { return prefix <= 0 ? 0 : (prefix >= 32 ? ~0u : ~0u << (32 - prefix)); }

nlmsghdr* put_route(Buffer& buf, uint16_t type, uint16_t flags, const Route& r, unsigned oif) {
    nlmsghdr* nlh = put_header(buf, type, flags);
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = static_cast<unsigned char>(r.prefix);
    // Tables above 255 only fit in RTA_TABLE; the header field then says "see attribute".
    rtm->rtm_table = static_cast<unsigned char>(r.table < 256 ? r.table : RT_TABLE_UNSPEC);
    if (type == RTM_NEWROUTE) {
        rtm->rtm_protocol = RTPROT_BOOT;  // what `ip route add` uses
        rtm->rtm_scope = r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
        rtm->rtm_type = RTN_UNICAST;
    } else {
        // Delete: NOWHERE scope and zero type/protocol match any, like `ip route del`.
        rtm->rtm_scope = RT_SCOPE_NOWHERE;
    }
    mnl_attr_put_u32(nlh, RTA_TABLE, r.table);
    if (r.prefix > 0) mnl_attr_put_u32(nlh, RTA_DST, htonl(r.dst & prefix_mask(r.prefix)));
    if (r.gateway) mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(r.gateway));
    if (oif) mnl_attr_put_u32(nlh, RTA_OIF, oif);
    if (r.metric) mnl_attr_put_u32(nlh, RTA_PRIORITY, r.metric);
    return nlh;
}

Status route_change(uint16_t type, uint16_t flags, const Route& r, const std::string& what) {
    if (r.prefix < 0 || r.prefix > 32) return Status::fail(EINVAL, what);
    unsigned oif = 0;
    if (!r.ifname.empty()) {
        if (Status s = index_of(r.ifname, oif, what); !s.ok()) return s;
    }
    Buffer buf;
    return request(put_route(buf, type, flags, r, oif), what);
}

uint32_t table_of(const rtmsg* rtm, const Attrs& attrs) {
    uint32_t table = rtm->rtm_table;
    get_u32(attrs[RTA_TABLE], table);
    return table;
}

struct RouteDump {
    uint32_t table;
    std::vector<Route>* routes = nullptr;   // list mode
    RawMessages* raw = nullptr;             // flush mode
};

int parse_route(const nlmsghdr* nlh, void* data) {
    auto* dump = static_cast<RouteDump*>(data);
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(rtmsg)) return MNL_CB_ERROR;
    const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
    if (rtm->rtm_family != AF_INET) return MNL_CB_OK;
    Attrs attrs;
    if (mnl_attr_parse(nlh, sizeof *rtm, collect_attr, &attrs) < 0) return MNL_CB_ERROR;
    if (table_of(rtm, attrs) != dump->table) return MNL_CB_OK;
    if (dump->raw) {
        keep_message(nlh, *dump->raw);
        return MNL_CB_OK;
    }
    Route r;
    r.table = dump->table;
    r.prefix = rtm->rtm_dst_len;
    uint32_t v = 0;
    if (get_u32(attrs[RTA_DST], v)) r.dst = ntohl(v);
    if (get_u32(attrs[RTA_GATEWAY], v)) r.gateway = ntohl(v);
    if (get_u32(attrs[RTA_OIF], v)) r.ifname = name_of(v);
    if (get_u32(attrs[RTA_PRIORITY], v)) r.metric = v;
    dump->routes->push_back(std::move(r));
    return MNL_CB_OK;
}

Status dump_routes(RouteDump& dump, const std::string& what) {
    Buffer buf;
    nlmsghdr* nlh = put_header(buf, RTM_GETROUTE, NLM_F_DUMP);
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rtm->rtm_family = AF_INET;
    return transact(nlh, parse_route, &dump, what);
}

// ---- rules -------------------------------------------------------------------

std::string describe(const Rule& r) {
    std::string s = "priority " + std::to_string(r.priority);
    if (r.fwmark) {
        s += std::string(r.invert ? " not" : "") + " fwmark " + std::to_string(r.fwmark);
        if (r.fwmask != 0xffffffffu) s += "/" + std::to_string(r.fwmask);
    }
    s += " lookup " + std::to_string(r.table);
    if (r.suppress_prefixlen >= 0) s += " suppress_prefixlength " + std::to_string(r.suppress_prefixlen);
    return s;
}

nlmsghdr* put_rule(Buffer& buf, uint16_t type, uint16_t flags, const Rule& r) {
    nlmsghdr* nlh = put_header(buf, type, flags);
    auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
    frh->family = AF_INET;
    frh->action = FR_ACT_TO_TBL;
    frh->table = static_cast<uint8_t>(r.table < 256 ? r.table : RT_TABLE_UNSPEC);
    if (r.invert) frh->flags |= FIB_RULE_INVERT;
    if (r.priority) mnl_attr_put_u32(nlh, FRA_PRIORITY, r.priority);
    if (r.table) mnl_attr_put_u32(nlh, FRA_TABLE, r.table);
    if (r.fwmark) {
        mnl_attr_put_u32(nlh, FRA_FWMARK, r.fwmark);
        mnl_attr_put_u32(nlh, FRA_FWMASK, r.fwmask);
    }
    if (r.suppress_prefixlen >= 0) {
        mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, static_cast<uint32_t>(r.suppress_prefixlen));
    }
    return nlh;
}

struct RuleDump {
    uint32_t priority;
    RawMessages raw;
};

int match_rule_priority(const nlmsghdr* nlh, void* data) {
    auto* dump = static_cast<RuleDump*>(data);
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(fib_rule_hdr)) return MNL_CB_ERROR;
    const auto* frh = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(nlh));
    if (frh->family != AF_INET) return MNL_CB_OK;
    Attrs attrs;
    if (mnl_attr_parse(nlh, sizeof *frh, collect_attr, &attrs) < 0) return MNL_CB_ERROR;
    uint32_t priority = 0;  // the kernel omits FRA_PRIORITY for priority 0
    get_u32(attrs[FRA_PRIORITY], priority);
    if (priority == dump->priority) keep_message(nlh, dump->raw);
    return MNL_CB_OK;
}

}  // namespace

// ---- public ----------------------------------------------------------------------

Status link_set_up(const std::string& ifname, unsigned mtu) {
    const std::string what = "set link " + ifname + " up" + (mtu ? " mtu " + std::to_string(mtu) : "");
    unsigned index = 0;
    if (Status s = index_of(ifname, index, what); !s.ok()) return s;
    Buffer buf;
    nlmsghdr* nlh = put_link(buf, RTM_NEWLINK, NLM_F_ACK, index);
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    if (mtu) mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    return request(nlh, what);
}

Status link_delete(const std::string& ifname) {
    const std::string what = "delete link " + ifname;
    unsigned index = 0;
    if (Status s = index_of(ifname, index, what); !s.ok()) return s;
    Buffer buf;
    return request(put_link(buf, RTM_DELLINK, NLM_F_ACK, index), what);
}

bool link_exists(const std::string& ifname) {
    return ifname.size() < IFNAMSIZ && if_nametoindex(ifname.c_str()) != 0;
}

Status link_get(const std::string& ifname, LinkInfo& out) {
    const std::string what = "get link " + ifname;
    unsigned index = 0;
    if (Status s = index_of(ifname, index, what); !s.ok()) return s;
    Buffer buf;
    LinkInfo info;
    if (Status s = transact(put_link(buf, RTM_GETLINK, NLM_F_ACK, index), parse_link, &info, what); !s.ok()) {
        return s;
    }
    out = std::move(info);
    return Status::success();
}

Status addr_add(const std::string& ifname, uint32_t ip, int prefix) {
    const std::string what = "add address " + proto::format_ipv4(ip) + "/" + std::to_string(prefix) + " to " + ifname;
    if (prefix < 0 || prefix > 32) return Status::fail(EINVAL, what);
    unsigned index = 0;
    if (Status s = index_of(ifname, index, what); !s.ok()) return s;
    Buffer buf;
    // REPLACE: re-adding the same address (a restart) is not an error.
    nlmsghdr* nlh = put_header(buf, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = static_cast<unsigned char>(prefix);
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    // Without a peer, IFA_ADDRESS equals IFA_LOCAL (as `ip addr add` sends it).
    mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(ip));
    mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(ip));
    return request(nlh, what);
}

Status route_add(const Route& r) {
    return route_change(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, r, "add route " + describe(r));
}

Status route_del(const Route& r) { return route_change(RTM_DELROUTE, NLM_F_ACK, r, "delete route " + describe(r)); }

Status route_list(uint32_t table, std::vector<Route>& out) {
    std::vector<Route> routes;
    RouteDump dump{table, &routes, nullptr};
    if (Status s = dump_routes(dump, "list routes in table " + std::to_string(table)); !s.ok()) return s;
    out = std::move(routes);
    return Status::success();
}

Status route_flush_table(uint32_t table) {
    const std::string what = "flush route table " + std::to_string(table);
    RawMessages raw;
    RouteDump dump{table, nullptr, &raw};
    if (Status s = dump_routes(dump, what); !s.ok()) return s;
    // ESRCH: gone already (e.g. removed with its link between dump and delete).
    return delete_each(raw, RTM_DELROUTE, ESRCH, what);
}

Status rule_add(const Rule& r) {
    Buffer buf;
    // EXCL: an identical rule that is not ours makes this fail rather than
    // silently doubling up; setup then knows the rule is not its to delete.
    return request(put_rule(buf, RTM_NEWRULE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, r), "add rule " + describe(r));
}

Status rule_del(const Rule& r) {
    Buffer buf;
    return request(put_rule(buf, RTM_DELRULE, NLM_F_ACK, r), "delete rule " + describe(r));
}

Status rule_del_priority(uint32_t priority) {
    const std::string what = "delete rules with priority " + std::to_string(priority);
    Buffer buf;
    nlmsghdr* nlh = put_header(buf, RTM_GETRULE, NLM_F_DUMP);
    auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
    frh->family = AF_INET;
    RuleDump dump{priority, {}};
    if (Status s = transact(nlh, match_rule_priority, &dump, what); !s.ok()) return s;
    return delete_each(dump.raw, RTM_DELRULE, ENOENT, what);
}

Status dump(uint16_t type, uint8_t family, const MessageFn& each, const std::string& what) {
    size_t header = 0;
    switch (type) {
        case RTM_GETLINK: header = sizeof(ifinfomsg); break;
        case RTM_GETADDR: header = sizeof(ifaddrmsg); break;
        case RTM_GETROUTE: header = sizeof(rtmsg); break;
        case RTM_GETRULE: header = sizeof(fib_rule_hdr); break;
        default: return Status::fail(EINVAL, what);
    }
    Buffer buf;
    nlmsghdr* nlh = put_header(buf, type, NLM_F_DUMP);
    // Every one of these headers starts with the family byte.
    auto* family_byte = static_cast<uint8_t*>(mnl_nlmsg_put_extra_header(nlh, header));
    *family_byte = family;
    auto cb = [](const nlmsghdr* m, void* data) -> int {
        (*static_cast<const MessageFn*>(data))(m);
        return MNL_CB_OK;
    };
    return transact(nlh, cb, const_cast<MessageFn*>(&each), what);
}

}  // namespace onebox::netlink
