// test_config.cpp — the config parser (proto/config.cpp) and file loading
// (control/config.cpp).
#include <doctest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "control/config.h"
#include "proto/config.h"

using onebox::proto::Config;
using onebox::proto::ConfigError;
using onebox::proto::LogLevel;
using onebox::proto::Mode;
using onebox::proto::Role;
using onebox::proto::parse_config;
using onebox::proto::LinkSettings;
using onebox::proto::parse_rate;

namespace {

const char* const kSeedClient = R"([client]
server_address = "your-server-ip.com"
server_port = 8080
preshared_key = "your-secure-preshared-key"
log_level = "info"

[client.tun]
name = "onebox0"
ip = "10.0.0.2"
netmask = "255.255.255.0"
)";

const char* const kSeedServer = R"([server]
listen_address = "0.0.0.0"
listen_port = 8080
preshared_key = "your-secure-preshared-key"
log_level = "info"

[server.tun]
name = "onebox0"
ip = "10.0.0.1"
netmask = "255.255.255.0"
)";

// Smallest valid configs; bad-config cases append to these.
const char* const kMinClient = "[client]\nserver_address = 1.2.3.4\nserver_port = 1\npreshared_key = 12345678\n";
const char* const kMinServer = "[server]\nlisten_port = 1\npreshared_key = 12345678\n";

uint32_t ip(const char* s) {
    uint32_t v = 0;
    REQUIRE(onebox::proto::parse_ipv4(s, v));
    return v;
}

std::filesystem::path source_root() {
    // __FILE__ is test/unit/test_config.cpp, absolute under CMake.
    return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

}  // namespace

TEST_CASE("seed client config loads as written") {
    Config c;
    const ConfigError e = parse_config(kSeedClient, Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.role == Role::Client);
    CHECK(c.server_address == "your-server-ip.com");
    CHECK(c.server_port == 8080);
    CHECK(c.preshared_key == "your-secure-preshared-key");
    CHECK(c.log_level == LogLevel::Info);
    CHECK(c.tun.name == "onebox0");
    CHECK(c.tun.ip == ip("10.0.0.2"));
    CHECK(c.tun.netmask == ip("255.255.255.0"));
    CHECK(c.tun.mtu == 0);
}

TEST_CASE("seed server config loads as written") {
    Config c;
    const ConfigError e = parse_config(kSeedServer, Role::Server, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.role == Role::Server);
    CHECK(c.listen_address == 0);
    CHECK(c.listen_port == 8080);
    CHECK(c.preshared_key == "your-secure-preshared-key");
    CHECK(c.tun.name == "onebox0");
    CHECK(c.tun.ip == ip("10.0.0.1"));
    CHECK(c.tun.netmask == ip("255.255.255.0"));
}

TEST_CASE("defaults") {
    Config c;
    REQUIRE(parse_config(kMinClient, Role::Client, c).ok);
    CHECK(c.tun.name == "onebox0");
    CHECK(c.tun.ip == ip("10.0.0.2"));
    CHECK(c.tun.netmask == ip("255.255.255.0"));
    CHECK(c.tun.mtu == 0);
    CHECK(c.log_level == LogLevel::Info);
    CHECK(c.fwmark == 0x6f6e);
    CHECK(c.route_table == 0x6f6e);
    CHECK(c.masquerade_lan);
    CHECK(c.wan_interfaces.empty());
    CHECK(c.mode == Mode::Bond);
    CHECK(c.offloads);

    Config s;
    REQUIRE(parse_config(kMinServer, Role::Server, s).ok);
    CHECK(s.tun.name == "onebox0");
    CHECK(s.tun.ip == ip("10.0.0.1"));
    CHECK(s.tun.netmask == ip("255.255.255.0"));
    CHECK(s.listen_address == 0);
    CHECK(s.max_clients == 256);
    CHECK(s.workers == 0);  // one per core
    CHECK(s.masquerade);
    CHECK(s.nat_interface.empty());
}

TEST_CASE("every key, comments, quoting and top-level keys") {
    const char* text =
        "\xEF\xBB\xBF# leading comment\r\n"
        "preshared_key = \"a \\\"quoted\\\" key; with # signs\"  # trailing comment\r\n"
        "log_level = debug ; inline\r\n"
        "\n"
        "  [ client ]   # section comment\n"
        "server_address = vpn-1.example.org\n"
        "server_port = \"65535\"\n"
        "fwmark = 0xCAFE\n"
        "route_table = 1000\n"
        "masquerade_lan = false\n"
        "offloads = false\n"
        "[client.tun]\n"
        "name = tun-ob.1\n"
        "ip = 192.168.7.9\n"
        "netmask = 255.255.0.0\n"
        "mtu = 576\n";
    Config c;
    const ConfigError e = parse_config(text, Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.preshared_key == "a \"quoted\" key; with # signs");
    CHECK(c.log_level == LogLevel::Debug);
    CHECK(c.server_address == "vpn-1.example.org");
    CHECK(c.server_port == 65535);
    CHECK(c.fwmark == 0xcafe);
    CHECK(c.route_table == 1000);
    CHECK_FALSE(c.masquerade_lan);
    CHECK_FALSE(c.offloads);
    CHECK(c.tun.name == "tun-ob.1");
    CHECK(c.tun.ip == ip("192.168.7.9"));
    CHECK(c.tun.netmask == ip("255.255.0.0"));
    CHECK(c.tun.mtu == 576);

    const char* server =
        "[server]\nlisten_address = 192.0.2.1\nlisten_port = 51820\npreshared_key = 'single'quotes'\n"
        "max_clients = 10\nmasquerade = false\nnat_interface = eth0\nlog_level = error\nworkers = 3\n"
        "[server.tun]\nip = 10.9.0.1\nnetmask = 255.255.255.252\nmtu = 1500\n";
    Config s;
    const ConfigError se = parse_config(server, Role::Server, s);
    REQUIRE_MESSAGE(se.ok, se.line << " " << se.key << ": " << se.message);
    CHECK(s.listen_address == ip("192.0.2.1"));
    CHECK(s.listen_port == 51820);
    CHECK(s.preshared_key == "'single'quotes'");  // only double quotes are special
    CHECK(s.max_clients == 10);
    CHECK(s.workers == 3);
    CHECK_FALSE(s.masquerade);
    CHECK(s.nat_interface == "eth0");
    CHECK(s.log_level == LogLevel::Error);
    CHECK(s.tun.netmask == ip("255.255.255.252"));
    CHECK(s.tun.mtu == 1500);
}

TEST_CASE("wan_interfaces and mode") {
    const std::string cl = kMinClient;
    struct Good {
        std::string value;
        std::vector<std::string> names;
    };
    const Good good[] = {
        {"[\"wan0\", \"wlan0\"]", {"wan0", "wlan0"}},
        {"[ wan0 ,\"wlan0\",eth1.100 ]  # comment", {"wan0", "wlan0", "eth1.100"}},
        {"[\"wan0\",]", {"wan0"}},  // trailing comma, as TOML allows
        {"[\"ppp0\"] ; comment", {"ppp0"}},
        {"[]", {}},
        {"[ ]", {}},
        {"wan0", {"wan0"}},
        {"\"wlan-1_x\"", {"wlan-1_x"}},
        {"[a, b, c, d, e, f, g, h]", {"a", "b", "c", "d", "e", "f", "g", "h"}},  // 8: the limit
    };
    for (const auto& g : good) {
        CAPTURE(g.value);
        Config c;
        const ConfigError e = parse_config(cl + "wan_interfaces = " + g.value + "\n", Role::Client, c);
        REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
        CHECK(c.wan_interfaces == g.names);
        CHECK(c.mode == Mode::Bond);
    }
    Config c;
    ConfigError e = parse_config(cl + "mode = round-robin\n", Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.mode == Mode::RoundRobin);
    e = parse_config(cl + "mode = \"bond\"\nfwmark = 0xffff\nroute_table = 244\n", Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.mode == Mode::Bond);
    CHECK(c.fwmark == 0xffff);
    CHECK(c.route_table == 244);
    e = parse_config(cl + "route_table = 256\n", Role::Client, c);  // above the reserved ones: fine
    CHECK(e.ok);
    e = parse_config(cl + "route_table = 0xfffffff7\n", Role::Client, c);  // + 8 still fits
    CHECK(e.ok);
}

TEST_CASE("[client.link.NAME]: weight and rate caps per WAN link") {
    const std::string cl = kMinClient;
    Config c;
    ConfigError e = parse_config(cl +
                                     "[client.link.wan0]\nweight = 2\nmax_rate = 40mbit\n"
                                     "[client.link.lte0]  # the metered one\nmax_rate_up = 2.5Mbit\nmax_rate_down = 500kbit\n"
                                     "[client.link.eth1.100]\nweight = 0.25\n"
                                     "[client.link.wlan0]\n",
                                 Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    REQUIRE(c.links.size() == 4);
    const LinkSettings* w = c.link_settings("wan0");
    REQUIRE(w);
    CHECK(w->weight == 2);
    CHECK(w->max_rate_up_bps == 40'000'000);
    CHECK(w->max_rate_down_bps == 40'000'000);
    const LinkSettings* l = c.link_settings("lte0");
    REQUIRE(l);
    CHECK(l->weight == 0);
    CHECK(l->max_rate_up_bps == 2'500'000);
    CHECK(l->max_rate_down_bps == 500'000);
    CHECK(c.link_settings("eth1.100")->weight == 0.25);
    const LinkSettings* empty = c.link_settings("wlan0");
    REQUIRE(empty);
    CHECK((empty->weight == 0 && empty->max_rate_up_bps == 0 && empty->max_rate_down_bps == 0));
    CHECK(c.link_settings("wan9") == nullptr);

    const struct { std::string text; unsigned line; const char* key; const char* message; } bad[] = {
        {"[client.link.wan0]\nweight = 0\n", 6, "client.link.wan0.weight", "0.01 to 655"},
        {"[client.link.wan0]\nweight = -1\n", 6, "client.link.wan0.weight", "0.01 to 655"},
        {"[client.link.wan0]\nweight = 1.234\n", 6, "client.link.wan0.weight", "at most 2 decimals"},
        {"[client.link.wan0]\nweight = 1e3\n", 6, "client.link.wan0.weight", "0.01 to 655"},
        {"[client.link.wan0]\nmax_rate = fast\n", 6, "client.link.wan0.max_rate", "bad rate \"fast\""},
        {"[client.link.wan0]\nmax_rate = 0mbit\n", 6, "client.link.wan0.max_rate", "bad rate"},
        {"[client.link.wan0]\nmax_rate = 200gbit\n", 6, "client.link.wan0.max_rate", "at most 100gbit"},
        {"[client.link.wan0]\nmax_rate = 40mbps\n", 6, "client.link.wan0.max_rate", "bad rate"},
        {"[client.link.wan0]\nmax_rate = 1mbit\nmax_rate_up = 2mbit\n", 7, "client.link.wan0.max_rate_up", "either max_rate"},
        {"[client.link.wan0]\nweight = 1\nweight = 2\n", 7, "client.link.wan0.weight", "duplicate key"},
        {"[client.link.wan0]\nmtu = 1400\n", 6, "client.link.wan0.mtu", "unknown key"},
        {"[client.link.wan0]\n[client.link.wan0]\n", 6, "", "appears twice"},
        {"[client.link.bad/name]\n", 5, "", "bad interface name"},
        {"[client.link.]\n", 5, "", "bad interface name"},
        {"[client.link.a]\n[client.link.b]\n[client.link.c]\n[client.link.d]\n[client.link.e]\n"
         "[client.link.f]\n[client.link.g]\n[client.link.h]\n[client.link.i]\n", 13, "", "at most 8"},
    };
    for (const auto& b : bad) {
        CAPTURE(b.text);
        Config out;
        e = parse_config(cl + b.text, Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.line == b.line);
        CHECK(e.key == b.key);
        CHECK_MESSAGE(e.message.find(b.message) != std::string::npos, "message: " << e.message);
    }
    Config out;
    CHECK_FALSE(parse_config(std::string(kMinServer) + "[client.link.wan0]\n", Role::Server, out).ok);
}

TEST_CASE("modes, priorities, probe_interval and link_hold") {
    const std::string cl = kMinClient;
    Config c;
    CHECK(c.probe_interval_ns == 500'000'000);
    CHECK(c.link_hold_ns == 2'000'000'000);
    ConfigError e = parse_config(cl + "mode = redundant\nprobe_interval = 250ms\nlink_hold = 1.5s\n"
                                      "[client.link.wan0]\npriority = 1\n[client.link.lte0]\npriority = 2\n",
                                 Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.mode == Mode::Redundant);
    CHECK(c.probe_interval_ns == 250'000'000);
    CHECK(c.link_hold_ns == 1'500'000'000);
    CHECK(c.link_settings("wan0")->priority == 1);
    CHECK(c.link_settings("lte0")->priority == 2);
    e = parse_config(cl + "mode = \"backup\"\nlink_hold = 0s\nprobe_interval = 1000\n[client.link.wan0]\n", Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.mode == Mode::Backup);
    CHECK(c.link_hold_ns == 0);
    CHECK(c.probe_interval_ns == 1'000'000'000);
    CHECK(c.link_settings("wan0")->priority == 1);  // the default
    Config srv;
    e = parse_config(std::string(kMinServer) + "probe_interval = 2s\nlink_hold = 3s\n", Role::Server, srv);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(srv.probe_interval_ns == 2'000'000'000);
    CHECK(srv.link_hold_ns == 3'000'000'000);

    const struct { std::string text; const char* key; const char* message; } bad[] = {
        {"mode = failover\n", "client.mode", "bond, round-robin, redundant or backup"},
        {"probe_interval = 10ms\n", "client.probe_interval", "50ms to 10s"},
        {"probe_interval = 11s\n", "client.probe_interval", "50ms to 10s"},
        {"probe_interval = fast\n", "client.probe_interval", "got \"fast\""},
        {"probe_interval = 1m\n", "client.probe_interval", "50ms to 10s"},
        {"link_hold = -1s\n", "client.link_hold", "0s to 60s"},
        {"link_hold = 61s\n", "client.link_hold", "0s to 60s"},
        {"link_hold = 2 s\n", "client.link_hold", "0s to 60s"},
        {"[client.link.wan0]\npriority = 0\n", "client.link.wan0.priority", "1-255"},
        {"[client.link.wan0]\npriority = 256\n", "client.link.wan0.priority", "1-255"},
        {"[client.link.wan0]\npriority = first\n", "client.link.wan0.priority", "1-255"},
    };
    for (const auto& b : bad) {
        CAPTURE(b.text);
        Config out;
        e = parse_config(cl + b.text, Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.key == b.key);
        CHECK_MESSAGE(e.message.find(b.message) != std::string::npos, "message: " << e.message);
    }
    uint64_t ns = 0;
    CHECK((onebox::proto::parse_duration("0.05s", 0, UINT64_MAX, ns) && ns == 50'000'000));
    CHECK((onebox::proto::parse_duration("75", 0, UINT64_MAX, ns) && ns == 75'000'000));
    CHECK_FALSE(onebox::proto::parse_duration("", 0, UINT64_MAX, ns));
    CHECK_FALSE(onebox::proto::parse_duration("ms", 0, UINT64_MAX, ns));
    CHECK_FALSE(onebox::proto::parse_duration("1.s", 0, UINT64_MAX, ns));
}

TEST_CASE("queue_budget: a duration from 5 ms to 500 ms, on both ends, 10 ms unless set") {
    const std::string cl = kMinClient;
    Config c;
    CHECK(c.queue_budget_ns == 10'000'000);
    const struct { const char* v; uint64_t ns; } good[] = {{"5ms", 5'000'000}, {"10ms", 10'000'000}, {"0.5s", 500'000'000}};
    for (const auto& g : good) {
        CAPTURE(g.v);
        Config out;
        ConfigError e = parse_config(cl + "queue_budget = " + g.v + "\n", Role::Client, out);
        REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
        CHECK(out.queue_budget_ns == g.ns);
    }
    Config srv;
    ConfigError e = parse_config(std::string(kMinServer) + "queue_budget = 15ms\n", Role::Server, srv);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(srv.queue_budget_ns == 15'000'000);
    for (const char* v : {"0", "4ms", "501ms", "1s", "low"}) {
        CAPTURE(v);
        Config out;
        e = parse_config(cl + "queue_budget = " + v + "\n", Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.key == "client.queue_budget");
        CHECK(e.message.find("5ms to 500ms") != std::string::npos);
    }
}

TEST_CASE("queue_hold: a duration from 0 to 100 ms, on both ends, 0 (drop at once) unless set") {
    const std::string cl = kMinClient;
    Config c;
    CHECK(c.queue_hold_ns == 0);
    const struct { const char* v; uint64_t ns; } good[] = {{"0ms", 0}, {"0", 0}, {"10ms", 10'000'000}, {"0.1s", 100'000'000}};
    for (const auto& g : good) {
        CAPTURE(g.v);
        Config out;
        ConfigError e = parse_config(cl + "queue_hold = " + g.v + "\n", Role::Client, out);
        REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
        CHECK(out.queue_hold_ns == g.ns);
    }
    Config srv;
    ConfigError e = parse_config(std::string(kMinServer) + "queue_hold = 5ms\n", Role::Server, srv);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(srv.queue_hold_ns == 5'000'000);
    for (const char* v : {"101ms", "1s", "-1ms", "long"}) {
        CAPTURE(v);
        Config out;
        e = parse_config(cl + "queue_hold = " + v + "\n", Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.key == "client.queue_hold");
        CHECK(e.message.find("0ms to 100ms") != std::string::npos);
    }
}

TEST_CASE("light_copies: true or false, on both ends, true unless set") {
    Config c;
    CHECK(c.light_copies);
    Config out;
    ConfigError e = parse_config(std::string(kMinClient) + "light_copies = false\n", Role::Client, out);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK_FALSE(out.light_copies);
    Config srv;
    e = parse_config(std::string(kMinServer) + "light_copies = false\n", Role::Server, srv);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK_FALSE(srv.light_copies);
    Config on;
    on.light_copies = false;  // parse_config must set it, not keep what was there
    e = parse_config(std::string(kMinClient) + "light_copies = true\n", Role::Client, on);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(on.light_copies);
    for (const char* v : {"yes", "0", "off"}) {
        CAPTURE(v);
        Config bad;
        e = parse_config(std::string(kMinClient) + "light_copies = " + v + "\n", Role::Client, bad);
        CHECK_FALSE(e.ok);
        CHECK(e.key == "client.light_copies");
        CHECK(e.message.find("true or false") != std::string::npos);
    }
}

TEST_CASE("repair_window: a duration from 0 s to 2 s, on both ends, 500 ms unless set") {
    const std::string cl = kMinClient;
    Config c;
    CHECK(c.repair_window_ns == 500'000'000);
    const struct { const char* v; uint64_t ns; } good[] = {{"0", 0}, {"0s", 0}, {"250ms", 250'000'000}, {"2s", 2'000'000'000}};
    for (const auto& g : good) {
        CAPTURE(g.v);
        Config out;
        ConfigError e = parse_config(cl + "repair_window = " + g.v + "\n", Role::Client, out);
        REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
        CHECK(out.repair_window_ns == g.ns);
    }
    Config srv;
    ConfigError e = parse_config(std::string(kMinServer) + "repair_window = 100ms\n", Role::Server, srv);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(srv.repair_window_ns == 100'000'000);
    for (const char* v : {"3s", "-1s", "fast", "5000"}) {
        CAPTURE(v);
        Config out;
        e = parse_config(cl + "repair_window = " + v + "\n", Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.key == "client.repair_window");
        CHECK(e.message.find("0s to 2s") != std::string::npos);
    }
}

TEST_CASE("loss_limit: a share from 0 % to 50 %, on both ends") {
    const std::string cl = kMinClient;
    Config c;
    CHECK(c.loss_limit_pm == 0);  // off unless asked for
    const struct { const char* v; uint32_t pm; } good[] = {
        {"5%", 50}, {"2.5%", 25}, {"0", 0}, {"0%", 0}, {"50%", 500}, {"\"12\"", 120}, {"0.1%", 1},
    };
    for (const auto& g : good) {
        CAPTURE(g.v);
        Config out;
        ConfigError e = parse_config(cl + "loss_limit = " + g.v + "\n", Role::Client, out);
        REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
        CHECK(out.loss_limit_pm == g.pm);
    }
    Config srv;
    ConfigError e = parse_config(std::string(kMinServer) + "loss_limit = 10%\n", Role::Server, srv);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(srv.loss_limit_pm == 100);
    for (const char* v : {"51%", "-1%", "2.55%", "5.%", ".5%", "five", "%", "5 %", "5%%", "1e1"}) {
        CAPTURE(v);
        Config out;
        e = parse_config(cl + "loss_limit = " + v + "\n", Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.key == "client.loss_limit");
        CHECK(e.message.find("0% to 50%") != std::string::npos);
    }
}

TEST_CASE("rekey_interval and rekey_packets") {
    const std::string cl = kMinClient;
    Config c;
    CHECK(c.rekey_interval_ns == 120'000'000'000);
    CHECK(c.rekey_packets == (uint64_t(1) << 60));
    ConfigError e = parse_config(cl + "rekey_interval = 2s\nrekey_packets = 20000\n", Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.rekey_interval_ns == 2'000'000'000);
    CHECK(c.rekey_packets == 20000);
    const struct { std::string text; const char* key; const char* message; } bad[] = {
        {"rekey_interval = 500ms\n", "client.rekey_interval", "1s to 86400s"},
        {"rekey_interval = 120\n", "client.rekey_interval", "1s to 86400s"},  // a bare number is ms
        {"rekey_interval = 86401s\n", "client.rekey_interval", "1s to 86400s"},
        {"rekey_packets = 999\n", "client.rekey_packets", "from 1000 to 1152921504606846976"},
        {"rekey_packets = 1152921504606846977\n", "client.rekey_packets", "from 1000"},
        {"rekey_packets = lots\n", "client.rekey_packets", "got \"lots\""},
    };
    for (const auto& b : bad) {
        CAPTURE(b.text);
        Config out;
        e = parse_config(cl + b.text, Role::Client, out);
        CHECK_FALSE(e.ok);
        CHECK(e.key == b.key);
        CHECK_MESSAGE(e.message.find(b.message) != std::string::npos, "message: " << e.message);
    }
    Config srv;
    CHECK_FALSE(parse_config(std::string(kMinServer) + "rekey_interval = 10s\n", Role::Server, srv).ok);
}

TEST_CASE("per-client keys: [server.client.NAME]") {
    const std::string srv = kMinServer;
    const std::string two = "[server.client.alice]\npreshared_key = alice-own-key\nip = 10.0.0.2\n"
                            "[server.client.bob-2]\nip = \"10.0.0.3\"\npreshared_key = \"bob's own key\"\n";
    Config c;
    ConfigError e = parse_config(srv + two, Role::Server, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    REQUIRE(c.clients.size() == 2);
    CHECK(c.clients[0].name == "alice");
    CHECK(c.clients[0].preshared_key == "alice-own-key");
    CHECK(c.clients[0].ip == ip("10.0.0.2"));
    CHECK(c.clients[1].name == "bob-2");
    CHECK(c.clients[1].ip == ip("10.0.0.3"));

    // Without a shared key only listed clients get in: that is allowed...
    e = parse_config("[server]\nlisten_port = 1\n" + two, Role::Server, c);
    CHECK_MESSAGE(e.ok, e.message);
    CHECK(c.preshared_key.empty());
    // ... but a server with neither still needs one.
    CHECK_FALSE(parse_config("[server]\nlisten_port = 1\n", Role::Server, c).ok);

    const struct { std::string text; unsigned line; const char* key; const char* message; } bad[] = {
        {"[server.client.]\n", 4, "", "bad client name"},
        {"[server.client.a b]\n", 4, "", "bad client name"},
        {"[server.client." + std::string(33, 'x') + "]\n", 4, "", "1-32 of"},
        {"[server.client.a]\nip = 10.0.0.2\npreshared_key = k1234567\n[server.client.a]\n", 7, "", "appears twice"},
        {"[server.client.a]\nip = 10.0.0.2\n", 4, "server.client.a", "missing preshared_key in [server.client.a]"},
        {"[server.client.a]\npreshared_key = k1234567\n", 4, "server.client.a", "missing ip"},
        {"[server.client.a]\npreshared_key = short\n", 5, "server.client.a.preshared_key", "too short"},
        {"[server.client.a]\nip = 10.0.0.999\n", 5, "server.client.a.ip", "10.0.0.999"},
        {"[server.client.a]\nport = 1\n", 5, "server.client.a.port", "takes preshared_key and ip"},
        {"[server.client.a]\nip = 10.0.0.2\nip = 10.0.0.3\n", 6, "server.client.a.ip", "duplicate key"},
        {"[server.client.a]\npreshared_key = k1234567\nip = 10.0.1.2\n", 6, "server.client.a.ip",
         "not a client address in the tunnel subnet 10.0.0.0/24"},
        {"[server.client.a]\npreshared_key = k1234567\nip = 10.0.0.255\n", 6, "server.client.a.ip", "not a client address"},
        {"[server.client.a]\npreshared_key = k1234567\nip = 10.0.0.1\n", 6, "server.client.a.ip", "the server's own"},
        {"[server.client.a]\npreshared_key = 12345678\nip = 10.0.0.2\n", 5, "server.client.a.preshared_key",
         "the same as the shared preshared_key"},
        {"[server.client.a]\npreshared_key = k1234567\nip = 10.0.0.2\n"
         "[server.client.b]\npreshared_key = k7654321\nip = 10.0.0.2\n", 9, "server.client.b.ip", "already client \"a\"'s address"},
        {"[server.client.a]\npreshared_key = k1234567\nip = 10.0.0.2\n"
         "[server.client.b]\npreshared_key = k1234567\nip = 10.0.0.3\n", 8, "server.client.b.preshared_key", "the same as client \"a\"'s key"},
    };
    for (const auto& b : bad) {
        CAPTURE(b.text);
        Config out;
        e = parse_config(srv + b.text, Role::Server, out);
        CHECK_FALSE(e.ok);
        CHECK(e.line == b.line);
        CHECK(e.key == b.key);
        CHECK_MESSAGE(e.message.find(b.message) != std::string::npos, "message: " << e.message);
    }
    Config cl;
    CHECK_FALSE(parse_config(std::string(kMinClient) + "[server.client.a]\n", Role::Client, cl).ok);
}

TEST_CASE("keep_nat") {
    using K = Config::KeepNat;
    Config c;
    CHECK(c.keep_nat == K::OnRestart);
    const struct {
        const char* value;
        K want;
    } rows[] = {{"true", K::Always}, {"false", K::Never}, {"restart", K::OnRestart}, {"\"restart\"", K::OnRestart}};
    for (const auto& row : rows) {
        CAPTURE(row.value);
        Config rc;
        REQUIRE(parse_config(std::string(kMinServer) + "keep_nat = " + row.value + "\n", Role::Server, rc).ok);
        CHECK(rc.keep_nat == row.want);
    }
    ConfigError e = parse_config(std::string(kMinServer) + "keep_nat = maybe\n", Role::Server, c);
    CHECK_FALSE(e.ok);
    CHECK(e.message.find("expected true, false or restart") != std::string::npos);
    Config cl;
    CHECK_FALSE(parse_config(std::string(kMinClient) + "keep_nat = true\n", Role::Client, cl).ok);
}

TEST_CASE("parse_rate") {
    const struct { const char* text; uint64_t bps; } good[] = {
        {"40mbit", 40'000'000}, {"40Mbit", 40'000'000}, {"2.5mbit", 2'500'000}, {"500kbit", 500'000},
        {"1gbit", 1'000'000'000}, {"64000", 64'000}, {"64000bit", 64'000}, {"100gbit", 100'000'000'000},
    };
    for (const auto& g : good) {
        CAPTURE(g.text);
        uint64_t v = 0;
        CHECK(parse_rate(g.text, v));
        CHECK(v == g.bps);
    }
    for (const char* b : {"", "mbit", "0", "0.4", "-1mbit", "1.mbit", ".5mbit", "1 mbit", "1e6", "101gbit", "5mb"}) {
        CAPTURE(b);
        uint64_t v = 0;
        CHECK_FALSE(parse_rate(b, v));
    }
}

TEST_CASE("a failed parse leaves the output alone") {
    Config c;
    c.server_address = "untouched";
    CHECK_FALSE(parse_config("[client]\nserver_port = 0\n", Role::Client, c).ok);
    CHECK(c.server_address == "untouched");
}

TEST_CASE("bad configs: line, key and message") {
    struct Case {
        Role role;
        std::string text;
        unsigned line;
        const char* key;
        const char* message;  // substring
    };
    const std::string cl = kMinClient;  // 4 lines; appended text starts on line 5
    const std::string sv = kMinServer;  // 3 lines
    const Case cases[] = {
        {Role::Client, cl + "bogus = 1\n", 5, "client.bogus", "unknown key"},
        {Role::Client, cl + "[client.tun]\ncolour = red\n", 6, "client.tun.colour", "unknown key"},
        {Role::Client, cl + "listen_port = 9\n", 5, "client.listen_port", "server setting"},
        {Role::Client, "hello = 1\n" + cl, 1, "hello", "unknown key"},
        {Role::Client, cl + "[clients]\n", 5, "", "unknown section [clients]"},
        {Role::Client, cl + "[server]\n", 5, "", "belongs in a server config"},
        {Role::Server, sv + "[client.tun]\n", 4, "", "belongs in a client config"},
        {Role::Client, cl + "[client\n", 5, "", "missing ']'"},
        {Role::Client, cl + "just words\n", 5, "", "expected key = value"},
        {Role::Client, cl + " = 5\n", 5, "", "missing key"},
        {Role::Client, cl + "server_port = 2\n", 5, "client.server_port", "duplicate key (already set on line 3)"},
        {Role::Client, "preshared_key = abcdefgh\n" + cl, 5, "client.preshared_key", "duplicate key (already set on line 1)"},
        {Role::Client, cl + "[client.tun]\nip = 10.0.0.3\nip = 10.0.0.4\n", 7, "client.tun.ip", "duplicate key"},
        {Role::Client, "[client]\nserver_address = 1.2.3.4\nserver_port = 70000\n", 3, "client.server_port",
         "port 70000 out of range (1-65535)"},
        {Role::Client, "[client]\nserver_port = 0\n", 2, "client.server_port", "out of range"},
        {Role::Client, "[client]\nserver_port = 99999999999999999999999\n", 2, "client.server_port", "out of range"},
        {Role::Client, "[client]\nserver_port = 80x\n", 2, "client.server_port", "not a number"},
        {Role::Client, "[client]\nserver_port = -1\n", 2, "client.server_port", "not a number"},
        {Role::Server, "[server]\nlisten_port = \"\"\n", 2, "server.listen_port", "empty value"},
        {Role::Client, "[client]\nserver_address = 10.0.0.256\n", 2, "client.server_address", "bad IPv4 address"},
        {Role::Client, "[client]\nserver_address = bad_host!\n", 2, "client.server_address", "bad host name"},
        {Role::Client, "[client]\nserver_address = -lead.example\n", 2, "client.server_address", "bad host name"},
        {Role::Client, "[client]\nserver_address = a..b\n", 2, "client.server_address", "bad host name"},
        {Role::Server, "[server]\nlisten_address = 1.2.3\n", 2, "server.listen_address", "bad IPv4 address"},
        {Role::Server, "[server]\nlisten_address = 01.2.3.4\n", 2, "server.listen_address", "bad IPv4 address"},
        {Role::Client, cl + "[client.tun]\nip = 300.1.1.1\n", 6, "client.tun.ip", "bad IPv4 address"},
        {Role::Client, cl + "[client.tun]\nnetmask = 255.0.255.0\n", 6, "client.tun.netmask", "not contiguous"},
        {Role::Client, cl + "[client.tun]\nnetmask = 255.255.255.255\n", 6, "client.tun.netmask", "prefix 1-30"},
        {Role::Client, cl + "[client.tun]\nip = 10.0.0.0\n", 6, "client.tun.ip", "network or broadcast"},
        {Role::Client, cl + "[client.tun]\nip = 10.0.0.255\n", 6, "client.tun.ip", "network or broadcast"},
        {Role::Client, cl + "[client.tun]\nmtu = 575\n", 6, "client.tun.mtu", "mtu 575 out of range (576-1500)"},
        {Role::Client, cl + "[client.tun]\nmtu = 1501\n", 6, "client.tun.mtu", "out of range"},
        {Role::Client, cl + "[client.tun]\nmtu = big\n", 6, "client.tun.mtu", "not a number"},
        {Role::Client, cl + "[client.tun]\nname = has space\n", 6, "client.tun.name", "bad interface name"},
        {Role::Client, cl + "[client.tun]\nname = \"a\\\"b\"\n", 6, "client.tun.name", "bad interface name"},
        {Role::Client, cl + "[client.tun]\nname = sixteen-chars-xx\n", 6, "client.tun.name", "bad interface name"},
        {Role::Server, sv + "nat_interface = eth/0\n", 4, "server.nat_interface", "bad interface name"},
        {Role::Client, cl + "log_level = verbose\n", 5, "client.log_level", "error, warn, info or debug"},
        {Role::Client, "log_level = loud\n" + cl, 1, "log_level", "error, warn, info or debug"},
        {Role::Client, cl + "masquerade_lan = yes\n", 5, "client.masquerade_lan", "expected true or false"},
        {Role::Client, cl + "offloads = on\n", 5, "client.offloads", "expected true or false"},
        {Role::Client, cl + "fwmark = 0\n", 5, "client.fwmark", "must not be 0"},
        {Role::Client, cl + "fwmark = 0x\n", 5, "client.fwmark", "not a 32-bit number"},
        {Role::Client, cl + "fwmark = 0x100000000\n", 5, "client.fwmark", "not a 32-bit number"},
        {Role::Client, cl + "route_table = 254\n", 5, "client.route_table", "reserved"},
        {Role::Client, cl + "fwmark = 0x10000\n", 5, "client.fwmark", "too large (at most 0xffff"},
        {Role::Client, cl + "fwmark = 4294967295\n", 5, "client.fwmark", "too large"},
        {Role::Client, cl + "route_table = 245\n", 5, "client.route_table", "too close to the reserved tables"},
        {Role::Client, cl + "route_table = 252\n", 5, "client.route_table", "too close to the reserved tables"},
        {Role::Client, cl + "route_table = 0xfffffff8\n", 5, "client.route_table", "too large"},
        {Role::Client, cl + "wan_interfaces = [\"wan0\", \"wan0\"]\n", 5, "client.wan_interfaces",
         "interface \"wan0\" listed twice"},
        {Role::Client, cl + "wan_interfaces = [a, b, c, d, e, f, g, h, i]\n", 5, "client.wan_interfaces",
         "too many interfaces (at most 8)"},
        {Role::Client, cl + "wan_interfaces = [\"wan0\", \"eth/1\"]\n", 5, "client.wan_interfaces",
         "bad interface name \"eth/1\""},
        {Role::Client, cl + "wan_interfaces = [\"has space\"]\n", 5, "client.wan_interfaces", "bad interface name"},
        {Role::Client, cl + "wan_interfaces = [\"sixteen-chars-xx\"]\n", 5, "client.wan_interfaces",
         "bad interface name"},
        {Role::Client, cl + "wan_interfaces = [\"wan0\"\n", 5, "client.wan_interfaces", "missing ']'"},
        {Role::Client, cl + "wan_interfaces = [wan0,,wan1]\n", 5, "client.wan_interfaces", "empty entry"},
        {Role::Client, cl + "wan_interfaces = [,]\n", 5, "client.wan_interfaces", "empty entry"},
        {Role::Client, cl + "wan_interfaces = [\"wan0\" \"wan1\"]\n", 5, "client.wan_interfaces",
         "bad interface name"},
        {Role::Client, cl + "wan_interfaces = \"wan0\", \"wan1\"\n", 5, "client.wan_interfaces",
         "unexpected text after closing quote"},
        {Role::Client, cl + "wan_interfaces = \"\"\n", 5, "client.wan_interfaces", "empty value"},
        {Role::Client, cl + "wan_interfaces = [wan0, onebox0]\n", 5, "client.wan_interfaces",
         "\"onebox0\" is the TUN device"},
        {Role::Client, cl + "wan_interfaces = wan1\n[client.tun]\nname = wan1\n", 5, "client.wan_interfaces",
         "is the TUN device"},
        {Role::Client, cl + "wan_interfaces = wan0\nwan_interfaces = wan1\n", 6, "client.wan_interfaces",
         "duplicate key"},
        {Role::Server, sv + "wan_interfaces = wan0\n", 4, "server.wan_interfaces", "client setting"},
        {Role::Client, cl + "mode = fast\n", 5, "client.mode", "mode must be bond, round-robin, redundant or backup, got \"fast\""},
        {Role::Client, cl + "mode = Bond\n", 5, "client.mode", "bond, round-robin, redundant or backup"},
        {Role::Server, sv + "mode = bond\n", 4, "server.mode", "client setting"},
        {Role::Server, sv + "max_clients = 0\n", 4, "server.max_clients", "1-65535"},
        {Role::Server, sv + "workers = 65\n", 4, "server.workers", "workers must be 0 (one per core) to 64, got \"65\""},
        {Role::Server, sv + "workers = -1\n", 4, "server.workers", "0 (one per core) to 64"},
        {Role::Client, cl + "workers = 2\n", 5, "client.workers", "server setting"},
        {Role::Client, cl + "[client.tun]\nname = \"onebox0\n", 6, "client.tun.name", "missing closing quote"},
        {Role::Client, cl + "[client.tun]\nname = \"x\" y\n", 6, "client.tun.name", "unexpected text after closing quote"},
        {Role::Client, "[client]\nserver_address = 1.2.3.4\nserver_port = 1\n", 0, "", "missing preshared_key"},
        {Role::Client, "[client]\npreshared_key = short\n", 2, "client.preshared_key", "too short (5 characters"},
        {Role::Client, "[client]\nserver_port = 1\npreshared_key = 12345678\n", 0, "", "missing server_address"},
        {Role::Client, "[client]\nserver_address = h\npreshared_key = 12345678\n", 0, "", "missing server_port"},
        {Role::Server, "[server]\npreshared_key = 12345678\n", 0, "", "missing listen_port"},
        {Role::Server, "", 0, "", "missing preshared_key"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        Config out;
        const ConfigError e = parse_config(c.text, c.role, out);
        CHECK_FALSE(e.ok);
        CHECK(e.line == c.line);
        CHECK(e.key == c.key);
        CHECK_MESSAGE(e.message.find(c.message) != std::string::npos, "message: " << e.message);
    }
}

TEST_CASE("error messages never echo the preshared key and stay on one line") {
    Config c;
    ConfigError e = parse_config("preshared_key = secret7\n", Role::Server, c);
    CHECK(e.message.find("secret7") == std::string::npos);
    e = parse_config(std::string("[client]\nserver_address = \"a\tb\x01") + std::string(500, 'x') + "\"\n",
                     Role::Client, c);
    CHECK_FALSE(e.ok);
    CHECK(e.message.size() < 120);
    CHECK(e.message.find('\t') == std::string::npos);
    CHECK(e.message.find('\x01') == std::string::npos);
    // The same with a value that fits on a line, so the value itself is reported.
    e = parse_config(std::string("[client]\nserver_address = \"a\tb\x01") + std::string(150, 'x') + "\"\n",
                     Role::Client, c);
    CHECK_FALSE(e.ok);
    CHECK(e.message.find("bad host name") != std::string::npos);
    CHECK(e.message.size() < 120);
    CHECK(e.message.find('\t') == std::string::npos);
    CHECK(e.message.find('\x01') == std::string::npos);
}

TEST_CASE("inih's own syntax extras do not apply") {
    Config c;
    // Indented lines are ordinary lines, never continuations of the previous value.
    ConfigError e = parse_config("[client]\n  server_address = 1.2.3.4\n\tserver_port = 1\n    preshared_key = 12345678\n",
                                 Role::Client, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.server_address == "1.2.3.4");
    CHECK(c.server_port == 1);
    CHECK(c.preshared_key == "12345678");

    // " ;" inside quotes, ':' and '%' in values, '#' without a space before it.
    e = parse_config("[server]\nlisten_port = 1\npreshared_key = pass#word\n", Role::Server, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.preshared_key == "pass#word");
    e = parse_config("[server]\nlisten_port = 1\npreshared_key = \"pass ;word : 100%3B # x\" ; comment\n", Role::Server, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.preshared_key == "pass ;word : 100%3B # x");
    e = parse_config("[server]\nlisten_port = 1\npreshared_key = a:b;c=d%25\n", Role::Server, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.preshared_key == "a:b;c=d%25");

    // A long comment line is fine; so is a key line of 199 characters (inih's
    // 200-byte line buffer less the NUL), not counting indentation.
    const std::string long_key = "preshared_key = " + std::string(199 - 16, 'k');
    REQUIRE(long_key.size() == 199);
    e = parse_config("# " + std::string(1000, 'c') + "\n[server]\nlisten_port = 1\n   " + long_key + "   \n",
                     Role::Server, c);
    REQUIRE_MESSAGE(e.ok, e.line << " " << e.key << ": " << e.message);
    CHECK(c.preshared_key == std::string(199 - 16, 'k'));
}

TEST_CASE("bad configs: inih-specific edges") {
    struct Case {
        Role role;
        std::string text;
        unsigned line;
        const char* key;
        const char* message;  // substring
    };
    const std::string cl = kMinClient;  // 4 lines; appended text starts on line 5
    const std::string long_key = "preshared_key = " + std::string(200 - 16, 'k');  // one over the limit
    const Case cases[] = {
        // inih would glue an indented line onto the previous value.
        {Role::Client, cl + "   more words\n", 5, "", "expected key = value"},
        // inih would read "name: value" as a pair and split a key at ':'.
        {Role::Client, "[client]\nserver_port: 1\n", 2, "", "expected key = value"},
        {Role::Client, cl + "a:b = 1\n", 5, "client.a:b", "unknown key"},
        {Role::Client, cl + "a ;b = 1\n", 5, "client.a ;b", "unknown key"},
        // inih would stop reading the line at the NUL and see server_port = 1.
        {Role::Client, std::string("[client]\nserver_address = 1.2.3.4\nserver_port = 1\0 x\n", 51), 3,
         "client.server_port", "not a number"},
        {Role::Client, std::string("[client]\0 x\n", 12), 1, "", "unexpected text after section header"},
        // Only one BOM is skipped (inih would skip a second one).
        {Role::Client, "\xEF\xBB\xBF\xEF\xBB\xBFpreshared_key = 12345678\n" + cl, 1, "\xEF\xBB\xBFpreshared_key",
         "unknown key"},
        // inih would end the value at " ;" and then miss the closing quote
        // elsewhere; here the quote is really missing.
        {Role::Client, cl + "[client.tun]\nname = \"a ;b\n", 6, "client.tun.name", "missing closing quote"},
        // Lines longer than inih's buffer are errors, not split into two lines.
        {Role::Server, "[server]\nlisten_port = 1\n" + long_key + "\n", 3, "", "line too long (200 characters, limit 199)"},
        {Role::Server, "[server]\nlisten_port = 1\n" + long_key.substr(0, 190) + " # comment\n", 3, "", "line too long"},
        {Role::Server, "[server]\nlisten_port = 1\npreshared_key = \"" + std::string(178, 'k') + ";;\"\n", 3, "",
         "line too long (limit 199 characters, counting each ';'"},
        {Role::Client, cl + "\n" + std::string(300, 'x') + "\n", 6, "", "line too long"},
        // Section headers and comments are not limited.
        {Role::Client, cl + "[" + std::string(300, 's') + "]\n", 5, "", "unknown section [sss"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        Config out;
        const ConfigError e = parse_config(c.text, c.role, out);
        CHECK_FALSE(e.ok);
        CHECK(e.line == c.line);
        CHECK(e.key == c.key);
        CHECK_MESSAGE(e.message.find(c.message) != std::string::npos, "message: " << e.message);
    }
    // The error line is right after long comment lines and CRLF line ends.
    Config out;
    const ConfigError e = parse_config("#" + std::string(500, '#') + "\r\n;" + std::string(500, ';') + "\r\n" + cl +
                                           "server_port = 2\r\n",
                                       Role::Client, out);
    CHECK(e.line == 7);
    CHECK(e.message.find("already set on line 5") != std::string::npos);
}

TEST_CASE("parse_ipv4, format_ipv4, netmask_prefix") {
    uint32_t v = 0;
    CHECK(onebox::proto::parse_ipv4("0.0.0.0", v));
    CHECK(v == 0);
    CHECK(onebox::proto::parse_ipv4("255.255.255.255", v));
    CHECK(v == 0xffffffffu);
    CHECK(onebox::proto::parse_ipv4("10.0.0.2", v));
    CHECK(v == 0x0a000002u);
    for (const char* bad : {"", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "256.1.1.1", "1.2.3.04", "1..2.3", " 1.2.3.4",
                            "1.2.3.4 ", "a.b.c.d", "1.2.3.-4", "1234.1.1.1"}) {
        CAPTURE(bad);
        CHECK_FALSE(onebox::proto::parse_ipv4(bad, v));
    }
    CHECK(onebox::proto::format_ipv4(0x0a000002u) == "10.0.0.2");
    CHECK(onebox::proto::format_ipv4(0xffffffffu) == "255.255.255.255");
    CHECK(onebox::proto::netmask_prefix(0) == 0);
    CHECK(onebox::proto::netmask_prefix(0xffffff00u) == 24);
    CHECK(onebox::proto::netmask_prefix(0xffffffffu) == 32);
    CHECK(onebox::proto::netmask_prefix(0x80000000u) == 1);
    CHECK(onebox::proto::netmask_prefix(0xff00ff00u) == -1);
    CHECK(onebox::proto::netmask_prefix(0x00ffffffu) == -1);
}

TEST_CASE("load_config_file and format_config_error") {
    char dir_template[] = "/tmp/onebox-config-test-XXXXXX";
    REQUIRE(mkdtemp(dir_template) != nullptr);
    const std::string dir = dir_template;
    const std::string path = dir + "/client.conf";

    Config c;
    ConfigError e = onebox::load_config_file(dir + "/absent.conf", Role::Client, c);
    CHECK_FALSE(e.ok);
    CHECK(onebox::format_config_error(dir + "/absent.conf", e) ==
          dir + "/absent.conf: cannot open: No such file or directory");

    e = onebox::load_config_file(dir, Role::Client, c);  // a directory
    CHECK_FALSE(e.ok);
    CHECK(e.message.find("Is a directory") != std::string::npos);

    std::ofstream(path) << "[client]\nserver_address = 1.2.3.4\npreshared_key = abcdefgh\n"
                           "\n\n\nserver_port = 70000\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    e = onebox::load_config_file(path, Role::Client, c);
    CHECK(onebox::format_config_error(path, e) ==
          path + ":7: client.server_port: port 70000 out of range (1-65535)");

    std::ofstream(path) << "[client]\nserver_address = 1.2.3.4\nserver_port = 1\n";
    e = onebox::load_config_file(path, Role::Client, c);
    CHECK(onebox::format_config_error(path, e) == path + ": missing preshared_key");

    std::ofstream(path) << kSeedClient;
    e = onebox::load_config_file(path, Role::Client, c);
    CHECK(e.ok);
    CHECK(c.server_port == 8080);

    std::filesystem::remove_all(dir);
}

TEST_CASE("the shipped example configs load") {
    const auto etc = source_root() / "etc";
    Config c, s;
    const std::string client = (etc / "client.conf").string(), server = (etc / "server.conf").string();
    ConfigError e = onebox::load_config_file(client, Role::Client, c);
    CHECK_MESSAGE(e.ok, onebox::format_config_error(client, e));
    e = onebox::load_config_file(server, Role::Server, s);
    CHECK_MESSAGE(e.ok, onebox::format_config_error(server, e));
    // The examples spell out the defaults.
    Config dc, ds;
    REQUIRE(parse_config(kMinClient, Role::Client, dc).ok);
    REQUIRE(parse_config(kMinServer, Role::Server, ds).ok);
    CHECK(c.tun.ip == dc.tun.ip);
    CHECK(c.fwmark == dc.fwmark);
    CHECK(c.route_table == dc.route_table);
    CHECK(c.masquerade_lan == dc.masquerade_lan);
    CHECK(c.wan_interfaces == dc.wan_interfaces);
    CHECK(c.mode == dc.mode);
    CHECK(s.tun.ip == ds.tun.ip);
    CHECK(s.max_clients == ds.max_clients);
    CHECK(s.masquerade == ds.masquerade);
}
