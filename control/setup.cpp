// setup.cpp — system set-up, undo and crash recovery (see setup.h).
#include "setup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "../proto/wire.h"
#include "firewall.h"
#include "log.h"
#include "sysctl.h"

namespace onebox::setup {
namespace {

constexpr uint32_t kMainTable = 254;

// ---- state file text -----------------------------------------------------------

std::vector<std::string_view> fields(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        const size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

template <typename T>
bool number(std::string_view s, T& out) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

// Five fields, or six with the fwmask (state files from before masks have five).
bool parse_rule(std::string_view v, netlink::Rule& r) {
    const auto f = fields(v);
    unsigned invert = 0;
    if ((f.size() != 5 && f.size() != 6) || !number(f[0], r.priority) || !number(f[1], r.table) ||
        !number(f[2], r.fwmark) || !number(f[3], invert) || !number(f[4], r.suppress_prefixlen)) {
        return false;
    }
    r.fwmask = 0xffffffffu;
    if (f.size() == 6 && !number(f[5], r.fwmask)) return false;
    r.invert = invert != 0;
    return true;
}

bool parse_route(std::string_view v, netlink::Route& r) {
    const auto f = fields(v);
    if (f.size() != 5) return false;
    const size_t slash = f[0].find('/');
    if (slash == std::string_view::npos || !proto::parse_ipv4(f[0].substr(0, slash), r.dst) ||
        !number(f[0].substr(slash + 1), r.prefix) || !number(f[1], r.table) ||
        !proto::parse_ipv4(f[3], r.gateway) || !number(f[4], r.metric)) {
        return false;
    }
    r.ifname = f[2] == "-" ? std::string() : std::string(f[2]);
    return true;
}

bool parse_line(std::string_view key, std::string_view value, Applied& out) {
    const auto f = fields(value);
    if (key == "version") return value == "1";
    if (key == "role") {
        if (value != "client" && value != "server") return false;
        out.role = value == "client" ? proto::Role::Client : proto::Role::Server;
        return true;
    }
    if (key == "pid") return number(value, out.pid);
    if (key == "link") {
        if (f.size() != 2 || !number(f[1], out.tun_ifindex)) return false;
        out.tun = std::string(f[0]);
        return true;
    }
    if (key == "sysctl") {
        if (f.size() != 3) return false;
        out.sysctls.push_back({std::string(f[0]), std::string(f[1]), std::string(f[2])});
        return true;
    }
    if (key == "rule") {
        netlink::Rule r;
        if (!parse_rule(value, r)) return false;
        out.rules.push_back(r);
        return true;
    }
    if (key == "route") {
        netlink::Route r;
        if (!parse_route(value, r)) return false;
        out.routes.push_back(std::move(r));
        return true;
    }
    if (key == "nft") {
        out.nft = true;
        return value == "client" || value == "server";
    }
    return false;
}

// ---- files ---------------------------------------------------------------------

std::string parent_dir(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

Status write_all(int fd, const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Status::fail(errno, "");
        done += static_cast<size_t>(n);
    }
    return Status::success();
}

// tmp + fsync + rename + fsync(dir): after a crash the file is either the old
// or the new version, never a torn one.
Status write_atomically(const std::string& path, const std::string& text) {
    const std::string what = "write state file " + path;
    const std::string dir = parent_dir(path);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::fail(errno, what);
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Status::fail(errno, what);
    Status s = write_all(fd, text);
    if (s.ok() && ::fsync(fd) != 0) s = Status::fail(errno, "");
    if (::close(fd) != 0 && s.ok()) s = Status::fail(errno, "");
    if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::fail(errno, "");
    if (!s.ok()) {
        ::unlink(tmp.c_str());
        return Status::fail(s.err, what);
    }
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return Status::success();
}

// ENOENT comes back as err == ENOENT so callers can tell "no file" apart.
Status read_file(const std::string& path, std::string& text) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::fail(errno, "read state file " + path);
    text.clear();
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : 0;
            ::close(fd);
            return err ? Status::fail(err, "read state file " + path) : Status::success();
        }
        text.append(buf, static_cast<size_t>(n));
    }
}

// ---- apply ---------------------------------------------------------------------

// The state file and what it currently says. Every change is recorded here and
// saved before it is made, and withdrawn again if the kernel refused it (then
// nothing changed, and an identical rule that made it fail is not ours).
struct Journal {
    std::string path;
    Applied state;
    Status save() const { return write_atomically(path, format_state(state)); }
};

template <typename T, typename Change>
Status record_then(Journal& j, std::vector<T>& list, T item, Change change) {
    list.push_back(std::move(item));
    if (Status s = j.save(); !s.ok()) {
        list.pop_back();
        return s;
    }
    Status s = change(list.back());
    if (!s.ok()) {
        list.pop_back();
        (void)j.save();  // best effort; undo tolerates entries that were never applied
    }
    return s;
}

bool has_space(const std::string& s) { return s.find_first_of(" \t\n") != std::string::npos; }

Status set_sysctl(Journal& j, const std::string& key, const std::string& wanted) {
    std::string current;
    if (Status s = sysctl::read(key, current); !s.ok()) return s;
    if (current == wanted) return Status::success();  // nothing to change, nothing to restore
    if (has_space(current)) return Status::fail(EINVAL, "record sysctl " + key + " (unexpected value)");
    return record_then(j, j.state.sysctls, SysctlChange{key, current, wanted},
                       [](const SysctlChange& c) { return sysctl::write(c.key, c.value); });
}

Status configure_tun(const proto::Config& cfg) {
    const int prefix = proto::netmask_prefix(cfg.tun.netmask);
    if (Status s = netlink::addr_add(cfg.tun.name, cfg.tun.ip, prefix); !s.ok()) return s;
    return netlink::link_set_up(cfg.tun.name, cfg.tun.mtu ? cfg.tun.mtu : proto::kDefaultTunMtu);
}

Status add_client_routing(Journal& j, const proto::Config& cfg) {
    const netlink::Rule suppress{kSuppressRulePriority, kMainTable, 0, false, 0};
    const netlink::Rule unmarked{kFwmarkRulePriority, cfg.route_table, cfg.fwmark, true, -1, kFwmarkRuleMask};
    for (const auto& rule : {suppress, unmarked}) {
        if (Status s = record_then(j, j.state.rules, rule, netlink::rule_add); !s.ok()) return s;
    }
    netlink::Route route;
    route.ifname = cfg.tun.name;
    route.table = cfg.route_table;
    return record_then(j, j.state.routes, route, netlink::route_add);
}

Status install_firewall(Journal& j, const proto::Config& cfg) {
    j.state.nft = true;
    if (Status s = j.save(); !s.ok()) return s;
    if (cfg.role == proto::Role::Client) return firewall::install_client(cfg.tun.name, cfg.masquerade_lan);
    return firewall::install_server(cfg.tun.name, cfg.tun.ip & cfg.tun.netmask, proto::netmask_prefix(cfg.tun.netmask),
                                    cfg.nat_interface, cfg.masquerade);
}

// ---- per-link routes ------------------------------------------------------------

bool same_route(const netlink::Route& a, const netlink::Route& b) {
    return a.dst == b.dst && a.prefix == b.prefix && a.gateway == b.gateway && a.ifname == b.ifname &&
           a.table == b.table && a.metric == b.metric;
}

bool same_rule(const netlink::Rule& a, const netlink::Rule& b) {
    return a.priority == b.priority && a.table == b.table && a.fwmark == b.fwmark && a.invert == b.invert &&
           a.suppress_prefixlen == b.suppress_prefixlen && a.fwmask == b.fwmask;
}

bool is_one_of(int err, std::initializer_list<int> errs) {
    for (int e : errs) {
        if (err == e) return true;
    }
    return false;
}

// Reads the journal at j.path. exists = false (and success) if there is none.
// A file with lines we do not understand is refused: saving would drop them.
Status load_journal(Journal& j, bool& exists, const std::string& what) {
    std::string text;
    exists = false;
    if (Status s = read_file(j.path, text); !s.ok()) return s.err == ENOENT ? Status::success() : s;
    exists = true;
    if (!parse_state(text, j.state)) {
        return Status::fail_because(EINVAL, what, "state file " + j.path + " has lines onebox does not understand");
    }
    return Status::success();
}

// Removes from the kernel and from `list` every entry `pick` selects; an entry
// whose removal fails (other than "already gone") stays listed. The first such
// failure is returned; `changed` says whether the list shrank.
template <typename T, typename Pick, typename Remove>
Status remove_entries(std::vector<T>& list, Pick pick, Remove remove, std::initializer_list<int> already_gone,
                      bool& changed) {
    Status first;
    for (size_t k = list.size(); k-- > 0;) {
        if (!pick(list[k])) continue;
        const Status s = remove(list[k]);
        if (s.ok() || is_one_of(s.err, already_gone)) {
            list.erase(list.begin() + static_cast<std::ptrdiff_t>(k));
            changed = true;
        } else if (first.ok()) {
            first = s;
        }
    }
    return first;
}

constexpr std::initializer_list<int> kRouteGone = {ESRCH, ENOENT, ENODEV};
constexpr std::initializer_list<int> kRuleGone = {ENOENT};

// ---- undo ----------------------------------------------------------------------

// Logs a failed undo step; errnos meaning "already gone" are expected after a
// crash (the TUN took its routes with it) and only logged at debug.
void report(const Status& s, std::initializer_list<int> already_gone) {
    if (s.ok()) return;
    for (int e : already_gone) {
        if (s.err == e) {
            log::debug("%s (already gone)", s.message().c_str());
            return;
        }
    }
    log::warn("%s", s.message().c_str());
}

void undo_routes(const Applied& a) {
    for (auto it = a.routes.rbegin(); it != a.routes.rend(); ++it) report(netlink::route_del(*it), {ESRCH, ENOENT, ENODEV});
}

void undo_rules(const Applied& a) {
    for (auto it = a.rules.rbegin(); it != a.rules.rend(); ++it) report(netlink::rule_del(*it), {ENOENT});
}

// Our own TUN (pid == us) goes when the data plane closes it; deleting it under
// the data plane would only turn its reads into errors. A dead instance's TUN is
// normally gone too, unless it was persistent: then delete it, but only if the
// name still means the same tun device (not a newer one that took the name).
void undo_link(const Applied& a) {
    if (a.tun.empty() || a.pid == static_cast<long>(::getpid())) return;
    netlink::LinkInfo info;
    if (!netlink::link_get(a.tun, info).ok()) return;
    if (info.kind != "tun" || info.index != a.tun_ifindex) {
        log::debug("leaving link %s alone: not the tun device we configured", a.tun.c_str());
        return;
    }
    report(netlink::link_delete(a.tun), {ENODEV});
}

void undo_sysctls(const Applied& a) {
    for (auto it = a.sysctls.rbegin(); it != a.sysctls.rend(); ++it) {
        std::string current;
        if (Status s = sysctl::read(it->key, current); !s.ok()) {
            report(s, {});
            continue;
        }
        if (current != it->value) {
            log::info("leaving sysctl %s=%s (changed since onebox set it to %s)", it->key.c_str(), current.c_str(),
                      it->value.c_str());
            continue;
        }
        report(sysctl::write(it->key, it->original), {});
    }
}

// ---- other instances -------------------------------------------------------------

std::string comm_of(const std::string& stat) {
    const size_t open = stat.find('('), close = stat.rfind(')');
    return open == std::string::npos || close == std::string::npos || close < open
               ? std::string()
               : stat.substr(open + 1, close - open - 1);
}

// True if `pid` is a live (not zombie) process running the same program as us:
// then the state file is that instance's, not a crashed one's.
bool same_program_running(long pid) {
    if (pid <= 0 || pid == static_cast<long>(::getpid())) return false;
    std::string theirs, ours;
    if (!read_file("/proc/" + std::to_string(pid) + "/stat", theirs).ok()) return false;
    if (!read_file("/proc/self/stat", ours).ok()) return false;
    const size_t close = theirs.rfind(')');
    const char state = close != std::string::npos && close + 2 < theirs.size() ? theirs[close + 2] : 'X';
    return state != 'Z' && state != 'X' && comm_of(theirs) == comm_of(ours);
}

}  // namespace

std::string format_state(const Applied& a) {
    const bool client = a.role == proto::Role::Client;
    std::string out = std::string("# onebox state: what onebox-") + (client ? "client" : "server") +
                      " changed; undone on exit or at the next start\n";
    out += "version=1\n";
    out += std::string("role=") + (client ? "client" : "server") + "\n";
    out += "pid=" + std::to_string(a.pid) + "\n";
    if (!a.tun.empty()) out += "link=" + a.tun + " " + std::to_string(a.tun_ifindex) + "\n";
    for (const auto& c : a.sysctls) out += "sysctl=" + c.key + " " + c.original + " " + c.value + "\n";
    for (const auto& r : a.rules) {
        out += "rule=" + std::to_string(r.priority) + " " + std::to_string(r.table) + " " + std::to_string(r.fwmark) +
               " " + (r.invert ? "1" : "0") + " " + std::to_string(r.suppress_prefixlen);
        // Only when needed, so that files without masked rules stay readable by older versions.
        if (r.fwmask != 0xffffffffu) out += " " + std::to_string(r.fwmask);
        out += "\n";
    }
    for (const auto& r : a.routes) {
        out += "route=" + proto::format_ipv4(r.dst) + "/" + std::to_string(r.prefix) + " " + std::to_string(r.table) +
               " " + (r.ifname.empty() ? "-" : r.ifname) + " " + proto::format_ipv4(r.gateway) + " " +
               std::to_string(r.metric) + "\n";
    }
    if (a.nft) out += std::string("nft=") + (client ? "client" : "server") + "\n";
    return out;
}

bool parse_state(std::string_view text, Applied& out) {
    bool all_understood = true;
    while (!text.empty()) {
        const size_t nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (line.empty() || line.front() == '#') continue;
        const size_t eq = line.find('=');
        if (eq == std::string_view::npos || !parse_line(line.substr(0, eq), line.substr(eq + 1), out)) {
            all_understood = false;
        }
    }
    return all_understood;
}

Status apply(const proto::Config& cfg, const std::string& state_path) {
    if (::access(state_path.c_str(), F_OK) == 0) {
        return Status::fail(EEXIST, "set up: state file " + state_path + " is left from an earlier run");
    }
    netlink::LinkInfo tun;
    if (Status s = netlink::link_get(cfg.tun.name, tun); !s.ok()) return s;

    Journal j{state_path, {}};
    j.state.role = cfg.role;
    j.state.pid = static_cast<long>(::getpid());
    j.state.tun = cfg.tun.name;
    j.state.tun_ifindex = tun.index;
    if (Status s = j.save(); !s.ok()) return s;

    const bool client = cfg.role == proto::Role::Client;
    if (client) {
        // Replies to our fwmarked UDP socket arrive on the WAN while the reverse
        // route (without the mark) points into the tunnel: rp_filter must use the mark.
        if (Status s = set_sysctl(j, "net/ipv4/conf/all/src_valid_mark", "1"); !s.ok()) return s;
    }
    // Server: forward tunnel traffic to the internet. Client: forward LAN hosts into the tunnel.
    if (Status s = set_sysctl(j, "net/ipv4/ip_forward", "1"); !s.ok()) return s;
    if (Status s = configure_tun(cfg); !s.ok()) return s;
    if (client) {
        if (Status s = add_client_routing(j, cfg); !s.ok()) return s;
    }
    return install_firewall(j, cfg);
}

uint32_t link_fwmark(const proto::Config& cfg, unsigned i) { return cfg.fwmark | ((i + 1) << 16); }

uint32_t link_table(const proto::Config& cfg, unsigned i) { return cfg.route_table + 1 + i; }

Status add_link_route(const proto::Config& cfg, const std::string& state_path, unsigned i, const wan::WanLink& link) {
    const std::string what = "add route for WAN link " + std::to_string(i) + " (" + link.ifname + ")";
    if (i >= wan::kMaxLinks || link.ifname.empty() || has_space(link.ifname)) return Status::fail(EINVAL, what);
    Journal j{state_path, {}};
    bool exists = false;
    if (Status s = load_journal(j, exists, what); !s.ok()) return s;
    if (!exists) {
        j.state.role = cfg.role;
        j.state.pid = static_cast<long>(::getpid());
    }

    netlink::Route route;
    route.ifname = link.ifname;
    route.gateway = link.gateway;
    route.table = link_table(cfg, i);
    const netlink::Rule rule{kLinkRulePriority + i, link_table(cfg, i), link_fwmark(cfg, i), false, -1};

    // The route first, so the rule never points at an empty table.
    auto& routes = j.state.routes;
    if (std::any_of(routes.begin(), routes.end(), [&](const netlink::Route& r) { return same_route(r, route); })) {
        // Known: add it again (REPLACE), in case the kernel dropped it with the link.
        if (Status s = netlink::route_add(route); !s.ok()) return s;
    } else {
        // NLM_F_REPLACE: the new route takes the old one's place in the kernel;
        // until the old one is struck from the journal, both are listed.
        if (Status s = record_then(j, routes, route, netlink::route_add); !s.ok()) return s;
        const netlink::Route added = routes.back();
        routes.pop_back();
        bool changed = false;
        // An old route with another key (metric) would not have been replaced: delete it.
        Status del = remove_entries(
            routes, [&](const netlink::Route& r) { return r.table == route.table; },
            [&](const netlink::Route& r) {
                return r.prefix == 0 && r.metric == 0 ? Status::success() : netlink::route_del(r);
            },
            kRouteGone, changed);
        routes.push_back(added);
        if (del.ok() || changed) {
            if (Status s = j.save(); !s.ok()) return s;
        }
        if (!del.ok()) return del;
    }

    auto& rules = j.state.rules;
    if (std::any_of(rules.begin(), rules.end(), [&](const netlink::Rule& r) { return same_rule(r, rule); })) {
        return Status::success();
    }
    bool changed = false;
    Status del = remove_entries(
        rules, [&](const netlink::Rule& r) { return r.priority == rule.priority; }, netlink::rule_del, kRuleGone,
        changed);
    if (changed) {
        if (Status s = j.save(); !s.ok()) return s;
    }
    if (!del.ok()) return del;
    return record_then(j, rules, rule, netlink::rule_add);
}

Status remove_link_route(const proto::Config& cfg, const std::string& state_path, unsigned i) {
    const std::string what = "remove route for WAN link " + std::to_string(i);
    if (i >= wan::kMaxLinks) return Status::fail(EINVAL, what);
    Journal j{state_path, {}};
    bool exists = false;
    if (Status s = load_journal(j, exists, what); !s.ok() || !exists) return s;

    bool changed = false;
    // The rule first: marked packets then fall back to the other rules, not into an empty table.
    Status first = remove_entries(
        j.state.rules, [&](const netlink::Rule& r) { return r.priority == kLinkRulePriority + i; }, netlink::rule_del,
        kRuleGone, changed);
    const uint32_t table = link_table(cfg, i);
    Status routes = remove_entries(
        j.state.routes, [&](const netlink::Route& r) { return r.table == table; }, netlink::route_del, kRouteGone,
        changed);
    if (first.ok()) first = routes;
    if (changed) {
        if (Status s = j.save(); !s.ok()) return s;
    }
    return first;
}

void undo(const std::string& state_path, bool keep_firewall) {
    std::string text;
    if (Status s = read_file(state_path, text); !s.ok()) {
        if (s.err != ENOENT) log::warn("%s", s.message().c_str());
        return;
    }
    Applied a;
    if (!parse_state(text, a)) log::warn("state file %s has lines we do not understand; undoing the rest", state_path.c_str());
    log::debug("undoing the system changes listed in %s", state_path.c_str());
    // Reverse order of apply().
    if (a.nft && keep_firewall)
        log::info("leaving the nftables table in place (keep_nat): TCP connections through the tunnel survive a restart");
    else if (a.nft)
        report(firewall::remove(a.role == proto::Role::Server), {});
    undo_routes(a);
    undo_rules(a);
    undo_link(a);
    undo_sysctls(a);
    if (::unlink(state_path.c_str()) != 0 && errno != ENOENT) {
        log::warn("Failed to delete state file %s: %s", state_path.c_str(), std::strerror(errno));
    }
}

void cleanup_stale(const std::string& state_path) {
    std::string text;
    if (Status s = read_file(state_path, text); !s.ok()) {
        if (s.err != ENOENT) log::warn("%s", s.message().c_str());
        return;
    }
    Applied a;
    parse_state(text, a);
    if (same_program_running(a.pid)) {
        log::error("state file %s belongs to a running instance (pid %ld); not touching it", state_path.c_str(), a.pid);
        return;
    }
    log::info("cleaning up after a previous instance (pid %ld) that did not exit cleanly", a.pid);
    undo(state_path);
}

}  // namespace onebox::setup
