// The pure parts of D-Bus, `status` and the logs: values, paths, rates,
// the table and JSON a person or a script reads, and the log rate limit.
#include <doctest.h>

#include <set>
#include <string>

#include "control/bus_objects.h"
#include "control/bus_value.h"
#include "control/log.h"
#include "control/status.h"
#include "proto/config.h"

using namespace onebox;
using bus::LinkRow;
using bus::ObjectMap;
using bus::Props;

TEST_CASE("bus value: signatures follow the variant's types") {
    CHECK(std::string(bus::signature(bus::Value{true})) == "b");
    CHECK(std::string(bus::signature(bus::Value{uint8_t(1)})) == "y");
    CHECK(std::string(bus::signature(bus::Value{uint32_t(1)})) == "u");
    CHECK(std::string(bus::signature(bus::Value{uint64_t(1)})) == "t");
    CHECK(std::string(bus::signature(bus::Value{1.5})) == "d");
    CHECK(std::string(bus::signature(bus::Value{std::string("x")})) == "s");
    CHECK(std::string(bus::signature(bus::Value{std::vector<std::string>{}})) == "as");
    CHECK(std::string(bus::signature(bus::Value{bus::Counts{}})) == "a{st}");
    CHECK(std::string(bus::signature(bus::Value{std::vector<LinkRow>{}})) == "a(ysstdtt)");
}

TEST_CASE("bus value: JSON, with strings escaped") {
    CHECK(bus::to_json(bus::Value{std::string("a\"b\\c\n\x01")}) == "\"a\\\"b\\\\c\\n\\u0001\"");
    CHECK(bus::to_json(bus::Value{uint64_t(18446744073709551615ull)}) == "18446744073709551615");
    CHECK(bus::to_json(bus::Value{false}) == "false");
    CHECK(bus::to_json(bus::Value{0.25}) == "0.25");
    CHECK(bus::to_json(bus::Value{bus::Counts{{"bad_tag", 3}, {"replay", 0}}}) == "{\"bad_tag\":3,\"replay\":0}");
    CHECK(bus::to_json(bus::Value{std::vector<std::string>{"a", "b"}}) == "[\"a\",\"b\"]");
    LinkRow r{1, "192.0.2.1:5000", "up", 2100, 0.5, 10, 20};
    CHECK(bus::to_json(bus::Value{std::vector<LinkRow>{r}}) ==
          "[{\"id\":1,\"address\":\"192.0.2.1:5000\",\"state\":\"up\",\"rtt_us\":2100,\"loss\":0.5,"
          "\"tx_bytes\":10,\"rx_bytes\":20}]");
}

TEST_CASE("bus value: typed reads fall back to the default") {
    Props p = {{"A", uint64_t(7)}, {"B", uint32_t(8)}, {"C", std::string("x")}, {"D", true}, {"E", 0.5}};
    CHECK(bus::get_u64(p, "A") == 7);
    CHECK(bus::get_u64(p, "B") == 8);
    CHECK(bus::get_u64(p, "C", 9) == 9);  // wrong type
    CHECK(bus::get_u64(p, "Z", 3) == 3);  // missing
    CHECK(bus::get_string(p, "C") == "x");
    CHECK(bus::get_bool(p, "D"));
    CHECK(bus::get_double(p, "E") == 0.5);
}

TEST_CASE("bus paths: links by escaped interface name, clients by 8 hex digits") {
    CHECK(bus::link_path("wan0") == "/org/onebox/Client1/link/wan0");
    std::string odd = bus::link_path("wlan0.100");
    CHECK(odd != "/org/onebox/Client1/link/wlan0.100");  // '.' is not allowed in a path element
    CHECK(bus::link_name_from_path(odd) == "wlan0.100");
    CHECK(bus::link_name_from_path("/org/onebox/Client1") == "");
    CHECK(bus::peer_path(0x0badc0de) == "/org/onebox/Server1/client/0badc0de");
    uint32_t id = 0;
    CHECK(bus::peer_id_from_path("/org/onebox/Server1/client/0badc0de", &id));
    CHECK(id == 0x0badc0de);
    CHECK_FALSE(bus::peer_id_from_path("/org/onebox/Server1/client/0badc0d", &id));
    CHECK_FALSE(bus::peer_id_from_path("/org/onebox/Server1/client/0BADC0DE", &id));
    CHECK_FALSE(bus::peer_id_from_path("/org/onebox/Server1/client/0badc0dex", &id));
}

TEST_CASE("bus rates: bits per second since the previous sample") {
    bus::Rate r;
    r.sample(1'000'000'000, 1000, 0);
    CHECK(r.tx_bps == 0);  // first sample: nothing to compare with
    r.sample(1'500'000'000, 1000 + 62'500, 125'000);  // 0.5 s later
    CHECK(r.tx_bps == 1'000'000);
    CHECK(r.rx_bps == 2'000'000);
    r.sample(2'000'000'000, 10, 10);  // counters went back (a new session): no negative rate
    CHECK(r.tx_bps == 0);
    CHECK(r.rx_bps == 0);
}

TEST_CASE("bus objects: every interface has its properties, each named once") {
    for (const char* iface : {bus::kClientName, bus::kLinkInterface, bus::kServerName, bus::kPeerInterface}) {
        Props p = bus::prototype(iface);
        CAPTURE(iface);
        CHECK(p.size() >= 10);
        std::set<std::string> names;
        for (const auto& prop : p) names.insert(prop.name);
        CHECK(names.size() == p.size());
    }
    CHECK(bus::prototype("org.example.Nothing").empty());
}

TEST_CASE("status: units for people") {
    CHECK(status::format_rate(950) == "950 bit/s");
    CHECK(status::format_rate(38'200'000) == "38.2 Mbit/s");
    CHECK(status::format_rate(2'500'000'000ull) == "2.50 Gbit/s");
    CHECK(status::format_bytes(999) == "999 B");
    CHECK(status::format_bytes(1'230'000'000) == "1.23 GB");
    CHECK(status::format_duration(59'000'000) == "59s");
    CHECK(status::format_duration(133'000'000) == "2m 13s");
    CHECK(status::format_duration(3'720'000'000ull) == "1h 2m");
    CHECK(status::format_ms(21'340) == "21.3 ms");
}

namespace {

ObjectMap client_objects() {
    ObjectMap m;
    m["/org/onebox/Client1"][bus::kClientName] = {
        {"Version", std::string("0.1.0")}, {"State", std::string("connected")},
        {"Server", std::string("192.0.2.2:8080")}, {"SessionId", uint32_t(0x1a2b3c4d)},
        {"Mode", std::string("bond")}, {"Uptime", uint64_t(133'000'000)},
        {"TunnelAddress", std::string("10.0.0.2")}, {"TunnelInterface", std::string("onebox0")},
        {"TxRate", uint64_t(12'100'000)}, {"RxRate", uint64_t(35'000'000)}, {"TxBytes", uint64_t(1'200'000)},
        {"RxBytes", uint64_t(3'400'000'000ull)}, {"TxPackets", uint64_t(900)}, {"RxPackets", uint64_t(2'300'000)},
        {"Drops", bus::Counts{{"bad_tag", 3}, {"replay", 0}, {"duplicate", 40}}},
        {"ReorderDepth", uint32_t(2)}, {"ReorderTimeouts", uint64_t(5)}, {"Resent", uint64_t(11)}};
    auto link = [](const char* name, const char* state, bool used, const char* addr) {
        return Props{{"Name", std::string(name)}, {"State", std::string(state)}, {"Used", used},
                     {"Enabled", true}, {"RTT", uint64_t(21'300)}, {"Jitter", uint64_t(1'200)}, {"Loss", 0.0},
                     {"Capacity", uint64_t(38'200'000)}, {"RateUp", uint64_t(8'000'000)},
                     {"RateDown", uint64_t(20'000'000)}, {"TxBytes", uint64_t(500)}, {"RxBytes", uint64_t(600)},
                     {"Addresses", std::vector<std::string>{addr}}};
    };
    m["/org/onebox/Client1/link/wan0"][bus::kLinkInterface] = link("wan0", "up", true, "192.168.10.2");
    m["/org/onebox/Client1/link/wan1"][bus::kLinkInterface] = link("wan1", "up", false, "192.168.20.2");
    m["/org/onebox/Client1/link/wwan0"][bus::kLinkInterface] = {
        {"Name", std::string("wwan0")}, {"State", std::string("disabled")}, {"Used", false}, {"Enabled", false},
        {"RTT", uint64_t(0)}, {"Addresses", std::vector<std::string>{}}};
    return m;
}

}  // namespace

TEST_CASE("status: the client's table") {
    std::string t = status::render_text(proto::Role::Client, client_objects());
    CAPTURE(t);
    CHECK(t.find("onebox-client 0.1.0: connected 192.0.2.2:8080 (session 1a2b3c4d), mode bond, up 2m 13s") == 0);
    CHECK(t.find("\nLINK ") != std::string::npos);
    CHECK(t.find("\nwan0   up        ") != std::string::npos);
    CHECK(t.find("\nwan1   standby   ") != std::string::npos);  // up but not used
    CHECK(t.find("\nwwan0  disabled  -  ") != std::string::npos);  // switched off: no figures
    CHECK(t.find("21.3 ms") != std::string::npos);
    CHECK(t.find("38.2 Mbit/s") != std::string::npos);
    CHECK(t.find("total: up 12.1 Mbit/s (1.2 MB, 900 packets), down 35.0 Mbit/s (3.40 GB, 2300000 packets)") !=
          std::string::npos);
    CHECK(t.find("drops: bad_tag 3\n") != std::string::npos);  // zero and duplicate copies left out
    CHECK(t.find("second copies dropped: 40") != std::string::npos);
}

TEST_CASE("status: the client's JSON carries every property") {
    std::string j = status::render_json(proto::Role::Client, client_objects());
    CHECK(j.rfind("{\"daemon\":{", 0) == 0);
    CHECK(j.find("\"links\":[{\"Name\":\"wan0\"") != std::string::npos);
    CHECK(j.find("\"Drops\":{\"bad_tag\":3,\"replay\":0,\"duplicate\":40}") != std::string::npos);
    CHECK(j.back() == '\n');
}

TEST_CASE("status: the server's table, one row per client link") {
    ObjectMap m;
    m["/org/onebox/Server1"][bus::kServerName] = {
        {"Version", std::string("0.1.0")}, {"State", std::string("running")},
        {"ListenAddress", std::string("0.0.0.0:8080")}, {"Clients", uint32_t(1)}, {"MaxClients", uint32_t(256)},
        {"Uptime", uint64_t(5'000'000)}};
    m["/org/onebox/Server1/client/0badc0de"][bus::kPeerInterface] = {
        {"Id", std::string("0badc0de")}, {"TunnelAddress", std::string("10.0.0.2")}, {"Mode", std::string("bond")},
        {"RxRate", uint64_t(3'000'000)}, {"TxRate", uint64_t(50'000'000)}, {"RxBytes", uint64_t(4'000'000)},
        {"TxBytes", uint64_t(70'000'000)},
        {"Links", std::vector<LinkRow>{{0, "192.0.2.1:5000", "up", 20'000, 0, 1, 2},
                                       {1, "192.0.2.1:5001", "down", 0, 1.0, 3, 4}}}};
    std::string t = status::render_text(proto::Role::Server, m);
    CAPTURE(t);
    CHECK(t.find("onebox-server 0.1.0: running on 0.0.0.0:8080, 1 of 256 clients, up 5s") == 0);
    CHECK(t.find("0badc0de  10.0.0.2") != std::string::npos);
    // UP (from the client) before DOWN (to it), then RECEIVED before SENT, as the header says.
    CHECK(t.find("CLIENT    TUNNEL    MODE  UP          DOWN         RECEIVED  SENT") != std::string::npos);
    CHECK(t.find("bond  3.0 Mbit/s  50.0 Mbit/s  4.0 MB    70.0 MB") != std::string::npos);
    CHECK(t.find("192.0.2.1:5000") != std::string::npos);
    CHECK(t.find("192.0.2.1:5001  down") != std::string::npos);
    CHECK(t.find("100.0 %") != std::string::npos);
    std::string none = status::render_text(proto::Role::Server, {});
    CHECK(none.find("no daemon object") != std::string::npos);
}

TEST_CASE("log: every event kind has its own name and 128-bit MESSAGE_ID") {
    std::set<std::string> names, ids;
    for (unsigned i = 0; i < unsigned(log::Event::count); ++i) {
        auto e = log::Event(i);
        std::string id = log::event_message_id(e);
        CHECK(id.size() == 32);
        CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
        names.insert(log::event_name(e));
        ids.insert(id);
    }
    CHECK(names.size() == unsigned(log::Event::count));
    CHECK(ids.size() == unsigned(log::Event::count));
    CHECK(std::string(log::event_name(log::Event::LinkDown)) == "link-down");
}

TEST_CASE("log: a burst of 10 per kind, then one a second, with the refused ones counted") {
    log::Limiter l;
    uint64_t t = 1'000'000'000;
    for (int i = 0; i < 10; ++i) CHECK(l.allow(t));
    CHECK_FALSE(l.allow(t));
    CHECK_FALSE(l.allow(t + 500'000'000));
    CHECK(l.dropped == 2);
    CHECK(l.allow(t + 1'000'000'000));       // a token a second
    CHECK_FALSE(l.allow(t + 1'100'000'000));
    CHECK(l.allow(t + 100'000'000'000ull));  // a long quiet refills the burst, no more
    for (int i = 0; i < 9; ++i) CHECK(l.allow(t + 100'000'000'000ull));
    CHECK_FALSE(l.allow(t + 100'000'000'000ull));
}

TEST_CASE("config: the words for modes, shared with SetMode") {
    proto::Mode m = proto::Mode::Bond;
    CHECK(proto::parse_mode("backup", m));
    CHECK(m == proto::Mode::Backup);
    CHECK(proto::parse_mode("round-robin", m));
    CHECK(m == proto::Mode::RoundRobin);
    CHECK_FALSE(proto::parse_mode("Bond", m));
    CHECK_FALSE(proto::parse_mode("", m));
    CHECK(m == proto::Mode::RoundRobin);  // untouched on failure
}
