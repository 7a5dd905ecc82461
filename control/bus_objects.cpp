#include "bus_objects.h"

#include <systemd/sd-bus.h>

#include <cstdio>
#include <cstdlib>

#include "client_handshake.h"
#include "client_links.h"
#include "daemon.h"
#include "proto/link_health.h"
#include "reload.h"
#include "server_sessions.h"

namespace onebox::bus {

void Rate::sample(uint64_t now_ns, uint64_t tx, uint64_t rx) {
    if (at_ns != 0 && now_ns > at_ns) {
        long double secs = (long double)(now_ns - at_ns) / 1e9L;
        tx_bps = tx >= tx_bytes ? uint64_t((long double)(tx - tx_bytes) * 8 / secs) : 0;
        rx_bps = rx >= rx_bytes ? uint64_t((long double)(rx - rx_bytes) * 8 / secs) : 0;
    }
    tx_bytes = tx;
    rx_bytes = rx;
    at_ns = now_ns;
}

std::string link_path(const std::string& ifname) {
    char* p = nullptr;
    if (sd_bus_path_encode(kLinkPrefix, ifname.c_str(), &p) < 0 || !p) return {};
    std::string out(p);
    std::free(p);
    return out;
}

std::string link_name_from_path(const std::string& path) {
    char* name = nullptr;
    if (sd_bus_path_decode(path.c_str(), kLinkPrefix, &name) <= 0 || !name) return {};
    std::string out(name);
    std::free(name);
    return out;
}

std::string peer_path(uint32_t session_id) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s/%08x", kPeerPrefix, session_id);
    return buf;
}

bool peer_id_from_path(const std::string& path, uint32_t* id) {
    std::string prefix = std::string(kPeerPrefix) + "/";
    if (path.size() != prefix.size() + 8 || path.compare(0, prefix.size(), prefix) != 0) return false;
    uint32_t v = 0;
    for (char c : path.substr(prefix.size())) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v << 4 | uint32_t(d);
    }
    *id = v;
    return true;
}

namespace {

using dataplane::Counter;

uint64_t counter(const Daemon& d, Counter c) { return counter_total(d, c); }

uint64_t reorder_depth(const Daemon& d) {
    uint64_t n = 0;
    for (const auto& w : d.workers) n += w->channel->counters.reorder_depth.load(std::memory_order_relaxed);
    return n;
}

// Every drop_* counter, and the other ways a packet is lost, by reason.
Counts drops(const Daemon& d) {
    Counts out;
    for (unsigned i = 0; i < unsigned(Counter::count); ++i) {
        std::string name = dataplane::kCounterNames[i];
        bool is_drop = name.rfind("drop_", 0) == 0 || name == "resend_dropped" || name == "repair_dropped" ||
                       name == "no_buffer" ||
                       name == "events_lost";
        if (!is_drop) continue;
        if (name.rfind("drop_", 0) == 0) name = name.substr(5);
        out.emplace_back(name, counter(d, Counter(i)));
    }
    return out;
}

Counts all_counters(const Daemon& d) {
    Counts out;
    for (unsigned i = 0; i < unsigned(Counter::count); ++i)
        out.emplace_back(dataplane::kCounterNames[i], counter(d, Counter(i)));
    const ControlCounters& c = d.stats;
    out.emplace_back("handshake_ok", c.handshake_ok);
    out.emplace_back("handshake_bad_mac", c.handshake_bad_mac);
    out.emplace_back("handshake_replayed", c.handshake_replayed);
    out.emplace_back("handshake_malformed", c.handshake_malformed);
    out.emplace_back("handshake_refused", c.handshake_refused);
    out.emplace_back("handshake_ratelimited", c.handshake_ratelimited);
    out.emplace_back("handshake_full", c.handshake_full);
    out.emplace_back("handshake_cookie", c.handshake_cookie);
    return out;
}

const char* sched_mode_name(uint8_t m) {
    switch (proto::SchedMode(m)) {
    case proto::SchedMode::Bond: return "bond";
    case proto::SchedMode::RoundRobin: return "round-robin";
    case proto::SchedMode::Redundant: return "redundant";
    case proto::SchedMode::Backup: return "backup";
    }
    return "bond";
}

const Rate& rate_of(const BusView& view, const std::string& path) {
    static const Rate kNone;
    auto it = view.rates.find(path);
    return it == view.rates.end() ? kNone : it->second;
}

// The daemon object's properties both roles share: identity, uptime, totals.
// What changes with every packet or probe (counters, rates, RTT) is not
// announced: it would put two signals a second per object on the system bus
// for as long as traffic flows (read it, as `status --watch` does); states,
// modes and settings are.
void common_props(const Daemon& d, const BusView& view, uint64_t now, const std::string& path, Props& p) {
    const Rate& r = rate_of(view, path);
    p.push_back({"Version", std::string(ONEBOX_VERSION)});
    p.push_back({"Uptime", uint64_t(now > view.started_ns ? (now - view.started_ns) / 1000 : 0), false});
    p.push_back({"StartedAt", view.started_wall_us});
    p.push_back({"TunnelInterface", d.cfg.tun.name});
    p.push_back({"TunnelAddress", proto::format_ipv4(d.cfg.tun.ip)});
    p.push_back({"TxBytes", counter(d, Counter::tx_bytes), false});
    p.push_back({"TxPackets", counter(d, Counter::tx_packets), false});
    p.push_back({"RxBytes", counter(d, Counter::rx_bytes), false});
    p.push_back({"RxPackets", counter(d, Counter::rx_packets), false});
    p.push_back({"TxRate", r.tx_bps, false});
    p.push_back({"RxRate", r.rx_bps, false});
    p.push_back({"Drops", drops(d), false});
    p.push_back({"ReorderDepth", uint32_t(reorder_depth(d)), false});
    p.push_back({"ReorderTimeouts", counter(d, Counter::reorder_timeouts), false});
    p.push_back({"Resent", counter(d, Counter::resent), false});
    p.push_back({"Counters", all_counters(d), false});
}

Props client_daemon_props(const Daemon& d, const BusView& view, uint64_t now) {
    Props p;
    bool up = d.client && client_connected(d, now);
    p.push_back({"State", std::string(d.stopping ? "stopping" : up ? "connected" : "connecting")});
    p.push_back({"Mode", std::string(mode_name(d.cfg.mode))});
    p.push_back({"Server", format_addr(d.server_addr)});
    p.push_back({"SessionId", uint32_t(d.client ? d.client->session_id : 0)});
    uint64_t since = 0;
    if (up && d.client->established_at && now >= d.client->established_at)
        since = view.started_wall_us + (d.client->established_at - view.started_ns) / 1000;
    p.push_back({"ConnectedSince", up ? since : uint64_t(0)});
    common_props(d, view, now, kClientPath, p);
    return p;
}

const char* link_state(const dataplane::LinkCounters& lc) {
    return proto::link_state_name(proto::LinkState(lc.state.load(std::memory_order_relaxed)));
}

// A client link's object: `slot` is its data-plane slot, or -1 when it is
// disabled (SetEnabled(false)) and so has none.
Props link_props(const Daemon& d, const BusView& view, int slot, const std::string& name,
                 const wan::WanLink* link) {
    Props p;
    const dataplane::LinkCounters* lc = slot >= 0 ? &d.channel->counters.links[slot] : nullptr;
    auto load = [&](const std::atomic<uint64_t> dataplane::LinkCounters::*m) -> uint64_t {
        return lc ? (lc->*m).load(std::memory_order_relaxed) : 0;
    };
    const proto::LinkSettings* ls = d.cfg.link_settings(name);
    const Rate& r = rate_of(view, link_path(name));
    p.push_back({"Name", name});
    p.push_back({"Interface", std::string(link ? link->ifname : name)});
    p.push_back({"Id", uint8_t(slot >= 0 ? slot : 255)});
    std::vector<std::string> addrs;
    if (link && link->address) addrs.push_back(proto::format_ipv4(link->address));
    p.push_back({"Addresses", addrs});
    p.push_back({"Gateway", std::string(link && link->gateway ? proto::format_ipv4(link->gateway) : "")});
    p.push_back({"Enabled", slot >= 0});
    p.push_back({"State", std::string(lc ? link_state(*lc) : "disabled")});
    p.push_back({"Used", load(&dataplane::LinkCounters::used) != 0});
    p.push_back({"RTT", load(&dataplane::LinkCounters::srtt_us), false});
    p.push_back({"Jitter", load(&dataplane::LinkCounters::jitter_us), false});
    p.push_back({"Loss", double(load(&dataplane::LinkCounters::loss_pm)) / 1000.0, false});
    p.push_back({"Capacity", load(&dataplane::LinkCounters::rate_bps), false});
    p.push_back({"PathMTU", uint32_t(load(&dataplane::LinkCounters::pmtu))});
    p.push_back({"RateUp", r.tx_bps, false});
    p.push_back({"RateDown", r.rx_bps, false});
    p.push_back({"TxBytes", load(&dataplane::LinkCounters::tx_bytes), false});
    p.push_back({"RxBytes", load(&dataplane::LinkCounters::rx_bytes), false});
    p.push_back({"TxPackets", load(&dataplane::LinkCounters::tx_packets), false});
    p.push_back({"RxPackets", load(&dataplane::LinkCounters::rx_packets), false});
    p.push_back({"Weight", ls ? ls->weight : 0.0});
    p.push_back({"Priority", uint8_t(ls ? ls->priority : 1)});
    p.push_back({"MaxRateUp", uint64_t(ls ? ls->max_rate_up_bps : 0)});
    p.push_back({"MaxRateDown", uint64_t(ls ? ls->max_rate_down_bps : 0)});
    p.push_back({"Downs", load(&dataplane::LinkCounters::downs)});
    p.push_back({"Stalls", load(&dataplane::LinkCounters::stalls)});
    p.push_back({"StallsUndone", load(&dataplane::LinkCounters::stalls_undone)});
    p.push_back({"LossyExclusions", load(&dataplane::LinkCounters::lossy)});
    return p;
}

// The client's links: one object per interface in a slot, and one per
// disabled interface (so it can be enabled again).
template <typename F>
void for_each_client_link(const Daemon& d, F f) {
    if (!d.links) return;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        const LinkSlot& s = d.links->slots[i];
        if (!s.used) continue;
        if (s.removing && !s.fallback && d.links->disabled.count(s.link.ifname)) continue;  // shown as disabled below
        f(int(i), s.fallback ? std::string(kFallbackLinkName) : s.link.ifname, s.fallback ? nullptr : &s.link);
    }
    for (const auto& [name, last] : d.links->disabled) f(-1, name, last.ifindex ? &last : nullptr);
}

Props server_daemon_props(const Daemon& d, const BusView& view, uint64_t now) {
    Props p;
    p.push_back({"State", std::string(d.stopping ? "stopping" : "running")});
    p.push_back({"ListenAddress", proto::format_ipv4(d.cfg.listen_address) + ":" + std::to_string(d.cfg.listen_port)});
    uint32_t n = 0;
    if (d.server)
        for (const auto& [id, e] : d.server->by_id) n += e.confirmed;
    p.push_back({"Clients", n});
    p.push_back({"MaxClients", uint32_t(d.cfg.max_clients)});
    common_props(d, view, now, kServerPath, p);
    return p;
}

Props peer_props(const BusView& view, uint32_t id, const ServerEntry& e) {
    const dataplane::Session& s = *e.session;
    const dataplane::SessionStats& st = s.stats;
    auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    const Rate& r = rate_of(view, peer_path(id));
    Props p;
    p.push_back({"Id", session_hex(id)});
    p.push_back({"TunnelAddress", proto::format_ipv4(e.tunnel_ip)});
    p.push_back({"Address", format_addr(e.addr)});
    p.push_back({"Since", view.started_wall_us + (e.created > view.started_ns ? (e.created - view.started_ns) / 1000 : 0)});
    p.push_back({"Mode", std::string(sched_mode_name(st.mode.load(std::memory_order_relaxed)))});
    p.push_back({"TxBytes", get(st.tx_bytes), false});
    p.push_back({"TxPackets", get(st.tx_packets), false});
    p.push_back({"RxBytes", get(st.rx_bytes), false});
    p.push_back({"RxPackets", get(st.rx_packets), false});
    p.push_back({"TxRate", r.tx_bps, false});
    p.push_back({"RxRate", r.rx_bps, false});
    std::vector<LinkRow> rows;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        const dataplane::PeerLink& pl = s.links[i];
        uint64_t key = pl.key.load(std::memory_order_relaxed);
        if (key == 0) continue;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = uint32_t(key >> 16);
        a.sin_port = uint16_t(key & 0xffff);
        const auto& l = st.links[i];
        rows.push_back(LinkRow{uint8_t(i), format_addr(a),
                               proto::link_state_name(proto::LinkState(get(l.state))), get(l.srtt_us),
                               double(get(l.loss_pm)) / 1000.0, get(l.tx_bytes), get(l.rx_bytes)});
    }
    p.push_back({"Links", rows, false});
    return p;
}

}  // namespace

std::vector<Object> build_objects(const Daemon& d, const BusView& view, uint64_t now) {
    std::vector<Object> out;
    if (d.role == proto::Role::Client) {
        out.push_back({kClientPath, kClientName, client_daemon_props(d, view, now)});
        for_each_client_link(d, [&](int slot, const std::string& name, const wan::WanLink* link) {
            out.push_back({link_path(name), kLinkInterface, link_props(d, view, slot, name, link)});
        });
        return out;
    }
    out.push_back({kServerPath, kServerName, server_daemon_props(d, view, now)});
    if (d.server)
        for (const auto& [id, e] : d.server->by_id)
            if (e.confirmed) out.push_back({peer_path(id), kPeerInterface, peer_props(view, id, e)});
    return out;
}

void sample_rates(const Daemon& d, BusView& view, uint64_t now) {
    std::map<std::string, Rate> next;
    auto keep = [&](const std::string& path, uint64_t tx, uint64_t rx) {
        auto it = view.rates.find(path);
        Rate r = it == view.rates.end() ? Rate{} : it->second;
        r.sample(now, tx, rx);
        next[path] = r;
    };
    keep(root_path(d.role), counter(d, Counter::tx_bytes), counter(d, Counter::rx_bytes));
    if (d.role == proto::Role::Client) {
        for_each_client_link(d, [&](int slot, const std::string& name, const wan::WanLink*) {
            if (slot < 0) return;
            const dataplane::LinkCounters& lc = d.channel->counters.links[slot];
            keep(link_path(name), lc.tx_bytes.load(std::memory_order_relaxed),
                 lc.rx_bytes.load(std::memory_order_relaxed));
        });
    } else if (d.server) {
        for (const auto& [id, e] : d.server->by_id)
            keep(peer_path(id), e.session->stats.tx_bytes.load(std::memory_order_relaxed),
                 e.session->stats.rx_bytes.load(std::memory_order_relaxed));
    }
    view.rates = std::move(next);
}

Props prototype(const std::string& interface) {
    // Built from the same functions as the live objects, on an empty daemon.
    static const Daemon* empty = [] {
        auto* d = new Daemon;
        d->workers.push_back(std::make_unique<WorkerSlot>());
        d->workers[0]->channel = std::make_unique<dataplane::Channel>();
        d->channel = d->workers[0]->channel.get();
        return d;
    }();
    BusView view;
    if (interface == kClientName) return client_daemon_props(*empty, view, 0);
    if (interface == kServerName) return server_daemon_props(*empty, view, 0);
    if (interface == kLinkInterface) return link_props(*empty, view, -1, "x", nullptr);
    if (interface == kPeerInterface) {
        static dataplane::Session session;
        ServerEntry e;
        e.session = &session;
        return peer_props(view, 0, e);
    }
    return {};
}

}  // namespace onebox::bus
