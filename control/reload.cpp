// reload.cpp — see reload.h.
#include "reload.h"

#include <sodium.h>

#include <string>
#include <vector>

#include "client_keys.h"
#include "client_links.h"
#include "server_sessions.h"
#include "config.h"
#include "log.h"
#include "proto/handshake.h"

namespace onebox {

proto::SchedMode sched_mode(proto::Mode m) {
    switch (m) {
        case proto::Mode::Bond: return proto::SchedMode::Bond;
        case proto::Mode::RoundRobin: return proto::SchedMode::RoundRobin;
        case proto::Mode::Redundant: return proto::SchedMode::Redundant;
        case proto::Mode::Backup: return proto::SchedMode::Backup;
    }
    return proto::SchedMode::Bond;
}

const char* mode_name(proto::Mode m) {
    switch (m) {
        case proto::Mode::Bond: return "bond";
        case proto::Mode::RoundRobin: return "round-robin";
        case proto::Mode::Redundant: return "redundant";
        case proto::Mode::Backup: return "backup";
    }
    return "bond";
}

namespace {

bool same_tun(const proto::TunConfig& a, const proto::TunConfig& b) {
    return a.name == b.name && a.ip == b.ip && a.netmask == b.netmask && a.mtu == b.mtu;
}

// The settings a reload cannot apply, by name, that differ.
std::vector<std::string> needing_restart(const Daemon& d, const proto::Config& fresh) {
    const proto::Config& old = d.cfg;
    std::vector<std::string> out;
    auto check = [&](bool same, const char* name) {
        if (!same) out.emplace_back(name);
    };
    // The shared key: there or not (a server listing its clients may have
    // none), and the same.
    const bool had_shared = d.role == proto::Role::Client || (d.server && d.server->keys.shared);
    const bool has_shared = !fresh.preshared_key.empty();
    proto::PskKey key;
    check(had_shared == has_shared &&
              (!has_shared || !derive_psk_key(fresh.preshared_key, key) ||
               sodium_memcmp(key.bytes, d.psk.bytes, sizeof key.bytes) == 0),
          "preshared_key");
    check(same_tun(old.tun, fresh.tun), "tun");
    check(old.offloads == fresh.offloads, "offloads");
    if (d.role == proto::Role::Client) {
        check(old.server_address == fresh.server_address, "server_address");
        check(old.server_port == fresh.server_port, "server_port");
        check(old.fwmark == fresh.fwmark, "fwmark");
        check(old.route_table == fresh.route_table, "route_table");
        check(old.masquerade_lan == fresh.masquerade_lan, "masquerade_lan");
        check(old.wan_interfaces == fresh.wan_interfaces, "wan_interfaces");
    } else {
        check(old.listen_address == fresh.listen_address, "listen_address");
        check(old.listen_port == fresh.listen_port, "listen_port");
        check(old.max_clients == fresh.max_clients, "max_clients");
        check(old.workers == fresh.workers, "workers");
        check(old.masquerade == fresh.masquerade, "masquerade");
        check(old.nat_interface == fresh.nat_interface, "nat_interface");
    }
    return out;
}

// Client: every link in use gets its (possibly new) overrides.
void send_link_overrides(Daemon& d) {
    if (!d.links) return;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        const LinkSlot& slot = d.links->slots[i];
        if (!slot.used || slot.removing) continue;
        dataplane::Command cmd{dataplane::Command::Kind::SetLinkOverrides, nullptr, 0, uint8_t(i), -1};
        if (const proto::LinkSettings* ls = d.cfg.link_settings(slot.link.ifname)) {
            cmd.weight = ls->weight;
            cmd.max_rate_up_bps = ls->max_rate_up_bps;
            cmd.max_rate_down_bps = ls->max_rate_down_bps;
            cmd.priority = uint8_t(ls->priority);
        }
        send_command(d, cmd);
    }
}

}  // namespace

void send_policy(Daemon& d) {
    dataplane::Command policy{dataplane::Command::Kind::SetPolicy};
    policy.mode = sched_mode(d.cfg.mode);
    policy.probe_interval_ns = d.cfg.probe_interval_ns;
    policy.link_hold_ns = d.cfg.link_hold_ns;
    policy.loss_limit_pm = d.cfg.loss_limit_pm;
    policy.repair_window_ns = d.cfg.repair_window_ns;
    policy.light_copies = d.cfg.light_copies;
    policy.queue_budget_ns = d.cfg.queue_budget_ns;
    policy.queue_hold_ns = d.cfg.queue_hold_ns;
    send_command(d, policy);
}

Status reload_config(Daemon& d) {
    proto::Config fresh;
    proto::ConfigError err = load_config_file(d.paths.config, d.role, fresh);
    if (!err.ok) {
        sodium_memzero(fresh.preshared_key.data(), fresh.preshared_key.size());
        for (auto& c : fresh.clients) sodium_memzero(c.preshared_key.data(), c.preshared_key.size());
        std::string why = format_config_error(d.paths.config, err);
        log::event(proto::LogLevel::Error, log::Event::ConfigRefused, {}, "reload refused, the running config stays: %s",
                   why.c_str());
        return Status::fail_because(EINVAL, "reload the config", why);
    }
    std::vector<std::string> restart = needing_restart(d, fresh);
    sodium_memzero(fresh.preshared_key.data(), fresh.preshared_key.size());

    d.cfg.log_level = fresh.log_level;
    log::set_level(fresh.log_level);
    d.cfg.mode = fresh.mode;
    d.cfg.probe_interval_ns = fresh.probe_interval_ns;
    d.cfg.link_hold_ns = fresh.link_hold_ns;
    d.cfg.loss_limit_pm = fresh.loss_limit_pm;
    d.cfg.repair_window_ns = fresh.repair_window_ns;
    d.cfg.light_copies = fresh.light_copies;
    d.cfg.queue_budget_ns = fresh.queue_budget_ns;
    d.cfg.queue_hold_ns = fresh.queue_hold_ns;
    d.cfg.rekey_interval_ns = fresh.rekey_interval_ns;  // read by the next handshake tick
    d.cfg.rekey_packets = fresh.rekey_packets;
    d.cfg.keep_nat = fresh.keep_nat;  // read at stop
    d.cfg.links = fresh.links;

    send_policy(d);
    if (d.role == proto::Role::Client) send_link_overrides(d);
    if (d.role == proto::Role::Server) {
        // Argon2id per listed client (about 0.1 s each) on this thread; the
        // data plane carries on meanwhile, handshakes wait in their queue.
        ClientKeys keys;
        // Only new or changed clients cost a derivation; the watchdog hears
        // from us between them, as long as the workers run.
        Status st = derive_client_keys(fresh.clients, &d.server->keys, keys,
                                       [&d] { supervise_now(d); });
        if (!st.ok()) {
            log::error("%s; the client keys stay as they were", st.message().c_str());
        } else {
            server_apply_client_keys(d, std::move(keys));
        }
    }

    std::string later;
    for (const std::string& name : restart) later += (later.empty() ? "" : ", ") + name;
    log::event(proto::LogLevel::Info, log::Event::ConfigReloaded, {},
               "config reloaded from %s: mode %s, probe_interval %llu ms, link_hold %llu ms%s%s",
              d.paths.config.c_str(), mode_name(d.cfg.mode),
              (unsigned long long)(d.cfg.probe_interval_ns / 1'000'000),
              (unsigned long long)(d.cfg.link_hold_ns / 1'000'000),
              later.empty() ? "" : "; changed, takes effect after a restart: ", later.c_str());
    return Status::success();
}

}  // namespace onebox
