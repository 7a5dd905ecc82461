// test_link_health.cpp — the link state machine, stability hold, jitter and
// loss, with a fake clock. Table-driven: each row is a script of probe
// outcomes and what must hold after each step.
#include <doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proto/link_health.h"

using namespace onebox::proto;

namespace {

constexpr uint64_t kMs = 1'000'000;

enum class Ev { Echo, Lost, Stall, Lossy, Undo, Suspect };
struct Step {
    uint64_t at_ms;
    Ev ev;
    LinkState state;    // after the step
    bool schedulable;   // after the step, at the same time
};

void run(const char* name, const std::vector<Step>& script) {
    CAPTURE(name);
    LinkHealth h;
    h.cfg.down_after = 4;
    h.cfg.stable_ns = 2000 * kMs;
    for (size_t k = 0; k < script.size(); ++k) {
        const Step& s = script[k];
        CAPTURE(k);
        uint64_t now = s.at_ms * kMs;
        switch (s.ev) {
            case Ev::Echo: h.on_probe_echoed(now, 20 * kMs); break;
            case Ev::Lost: h.on_probe_lost(now); break;
            case Ev::Stall: h.on_feedback_stall(now); break;
            case Ev::Lossy: h.on_lossy(now); break;
            case Ev::Undo: h.on_stall_undone(); break;
            case Ev::Suspect: h.on_suspect(now); break;
        }
        CHECK(h.state() == s.state);
        CHECK(h.schedulable(now) == s.schedulable);
    }
}

}  // namespace

TEST_CASE("health: state machine and stability hold, table-driven") {
    using S = LinkState;
    run("unknown -> up on the first echo, usable at once",
        {{0, Ev::Lost, S::Unknown, false}, {100, Ev::Echo, S::Up, true}});
    run("a link that never answers goes down after four losses",
        {{0, Ev::Lost, S::Unknown, false},
         {100, Ev::Lost, S::Unknown, false},
         {200, Ev::Lost, S::Unknown, false},
         {300, Ev::Lost, S::Down, false},
         {400, Ev::Echo, S::Up, false},    // and then proves itself like any other
         {2400, Ev::Echo, S::Up, true}});
    run("three losses in a row keep it up; the fourth takes it down",
        {{0, Ev::Echo, S::Up, true},
         {100, Ev::Lost, S::Up, true},
         {200, Ev::Lost, S::Up, true},
         {300, Ev::Lost, S::Up, true},
         {400, Ev::Lost, S::Down, false}});
    run("an echo between losses restarts the count",
        {{0, Ev::Echo, S::Up, true},
         {100, Ev::Lost, S::Up, true},
         {200, Ev::Lost, S::Up, true},
         {300, Ev::Lost, S::Up, true},
         {400, Ev::Echo, S::Up, true},
         {500, Ev::Lost, S::Up, true},
         {600, Ev::Lost, S::Up, true},
         {700, Ev::Lost, S::Up, true},
         {800, Ev::Lost, S::Down, false}});
    run("down -> up on an echo, but used only after 2 s of clean probes",
        {{0, Ev::Echo, S::Up, true},
         {100, Ev::Lost, S::Up, true},
         {200, Ev::Lost, S::Up, true},
         {300, Ev::Lost, S::Up, true},
         {400, Ev::Lost, S::Down, false},
         {1000, Ev::Echo, S::Up, false},
         {2000, Ev::Echo, S::Up, false},
         {2999, Ev::Echo, S::Up, false},
         {3000, Ev::Echo, S::Up, true}});
    run("a loss while proving itself restarts the 2 s",
        {{0, Ev::Echo, S::Up, true},
         {100, Ev::Lost, S::Up, true},
         {200, Ev::Lost, S::Up, true},
         {300, Ev::Lost, S::Up, true},
         {400, Ev::Lost, S::Down, false},
         {1000, Ev::Echo, S::Up, false},
         {2500, Ev::Lost, S::Up, false},
         {2600, Ev::Echo, S::Up, false},
         {4000, Ev::Echo, S::Up, false},
         {4600, Ev::Echo, S::Up, true},
         {4700, Ev::Lost, S::Up, true}});  // proven: single losses no longer matter
    run("a feedback stall stops it at once; an echo sent after the stall starts the hold",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Stall, S::Up, false},
         {1010, Ev::Echo, S::Up, false},   // sent at 990 ms, before the stall: still stalled
         {1100, Ev::Echo, S::Up, false},   // sent at 1080 ms: delivering again, hold starts
         {3099, Ev::Echo, S::Up, false},
         {3100, Ev::Echo, S::Up, true}});
    run("an undone stall: used again at once, as before it",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Stall, S::Up, false},
         {1060, Ev::Undo, S::Up, true},
         {1100, Ev::Echo, S::Up, true}});
    run("an undone stall of a link still proving itself: the hold goes on from where it was",
        {{0, Ev::Lost, S::Unknown, false},
         {100, Ev::Lost, S::Unknown, false},
         {200, Ev::Lost, S::Unknown, false},
         {300, Ev::Lost, S::Down, false},
         {400, Ev::Echo, S::Up, false},
         {1000, Ev::Stall, S::Up, false},
         {1050, Ev::Undo, S::Up, false},
         {2400, Ev::Echo, S::Up, true}});
    run("an undone stall after a lost probe: it proves itself as after a Down",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Stall, S::Up, false},
         {1050, Ev::Lost, S::Up, false},
         {1060, Ev::Undo, S::Up, false},
         {1100, Ev::Echo, S::Up, false},
         {3100, Ev::Echo, S::Up, true}});
    run("a suspect link (its tail unreported) waits for a probe sent after, then no hold",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Suspect, S::Up, false},
         {1010, Ev::Echo, S::Up, false},   // sent at 990 ms, before
         {1100, Ev::Echo, S::Up, true}});  // sent at 1080 ms: used again at once
    run("a stall while suspect: the hold as for any stall",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Suspect, S::Up, false},
         {1050, Ev::Stall, S::Up, false},
         {1100, Ev::Echo, S::Up, false},
         {3100, Ev::Echo, S::Up, true}});
    run("a stalled link whose probes die goes down",
        {{0, Ev::Echo, S::Up, true},
         {50, Ev::Stall, S::Up, false},
         {100, Ev::Lost, S::Up, false},
         {200, Ev::Lost, S::Up, false},
         {300, Ev::Lost, S::Up, false},
         {400, Ev::Lost, S::Down, false}});
}

TEST_CASE("health: a lossy link is out until clean, for longer each time within a minute") {
    using S = LinkState;
    run("taken out for loss: out at once, still Up; back after 2 s of clean probes",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Lossy, S::Up, false},
         {1100, Ev::Echo, S::Up, false},   // the clean run starts here
         {3099, Ev::Echo, S::Up, false},
         {3100, Ev::Echo, S::Up, true}});
    run("a lost probe while out restarts the hold",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Lossy, S::Up, false},
         {1100, Ev::Echo, S::Up, false},
         {2000, Ev::Lost, S::Up, false},
         {2100, Ev::Echo, S::Up, false},
         {4099, Ev::Echo, S::Up, false},
         {4100, Ev::Echo, S::Up, true}});
    run("taken out again within a minute: 4 s, then 8 s",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Lossy, S::Up, false},
         {1100, Ev::Echo, S::Up, false},
         {3100, Ev::Echo, S::Up, true},    // 2 s
         {4000, Ev::Lossy, S::Up, false},
         {4100, Ev::Echo, S::Up, false},
         {8099, Ev::Echo, S::Up, false},
         {8100, Ev::Echo, S::Up, true},    // 4 s
         {9000, Ev::Lossy, S::Up, false},
         {9100, Ev::Echo, S::Up, false},
         {17099, Ev::Echo, S::Up, false},
         {17100, Ev::Echo, S::Up, true}}); // 8 s
    run("the doubling stops at 16x (32 s)",
        {{0, Ev::Echo, S::Up, true},
         {1, Ev::Lossy, S::Up, false},
         {2, Ev::Lossy, S::Up, false},
         {3, Ev::Lossy, S::Up, false},
         {4, Ev::Lossy, S::Up, false},
         {5, Ev::Lossy, S::Up, false},
         {6, Ev::Lossy, S::Up, false},     // the sixth: still 16x
         {100, Ev::Echo, S::Up, false},
         {32099, Ev::Echo, S::Up, false},
         {32100, Ev::Echo, S::Up, true}});
    run("a minute after the last exclusion the hold is 2 s again",
        {{0, Ev::Echo, S::Up, true},
         {1000, Ev::Lossy, S::Up, false},
         {1100, Ev::Echo, S::Up, false},
         {3100, Ev::Echo, S::Up, true},
         {61000, Ev::Lossy, S::Up, false}, // 60 s after the first: not "again"
         {61100, Ev::Echo, S::Up, false},
         {63100, Ev::Echo, S::Up, true}});
}

TEST_CASE("health: counts downs, stalls and loss exclusions") {
    LinkHealth h;
    h.on_probe_echoed(0, 10 * kMs);
    for (int k = 1; k <= 4; ++k) h.on_probe_lost(uint64_t(k) * 100 * kMs);
    h.on_probe_lost(500 * kMs);  // already down: not another down
    h.on_probe_echoed(600 * kMs, 10 * kMs);
    h.on_feedback_stall(700 * kMs);
    h.on_stall_undone();
    h.on_lossy(800 * kMs);
    CHECK(h.downs() == 1);
    CHECK(h.stalls() == 1);
    CHECK(h.stalls_undone() == 1);
    CHECK(h.lossy() == 1);
    CHECK(h.lost_in_a_row() == 0);
}

TEST_CASE("health: loss over the last 32 judged probes") {
    LinkHealth h;
    CHECK(h.loss() == 0);
    uint64_t t = 0;
    // 1 lost in 4.
    for (int k = 0; k < 40; ++k) {
        t += 100 * kMs;
        if (k % 4 == 3) h.on_probe_lost(t);
        else h.on_probe_echoed(t, 20 * kMs);
    }
    CHECK(h.loss() == doctest::Approx(0.25));
    // 32 clean probes forget it.
    for (int k = 0; k < 32; ++k) h.on_probe_echoed(t += 100 * kMs, 20 * kMs);
    CHECK(h.loss() == 0);
    // Fewer than 32 judged: the fraction of those.
    LinkHealth g;
    g.on_probe_echoed(0, kMs);
    g.on_probe_lost(kMs);
    CHECK(g.loss() == doctest::Approx(0.5));
}

TEST_CASE("health: RFC 3550 jitter from consecutive RTTs") {
    LinkHealth h;
    // Constant RTT: no jitter.
    for (int k = 0; k < 10; ++k) h.on_probe_echoed(uint64_t(k) * 100 * kMs, 40 * kMs);
    CHECK(h.jitter_ns() == 0);
    CHECK(h.rtt_ns() == 40 * kMs);
    // RTT alternating 40 / 50 ms: |D| = 10 ms every step, J converges to 10 ms
    // (J_n = 10 (1 - (15/16)^n)).
    for (int k = 0; k < 200; ++k)
        h.on_probe_echoed(uint64_t(10 + k) * 100 * kMs, (k % 2 ? 40 : 50) * kMs);
    CHECK(double(h.jitter_ns()) == doctest::Approx(10.0 * kMs).epsilon(0.01));
    // One step from J = 0 with |D| = 16 ms gives J = 1 ms.
    LinkHealth g;
    g.on_probe_echoed(0, 20 * kMs);
    g.on_probe_echoed(100 * kMs, 36 * kMs);
    CHECK(g.jitter_ns() == 1 * kMs);
}

TEST_CASE("health: state names") {
    CHECK(std::string(link_state_name(LinkState::Unknown)) == "unknown");
    CHECK(std::string(link_state_name(LinkState::Up)) == "up");
    CHECK(std::string(link_state_name(LinkState::Down)) == "down");
}
