// Path MTU search (proto/pmtu.h) on a fake clock, size probes through two
// Bonds, and the scheduler keeping a datagram off a link it does not fit.
#include <doctest.h>

#include <cstring>
#include <vector>

#include "proto/bond.h"
#include "proto/feedback.h"
#include "proto/pmtu.h"

using namespace onebox::proto;

namespace {
constexpr uint64_t kMs = 1'000'000;

// Runs a search against a path that carries datagrams up to `path` bytes:
// every probe due is "sent"; those that fit are echoed 20 ms later, the
// others are lost after the timeout. Returns the time the search settled.
uint64_t run_search(PmtuSearch& s, uint16_t path, uint64_t t = 0, uint64_t until = 30'000 * kMs) {
    struct Flying { uint64_t at; uint16_t size; bool echoed; };
    std::vector<Flying> flying;
    for (; t < until; t += 10 * kMs) {
        s.update(t);
        for (auto it = flying.begin(); it != flying.end();) {
            if (it->echoed && t >= it->at + 20 * kMs) { s.on_echo(t, it->size); it = flying.erase(it); continue; }
            if (!it->echoed && t >= it->at + s.cfg.probe_timeout_ns) { s.on_lost(t, it->size); it = flying.erase(it); continue; }
            ++it;
        }
        if (uint16_t size = s.due(t)) {
            s.on_sent(t, size);
            flying.push_back({t, size, size <= path});
        }
        if (s.confirmed() && !s.searching() && flying.empty()) return t;
    }
    return t;
}
}  // namespace

TEST_CASE("pmtu: the search settles on the largest ladder size the path carries") {
    struct Row { uint16_t interface_mtu, path, want; };
    const Row rows[] = {
        {1500, 1500, 1500}, {1500, 1492, 1492}, {1500, 1450, 1440}, {1500, 1400, 1400},
        {1500, 1300, 1300}, {1500, 1200, 1280}, {1400, 1500, 1400}, {9000, 1500, 1500},
    };
    for (const Row& r : rows) {
        CAPTURE(r.interface_mtu);
        CAPTURE(r.path);
        PmtuSearch s;
        s.start(0, r.interface_mtu);
        CHECK(s.mtu() == r.interface_mtu);  // until it knows better: the interface's
        uint64_t settled = run_search(s, r.path);
        CHECK(s.mtu() == r.want);
        CHECK(settled < 20'000 * kMs);
    }
}

TEST_CASE("pmtu: while it goes down, the size being tried is the one used") {
    PmtuSearch s;
    s.start(0, 1500);
    uint64_t t = 0;
    for (unsigned k = 0; k < s.cfg.tries; ++k, t += s.cfg.probe_gap_ns) {
        REQUIRE(s.due(t) == 1500);
        s.on_sent(t, 1500);
    }
    CHECK(s.due(t) == 0);  // all three out: wait for them
    t += s.cfg.probe_timeout_ns;
    for (unsigned k = 0; k < s.cfg.tries; ++k) s.on_lost(t, 1500);
    CHECK(s.mtu() == 1492);
    CHECK(s.due(t) == 1492);
    s.on_sent(t, 1492);
    s.on_echo(t + 20 * kMs, 1492);
    CHECK(s.mtu() == 1492);
    CHECK_FALSE(s.searching());
}

TEST_CASE("pmtu: EMSGSIZE skips a size at once, and a confirmed size above it goes") {
    PmtuSearch s;
    s.start(0, 1500);
    s.on_sent(0, 1500);
    s.on_echo(20 * kMs, 1500);
    REQUIRE(s.mtu() == 1500);
    // Later the kernel hears of a 1400 path (ICMP) and refuses a 1500 send.
    s.on_too_big(5'000 * kMs, 1500);
    CHECK(s.mtu() == 1492);
    run_search(s, 1400, 5'000 * kMs);
    CHECK(s.mtu() == 1400);
}

TEST_CASE("pmtu: a link below its interface tries the next size up after 10 minutes") {
    PmtuSearch s;
    s.start(0, 1500);
    uint64_t t = run_search(s, 1400);
    REQUIRE(s.mtu() == 1400);
    CHECK(s.due(t + 60'000 * kMs) == 0);
    s.update(t + s.cfg.raise_after_ns);
    CHECK(s.due(t + s.cfg.raise_after_ns) == 1420);
    // The path grew: the next size up is confirmed, and later the one after.
    run_search(s, 1500, t + s.cfg.raise_after_ns, t + s.cfg.raise_after_ns + 20'000 * kMs);
    CHECK(s.mtu() == 1420);
    // A failed try upward keeps what was confirmed.
    PmtuSearch f;
    f.start(0, 1500);
    uint64_t u = run_search(f, 1400);
    u += f.cfg.raise_after_ns;
    run_search(f, 1400, u, u + 20'000 * kMs);
    CHECK(f.mtu() == 1400);
}

TEST_CASE("pmtu: size probes through two Bonds; the echo comes back small") {
    Bond a, b;
    a.set_interface_mtu(0, 1500);
    a.set_usable(0, true);
    b.set_usable(0, true);
    // Link 0 has to be Up (a probe answered) before size probes go.
    uint8_t rtt[kProbeSize];
    REQUIRE(a.make_probe(0, 0, rtt, sizeof rtt) == kProbeSize);
    REQUIRE(b.on_probe(0, kMs, rtt, sizeof rtt) == Bond::ProbeAction::SendEcho);
    REQUIRE(a.on_probe(0, 2 * kMs, rtt, sizeof rtt) == Bond::ProbeAction::Sampled);
    uint16_t size = 0;
    REQUIRE(a.size_probe_due(3 * kMs, &size) == 0);
    CHECK(size == 1500);
    uint8_t buf[2048];
    size_t n = a.make_size_probe(0, 3 * kMs, size, buf, sizeof buf);
    CHECK(n + kDataOverhead + kIpUdpHeaders == 1500);  // sealed and on the wire: the size tried
    size_t echo_len = 0;
    REQUIRE(b.on_probe(0, 4 * kMs, buf, n, &echo_len) == Bond::ProbeAction::SendEcho);
    CHECK(echo_len == kProbeSize);  // the padding stays behind
    CHECK(a.health[0].state() == LinkState::Up);
    REQUIRE(a.on_probe(0, 5 * kMs, buf, echo_len) == Bond::ProbeAction::Sampled);
    CHECK(a.pmtu[0].confirmed());
    CHECK(a.max_datagram(0) == 1500 - kIpUdpHeaders);
    // Lost size probes are the size's business, not the link's health.
    Bond c;
    c.set_usable(0, true);
    REQUIRE(c.make_probe(0, 0, rtt, sizeof rtt) == kProbeSize);
    REQUIRE(b.on_probe(0, kMs, rtt, sizeof rtt) == Bond::ProbeAction::SendEcho);
    REQUIRE(c.on_probe(0, 2 * kMs, rtt, sizeof rtt) == Bond::ProbeAction::Sampled);
    for (uint64_t t = 3 * kMs; t < 3000 * kMs; t += 10 * kMs) {
        if (c.size_probe_due(t, &size) == 0) c.make_size_probe(0, t, size, buf, sizeof buf);  // never echoed
        if (c.probe_due(t) == 0) {  // RTT probes answered: the link is fine
            c.make_probe(0, t, rtt, sizeof rtt);
            b.on_probe(0, t, rtt, sizeof rtt);
            c.on_probe(0, t + kMs, rtt, sizeof rtt);
        }
        c.update(t);
    }
    CHECK(c.health[0].state() == LinkState::Up);
    CHECK(c.health[0].downs() == 0);
    CHECK(c.pmtu[0].mtu() < 1500);
}

TEST_CASE("pmtu: the scheduler keeps a datagram off a link it does not fit") {
    Scheduler s;
    s.cfg.budget_ns = 0;
    s.links[0] = SchedLink{true, 0, 0, 10'000'000, 0, 0, 0};
    s.links[1] = SchedLink{true, 0, 0, 1'000'000, 0, 0, 0};
    s.links[0].max_datagram = 1372;  // a 1400 path
    for (int k = 0; k < 20; ++k) CHECK(s.pick(0, 1472) == 1);  // only link 1 takes it
    CHECK(s.pick(0, 1000) == 0);                                // the faster one takes what fits
    s.links[1].max_datagram = 1372;
    CHECK(s.pick(0, 1472) == -1);  // nowhere: the caller counts drop_too_big
    s.cfg.mode = SchedMode::RoundRobin;
    CHECK(s.pick(0, 1472) == -1);
}
