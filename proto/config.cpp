// config.cpp — the INI parser for onebox configs (see config.h).
//
// Parsed line by line here rather than through inih: inih 55 as packaged by
// Debian is built without INI_HANDLER_LINENO (so its handler never learns the
// line), truncates lines at 200 bytes, glues indented lines onto the previous
// value (multi-line mode) and strips inline comments only after ';'. Our format
// is small enough that a direct parser gives exact line numbers and none of
// those surprises.
#include "config.h"

#include <array>
#include <bit>
#include <charconv>
#include <map>

namespace onebox::proto {
namespace {

constexpr size_t kMinPresharedKey = 8;
constexpr unsigned kMinMtu = 576;     // smallest MTU every IPv4 host must accept
constexpr unsigned kMaxMtu = 1500;    // kMaxInnerPacket in wire.h
constexpr size_t kMaxIfname = 15;     // IFNAMSIZ - 1
constexpr size_t kMaxShownValue = 64; // keeps error messages on one short line

enum class Section : uint8_t { Top, Main, Tun };  // Main = [client] or [server]

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
std::string set_fwmark(std::string_view v, Config& c) { return set_u32_nonzero(v, c.fwmark); }
std::string set_masquerade_lan(std::string_view v, Config& c) { return set_bool(v, c.masquerade_lan); }
std::string set_masquerade(std::string_view v, Config& c) { return set_bool(v, c.masquerade); }

std::string set_route_table(std::string_view v, Config& c) {
    uint32_t t = 0;
    if (auto e = set_u32_nonzero(v, t); !e.empty()) return e;
    // Our default route goes into this table with NLM_F_REPLACE: main/local/default
    // would lose the system's own routes.
    if (t >= 253 && t <= 255) return "route_table " + std::to_string(t) + " is reserved (default/main/local)";
    c.route_table = t;
    return {};
}

std::string set_max_clients(std::string_view v, Config& c) {
    uint64_t n = 0;
    if (!parse_number(v, 65535, false, n) || n == 0) return "max_clients must be 1-65535, got " + shown(v);
    c.max_clients = static_cast<unsigned>(n);
    return {};
}

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
    {Section::Main, kServer, "listen_address", set_listen_address},
    {Section::Main, kServer, "listen_port", set_listen_port},
    {Section::Main, kServer, "max_clients", set_max_clients},
    {Section::Main, kServer, "masquerade", set_masquerade},
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

struct Parser {
    Role role;
    Config cfg;
    Section section = Section::Top;
    std::string section_name;                 // "", "client", "client.tun", ...
    std::map<std::string, unsigned> seen;     // setting -> line it was set on

    ConfigError section_line(unsigned line, std::string_view text);
    ConfigError key_line(unsigned line, std::string_view text);
    ConfigError finish() const;
};

ConfigError Parser::section_line(unsigned line, std::string_view text) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(line, "", "missing ']' in section header");
    if (!only_comment(text.substr(close + 1))) return fail(line, "", "unexpected text after section header");
    const std::string_view name = trim(text.substr(1, close - 1));
    const std::string own(role_name(role)), theirs(role_name(other(role)));
    if (name == own) {
        section = Section::Main;
    } else if (name == own + ".tun") {
        section = Section::Tun;
    } else if (name == theirs || name == theirs + ".tun") {
        return fail(line, "", "section [" + std::string(name) + "] belongs in a " + theirs +
                                  " config; this is a " + own + " config");
    } else {
        return fail(line, "", "unknown section [" + printable(name) + "]");
    }
    section_name = std::string(name);
    return {};
}

ConfigError Parser::key_line(unsigned line, std::string_view text) {
    const size_t eq = text.find('=');
    if (eq == std::string_view::npos) return fail(line, "", "expected key = value");
    const std::string_view key = trim(text.substr(0, eq));
    if (key.empty()) return fail(line, "", "missing key before '='");
    const std::string full = printable(section_name.empty() ? std::string(key) : section_name + "." + std::string(key));

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

    std::string value, error;
    if (!read_value(text.substr(eq + 1), value, error)) return fail(line, full, error);
    if (value.empty()) return fail(line, full, "empty value");
    if (error = spec->set(value, cfg); !error.empty()) return fail(line, full, error);
    return {};
}

unsigned line_of(const std::map<std::string, unsigned>& seen, const std::string& setting) {
    auto it = seen.find(setting);
    return it == seen.end() ? 0 : it->second;
}

// Checks that need the whole file: required keys and the tunnel subnet.
ConfigError Parser::finish() const {
    if (cfg.preshared_key.empty()) return fail(0, "", "missing preshared_key");
    if (role == Role::Client) {
        if (cfg.server_address.empty()) return fail(0, "", "missing server_address in [client]");
        if (cfg.server_port == 0) return fail(0, "", "missing server_port in [client]");
    } else if (cfg.listen_port == 0) {
        return fail(0, "", "missing listen_port in [server]");
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
    return {};
}

}  // namespace

ConfigError parse_config(std::string_view text, Role role, Config& out) {
    Parser p{role, Config{}, Section::Top, {}, {}};
    p.cfg.role = role;
    p.cfg.tun.name = "onebox0";
    p.cfg.tun.ip = role == Role::Client ? 0x0a000002u : 0x0a000001u;  // 10.0.0.2 / 10.0.0.1
    p.cfg.tun.netmask = 0xffffff00u;                                    // /24

    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
    unsigned line = 0;
    while (!text.empty()) {
        ++line;
        const size_t nl = text.find('\n');
        std::string_view raw = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);

        const std::string_view s = trim(raw);
        if (s.empty() || s.front() == '#' || s.front() == ';') continue;
        ConfigError e = s.front() == '[' ? p.section_line(line, s) : p.key_line(line, s);
        if (!e.ok) return e;
    }
    if (ConfigError e = p.finish(); !e.ok) return e;
    out = std::move(p.cfg);
    return {};
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
