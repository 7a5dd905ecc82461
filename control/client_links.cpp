#include "client_links.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "daemon.h"
#include "dataplane/udp.h"
#include "log.h"
#include "netlink.h"
#include "proto/pmtu.h"
#include "setup.h"

namespace onebox {
namespace {

constexpr unsigned kNoSlot = proto::kMaxLinks;
constexpr unsigned kMinTunMtu = proto::kPmtuFloor - proto::kIpUdpHeaders - proto::kDataOverhead;  // 1220

unsigned slot_of(const ClientLinks& cl, const std::string& ifname) {
    for (unsigned i = 0; i < proto::kMaxLinks; ++i)
        if (cl.slots[i].used && !cl.slots[i].fallback && cl.slots[i].link.ifname == ifname) return i;
    return kNoSlot;
}

unsigned free_slot(const ClientLinks& cl) {
    for (unsigned i = 0; i < proto::kMaxLinks; ++i)
        if (!cl.slots[i].used) return i;
    return kNoSlot;
}

// An MTU change counts too: the link's path MTU search starts from it.
bool same_path(const wan::WanLink& a, const wan::WanLink& b) {
    return a.ifindex == b.ifindex && a.gateway == b.gateway && a.address == b.address && a.mtu == b.mtu;
}

// ", weight 2, max rate up 40 Mbit/s, priority 2" for the log line, or "".
std::string describe_overrides(const proto::LinkSettings& ls) {
    std::string out;
    char buf[64];
    if (ls.weight > 0) {
        std::snprintf(buf, sizeof buf, ", weight %g", ls.weight);
        out += buf;
    }
    if (ls.max_rate_up_bps) {
        std::snprintf(buf, sizeof buf, ", max rate up %g Mbit/s", double(ls.max_rate_up_bps) / 1e6);
        out += buf;
    }
    if (ls.max_rate_down_bps) {
        std::snprintf(buf, sizeof buf, ", max rate down %g Mbit/s", double(ls.max_rate_down_bps) / 1e6);
        out += buf;
    }
    if (ls.priority != 1) {
        std::snprintf(buf, sizeof buf, ", priority %u", ls.priority);
        out += buf;
    }
    return out;
}

// Opens link i's socket and route and hands it to the worker.
bool add_link(Daemon& d, unsigned i, const wan::WanLink& link) {
    Status st = setup::add_link_route(d.cfg, d.paths.state_file(), i, link);
    if (!st.ok()) {
        log::warn("link %s: %s", link.ifname.c_str(), st.message().c_str());
        return false;
    }
    int fd = dataplane::open_link_socket(d.server_addr, setup::link_fwmark(d.cfg, i), link.ifname.c_str());
    if (fd < 0) {
        log::warn("link %s: Failed to open its socket: %s", link.ifname.c_str(), std::strerror(-fd));
        setup::remove_link_route(d.cfg, d.paths.state_file(), i);
        return false;
    }
    LinkSlot& s = d.links->slots[i];
    s = LinkSlot{};
    s.used = true;
    s.link = link;
    s.fd = fd;
    dataplane::Command cmd{dataplane::Command::Kind::AddLink, nullptr, 0, uint8_t(i), fd};
    cmd.mtu = uint16_t(std::min<uint32_t>(link.mtu, 65535));
    std::string overrides;
    if (const proto::LinkSettings* ls = d.cfg.link_settings(link.ifname)) {
        cmd.weight = ls->weight;
        cmd.max_rate_up_bps = ls->max_rate_up_bps;
        cmd.max_rate_down_bps = ls->max_rate_down_bps;
        cmd.priority = uint8_t(ls->priority);
        overrides = describe_overrides(*ls);
    }
    send_command(d, cmd);
    log::event(proto::LogLevel::Info, log::Event::LinkAdded, {link.ifname.c_str()},
               "link %u added: %s via %s (address %s)%s", i, link.ifname.c_str(),
               proto::format_ipv4(link.gateway).c_str(), proto::format_ipv4(link.address).c_str(), overrides.c_str());
    return true;
}

void remove_link(Daemon& d, unsigned i, const char* why) {
    LinkSlot& s = d.links->slots[i];
    if (!s.used || s.removing) return;
    s.removing = true;
    send_command(d, {dataplane::Command::Kind::RemoveLink, nullptr, 0, uint8_t(i), -1});
    const char* name = s.fallback ? kFallbackLinkName : s.link.ifname.c_str();
    log::event(proto::LogLevel::Info, log::Event::LinkRemoved, {name}, "link %u removed: %s (%s)", i, name, why);
}

// Without any WAN found the client still works the way a single-homed host
// does: one socket, routed by the main table (the fwmark keeps it out of the
// tunnel).
bool add_fallback(Daemon& d) {
    int fd = dataplane::open_client_socket(d.server_addr, d.cfg.fwmark);
    if (fd < 0) {
        log::error("Failed to open a socket to %s: %s", format_addr(d.server_addr).c_str(),
                   std::strerror(-fd));
        return false;
    }
    LinkSlot& s = d.links->slots[0];
    s = LinkSlot{};
    s.used = true;
    s.fallback = true;
    s.fd = fd;
    send_command(d, {dataplane::Command::Kind::AddLink, nullptr, 0, 0, fd});
    log::warn("no WAN interface with a default route found: using the main routing table");
    return true;
}

// Brings the slots in line with what discover() sees now.
void reconcile(Daemon& d) {
    ClientLinks& cl = *d.links;
    std::vector<wan::WanLink> found;
    Status st = wan::discover(d.cfg.tun.name, d.cfg.wan_interfaces, found);
    if (!st.ok()) {
        log::warn("%s", st.message().c_str());
        return;
    }
    // Switched off: not a link, but remembered as it is now.
    std::erase_if(found, [&](const wan::WanLink& w) {
        auto off = cl.disabled.find(w.ifname);
        if (off == cl.disabled.end()) return false;
        off->second = w;
        return true;
    });
    // Gone or changed (a new address or gateway needs a new socket and route).
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        LinkSlot& s = cl.slots[i];
        if (!s.used || s.removing) continue;
        if (s.fallback) {
            if (!found.empty()) remove_link(d, i, "WAN interfaces found");
            continue;
        }
        bool still = false;
        for (const wan::WanLink& w : found) still |= same_path(w, s.link);
        if (cl.disabled.count(s.link.ifname)) remove_link(d, i, "switched off");
        else if (!still) remove_link(d, i, "interface, address or route changed");
    }
    // New.
    for (const wan::WanLink& w : found) {
        unsigned at = slot_of(cl, w.ifname);
        if (at != kNoSlot) continue;  // present (or still being removed: added once it is gone)
        unsigned i = free_slot(cl);
        if (i == kNoSlot) {
            log::warn("link %s ignored: already %u links", w.ifname.c_str(), proto::kMaxLinks);
            continue;
        }
        add_link(d, i, w);
    }
    bool any = false;
    for (const LinkSlot& s : cl.slots) any |= s.used && !s.removing;
    bool removing = false;
    for (const LinkSlot& s : cl.slots) removing |= s.removing;
    if (!any && !removing && found.empty()) add_fallback(d);
}

}  // namespace

Status links_start(Daemon& d) {
    d.links = std::make_unique<ClientLinks>();
    Status st = d.links->monitor.open();
    if (!st.ok()) return st;
    reconcile(d);
    if (links_handshake_fd(d) < 0) return Status::fail(ENETUNREACH, "open any WAN link to the server");
    return Status::success();
}

void links_on_netlink(Daemon& d) {
    if (d.links->monitor.drain()) d.links->rescan = true;
}

void links_follow_mtu(Daemon& d) {
    ClientLinks& cl = *d.links;
    unsigned configured = d.cfg.tun.mtu ? d.cfg.tun.mtu : proto::kDefaultTunMtu;
    unsigned want = configured, smallest = 0;
    std::string which;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        const LinkSlot& s = cl.slots[i];
        if (!s.used || s.removing) continue;
        uint64_t pmtu = d.channel->counters.links[i].pmtu.load(std::memory_order_relaxed);
        if (pmtu == 0) continue;  // no session yet: nothing measured
        unsigned inner = unsigned(pmtu) > proto::kIpUdpHeaders + proto::kDataOverhead
                             ? unsigned(pmtu) - proto::kIpUdpHeaders - proto::kDataOverhead
                             : 0;
        if (smallest == 0 || inner < smallest) {
            smallest = inner;
            which = s.fallback ? kFallbackLinkName : s.link.ifname;
        }
    }
    if (smallest) want = std::clamp(smallest, kMinTunMtu, configured);
    if (cl.tun_mtu == 0) cl.tun_mtu = configured;  // as setup made it
    if (want == cl.tun_mtu) return;
    Status st = netlink::link_set_up(d.cfg.tun.name, want);
    if (!st.ok()) {
        log::warn("%s", st.message().c_str());
        return;
    }
    log::info("tunnel MTU %u (was %u): %s", want, cl.tun_mtu,
              want < configured ? ("link " + which + " carries no more").c_str() : "every link carries the configured MTU");
    cl.tun_mtu = want;
}

void links_tick(Daemon& d) {
    if (!d.links->rescan) return;
    d.links->rescan = false;
    reconcile(d);
}

void links_on_removed(Daemon& d, unsigned i) {
    if (i >= proto::kMaxLinks) return;
    LinkSlot& s = d.links->slots[i];
    if (s.fd >= 0) ::close(s.fd);
    if (!s.fallback) setup::remove_link_route(d.cfg, d.paths.state_file(), i);
    s = LinkSlot{};
    d.links->rescan = true;  // a changed link is added back under its new address
}

Status links_set_enabled(Daemon& d, const std::string& ifname, bool enabled) {
    ClientLinks& cl = *d.links;
    if (enabled) {
        if (cl.disabled.erase(ifname) == 0)
            return slot_of(cl, ifname) != kNoSlot ? Status::success()
                                                  : Status::fail_because(ENODEV, "enable link " + ifname, "no such link");
        log::info("link %s switched on", ifname.c_str());
        cl.rescan = true;
        return Status::success();
    }
    if (cl.disabled.count(ifname)) return Status::success();
    unsigned i = slot_of(cl, ifname);
    if (i == kNoSlot) return Status::fail_because(ENODEV, "disable link " + ifname, "no such link");
    unsigned others = 0;
    for (unsigned j = 0; j < proto::kMaxLinks; ++j)
        others += j != i && cl.slots[j].used && !cl.slots[j].removing;
    if (others == 0)
        return Status::fail_because(EBUSY, "disable link " + ifname, "it is the only link in use");
    cl.disabled[ifname] = cl.slots[i].link;
    log::info("link %s switched off", ifname.c_str());
    remove_link(d, i, "switched off");
    return Status::success();
}

int links_handshake_slot(const Daemon& d, unsigned attempt) {
    int usable[proto::kMaxLinks];
    unsigned n = 0;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i)
        if (d.links->slots[i].used && !d.links->slots[i].removing) usable[n++] = int(i);
    return n ? usable[attempt % n] : -1;
}

int links_handshake_fd(const Daemon& d, unsigned attempt) {
    int slot = links_handshake_slot(d, attempt);
    return slot < 0 ? -1 : d.links->slots[slot].fd;
}

void links_close_all(Daemon& d) {
    if (!d.links) return;
    for (LinkSlot& s : d.links->slots) {
        if (s.fd >= 0) ::close(s.fd);
        s = LinkSlot{};
    }
    d.links->monitor.close();
}

}  // namespace onebox
