// fuzz_config.cpp — proto::parse_config on arbitrary text, for both roles.
// It must never crash, hang or read out of bounds; on success the result must
// satisfy the invariants the rest of onebox relies on.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/config.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void parse_as(std::string_view text, onebox::proto::Role role) {
    onebox::proto::Config cfg;
    const onebox::proto::ConfigError e = onebox::proto::parse_config(text, role, cfg);
    if (!e.ok) {
        check(!e.message.empty());
        check(e.message.find('\n') == std::string_view::npos);  // errors are one line
        check(e.key.find('\n') == std::string_view::npos);
        return;
    }
    check(cfg.role == role);
    // A shared key, or (a server) clients with keys of their own.
    check(cfg.preshared_key.size() >= 8 || (cfg.preshared_key.empty() && !cfg.clients.empty()));
    check(role == onebox::proto::Role::Server || cfg.clients.empty());
    check(cfg.clients.size() <= onebox::proto::kMaxClientKeys);
    for (size_t i = 0; i < cfg.clients.size(); ++i) {
        const auto& c = cfg.clients[i];
        check(c.preshared_key.size() >= 8 && c.preshared_key != cfg.preshared_key);
        check((c.ip & cfg.tun.netmask) == (cfg.tun.ip & cfg.tun.netmask) && c.ip != cfg.tun.ip);
        check(!c.name.empty() && c.name.size() <= 32);
        for (size_t j = 0; j < i; ++j)
            check(cfg.clients[j].ip != c.ip && cfg.clients[j].name != c.name &&
                  cfg.clients[j].preshared_key != c.preshared_key);
    }
    const int prefix = onebox::proto::netmask_prefix(cfg.tun.netmask);
    check(prefix >= 1 && prefix <= 30);
    check(!cfg.tun.name.empty() && cfg.tun.name.size() <= 15);
    check(cfg.tun.mtu == 0 || (cfg.tun.mtu >= 576 && cfg.tun.mtu <= 1500));
    check(cfg.loss_limit_pm <= 500);
    if (role == onebox::proto::Role::Client) {
        check(!cfg.server_address.empty() && cfg.server_port != 0);
        check(cfg.fwmark != 0 && cfg.route_table != 0);
    } else {
        check(cfg.listen_port != 0 && cfg.max_clients != 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    parse_as(text, onebox::proto::Role::Client);
    parse_as(text, onebox::proto::Role::Server);
    // Round trip the address helpers on the same bytes.
    uint32_t ip = 0;
    if (onebox::proto::parse_ipv4(text, ip)) {
        uint32_t again = 0;
        check(onebox::proto::parse_ipv4(onebox::proto::format_ipv4(ip), again) && again == ip);
    }
    return 0;
}
