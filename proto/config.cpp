// config.cpp — the onebox config parser (see config.h): inih (Debian's
// libinih 55, <ini.h>) tokenizes sections, keys and values; this file feeds it
// lines from memory (no I/O), reports errors by line and checks every value.
// How the two fit together is described above struct Parser.
#include "config.h"
#include "wire.h"

#include <ini.h>

#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <exception>
#include <map>
#include <vector>

namespace onebox::proto {

bool parse_mode(std::string_view v, Mode& out) {
    if (v == "bond") out = Mode::Bond;
    else if (v == "round-robin") out = Mode::RoundRobin;
    else if (v == "redundant") out = Mode::Redundant;
    else if (v == "backup") out = Mode::Backup;
    else return false;
    return true;
}


static_assert(kMaxWanInterfaces == kMaxLinks, "one limit on WAN links");
namespace {

constexpr size_t kMinPresharedKey = 8;
constexpr unsigned kMinMtu = 576;     // smallest MTU every IPv4 host must accept
constexpr unsigned kMaxMtu = 1500;    // kMaxInnerPacket in wire.h
constexpr size_t kMaxIfname = 15;     // IFNAMSIZ - 1
constexpr size_t kMaxShownValue = 64; // keeps error messages on one short line

enum class Section : uint8_t { Top, Main, Tun, Link };  // Main = [client] or [server]; Link = [client.link.NAME]
constexpr std::string_view kLinkSectionPrefix = "client.link.";
constexpr std::string_view kClientSectionPrefix = "server.client.";
constexpr size_t kMaxClientName = 32;

ConfigError fail(unsigned line, std::string key, std::string message) {
    return {false, line, std::move(key), std::move(message)};
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// User text inside an error message: shortened, and with control bytes
// replaced so the message stays one short printable line.
std::string printable(std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < kMaxShownValue; ++i) {
        const auto c = static_cast<unsigned char>(v[i]);
        out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
    }
    if (v.size() > kMaxShownValue) out += "...";
    return out;
}

std::string shown(std::string_view v) { return "\"" + printable(v) + "\""; }

// Position of an inline comment: '#' or ';' at the start or after whitespace
// (so "abc#1" keeps its '#', as in inih and TOML-ish files).
size_t inline_comment(std::string_view s) {
    for (size_t i = 0; i < s.size(); ++i) {
        if ((s[i] == '#' || s[i] == ';') && (i == 0 || is_space(s[i - 1]))) return i;
    }
    return std::string_view::npos;
}

bool only_comment(std::string_view rest) {
    rest = trim(rest);
    return rest.empty() || rest.front() == '#' || rest.front() == ';';
}

// Value text after '=': either "double-quoted" (\" and \\ escapes; anything
// after the closing quote must be a comment) or bare up to an inline comment.
bool read_value(std::string_view raw, std::string& value, std::string& error) {
    raw = trim(raw);
    value.clear();
    if (raw.empty() || raw.front() != '"') {
        value = std::string(trim(raw.substr(0, inline_comment(raw))));
        return true;
    }
    for (size_t i = 1; i < raw.size(); ++i) {
        const char c = raw[i];
        if (c == '\\' && i + 1 < raw.size() && (raw[i + 1] == '"' || raw[i + 1] == '\\')) {
            value += raw[++i];
        } else if (c == '"') {
            if (only_comment(raw.substr(i + 1))) return true;
            error = "unexpected text after closing quote";
            return false;
        } else {
            value += c;
        }
    }
    error = "missing closing quote";
    return false;
}

bool parse_number(std::string_view s, uint64_t max, bool allow_hex, uint64_t& out) {
    int base = 10;
    if (allow_hex && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s.remove_prefix(2);
        base = 16;
    }
    if (s.empty()) return false;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    return ec == std::errc() && end == s.data() + s.size() && out <= max;
}

bool all_digits(std::string_view s) {
    for (char c : s) if (!is_digit(c)) return false;
    return !s.empty();
}

// Interface names end up inside nftables rules and netlink requests, so we
// accept a conservative subset of what the kernel allows.
bool valid_ifname(std::string_view s) {
    if (s.empty() || s.size() > kMaxIfname || s == "." || s == "..") return false;
    for (char c : s) {
        if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-' && c != '.') return false;
    }
    return true;
}

bool valid_client_name(std::string_view s) {
    if (s.empty() || s.size() > kMaxClientName) return false;
    for (char c : s)
        if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-' && c != '.') return false;
    return true;
}

bool valid_hostname(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    size_t label = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
        if (c == '-' && label == 0) return false;
        if (++label > 63) return false;
    }
    return s.back() != '-';
}

// ---- setters: each returns an error message, empty on success ----------------

using Setter = std::string (*)(std::string_view, Config&);

std::string set_port(std::string_view v, uint16_t& out) {
    uint64_t n = 0;
    if (!all_digits(v)) return "port " + shown(v) + " is not a number";
    if (!parse_number(v, 65535, false, n) || n == 0) {
        return "port " + printable(v) + " out of range (1-65535)";
    }
    out = static_cast<uint16_t>(n);
    return {};
}

std::string set_bool(std::string_view v, bool& out) {
    if (v == "true") out = true;
    else if (v == "false") out = false;
    else return "expected true or false, got " + shown(v);
    return {};
}

std::string set_u32_nonzero(std::string_view v, uint32_t& out) {
    uint64_t n = 0;
    if (!parse_number(v, UINT32_MAX, true, n)) return shown(v) + " is not a 32-bit number (decimal or 0x hex)";
    if (n == 0) return "must not be 0";
    out = static_cast<uint32_t>(n);
    return {};
}

std::string set_ipv4(std::string_view v, uint32_t& out) {
    if (!parse_ipv4(v, out)) return "bad IPv4 address " + shown(v);
    return {};
}

std::string set_preshared_key(std::string_view v, Config& c) {
    // Never echo the key itself.
    if (v.size() < kMinPresharedKey) {
        return "preshared_key too short (" + std::to_string(v.size()) + " characters, need at least " +
               std::to_string(kMinPresharedKey) + ")";
    }
    c.preshared_key = std::string(v);
    return {};
}

std::string set_log_level(std::string_view v, Config& c) {
    static constexpr std::array<std::pair<std::string_view, LogLevel>, 4> kLevels{{
        {"error", LogLevel::Error}, {"warn", LogLevel::Warn},
        {"info", LogLevel::Info},   {"debug", LogLevel::Debug}}};
    for (const auto& [name, level] : kLevels) {
        if (v == name) {
            c.log_level = level;
            return {};
        }
    }
    return "log_level must be error, warn, info or debug, got " + shown(v);
}

std::string set_server_address(std::string_view v, Config& c) {
    // All digits and dots means the user meant an IPv4 literal; don't let a typo
    // like 10.0.0.256 through as a "host name".
    bool numeric = true;
    for (char ch : v) if (!is_digit(ch) && ch != '.') numeric = false;
    uint32_t ip = 0;
    if (numeric ? !parse_ipv4(v, ip) : !valid_hostname(v)) {
        return (numeric ? "bad IPv4 address " : "bad host name ") + shown(v);
    }
    c.server_address = std::string(v);
    return {};
}

std::string set_server_port(std::string_view v, Config& c) { return set_port(v, c.server_port); }
std::string set_listen_port(std::string_view v, Config& c) { return set_port(v, c.listen_port); }
std::string set_listen_address(std::string_view v, Config& c) { return set_ipv4(v, c.listen_address); }
std::string set_fwmark(std::string_view v, Config& c) {
    uint32_t mark = 0;
    if (auto e = set_u32_nonzero(v, mark); !e.empty()) return e;
    // Link i's packets carry fwmark | (i + 1) << 16, and the tunnel-bypass rule
    // matches fwmark/0xffff: the mark must fit in the low 16 bits.
    if (mark > kMaxFwmark) return "fwmark " + printable(v) + " too large (at most 0xffff: the upper 16 bits mark the WAN link)";
    c.fwmark = mark;
    return {};
}
std::string set_masquerade_lan(std::string_view v, Config& c) { return set_bool(v, c.masquerade_lan); }
std::string set_offloads(std::string_view v, Config& c) { return set_bool(v, c.offloads); }
std::string set_masquerade(std::string_view v, Config& c) { return set_bool(v, c.masquerade); }
std::string set_keep_nat(std::string_view v, Config& c) {
    using K = Config::KeepNat;
    if (v == "false") c.keep_nat = K::Never;
    else if (v == "restart") c.keep_nat = K::OnRestart;
    else if (v == "true") c.keep_nat = K::Always;
    else return "expected true, false or restart, got " + shown(v);
    return {};
}

std::string set_route_table(std::string_view v, Config& c) {
    uint32_t t = 0;
    if (auto e = set_u32_nonzero(v, t); !e.empty()) return e;
    // Our default route goes into this table with NLM_F_REPLACE: main/local/default
    // would lose the system's own routes.
    if (t >= 253 && t <= 255) return "route_table " + std::to_string(t) + " is reserved (default/main/local)";
    // Tables t+1 .. t+8 hold the WAN links' default routes (also with NLM_F_REPLACE).
    if (t > UINT32_MAX - kMaxWanInterfaces) {
        return "route_table " + std::to_string(t) + " too large (tables up to route_table + " +
               std::to_string(kMaxWanInterfaces) + " are used)";
    }
    if (t + kMaxWanInterfaces >= 253 && t < 253) {
        return "route_table " + std::to_string(t) + " too close to the reserved tables 253-255 (tables up to route_table + " +
               std::to_string(kMaxWanInterfaces) + " are used)";
    }
    c.route_table = t;
    return {};
}

std::string set_max_clients(std::string_view v, Config& c) {
    uint64_t n = 0;
    if (!parse_number(v, 65535, false, n) || n == 0) return "max_clients must be 1-65535, got " + shown(v);
    c.max_clients = static_cast<unsigned>(n);
    return {};
}

std::string set_workers(std::string_view v, Config& c) {
    uint64_t n = 0;
    if (!parse_number(v, kMaxWorkers, false, n))
        return "workers must be 0 (one per core) to " + std::to_string(kMaxWorkers) + ", got " + shown(v);
    c.workers = static_cast<unsigned>(n);
    return {};
}

// One name, bare or "quoted" (read_value() took the quotes off), or a list:
// ["wan0", "wlan0"] with bare or quoted names, comma separated (a trailing
// comma is fine, as in TOML); [] is the empty list.
std::string set_wan_interfaces(std::string_view v, Config& c) {
    std::vector<std::string> names;
    const auto add = [&](std::string_view item) -> std::string {
        if (item.size() >= 2 && item.front() == '"' && item.back() == '"') item = item.substr(1, item.size() - 2);
        if (!valid_ifname(item)) return "bad interface name " + shown(item) + " (1-15 of A-Z a-z 0-9 _ - .)";
        for (const auto& n : names) {
            if (n == item) return "interface " + shown(item) + " listed twice";
        }
        if (names.size() == kMaxWanInterfaces) {
            return "too many interfaces (at most " + std::to_string(kMaxWanInterfaces) + ")";
        }
        names.emplace_back(item);
        return {};
    };
    if (v.front() != '[') {
        if (auto e = add(v); !e.empty()) return e;
    } else {
        if (v.back() != ']') return "missing ']' at the end of the interface list";
        std::string_view rest = trim(v.substr(1, v.size() - 2));
        while (!rest.empty()) {
            const size_t comma = rest.find(',');
            const std::string_view item = trim(rest.substr(0, comma));
            if (item.empty()) return "empty entry in the interface list";
            if (auto e = add(item); !e.empty()) return e;
            rest = comma == std::string_view::npos ? std::string_view{} : trim(rest.substr(comma + 1));
        }
    }
    c.wan_interfaces = std::move(names);
    return {};
}

std::string set_mode(std::string_view v, Config& c) {
    if (!parse_mode(v, c.mode)) return std::string(kModeExpected) + ", got " + shown(v);
    return {};
}

std::string set_probe_interval(std::string_view v, Config& c) {
    if (!parse_duration(v, 50'000'000, 10'000'000'000, c.probe_interval_ns))
        return "probe_interval must be a duration from 50ms to 10s (e.g. 500ms, 1s), got " + shown(v);
    return {};
}

std::string set_link_hold(std::string_view v, Config& c) {
    if (!parse_duration(v, 0, 60'000'000'000, c.link_hold_ns))
        return "link_hold must be a duration from 0s to 60s (e.g. 2s, 500ms), got " + shown(v);
    return {};
}

// "5%", "2.5%" or "5": a share of a link's packets, 0-50 % with at most one
// decimal; 0 switches taking lossy links out of use off.
std::string set_loss_limit(std::string_view v, Config& c) {
    std::string_view n = v;
    if (!n.empty() && n.back() == '%') n.remove_suffix(1);
    double pct = 0;
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), pct, std::chars_format::fixed);
    const size_t dot = n.find('.');
    const bool places_ok = dot == std::string_view::npos || n.size() - dot - 1 == 1;
    if (n.empty() || ec != std::errc() || end != n.data() + n.size() || !places_ok || !is_digit(n.front()) ||
        pct < 0 || pct > 50)
        return "loss_limit must be a share from 0% to 50% (e.g. 5%, 2.5%; 0% = never take a link out for loss), got " +
               shown(v);
    c.loss_limit_pm = uint32_t(pct * 10 + 0.5);
    return {};
}

std::string set_queue_hold(std::string_view v, Config& c) {
    if (!parse_duration(v, 0, 100'000'000, c.queue_hold_ns))
        return "queue_hold must be a duration from 0ms to 100ms (e.g. 10ms; 0ms = drop at once), got " + shown(v);
    return {};
}

std::string set_queue_budget(std::string_view v, Config& c) {
    if (!parse_duration(v, 5'000'000, 500'000'000, c.queue_budget_ns))
        return "queue_budget must be a duration from 5ms to 500ms (e.g. 20ms), got " + shown(v);
    return {};
}

std::string set_repair_window(std::string_view v, Config& c) {
    if (!parse_duration(v, 0, 2'000'000'000, c.repair_window_ns))
        return "repair_window must be a duration from 0s to 2s (e.g. 500ms; 0 = never send a lost packet again), got " +
               shown(v);
    return {};
}

std::string set_light_copies(std::string_view v, Config& c) { return set_bool(v, c.light_copies); }

std::string set_rekey_interval(std::string_view v, Config& c) {
    if (!parse_duration(v, 1'000'000'000, 86'400'000'000'000, c.rekey_interval_ns))
        return "rekey_interval must be a duration from 1s to 86400s (e.g. 120s), got " + shown(v);
    return {};
}

std::string set_rekey_packets(std::string_view v, Config& c) {
    uint64_t n = 0;
    if (!parse_number(v, kDefaultRekeyPackets, false, n) || n < kMinRekeyPackets)
        return "rekey_packets must be a number from " + std::to_string(kMinRekeyPackets) + " to " +
               std::to_string(kDefaultRekeyPackets) + ", got " + shown(v);
    c.rekey_packets = n;
    return {};
}

std::string set_priority(std::string_view v, LinkSettings& l) {
    uint64_t n = 0;
    if (!parse_number(v, 255, false, n) || n == 0) return "priority must be 1-255 (1 first), got " + shown(v);
    l.priority = unsigned(n);
    return {};
}

std::string set_weight(std::string_view v, LinkSettings& l) {
    // A decimal with at most two places (the wire carries weight x 100).
    double w = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), w, std::chars_format::fixed);
    const size_t dot = v.find('.');
    const bool places_ok = dot == std::string_view::npos || v.size() - dot - 1 <= 2;
    if (ec != std::errc() || end != v.data() + v.size() || !places_ok || !is_digit(v.front()) || w < 0.01 || w > 655)
        return "weight must be a number from 0.01 to 655 (at most 2 decimals), got " + shown(v);
    l.weight = w;
    return {};
}

std::string rate_error(std::string_view v) {
    return "bad rate " + shown(v) + " (e.g. 40mbit, 2.5mbit, 500kbit, 1gbit; at most 100gbit)";
}

std::string set_max_rate(std::string_view v, LinkSettings& l) {
    if (!parse_rate(v, l.max_rate_up_bps)) return rate_error(v);
    l.max_rate_down_bps = l.max_rate_up_bps;
    return {};
}
std::string set_max_rate_up(std::string_view v, LinkSettings& l) {
    return parse_rate(v, l.max_rate_up_bps) ? std::string{} : rate_error(v);
}
std::string set_max_rate_down(std::string_view v, LinkSettings& l) {
    return parse_rate(v, l.max_rate_down_bps) ? std::string{} : rate_error(v);
}

struct LinkKeySpec {
    std::string_view key;
    std::string (*set)(std::string_view, LinkSettings&);
};
constexpr LinkKeySpec kLinkKeys[] = {
    {"weight", set_weight},
    {"max_rate", set_max_rate},
    {"max_rate_up", set_max_rate_up},
    {"max_rate_down", set_max_rate_down},
    {"priority", set_priority},
};

std::string set_nat_interface(std::string_view v, Config& c) {
    if (!valid_ifname(v)) return "bad interface name " + shown(v) + " (1-15 of A-Z a-z 0-9 _ - .)";
    c.nat_interface = std::string(v);
    return {};
}

std::string set_tun_name(std::string_view v, Config& c) {
    if (!valid_ifname(v)) return "bad interface name " + shown(v) + " (1-15 of A-Z a-z 0-9 _ - .)";
    c.tun.name = std::string(v);
    return {};
}

std::string set_tun_ip(std::string_view v, Config& c) { return set_ipv4(v, c.tun.ip); }

std::string set_tun_netmask(std::string_view v, Config& c) {
    uint32_t mask = 0;
    if (!parse_ipv4(v, mask)) return "bad netmask " + shown(v);
    if (netmask_prefix(mask) < 0) return "netmask " + printable(v) + " is not contiguous";
    c.tun.netmask = mask;
    return {};
}

std::string set_tun_mtu(std::string_view v, Config& c) {
    uint64_t n = 0;
    if (!all_digits(v)) return "mtu " + shown(v) + " is not a number";
    if (!parse_number(v, kMaxMtu, false, n) || n < kMinMtu) {
        return "mtu " + printable(v) + " out of range (" + std::to_string(kMinMtu) +
               "-" + std::to_string(kMaxMtu) + ")";
    }
    c.tun.mtu = static_cast<unsigned>(n);
    return {};
}

enum RoleMask : uint8_t { kClient = 1, kServer = 2, kBoth = 3 };

struct KeySpec {
    Section section;
    uint8_t roles;
    std::string_view key;
    Setter set;
};

constexpr KeySpec kKeys[] = {
    {Section::Top, kBoth, "preshared_key", set_preshared_key},
    {Section::Top, kBoth, "log_level", set_log_level},
    {Section::Main, kBoth, "preshared_key", set_preshared_key},
    {Section::Main, kBoth, "log_level", set_log_level},
    {Section::Main, kClient, "server_address", set_server_address},
    {Section::Main, kClient, "server_port", set_server_port},
    {Section::Main, kClient, "fwmark", set_fwmark},
    {Section::Main, kClient, "route_table", set_route_table},
    {Section::Main, kClient, "masquerade_lan", set_masquerade_lan},
    {Section::Main, kClient, "wan_interfaces", set_wan_interfaces},
    {Section::Main, kClient, "mode", set_mode},
    {Section::Main, kBoth, "probe_interval", set_probe_interval},
    {Section::Main, kBoth, "link_hold", set_link_hold},
    {Section::Main, kBoth, "loss_limit", set_loss_limit},
    {Section::Main, kBoth, "repair_window", set_repair_window},
    {Section::Main, kBoth, "light_copies", set_light_copies},
    {Section::Main, kBoth, "queue_budget", set_queue_budget},
    {Section::Main, kBoth, "queue_hold", set_queue_hold},
    {Section::Main, kClient, "rekey_interval", set_rekey_interval},
    {Section::Main, kClient, "rekey_packets", set_rekey_packets},
    {Section::Main, kBoth, "offloads", set_offloads},
    {Section::Main, kServer, "listen_address", set_listen_address},
    {Section::Main, kServer, "listen_port", set_listen_port},
    {Section::Main, kServer, "max_clients", set_max_clients},
    {Section::Main, kServer, "workers", set_workers},
    {Section::Main, kServer, "masquerade", set_masquerade},
    {Section::Main, kServer, "keep_nat", set_keep_nat},
    {Section::Main, kServer, "nat_interface", set_nat_interface},
    {Section::Tun, kBoth, "name", set_tun_name},
    {Section::Tun, kBoth, "ip", set_tun_ip},
    {Section::Tun, kBoth, "netmask", set_tun_netmask},
    {Section::Tun, kBoth, "mtu", set_tun_mtu},
};

const KeySpec* find_key(Section section, uint8_t role_bit, std::string_view key) {
    for (const auto& k : kKeys) {
        if (k.section == section && (k.roles & role_bit) && k.key == key) return &k;
    }
    return nullptr;
}

std::string_view role_name(Role r) { return r == Role::Client ? "client" : "server"; }
uint8_t role_bit(Role r) { return r == Role::Client ? kClient : kServer; }
Role other(Role r) { return r == Role::Client ? Role::Server : Role::Client; }

// ---- the INI layer: inih tokenizes, Parser checks -----------------------------
//
// inih reads lines through read_line() below and calls on_pair() for every
// "name = value" line with the current section, the name and the value, each
// trimmed. read_line() hands inih one physical line per call, rewritten so
// that inih's own extras never change what a line means:
//  - Blank and comment lines ('#' or ';' first) become empty lines.
//  - Leading whitespace is dropped, so an indented line is an ordinary line
//    and never a continuation of the previous value (INI_ALLOW_MULTILINE).
//  - Section headers are checked here, because Debian's inih does not tell the
//    handler about sections (no INI_CALL_HANDLER_ON_NEW_SECTION), so an unknown
//    section with no keys would go unreported. inih gets the trimmed "[name]".
//  - In key lines '%', ';', ':' and NUL are escaped as %XX: inih would
//    otherwise split "a:b = c" at ':' (name:value), cut quoted values at " ;"
//    (inline comments) and stop at NUL. on_pair() undoes the escapes; quoting
//    and '#'/';' comments after values stay with read_value() above.
//  - Line 1 loses its UTF-8 BOM here; a second BOM stays part of the key
//    (its first byte is escaped, so inih's INI_ALLOW_BOM cannot strip it).
//  - A key line longer than inih's buffer is an error ("line too long"), not
//    split by inih into two lines. That is also what keeps one read_line() call
//    per line, so the line numbers counted here are inih's: Debian builds inih
//    without INI_HANDLER_LINENO, and on_pair() reads the line from Parser.
// parse_config() checks that inih and read_line() stay in step: each key line
// yields exactly one on_pair() call, and inih's error line is ours.

constexpr std::string_view kBom = "\xEF\xBB\xBF";

struct Parser {
    Role role;
    Config cfg;
    std::map<std::string, unsigned> seen;  // setting -> line it was set on

    // read_line() state
    std::string_view rest;       // text not yet handed to inih
    unsigned line = 0;           // line most recently handed to inih (1-based)
    unsigned pending_key = 0;    // key line handed to inih, on_pair() not yet called for it
    std::string out;             // the line as handed to inih, escaped
    ConfigError error;           // first error; parsing stops there
    std::exception_ptr exception;  // thrown inside a callback, rethrown after inih returns

    char* next_line(char* buf, int size);
    bool pair(const char* section, const char* name, const char* value);
    void check_pending_key();
    ConfigError check_section(std::string_view text, std::string& name);
    ConfigError link_key_value(std::string_view section_name, std::string_view key, std::string_view raw_value);
    ConfigError client_key_value(std::string_view section_name, std::string_view key, std::string_view raw_value);
    ConfigError finish_clients() const;
    ConfigError key_value(std::string_view section_name, std::string_view key, std::string_view raw_value);
    ConfigError finish() const;
};

bool is_special_for_inih(unsigned char c) {
    // isspace() beyond is_space() only in exotic locales; escaping such bytes
    // keeps inih's trimming identical to trim().
    return c == '%' || c == ';' || c == ':' || c == '\0' || (std::isspace(c) && !is_space(static_cast<char>(c)));
}

void escape_for_inih(std::string_view s, bool first_line, std::string& out) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    out.clear();
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (is_special_for_inih(c) || (first_line && i == 0 && c == 0xEF)) {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
}

int hex_digit(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Reverses escape_for_inih(). False on anything escape_for_inih() cannot have made.
bool unescape_from_inih(std::string_view s, std::string& out) {
    out.clear();
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return false;
        const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

// A key line that inih took without calling on_pair() had no '=' in it.
void Parser::check_pending_key() {
    if (pending_key != 0 && error.ok) error = fail(pending_key, "", "expected key = value");
    pending_key = 0;
}

// The ini_reader body: the next line of `rest` into buf (size bytes), or
// nullptr at the end of the text or after the first error.
char* Parser::next_line(char* buf, int size) {
    check_pending_key();
    if (!error.ok || exception || rest.empty()) return nullptr;
    if (size < 1) {  // not even room for the NUL; inih passes its INI_MAX_LINE
        error = fail(line + 1, "", "internal error: no INI line buffer");
        return nullptr;
    }

    ++line;
    const size_t nl = rest.find('\n');
    std::string_view raw = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line == 1 && raw.substr(0, kBom.size()) == kBom) raw.remove_prefix(kBom.size());

    const std::string_view s = trim(raw);
    const size_t room = static_cast<size_t>(size) - 1;  // one byte for the NUL
    out.clear();
    if (s.empty() || s.front() == '#' || s.front() == ';') {
        // blank or comment: inih still gets (and counts) the line, empty
    } else if (s.front() == '[') {
        std::string name;
        if (error = check_section(s, name); !error.ok) return nullptr;
        out = "[" + name + "]";
    } else {
        if (s.size() > room) {
            error = fail(line, "", "line too long (" + std::to_string(s.size()) + " characters, limit " +
                                       std::to_string(room) + ")");
            return nullptr;
        }
        escape_for_inih(s, line == 1, out);
        pending_key = line;
    }
    if (out.size() > room) {
        error = fail(line, "", "line too long (limit " + std::to_string(room) +
                                   " characters, counting each ';', ':', '%' or NUL as 3)");
        return nullptr;
    }
    out.copy(buf, out.size());
    buf[out.size()] = '\0';
    return buf;
}

// The ini_handler body, for the line most recently read.
bool Parser::pair(const char* section, const char* name, const char* value) {
    if (!name) return true;  // start of a section, in inih builds that report it
    if (pending_key != line) {
        error = fail(line, "", "internal error: INI parser out of step with line " + std::to_string(line));
        return false;
    }
    pending_key = 0;
    if (!value) {  // inih built with INI_ALLOW_NO_VALUE
        error = fail(line, "", "expected key = value");
        return false;
    }
    std::string key, raw_value;
    if (!unescape_from_inih(name, key) || !unescape_from_inih(value, raw_value)) {
        error = fail(line, "", "internal error: bad escape from INI parser");
        return false;
    }
    error = key_value(section, key, raw_value);
    return error.ok;
}

// A "[name]" line (trimmed). On success `name` is the trimmed section name.
ConfigError Parser::check_section(std::string_view text, std::string& name) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(line, "", "missing ']' in section header");
    if (!only_comment(text.substr(close + 1))) return fail(line, "", "unexpected text after section header");
    const std::string_view n = trim(text.substr(1, close - 1));
    const std::string own(role_name(role)), theirs(role_name(other(role)));
    if (n == theirs || n == theirs + ".tun") {
        return fail(line, "", "section [" + std::string(n) + "] belongs in a " + theirs +
                                  " config; this is a " + own + " config");
    }
    if (role == Role::Client && n.substr(0, kLinkSectionPrefix.size()) == kLinkSectionPrefix) {
        const std::string_view ifname = n.substr(kLinkSectionPrefix.size());
        if (!valid_ifname(ifname))
            return fail(line, "", "bad interface name " + shown(ifname) + " in [" + printable(n) + "] (1-15 of A-Z a-z 0-9 _ - .)");
        if (cfg.link_settings(ifname))
            return fail(line, "", "section [" + std::string(n) + "] appears twice");
        if (cfg.links.size() == kMaxWanInterfaces)
            return fail(line, "", "too many [client.link.NAME] sections (at most " + std::to_string(kMaxWanInterfaces) + ")");
        cfg.links.push_back(LinkSettings{std::string(ifname)});
        name = std::string(n);
        return {};
    }
    if (role == Role::Server && n.substr(0, kClientSectionPrefix.size()) == kClientSectionPrefix) {
        const std::string_view client = n.substr(kClientSectionPrefix.size());
        if (!valid_client_name(client))
            return fail(line, "", "bad client name " + shown(client) + " in [" + printable(n) + "] (1-32 of A-Z a-z 0-9 _ - .)");
        for (const auto& c : cfg.clients)
            if (c.name == client) return fail(line, "", "section [" + std::string(n) + "] appears twice");
        if (cfg.clients.size() == kMaxClientKeys)
            return fail(line, "", "too many [server.client.NAME] sections (at most " + std::to_string(kMaxClientKeys) + ")");
        cfg.clients.push_back(ClientKeyConfig{std::string(client), {}, 0});
        seen.emplace(std::string(n), line);
        name = std::string(n);
        return {};
    }
    if (n != own && n != own + ".tun") return fail(line, "", "unknown section [" + printable(n) + "]");
    name = std::string(n);
    return {};
}

ConfigError Parser::key_value(std::string_view section_name, std::string_view key, std::string_view raw_value) {
    Section section = Section::Top;
    if (section_name == role_name(role)) {
        section = Section::Main;
    } else if (section_name == std::string(role_name(role)) + ".tun") {
        section = Section::Tun;
    } else if (section_name.substr(0, kLinkSectionPrefix.size()) == kLinkSectionPrefix) {
        return link_key_value(section_name, key, raw_value);
    } else if (section_name.substr(0, kClientSectionPrefix.size()) == kClientSectionPrefix) {
        return client_key_value(section_name, key, raw_value);
    } else if (!section_name.empty()) {  // check_section() let only those through
        return fail(line, "", "internal error: unexpected section from INI parser");
    }
    if (key.empty()) return fail(line, "", "missing key before '='");
    const std::string full =
        printable(section_name.empty() ? std::string(key) : std::string(section_name) + "." + std::string(key));

    const KeySpec* spec = find_key(section, role_bit(role), key);
    if (!spec) {
        if (find_key(section, role_bit(other(role)), key)) {
            return fail(line, full, "unknown key (" + std::string(key) + " is a " +
                                        std::string(role_name(other(role))) + " setting)");
        }
        return fail(line, full, "unknown key");
    }
    // preshared_key/log_level may sit at the top level or in the role section,
    // but only once between them.
    const std::string setting = (section == Section::Tun ? "tun." : "") + std::string(key);
    if (auto it = seen.find(setting); it != seen.end()) {
        return fail(line, full, "duplicate key (already set on line " + std::to_string(it->second) + ")");
    }
    seen.emplace(setting, line);

    std::string value, message;
    if (!read_value(raw_value, value, message)) return fail(line, full, message);
    if (value.empty()) return fail(line, full, "empty value");
    if (message = spec->set(value, cfg); !message.empty()) return fail(line, full, message);
    return {};
}

// A key in [client.link.NAME] (check_section() made its LinkSettings).
ConfigError Parser::link_key_value(std::string_view section_name, std::string_view key, std::string_view raw_value) {
    if (key.empty()) return fail(line, "", "missing key before '='");
    const std::string full = printable(std::string(section_name) + "." + std::string(key));
    const LinkKeySpec* spec = nullptr;
    for (const auto& k : kLinkKeys)
        if (k.key == key) spec = &k;
    if (!spec) return fail(line, full, "unknown key (a link section takes weight, max_rate, max_rate_up, max_rate_down)");
    const std::string setting = std::string(section_name) + "." + std::string(key);
    if (auto it = seen.find(setting); it != seen.end())
        return fail(line, full, "duplicate key (already set on line " + std::to_string(it->second) + ")");
    // max_rate sets both directions: either it or the per-direction keys.
    const std::string base = std::string(section_name) + ".";
    const bool both = key == "max_rate", one = key == "max_rate_up" || key == "max_rate_down";
    if ((both && (seen.count(base + "max_rate_up") || seen.count(base + "max_rate_down"))) ||
        (one && seen.count(base + "max_rate")))
        return fail(line, full, "use either max_rate or max_rate_up/max_rate_down, not both");
    seen.emplace(setting, line);

    std::string value, message;
    if (!read_value(raw_value, value, message)) return fail(line, full, message);
    if (value.empty()) return fail(line, full, "empty value");
    LinkSettings& l = cfg.links.back();  // sections are read in order; this key is in the last one
    if (message = spec->set(value, l); !message.empty()) return fail(line, full, message);
    return {};
}

// A key in [server.client.NAME] (check_section() made its entry).
ConfigError Parser::client_key_value(std::string_view section_name, std::string_view key, std::string_view raw_value) {
    if (key.empty()) return fail(line, "", "missing key before '='");
    const std::string full = printable(std::string(section_name) + "." + std::string(key));
    if (key != "preshared_key" && key != "ip")
        return fail(line, full, "unknown key (a client section takes preshared_key and ip)");
    const std::string setting = std::string(section_name) + "." + std::string(key);
    if (auto it = seen.find(setting); it != seen.end())
        return fail(line, full, "duplicate key (already set on line " + std::to_string(it->second) + ")");
    seen.emplace(setting, line);
    std::string value, message;
    if (!read_value(raw_value, value, message)) return fail(line, full, message);
    if (value.empty()) return fail(line, full, "empty value");
    ClientKeyConfig& c = cfg.clients.back();  // sections are read in order
    if (key == "ip") {
        message = set_ipv4(value, c.ip);
    } else {
        Config scratch;
        message = set_preshared_key(value, scratch);
        c.preshared_key = std::move(scratch.preshared_key);
    }
    if (!message.empty()) return fail(line, full, message);
    return {};
}

unsigned line_of(const std::map<std::string, unsigned>& seen, const std::string& setting) {
    auto it = seen.find(setting);
    return it == seen.end() ? 0 : it->second;
}

// Checks that need the whole file: required keys and the tunnel subnet.
ConfigError Parser::finish() const {
    if (cfg.preshared_key.empty() && cfg.clients.empty()) return fail(0, "", "missing preshared_key");
    if (role == Role::Client) {
        if (cfg.server_address.empty()) return fail(0, "", "missing server_address in [client]");
        if (cfg.server_port == 0) return fail(0, "", "missing server_port in [client]");
    } else if (cfg.listen_port == 0) {
        return fail(0, "", "missing listen_port in [server]");
    }
    for (const auto& name : cfg.wan_interfaces) {
        if (name == cfg.tun.name) {
            return fail(line_of(seen, "wan_interfaces"), "client.wan_interfaces",
                        "interface " + shown(name) + " is the TUN device, not a WAN link");
        }
    }
    const std::string tun = std::string(role_name(role)) + ".tun.";
    const int prefix = netmask_prefix(cfg.tun.netmask);
    if (prefix < 1 || prefix > 30) {
        return fail(line_of(seen, "tun.netmask"), tun + "netmask",
                    "netmask " + format_ipv4(cfg.tun.netmask) + " leaves no room for a tunnel subnet (prefix 1-30)");
    }
    const uint32_t host = cfg.tun.ip & ~cfg.tun.netmask;
    if (host == 0 || host == ~cfg.tun.netmask) {
        const unsigned l = line_of(seen, "tun.ip") ? line_of(seen, "tun.ip") : line_of(seen, "tun.netmask");
        return fail(l, tun + "ip",
                    format_ipv4(cfg.tun.ip) + " is the network or broadcast address of /" + std::to_string(prefix));
    }
    return finish_clients();
}

// Each listed client: both keys, an address of its own that the subnet can
// hold, and a key that is neither the shared one nor another client's.
ConfigError Parser::finish_clients() const {
    for (size_t i = 0; i < cfg.clients.size(); ++i) {
        const ClientKeyConfig& c = cfg.clients[i];
        const std::string section = std::string(kClientSectionPrefix) + c.name;
        const unsigned at = line_of(seen, section);
        if (c.preshared_key.empty()) return fail(at, section, "missing preshared_key in [" + section + "]");
        if (c.ip == 0) return fail(at, section, "missing ip in [" + section + "]");
        const unsigned ip_line = line_of(seen, section + ".ip");
        const uint32_t mask = cfg.tun.netmask, net = cfg.tun.ip & mask;
        if ((c.ip & mask) != net || c.ip == net || c.ip == (net | ~mask))
            return fail(ip_line, section + ".ip", format_ipv4(c.ip) + " is not a client address in the tunnel subnet " +
                                                      format_ipv4(net) + "/" + std::to_string(netmask_prefix(mask)));
        if (c.ip == cfg.tun.ip)
            return fail(ip_line, section + ".ip", format_ipv4(c.ip) + " is the server's own tunnel address");
        const unsigned key_line = line_of(seen, section + ".preshared_key");
        if (c.preshared_key == cfg.preshared_key)
            return fail(key_line, section + ".preshared_key",
                        "the same as the shared preshared_key: a client's own key must be its own");
        for (size_t j = 0; j < i; ++j) {
            const ClientKeyConfig& o = cfg.clients[j];
            if (o.ip == c.ip)
                return fail(ip_line, section + ".ip", format_ipv4(c.ip) + " is already client " + shown(o.name) + "'s address");
            if (o.preshared_key == c.preshared_key)
                return fail(key_line, section + ".preshared_key", "the same as client " + shown(o.name) + "'s key");
        }
    }
    return {};
}

// inih is C: nothing may unwind through it, so callbacks park exceptions.
char* read_line(char* buf, int size, void* stream) {
    auto& p = *static_cast<Parser*>(stream);
    try {
        return p.next_line(buf, size);
    } catch (...) {
        p.exception = std::current_exception();
        return nullptr;
    }
}

int on_pair(void* user, const char* section, const char* name, const char* value) {
    auto& p = *static_cast<Parser*>(user);
    try {
        return p.pair(section, name, value) ? 1 : 0;
    } catch (...) {
        p.exception = std::current_exception();
        return 0;
    }
}

}  // namespace

ConfigError parse_config(std::string_view text, Role role, Config& out) {
    Parser p{role, Config{}, {}, text, 0, 0, {}, {}, {}};
    p.cfg.role = role;
    p.cfg.tun.name = "onebox0";
    p.cfg.tun.ip = role == Role::Client ? 0x0a000002u : 0x0a000001u;  // 10.0.0.2 / 10.0.0.1
    p.cfg.tun.netmask = 0xffffff00u;                                    // /24

    const int rc = ini_parse_stream(read_line, &p, on_pair, &p);
    if (p.exception) std::rethrow_exception(p.exception);
    p.check_pending_key();  // the last line
    if (rc == -2) return fail(0, "", "out of memory for the INI line buffer");
    if (rc < 0) return fail(0, "", "INI parser failed (" + std::to_string(rc) + ")");
    if (rc > 0 && (p.error.ok || p.error.line != static_cast<unsigned>(rc))) {
        return fail(static_cast<unsigned>(rc), "", "internal error: INI parser out of step with line " +
                                                       std::to_string(p.line));
    }
    if (!p.error.ok) return p.error;
    if (ConfigError e = p.finish(); !e.ok) return e;
    out = std::move(p.cfg);
    return {};
}

bool parse_rate(std::string_view s, uint64_t& bps) {
    struct Unit { std::string_view suffix; double scale; };
    static constexpr Unit kUnits[] = {{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}};
    std::string lower;
    for (char c : s) lower += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    std::string_view v = lower;
    double scale = 1;
    for (const auto& u : kUnits) {
        if (v.size() > u.suffix.size() && v.substr(v.size() - u.suffix.size()) == u.suffix) {
            v.remove_suffix(u.suffix.size());
            scale = u.scale;
            break;
        }
    }
    if (v.empty() || !is_digit(v.front()) || !is_digit(v.back())) return false;
    double n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n, std::chars_format::fixed);
    if (ec != std::errc() || end != v.data() + v.size()) return false;
    const double r = n * scale;
    if (!(r >= 1) || r > 100e9) return false;
    bps = uint64_t(r + 0.5);
    return true;
}

bool parse_duration(std::string_view s, uint64_t min_ns, uint64_t max_ns, uint64_t& ns) {
    double scale = 1e6;  // a bare number is milliseconds
    std::string_view v = s;
    if (v.size() > 2 && v.substr(v.size() - 2) == "ms") {
        v.remove_suffix(2);
    } else if (v.size() > 1 && v.back() == 's') {
        v.remove_suffix(1);
        scale = 1e9;
    }
    if (v.empty() || !is_digit(v.front()) || !is_digit(v.back())) return false;
    double n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n, std::chars_format::fixed);
    if (ec != std::errc() || end != v.data() + v.size()) return false;
    const double r = n * scale;
    if (!(r >= double(min_ns)) || r > double(max_ns)) return false;
    ns = uint64_t(r + 0.5);
    return true;
}

bool parse_ipv4(std::string_view s, uint32_t& out) {
    uint32_t result = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (s.empty() || s.front() != '.') return false;
            s.remove_prefix(1);
        }
        size_t n = 0;
        while (n < s.size() && is_digit(s[n])) ++n;
        // 1-3 digits; no leading zeros, which inet_aton would read as octal.
        if (n == 0 || n > 3 || (n > 1 && s[0] == '0')) return false;
        unsigned v = 0;
        for (size_t i = 0; i < n; ++i) v = v * 10 + static_cast<unsigned>(s[i] - '0');
        if (v > 255) return false;
        result = (result << 8) | v;
        s.remove_prefix(n);
    }
    if (!s.empty()) return false;
    out = result;
    return true;
}

std::string format_ipv4(uint32_t host_order) {
    return std::to_string(host_order >> 24) + "." + std::to_string((host_order >> 16) & 0xff) + "." +
           std::to_string((host_order >> 8) & 0xff) + "." + std::to_string(host_order & 0xff);
}

int netmask_prefix(uint32_t netmask) {
    const uint32_t host_bits = ~netmask;
    if (host_bits & (host_bits + 1)) return -1;  // host bits must be a run of low ones
    return std::popcount(netmask);
}

}  // namespace onebox::proto
