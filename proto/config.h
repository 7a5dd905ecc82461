// config.h — the configuration model and its parser (pure: text in, struct or
// one error out). control/config.cpp reads the file and calls parse_config.
//
// Format: INI as read by inih, compatible with the seed's config.toml examples:
//   [client] server_address, server_port, preshared_key, log_level, fwmark,
//            route_table, masquerade_lan, wan_interfaces, mode,
//            probe_interval, link_hold, loss_limit, repair_window,
//            queue_budget, queue_hold, offloads, rekey_interval, rekey_packets
//   [client.tun] name, ip, netmask, mtu
//   [client.link.NAME] weight, max_rate, max_rate_up, max_rate_down, priority
//            (overrides for WAN interface NAME; at most kMaxWanInterfaces)
//   [server] listen_address, listen_port, preshared_key, log_level,
//            probe_interval, link_hold, loss_limit, repair_window,
//            queue_budget, queue_hold, offloads
//   [server.tun] name, ip, netmask, mtu
//   [server.client.NAME] preshared_key, ip (a client with its own key)
// Values may be "double-quoted" (inside quotes, \" and \\ are escapes).
// Comments start with # or ; at the start of a line or after whitespace. Lines
// may be indented; there are no continuation lines. A key line may hold at most
// 199 characters without its indentation and line end, each ';', ':' or '%'
// counting as 3 (inih's line buffer); comment lines and section headers may be
// longer. Unknown sections and keys and repeated keys are errors.
// preshared_key/log_level may also appear at the top level (before any
// section), as in the seed's schema diagram.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace onebox::proto {

enum class Role : uint8_t { Client, Server };
enum class LogLevel : uint8_t { Error, Warn, Info, Debug };
// [client] mode: how packets are spread over the WAN links.
// "bond" (default), "round-robin", "redundant" (every packet on every used
// link, first copy wins), "backup" (only the links of the best `priority`
// that are usable; the others only while all of those are down).
enum class Mode : uint8_t { Bond, RoundRobin, Redundant, Backup };
// "bond", "round-robin", "redundant", "backup" (the config's and SetMode's words).
bool parse_mode(std::string_view v, Mode& out);
inline constexpr const char* kModeExpected = "mode must be bond, round-robin, redundant or backup";

inline constexpr unsigned kMaxWanInterfaces = 8;  // links the client can bond (= kMaxLinks)
inline constexpr uint32_t kMaxFwmark = 0xffff;    // the upper 16 bits of the mark name the WAN link

struct TunConfig {
    std::string name = "onebox0";
    uint32_t ip = 0;           // host byte order
    uint32_t netmask = 0;      // host byte order, contiguous
    unsigned mtu = 0;          // 0 = default (kDefaultTunMtu)
};

// [client.link.NAME]: what the user says about one WAN link instead of
// letting onebox learn it. Rates are bits per second; "up" is what the client
// sends on the link, "down" what the server sends to it.
struct LinkSettings {
    std::string ifname;
    double weight = 0;              // > 0: split by weight instead of learned rates
    uint64_t max_rate_up_bps = 0;   // 0 = no cap
    uint64_t max_rate_down_bps = 0;
    unsigned priority = 1;          // 1 (first) .. 255; mode = "backup" uses the lowest number up
};

inline constexpr uint64_t kDefaultRekeyInterval = 120'000'000'000;  // WireGuard's REKEY_AFTER_TIME
inline constexpr uint64_t kDefaultRekeyPackets = uint64_t(1) << 60;    // and REKEY_AFTER_MESSAGES
inline constexpr uint64_t kMinRekeyPackets = 1000;

// [server.client.NAME]: one client with a key of its own, bound to its
// tunnel address. An Init asking for `ip` must carry a MAC made with this
// key, and with no other; so a leaked key of one client cannot speak for
// another (PROTOCOL.md, "Per-client keys").
struct ClientKeyConfig {
    std::string name;            // NAME: 1-32 of A-Z a-z 0-9 _ - .
    std::string preshared_key;   // at least kMinPresharedKey characters, not the shared one
    uint32_t ip = 0;             // host byte order, in the server's tunnel subnet
};
inline constexpr size_t kMaxClientKeys = 1024;

struct Config {
    Role role = Role::Client;
    std::string preshared_key;  // required, at least 8 characters
    LogLevel log_level = LogLevel::Info;
    TunConfig tun;
    // client
    std::string server_address;  // IPv4 literal or host name (resolved by control/)
    uint16_t server_port = 0;
    uint32_t fwmark = 0x6f6e;    // [client] fwmark: marks our own UDP so it bypasses the tunnel; <= kMaxFwmark
    // [client] route_table: table holding the tunnel default route; the next
    // kMaxWanInterfaces tables hold the WAN links' default routes.
    uint32_t route_table = 0x6f6e;
    bool masquerade_lan = true;  // [client] masquerade_lan: NAT LAN hosts to the tunnel address
    bool offloads = true;        // [client]/[server] offloads: UDP GSO where the kernel and path allow
    // [client] wan_interfaces = ["wan0", "wlan0"] (or one name): the interfaces
    // onebox may bond; empty = every interface with a default route. At most
    // kMaxWanInterfaces valid interface names, no duplicates, not the TUN.
    std::vector<std::string> wan_interfaces;
    Mode mode = Mode::Bond;      // [client] mode
    // [client]/[server] probe_interval: RTT/health probes per link when idle
    // (every 100 ms while sending); link_hold: how long a link that failed
    // must answer every probe before it carries traffic again. "500ms", "2s".
    uint64_t probe_interval_ns = 500'000'000;
    uint64_t link_hold_ns = 2'000'000'000;
    // [client]/[server] loss_limit: a link that loses this share of its
    // packets (in thousandths; proto/bond.h "Lossy link") while another loses
    // less than half as much is taken out of use; 0 = never.
    uint32_t loss_limit_pm = 0;  // off by default (README "Link health": congestion read as loss)
    // [client]/[server] repair_window: a data datagram the peer reports lost
    // on its link is sent again on another if it went out less than this
    // long ago (proto/bond.h "Loss repair"); 0 = never.
    uint64_t repair_window_ns = 500'000'000;
    // [client]/[server] light_copies: a ping or a TCP acknowledgement without
    // data also goes on the other links in use, at most one a millisecond and
    // 1/16 of each link's rate (proto/bond.h "Light copies"); false = never.
    bool light_copies = true;
    // [client]/[server] queue_budget: how much queue this end's scheduler
    // lets its traffic build on the links before it drops a packet at the
    // tunnel entry (proto/scheduler.h "Admission"; never less than the
    // largest one-way delay). Smaller: a ping is faster under load, one bulk
    // flow a little slower.
    uint64_t queue_budget_ns = 10'000'000;
    // [client]/[server] queue_hold: how long a packet the admission refuses
    // may wait at the tunnel entry for room before it is dropped (0: dropped
    // at once). A saturating flow's surplus then waits in a short queue of
    // our own, where a ping goes ahead of it, instead of in the links'.
    uint64_t queue_hold_ns = 0;
    // [client] rekey_interval / rekey_packets: a live session gets new keys
    // (a handshake that keeps it going) this often, or after this many
    // packets sealed and opened under one key, whichever comes first.
    uint64_t rekey_interval_ns = kDefaultRekeyInterval;
    uint64_t rekey_packets = kDefaultRekeyPackets;
    std::vector<LinkSettings> links;  // [client.link.NAME] sections, in file order
    // The settings for WAN interface `ifname`, or nullptr.
    const LinkSettings* link_settings(std::string_view ifname) const {
        for (const auto& l : links)
            if (l.ifname == ifname) return &l;
        return nullptr;
    }
    // server
    uint32_t listen_address = 0; // host byte order; 0 = any
    uint16_t listen_port = 0;
    unsigned max_clients = 256;  // [server] max_clients
    // [server] workers: data-plane workers, each pinned to a core with its own
    // ring, TUN queue and socket; 0 = one per online core (kMaxWorkers at most).
    unsigned workers = 0;
    // [server.client.NAME] sections, in file order. With at least one, the
    // shared preshared_key is optional (without it only listed clients get in).
    std::vector<ClientKeyConfig> clients;
    bool masquerade = true;      // [server] masquerade: NAT the tunnel subnet to the internet
    // [server] keep_nat: leave the nftables table (the masquerade) in place
    // when the server stops, so a restart keeps the NAT mappings of TCP
    // connections through it; the next start takes the table over. Never
    // ("false"), when systemd is restarting the unit ("restart", the
    // default), or always ("true").
    enum class KeepNat : uint8_t { Never, OnRestart, Always };
    KeepNat keep_nat = KeepNat::OnRestart;
    std::string nat_interface;   // [server] nat_interface: restrict masquerade to this interface
};

inline constexpr unsigned kMaxWorkers = 64;

struct ConfigError {
    bool ok = true;
    unsigned line = 0;     // 0 when not tied to a line (e.g. missing key)
    std::string key;       // "section.key", or empty
    std::string message;   // human-readable, no trailing period
};

// Parses text as a config for `role`. Defaults for the tunnel follow the seed:
// server onebox0 10.0.0.1/24, client onebox0 10.0.0.2/24. A section for the
// other role is an error ("this is a server config").
ConfigError parse_config(std::string_view text, Role role, Config& out);

// "40mbit", "2.5Mbit", "500kbit", "1gbit", "64000" (bit/s) -> bits per
// second. False on anything else, zero, or more than 100 Gbit/s.
bool parse_rate(std::string_view s, uint64_t& bps);

// "500ms", "2s", "1.5s", "250" (ms) -> nanoseconds. False on anything else or
// outside [min_ns, max_ns].
bool parse_duration(std::string_view s, uint64_t min_ns, uint64_t max_ns, uint64_t& ns);

// "10.0.0.2" -> host-order uint32. False on anything that is not a dotted quad.
bool parse_ipv4(std::string_view s, uint32_t& out);
std::string format_ipv4(uint32_t host_order);
// Prefix length of a contiguous netmask, or -1.
int netmask_prefix(uint32_t netmask);

}  // namespace onebox::proto
