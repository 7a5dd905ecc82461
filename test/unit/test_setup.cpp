// test_setup.cpp — netlink, nftables, sysctl and setup (apply / undo / crash
// recovery) against a real kernel.
//
// Everything that changes network state runs in a forked child that first
// moves into a fresh network namespace (unshare(CLONE_NEWNET)), so the host's
// links, rules, routes, nftables and /proc/sys/net are never touched; the
// namespace disappears when the child exits. Needs root; skipped otherwise.
// The child reports failures through its exit code (doctest's counters live in
// the parent), printing each failed expectation to stderr.
#include <doctest.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "control/firewall.h"
#include "control/netlink.h"
#include "control/result.h"
#include "control/setup.h"
#include "control/sysctl.h"
#include "proto/config.h"
#include "netns_harness.h"

namespace nl = onebox::netlink;
namespace fw = onebox::firewall;
namespace setup = onebox::setup;
using onebox::Status;
using namespace onebox::test;

namespace {

constexpr const char* kTun = "obtest0";

// ---- expectations inside the forked child (EXPECT, EXPECT_OK: netns_harness.h) ---------

#define EXPECT_ERR(expr, errno_value)                                                                        \
    do {                                                                                                     \
        const Status expect_status_ = (expr);                                                                \
        expect(expect_status_.err == (errno_value),                                                          \
               std::string(#expr) + " gave \"" + (expect_status_.ok() ? "success" : expect_status_.message()) + \
                   "\", expected " + #errno_value,                                                           \
               __FILE__, __LINE__);                                                                          \
    } while (0)
#define EXPECT_CONTAINS(text, needle)                                                                  \
    expect(std::string(text).find(needle) != std::string::npos,                                        \
           std::string(#text) + " contains \"" + (needle) + "\"; it is:\n" + std::string(text), __FILE__, \
           __LINE__)
#define EXPECT_LACKS(text, needle)                                                                         \
    expect(std::string(text).find(needle) == std::string::npos,                                            \
           std::string(#text) + " lacks \"" + (needle) + "\"; it is:\n" + std::string(text), __FILE__, __LINE__)

// ---- helpers ------------------------------------------------------------------------

std::string sysctl_value(const std::string& key) {
    std::string v;
    return onebox::sysctl::read(key, v).ok() ? v : "<unreadable>";
}

struct Snapshot {
    std::string links, addrs, rules, routes, nft, ip_forward, src_valid_mark;
};

Snapshot snapshot() {
    return {sh("ip -o link show"),          sh("ip -o addr show"),
            sh("ip rule show"),             sh("ip route show table all"),
            sh("nft list ruleset"),         sysctl_value("net/ipv4/ip_forward"),
            sysctl_value("net/ipv4/conf/all/src_valid_mark")};
}

#define EXPECT_SAME(before, after) expect_same((before), (after), __FILE__, __LINE__)

void expect_same(const Snapshot& before, const Snapshot& after, const char* file, int line) {
    const std::pair<const char*, std::string Snapshot::*> parts[] = {
        {"links", &Snapshot::links},   {"addresses", &Snapshot::addrs},
        {"rules", &Snapshot::rules},   {"routes", &Snapshot::routes},
        {"nftables", &Snapshot::nft},  {"ip_forward", &Snapshot::ip_forward},
        {"src_valid_mark", &Snapshot::src_valid_mark}};
    for (const auto& [name, field] : parts) {
        expect(before.*field == after.*field,
               std::string(name) + " differ; before:\n" + before.*field + "\nafter:\n" + after.*field, file, line);
    }
}

// A TUN device as the data plane makes it; gone when fd closes unless persistent.
int open_tun(const char* name, bool persist) {
    const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (::ioctl(fd, TUNSETIFF, &ifr) != 0 || (persist && ::ioctl(fd, TUNSETPERSIST, 1) != 0)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

std::string temp_dir() {
    char tmpl[] = "/tmp/onebox-setup-test-XXXXXX";
    return ::mkdtemp(tmpl) ? std::string(tmpl) : std::string();
}

bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

uint32_t ip(const char* s) {
    uint32_t v = 0;
    onebox::proto::parse_ipv4(s, v);
    return v;
}

onebox::proto::Config config(onebox::proto::Role role, const std::string& extra = "") {
    const std::string text =
        role == onebox::proto::Role::Client
            ? "[client]\nserver_address = 192.0.2.1\nserver_port = 8080\npreshared_key = test-key-123\n" + extra +
                  "[client.tun]\nname = " + kTun + "\n"
            : "[server]\nlisten_port = 8080\npreshared_key = test-key-123\n" + extra + "[server.tun]\nname = " + kTun +
                  "\n";
    onebox::proto::Config cfg;
    const auto e = onebox::proto::parse_config(text, role, cfg);
    if (!e.ok) std::fprintf(stderr, "test config: %u: %s\n", e.line, e.message.c_str());
    return cfg;
}

// Runs body in a fresh network namespace (see netns_harness.h) that can make TUN
// devices, with a temporary directory (removed afterwards) for state files.
void run_isolated(const std::function<void(const std::string& dir)>& body) {
    check_in_fresh_netns("TUN device", [&] {
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) skip_child();
        const std::string dir = temp_dir();
        if (dir.empty()) skip_child();
        body(dir);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    });
}

// Kills itself with SIGKILL after apply(), like `kill -9` on the daemon.
void apply_then_die(const onebox::proto::Config& cfg, const std::string& state, bool persistent_tun) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (open_tun(kTun, persistent_tun) < 0) ::_exit(3);
        if (!setup::apply(cfg, state).ok()) ::_exit(4);
        ::raise(SIGKILL);
        ::_exit(5);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

}  // namespace

// ---- tests without root -----------------------------------------------------------------

TEST_CASE("Status::message") {
    CHECK(Status::fail(ENOENT, "read x").message() == "Failed to read x: No such file or directory");
    CHECK(Status::fail(-EPERM, "y").message() == "Failed to y: Operation not permitted");
    CHECK(Status::success().ok());
}

TEST_CASE("state file round trip") {
    setup::Applied a;
    a.role = onebox::proto::Role::Client;
    a.pid = 4242;
    a.tun = "onebox0";
    a.tun_ifindex = 17;
    a.sysctls = {{"net/ipv4/conf/all/src_valid_mark", "0", "1"}, {"net/ipv4/ip_forward", "0", "1"}};
    a.rules = {{28525, 254, 0, false, 0}, {28526, 28526, 0x6f6e, true, -1}};
    nl::Route r;
    r.ifname = "onebox0";
    r.table = 28526;
    nl::Route r2{ip("10.1.0.0"), 16, ip("10.0.0.9"), "", 300, 7};
    a.routes = {r, r2};
    a.nft = true;

    const std::string text = setup::format_state(a);
    CHECK(text.find("rule=28526 28526 28526 1 -1\n") != std::string::npos);
    setup::Applied b;
    REQUIRE(setup::parse_state(text, b));
    CHECK(b.role == a.role);
    CHECK(b.pid == 4242);
    CHECK(b.tun == "onebox0");
    CHECK(b.tun_ifindex == 17);
    REQUIRE(b.sysctls.size() == 2);
    CHECK(b.sysctls[1].key == "net/ipv4/ip_forward");
    CHECK(b.sysctls[1].original == "0");
    CHECK(b.sysctls[1].value == "1");
    REQUIRE(b.rules.size() == 2);
    CHECK(b.rules[0].suppress_prefixlen == 0);
    CHECK(b.rules[1].invert);
    CHECK(b.rules[1].fwmark == 0x6f6e);
    REQUIRE(b.routes.size() == 2);
    CHECK(b.routes[0].ifname == "onebox0");
    CHECK(b.routes[0].prefix == 0);
    CHECK(b.routes[1].dst == ip("10.1.0.0"));
    CHECK(b.routes[1].prefix == 16);
    CHECK(b.routes[1].gateway == ip("10.0.0.9"));
    CHECK(b.routes[1].ifname.empty());
    CHECK(b.routes[1].metric == 7);
    CHECK(b.nft);

    setup::Applied c;
    CHECK_FALSE(setup::parse_state("version=1\nrule=1 2\nbogus=3\nnft=client\n", c));
    CHECK(c.rules.empty());
    CHECK(c.nft);  // the understood lines still count
}

TEST_CASE("state file: rule masks, old files without them, link entries") {
    setup::Applied a;
    a.role = onebox::proto::Role::Client;
    a.pid = 7;
    a.rules = {{28526, 28526, 0x6f6e, true, -1, 0xffff}, {28500, 28527, 0x16f6e, false, -1}};
    nl::Route r{0, 0, ip("192.0.2.1"), "wan0", 28527, 0};
    a.routes = {r};
    const std::string text = setup::format_state(a);
    CHECK(text.find("rule=28526 28526 28526 1 -1 65535\n") != std::string::npos);
    CHECK(text.find("rule=28500 28527 94062 0 -1\n") != std::string::npos);  // full mask: not written
    CHECK(text.find("route=0.0.0.0/0 28527 wan0 192.0.2.1 0\n") != std::string::npos);
    setup::Applied b;
    REQUIRE(setup::parse_state(text, b));
    REQUIRE(b.rules.size() == 2);
    CHECK(b.rules[0].fwmask == 0xffff);
    CHECK(b.rules[0].invert);
    CHECK(b.rules[1].fwmask == 0xffffffffu);
    CHECK(b.rules[1].fwmark == 0x16f6e);
    REQUIRE(b.routes.size() == 1);
    CHECK(b.routes[0].gateway == ip("192.0.2.1"));
    CHECK(b.routes[0].ifname == "wan0");
    CHECK(setup::format_state(b) == text);

    // A state file written before masks existed.
    setup::Applied old;
    REQUIRE(setup::parse_state("version=1\nrole=client\npid=1\nrule=28526 28526 28526 1 -1\n", old));
    REQUIRE(old.rules.size() == 1);
    CHECK(old.rules[0].fwmask == 0xffffffffu);
    setup::Applied bad;
    CHECK_FALSE(setup::parse_state("rule=1 2 3 0 -1 x\nrule=1 2 3 0 -1 4 5\n", bad));
    CHECK(bad.rules.empty());
}

TEST_CASE("link_fwmark and link_table") {
    const auto cfg = config(onebox::proto::Role::Client, "fwmark = 0x1234\nroute_table = 4000\n");
    CHECK(setup::link_fwmark(cfg, 0) == 0x11234u);
    CHECK(setup::link_fwmark(cfg, 7) == 0x81234u);
    CHECK(setup::link_table(cfg, 0) == 4001);
    CHECK(setup::link_table(cfg, 7) == 4008);
    const auto def = config(onebox::proto::Role::Client);
    CHECK(setup::link_fwmark(def, 0) == 0x16f6eu);
    CHECK(setup::link_table(def, 0) == 28527);
}

TEST_CASE("undo and cleanup_stale without a state file do nothing") {
    setup::undo("/nonexistent-onebox-dir/state");
    setup::cleanup_stale("/nonexistent-onebox-dir/state");
}

// ---- tests in a network namespace --------------------------------------------------------

TEST_CASE("sysctl read/write in a namespace") {
    run_isolated([](const std::string&) {
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "0");
        EXPECT_OK(onebox::sysctl::write("net/ipv4/ip_forward", "1"));
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "1");
        std::string v;
        EXPECT_ERR(onebox::sysctl::read("net/ipv4/no_such_key", v), ENOENT);
        EXPECT_ERR(onebox::sysctl::read("../etc/passwd", v), EINVAL);
        EXPECT_ERR(onebox::sysctl::write("/proc/sys/net/ipv4/ip_forward", "1"), EINVAL);
    });
}

TEST_CASE("netlink: links, addresses, routes, rules") {
    run_isolated([](const std::string&) {
        EXPECT_ERR(nl::link_delete("nope0"), ENODEV);
        EXPECT(!nl::link_exists("nope0"));
        nl::LinkInfo info;
        EXPECT_ERR(nl::link_get("nope0", info), ENODEV);
        EXPECT_ERR(nl::link_set_up("nope0", 0), ENODEV);
        EXPECT_ERR(nl::link_get("name-that-is-far-too-long", info), EINVAL);

        const int fd = open_tun(kTun, false);
        EXPECT(fd >= 0);
        EXPECT(nl::link_exists(kTun));
        EXPECT_OK(nl::link_get(kTun, info));
        EXPECT(info.kind == "tun");
        EXPECT(!info.up);
        EXPECT(info.index == if_nametoindex(kTun));

        EXPECT_OK(nl::link_set_up(kTun, 1400));
        EXPECT_OK(nl::link_get(kTun, info));
        EXPECT(info.up);
        EXPECT(info.mtu == 1400);
        EXPECT_ERR(nl::link_set_up(kTun, 20), EINVAL);  // below the minimum MTU

        EXPECT_OK(nl::addr_add(kTun, ip("10.1.0.1"), 24));
        EXPECT_OK(nl::addr_add(kTun, ip("10.1.0.1"), 24));  // again: replaced, not an error
        EXPECT_CONTAINS(sh("ip -4 -o addr show dev obtest0"), "inet 10.1.0.1/24");

        const nl::Route direct{ip("192.168.77.0"), 24, 0, kTun, 300, 5};
        const nl::Route via{ip("192.168.78.0"), 24, ip("10.1.0.9"), "", 300, 0};
        EXPECT_OK(nl::route_add(direct));
        EXPECT_OK(nl::route_add(via));
        EXPECT_OK(nl::route_add(via));  // REPLACE
        const std::string shown = sh("ip route show table 300");
        EXPECT_CONTAINS(shown, "192.168.77.0/24 dev obtest0 scope link metric 5");
        EXPECT_CONTAINS(shown, "192.168.78.0/24 via 10.1.0.9 dev obtest0");

        std::vector<nl::Route> routes;
        EXPECT_OK(nl::route_list(300, routes));
        EXPECT(routes.size() == 2);
        for (const auto& r : routes) {
            EXPECT(r.table == 300);
            EXPECT(r.prefix == 24);
            EXPECT(r.ifname == kTun);
            if (r.dst == ip("192.168.77.0")) EXPECT(r.metric == 5 && r.gateway == 0);
            else EXPECT(r.dst == ip("192.168.78.0") && r.gateway == ip("10.1.0.9"));
        }
        EXPECT_OK(nl::route_list(254, routes));  // main: the tun subnet route
        EXPECT(routes.size() == 1 && routes[0].dst == ip("10.1.0.0") && routes[0].prefix == 24);

        EXPECT_OK(nl::route_del(direct));
        EXPECT_ERR(nl::route_del(direct), ESRCH);
        EXPECT_OK(nl::route_list(300, routes));
        EXPECT(routes.size() == 1);
        EXPECT_OK(nl::route_flush_table(300));
        EXPECT_OK(nl::route_list(300, routes));
        EXPECT(routes.empty());
        EXPECT_OK(nl::route_flush_table(300));  // empty table: fine

        const nl::Rule plain{1000, 300, 0, false, -1};
        const nl::Rule marked{1000, 301, 7, false, -1};
        const nl::Rule inverted{1001, 302, 0x6f6e, true, -1};
        const nl::Rule suppress{1002, 254, 0, false, 0};
        EXPECT_OK(nl::rule_add(plain));
        EXPECT_ERR(nl::rule_add(plain), EEXIST);
        EXPECT_OK(nl::rule_add(marked));
        EXPECT_OK(nl::rule_add(inverted));
        EXPECT_OK(nl::rule_add(suppress));
        std::string rules = sh("ip rule show");
        EXPECT_CONTAINS(rules, "1000:\tfrom all lookup 300");
        EXPECT_CONTAINS(rules, "1000:\tfrom all fwmark 0x7 lookup 301");
        EXPECT_CONTAINS(rules, "1001:\tnot from all fwmark 0x6f6e lookup 302");
        EXPECT_CONTAINS(rules, "1002:\tfrom all lookup main suppress_prefixlength 0");
        EXPECT_OK(nl::rule_del_priority(1000));
        EXPECT_OK(nl::rule_del_priority(1000));  // none left: fine
        rules = sh("ip rule show");
        EXPECT_LACKS(rules, "1000:");
        EXPECT_CONTAINS(rules, "1001:");
        EXPECT_OK(nl::rule_del(inverted));
        EXPECT_ERR(nl::rule_del(inverted), ENOENT);
        EXPECT_OK(nl::rule_del(suppress));
        EXPECT_LACKS(sh("ip rule show"), "100");

        nl::Rule masked{1003, 303, 0x6f6e, true, -1, 0xffff};
        EXPECT_OK(nl::rule_add(masked));
        EXPECT_CONTAINS(sh("ip rule show"), "1003:\tnot from all fwmark 0x6f6e/0xffff lookup 303");
        EXPECT_ERR(nl::rule_del(nl::Rule{1003, 303, 0x6f6e, true, -1}), ENOENT);  // the mask must match
        EXPECT_OK(nl::rule_del(masked));
        EXPECT_LACKS(sh("ip rule show"), "1003");

        EXPECT_OK(nl::link_delete(kTun));
        EXPECT(!nl::link_exists(kTun));
        ::close(fd);
    });
}

TEST_CASE("firewall tables") {
    run_isolated([](const std::string&) {
        EXPECT(!fw::table_exists(true));
        EXPECT_OK(fw::remove(true));  // absent: fine

        EXPECT_OK(fw::install_server(kTun, ip("10.0.0.1"), 24, ""));
        EXPECT(fw::table_exists(true));
        std::string t = sh("nft list table ip onebox-server");
        EXPECT_CONTAINS(t, "type nat hook postrouting priority srcnat; policy accept;");
        EXPECT_CONTAINS(t, "ip saddr 10.0.0.0/24 oifname != \"obtest0\" masquerade");
        EXPECT_CONTAINS(t, "type filter hook forward priority filter; policy accept;");
        EXPECT_CONTAINS(t, "iifname \"obtest0\" tcp flags syn tcp option maxseg size set rt mtu");
        EXPECT_CONTAINS(t, "oifname \"obtest0\" tcp flags syn tcp option maxseg size set rt mtu");

        // Installing again replaces the contents instead of adding to them.
        EXPECT_OK(fw::install_server(kTun, ip("10.0.0.0"), 24, "eth9"));
        t = sh("nft list ruleset");
        EXPECT_CONTAINS(t, "ip saddr 10.0.0.0/24 oifname \"eth9\" masquerade");
        EXPECT_LACKS(t, "!= \"obtest0\"");
        EXPECT(t.find("table ip onebox-server") == t.rfind("table ip onebox-server"));
        EXPECT(t.find("maxseg") != t.rfind("maxseg"));  // two clamp rules,
        EXPECT(t.find("iifname \"obtest0\" tcp") == t.rfind("iifname \"obtest0\" tcp"));  // not four

        EXPECT_OK(fw::install_server(kTun, ip("10.0.0.0"), 24, "", false));
        t = sh("nft list table ip onebox-server");
        EXPECT_LACKS(t, "masquerade");
        EXPECT_CONTAINS(t, "maxseg size set rt mtu");

        EXPECT_OK(fw::install_client(kTun, true));
        t = sh("nft list table ip onebox-client");
        EXPECT_CONTAINS(t, "oifname \"obtest0\" masquerade");
        EXPECT_CONTAINS(t, "maxseg size set rt mtu");
        EXPECT_OK(fw::install_client(kTun, false));
        EXPECT_LACKS(sh("nft list table ip onebox-client"), "masquerade");

        EXPECT_ERR(fw::install_client("bad\"name", true), EINVAL);
        EXPECT_ERR(fw::install_server(kTun, 0, 24, "x y"), EINVAL);

        EXPECT_OK(fw::remove(true));
        EXPECT_OK(fw::remove(true));
        EXPECT(!fw::table_exists(true));
        EXPECT(fw::table_exists(false));
        EXPECT_OK(fw::remove(false));
        EXPECT(sh("nft list ruleset").empty());
    });
}

TEST_CASE("setup: client apply and undo restore everything") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        const Snapshot before = snapshot();
        const int fd = open_tun(kTun, false);
        EXPECT(fd >= 0);
        const auto cfg = config(onebox::proto::Role::Client);

        EXPECT_OK(setup::apply(cfg, state));
        const std::string rules = sh("ip rule show");
        EXPECT_CONTAINS(rules, "28525:\tfrom all lookup main suppress_prefixlength 0");
        EXPECT_CONTAINS(rules, "28526:\tnot from all fwmark 0x6f6e/0xffff lookup 28526");
        EXPECT_CONTAINS(sh("ip route show table 28526"), "default dev obtest0");
        EXPECT_CONTAINS(sh("ip -4 -o addr show dev obtest0"), "inet 10.0.0.2/24");
        nl::LinkInfo info;
        EXPECT_OK(nl::link_get(kTun, info));
        EXPECT(info.up);
        EXPECT(info.mtu == 1440);
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "1");
        EXPECT(sysctl_value("net/ipv4/conf/all/src_valid_mark") == "1");
        EXPECT(fw::table_exists(false));
        EXPECT_CONTAINS(sh("nft list table ip onebox-client"), "oifname \"obtest0\" masquerade");

        std::ifstream in(state);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        setup::Applied applied;
        EXPECT(setup::parse_state(text, applied));
        EXPECT(applied.tun == kTun && applied.tun_ifindex == if_nametoindex(kTun));
        EXPECT(applied.sysctls.size() == 2 && applied.rules.size() == 2 && applied.routes.size() == 1);
        EXPECT(applied.nft);
        EXPECT(!file_exists(state + ".tmp"));

        EXPECT_ERR(setup::apply(cfg, state), EEXIST);  // the journal of the first run is kept

        setup::undo(state);
        EXPECT(!file_exists(state));
        EXPECT(nl::link_exists(kTun));  // our own TUN goes when we close it
        setup::undo(state);             // twice: nothing to do
        ::close(fd);
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: server apply and undo restore everything") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/sub/server.state";  // parent directory created on demand
        EXPECT_OK(onebox::sysctl::write("net/ipv4/conf/all/src_valid_mark", "1"));  // not ours: must stay
        const Snapshot before = snapshot();
        const int fd = open_tun(kTun, false);
        const auto cfg = config(onebox::proto::Role::Server, "nat_interface = eth0\n");

        EXPECT_OK(setup::apply(cfg, state));
        EXPECT_CONTAINS(sh("ip -4 -o addr show dev obtest0"), "inet 10.0.0.1/24");
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "1");
        EXPECT_CONTAINS(sh("nft list table ip onebox-server"), "ip saddr 10.0.0.0/24 oifname \"eth0\" masquerade");
        EXPECT_LACKS(sh("ip rule show"), "2852");

        setup::undo(state);
        EXPECT(!file_exists(state));
        ::close(fd);
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: an identical rule that is not ours makes apply fail and survives undo") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        sh("ip rule add priority 28526 not fwmark 0x6f6e/0xffff lookup 28526");
        const Snapshot before = snapshot();
        EXPECT_CONTAINS(before.rules, "28526:");
        const int fd = open_tun(kTun, false);

        EXPECT_ERR(setup::apply(config(onebox::proto::Role::Client), state), EEXIST);
        setup::undo(state);
        ::close(fd);
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: kill -9 after apply, then cleanup_stale restores everything") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        const Snapshot before = snapshot();

        // A persistent TUN outlives its process, as if the data plane had set
        // TUNSETPERSIST: cleanup must delete it too.
        apply_then_die(config(onebox::proto::Role::Client, "fwmark = 0x1234\nroute_table = 4000\n"), state, true);
        EXPECT(file_exists(state));
        EXPECT_CONTAINS(sh("ip rule show"), "28526:\tnot from all fwmark 0x1234/0xffff lookup 4000");
        EXPECT(fw::table_exists(false));
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "1");
        EXPECT(nl::link_exists(kTun));

        setup::cleanup_stale(state);
        EXPECT(!file_exists(state));
        EXPECT_SAME(before, snapshot());
        setup::cleanup_stale(state);  // nothing left to do
    });
}

TEST_CASE("setup: after kill -9, a newer TUN with the same name is left alone") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/server.state";
        const Snapshot before = snapshot();
        apply_then_die(config(onebox::proto::Role::Server), state, true);
        sh("ip link del obtest0");
        const int fd = open_tun(kTun, false);  // e.g. the next instance's TUN, made before cleanup
        EXPECT(fd >= 0);

        setup::cleanup_stale(state);
        EXPECT(!file_exists(state));
        EXPECT(nl::link_exists(kTun));
        EXPECT(!fw::table_exists(true));
        ::close(fd);
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: a non-persistent TUN vanishes with the killed process; cleanup still works") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        const Snapshot before = snapshot();
        apply_then_die(config(onebox::proto::Role::Client), state, false);
        EXPECT(!nl::link_exists(kTun));
        EXPECT_CONTAINS(sh("ip rule show"), "28525:");
        setup::cleanup_stale(state);
        EXPECT(!file_exists(state));
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: cleanup_stale leaves a running instance's state alone") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        // The parent (the test runner, same program, alive) "wrote" it.
        EXPECT_OK(onebox::sysctl::write("net/ipv4/ip_forward", "1"));
        std::ofstream(state) << "version=1\nrole=client\npid=" << ::getppid()
                             << "\nsysctl=net/ipv4/ip_forward 0 1\n";
        setup::cleanup_stale(state);
        EXPECT(file_exists(state));
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "1");
        setup::undo(state);  // an explicit undo still works
        EXPECT(!file_exists(state));
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "0");
    });
}

TEST_CASE("setup: undo restores a sysctl only if it still holds our value") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        EXPECT(sysctl_value("net/ipv4/ip_default_ttl") == "64");
        EXPECT_OK(onebox::sysctl::write("net/ipv4/ip_default_ttl", "77"));  // changed by someone after us
        EXPECT_OK(onebox::sysctl::write("net/ipv4/ip_forward", "1"));       // still our value
        std::ofstream(state) << "version=1\nrole=client\npid=0\n"
                                "sysctl=net/ipv4/ip_forward 0 1\nsysctl=net/ipv4/ip_default_ttl 64 100\n";
        setup::undo(state);
        EXPECT(!file_exists(state));
        EXPECT(sysctl_value("net/ipv4/ip_default_ttl") == "77");
        EXPECT(sysctl_value("net/ipv4/ip_forward") == "0");
    });
}

// ---- per-WAN-link routes -----------------------------------------------------------------

namespace {

// Two WAN-like interfaces: veth pairs wan0 (192.0.2.2/24) and wan1
// (198.51.100.2/24), up with carrier, and a main default route via wan0.
void make_wans() {
    // No IPv6: its link-local addresses change state (DAD) while the test runs.
    onebox::sysctl::write("net/ipv6/conf/all/disable_ipv6", "1");
    onebox::sysctl::write("net/ipv6/conf/default/disable_ipv6", "1");
    for (const char* n : {"wan0", "wan1"}) {
        sh(std::string("ip link add ") + n + " type veth peer name " + n + "p");
        sh(std::string("ip link set ") + n + " up");
        sh(std::string("ip link set ") + n + "p up");
    }
    sh("ip addr add 192.0.2.2/24 dev wan0");
    sh("ip addr add 198.51.100.2/24 dev wan1");
    sh("ip route add default via 192.0.2.1 dev wan0");
}

onebox::wan::WanLink wan_link(const char* name, const char* gateway) {
    onebox::wan::WanLink l;
    l.ifname = name;
    l.ifindex = if_nametoindex(name);
    l.gateway = gateway ? ip(gateway) : 0;
    return l;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

size_t lines(const std::string& text) {
    size_t n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

}  // namespace

TEST_CASE("setup: add_link_route and remove_link_route, without apply") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        make_wans();
        const Snapshot before = snapshot();
        const auto cfg = config(onebox::proto::Role::Client);

        EXPECT_OK(setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.1")));
        EXPECT(file_exists(state));  // started a state file of its own
        EXPECT_CONTAINS(sh("ip rule show"), "28500:\tfrom all fwmark 0x16f6e lookup 28527");
        std::string table = sh("ip route show table 28527");
        EXPECT_CONTAINS(table, "default via 192.0.2.1 dev wan0");
        EXPECT(lines(table) == 1);
        std::string text = read_text(state);
        EXPECT_CONTAINS(text, "rule=28500 28527 94062 0 -1\n");
        EXPECT_CONTAINS(text, "route=0.0.0.0/0 28527 wan0 192.0.2.1 0\n");
        EXPECT_CONTAINS(text, "pid=" + std::to_string(::getpid()) + "\n");

        // The same again: nothing changes.
        EXPECT_OK(setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.1")));
        EXPECT(read_text(state) == text);
        EXPECT(lines(sh("ip rule show | grep 28500")) == 1);

        // The kernel dropped the route (the link went down and up): it comes back.
        sh("ip link set wan0 down");
        sh("ip link set wan0 up");
        EXPECT(sh("ip route show table 28527").empty());
        EXPECT_OK(setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.1")));
        EXPECT_CONTAINS(sh("ip route show table 28527"), "default via 192.0.2.1 dev wan0");
        sh("ip route add default via 192.0.2.1 dev wan0");  // main's, gone with the link too

        // New gateway: replaced, in the kernel and in the state file.
        EXPECT_OK(setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.254")));
        table = sh("ip route show table 28527");
        EXPECT_CONTAINS(table, "default via 192.0.2.254 dev wan0");
        EXPECT(lines(table) == 1);
        text = read_text(state);
        EXPECT_LACKS(text, "192.0.2.1 ");
        EXPECT_CONTAINS(text, "route=0.0.0.0/0 28527 wan0 192.0.2.254 0\n");
        EXPECT(lines(sh("ip rule show | grep 28500")) == 1);

        // Link 1, point to point (no gateway).
        EXPECT_OK(setup::add_link_route(cfg, state, 1, wan_link("wan1", nullptr)));
        EXPECT_CONTAINS(sh("ip rule show"), "28501:\tfrom all fwmark 0x26f6e lookup 28528");
        EXPECT_CONTAINS(sh("ip route show table 28528"), "default dev wan1 scope link");

        // Marked packets leave by their own link, whatever main says.
        EXPECT_CONTAINS(sh("ip route get 9.9.9.9 mark 0x16f6e"), "via 192.0.2.254 dev wan0 table 28527");
        EXPECT_CONTAINS(sh("ip route get 9.9.9.9 mark 0x26f6e"), "dev wan1 table 28528");
        EXPECT_CONTAINS(sh("ip route get 9.9.9.9"), "via 192.0.2.1 dev wan0");

        // Link 0 moves to another interface.
        EXPECT_OK(setup::add_link_route(cfg, state, 0, wan_link("wan1", "198.51.100.1")));
        table = sh("ip route show table 28527");
        EXPECT_CONTAINS(table, "default via 198.51.100.1 dev wan1");
        EXPECT(lines(table) == 1);
        EXPECT_LACKS(read_text(state), "28527 wan0");

        EXPECT_ERR(setup::add_link_route(cfg, state, 8, wan_link("wan0", "192.0.2.1")), EINVAL);
        EXPECT_ERR(setup::add_link_route(cfg, state, 2, wan_link("", "192.0.2.1")), EINVAL);
        EXPECT_ERR(setup::add_link_route(cfg, state, 2, wan_link("nope0", "192.0.2.1")), ENODEV);
        EXPECT_LACKS(read_text(state), "28529");  // a refused change is not journaled
        EXPECT_ERR(setup::remove_link_route(cfg, state, 8), EINVAL);

        EXPECT_OK(setup::remove_link_route(cfg, state, 0));
        EXPECT_LACKS(sh("ip rule show"), "28500:");
        EXPECT(sh("ip route show table 28527").empty());
        text = read_text(state);
        EXPECT_LACKS(text, "28527");
        EXPECT_LACKS(text, "28500");
        EXPECT_CONTAINS(text, "rule=28501 28528 159598 0 -1\n");
        EXPECT_CONTAINS(text, "route=0.0.0.0/0 28528 wan1 0.0.0.0 0\n");
        EXPECT_OK(setup::remove_link_route(cfg, state, 0));  // nothing left: fine
        EXPECT(read_text(state) == text);

        // Already gone from the kernel (someone deleted it): still struck from the file.
        sh("ip rule del priority 28501");
        EXPECT_OK(setup::remove_link_route(cfg, state, 1));
        EXPECT_LACKS(read_text(state), "28528");
        EXPECT(sh("ip route show table 28528").empty());

        EXPECT_OK(setup::add_link_route(cfg, state, 3, wan_link("wan1", "198.51.100.1")));
        EXPECT_CONTAINS(sh("ip rule show"), "28503:\tfrom all fwmark 0x46f6e lookup 28530");
        setup::undo(state);  // link entries are undone like the rest
        EXPECT(!file_exists(state));
        EXPECT_SAME(before, snapshot());
        EXPECT_OK(setup::remove_link_route(cfg, state, 3));  // no state file: nothing to do
    });
}

TEST_CASE("setup: apply, then link routes; undo restores everything") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        make_wans();
        const Snapshot before = snapshot();
        const int fd = open_tun(kTun, false);
        EXPECT(fd >= 0);
        const auto cfg = config(onebox::proto::Role::Client);

        EXPECT_OK(setup::apply(cfg, state));
        EXPECT_OK(setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.1")));
        EXPECT_OK(setup::add_link_route(cfg, state, 1, wan_link("wan1", "198.51.100.1")));
        const std::string rules = sh("ip rule show");
        EXPECT_CONTAINS(rules, "28500:\tfrom all fwmark 0x16f6e lookup 28527");
        EXPECT_CONTAINS(rules, "28501:\tfrom all fwmark 0x26f6e lookup 28528");
        EXPECT_CONTAINS(rules, "28525:\tfrom all lookup main suppress_prefixlength 0");
        EXPECT_CONTAINS(rules, "28526:\tnot from all fwmark 0x6f6e/0xffff lookup 28526");

        // Unmarked: the tunnel. Our plain mark: main. A link's mark: that link.
        EXPECT_CONTAINS(sh("ip route get 9.9.9.9"), "dev obtest0 table 28526");
        std::string got = sh("ip route get 9.9.9.9 mark 0x6f6e");
        EXPECT_CONTAINS(got, "via 192.0.2.1 dev wan0");
        EXPECT_LACKS(got, "table");
        EXPECT_CONTAINS(sh("ip route get 9.9.9.9 mark 0x26f6e"), "via 198.51.100.1 dev wan1 table 28528");
        // A link mark without its rule (link 5 not set up) still bypasses the tunnel.
        got = sh("ip route get 9.9.9.9 mark 0x66f6e");
        EXPECT_CONTAINS(got, "via 192.0.2.1 dev wan0");
        EXPECT_LACKS(got, "obtest0");

        setup::Applied applied;
        EXPECT(setup::parse_state(read_text(state), applied));
        EXPECT(applied.rules.size() == 4 && applied.routes.size() == 3);

        EXPECT_OK(setup::remove_link_route(cfg, state, 1));
        EXPECT_LACKS(sh("ip rule show"), "28501");
        EXPECT_CONTAINS(sh("ip rule show"), "28526:");  // apply()'s entries stay
        EXPECT_CONTAINS(sh("ip route show table 28526"), "default dev obtest0");

        setup::undo(state);
        EXPECT(!file_exists(state));
        ::close(fd);
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: kill -9 with link routes, then cleanup_stale restores everything") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        make_wans();
        const Snapshot before = snapshot();
        const auto cfg = config(onebox::proto::Role::Client, "fwmark = 0x1234\nroute_table = 4000\n");
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (open_tun(kTun, true) < 0) ::_exit(3);
            if (!setup::apply(cfg, state).ok()) ::_exit(4);
            if (!setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.1")).ok()) ::_exit(5);
            if (!setup::add_link_route(cfg, state, 7, wan_link("wan1", nullptr)).ok()) ::_exit(6);
            ::raise(SIGKILL);
            ::_exit(7);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        const std::string rules = sh("ip rule show");
        EXPECT_CONTAINS(rules, "28500:\tfrom all fwmark 0x11234 lookup 4001");
        EXPECT_CONTAINS(rules, "28507:\tfrom all fwmark 0x81234 lookup 4008");
        EXPECT_CONTAINS(rules, "28526:\tnot from all fwmark 0x1234/0xffff lookup 4000");
        EXPECT_CONTAINS(sh("ip route show table 4008"), "default dev wan1");

        setup::cleanup_stale(state);
        EXPECT(!file_exists(state));
        EXPECT_SAME(before, snapshot());
    });
}

TEST_CASE("setup: link routes refuse a state file they cannot rewrite faithfully") {
    run_isolated([](const std::string& dir) {
        const std::string state = dir + "/client.state";
        make_wans();
        const Snapshot before = snapshot();
        const std::string text = "version=1\nrole=client\npid=0\nfuture=thing\n";
        std::ofstream(state) << text;
        const auto cfg = config(onebox::proto::Role::Client);
        EXPECT_ERR(setup::add_link_route(cfg, state, 0, wan_link("wan0", "192.0.2.1")), EINVAL);
        EXPECT_ERR(setup::remove_link_route(cfg, state, 0), EINVAL);
        EXPECT(read_text(state) == text);
        EXPECT_SAME(before, snapshot());
    });
}
