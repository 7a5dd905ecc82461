// test_notify.cpp — the watchdog decision (control/notify.h) on a fake clock.
#include <doctest.h>

#include "control/notify.h"

using onebox::notify::Watchdog;
using onebox::notify::WatchdogAction;
using onebox::notify::watchdog_check;

namespace {
constexpr uint64_t kMs = 1'000'000;
}

TEST_CASE("notify: no WATCHDOG_USEC, no watchdog") {
    Watchdog w;
    for (uint64_t t = 0; t < 10'000 * kMs; t += 50 * kMs) CHECK(watchdog_check(w, t, t) == WatchdogAction::None);
}

TEST_CASE("notify: the watchdog pings every half interval while the heartbeat moves, and only then") {
    Watchdog w;
    w.interval_ns = 2000 * kMs;  // looks every 1 s
    struct Step { uint64_t t_ms; uint64_t beat; WatchdogAction want; bool withholding; };
    const Step steps[] = {
        {0, 5, WatchdogAction::Ping, false},      // the first look pings
        {50, 6, WatchdogAction::None, false},     // not yet due
        {999, 9, WatchdogAction::None, false},
        {1000, 10, WatchdogAction::Ping, false},  // moved since the last look
        {2000, 10, WatchdogAction::Withhold, true},  // stuck: no ping
        {2500, 11, WatchdogAction::None, true},      // due again only at 3000
        {3000, 11, WatchdogAction::Ping, false},     // moving again
        {4000, 11, WatchdogAction::Withhold, true},
        {5000, 11, WatchdogAction::Withhold, true},  // still stuck: systemd restarts us
        {6000, 12, WatchdogAction::Ping, false},
    };
    for (const Step& s : steps) {
        CAPTURE(s.t_ms);
        CHECK(watchdog_check(w, s.t_ms * kMs, s.beat) == s.want);
        CHECK(w.withholding == s.withholding);
    }
}

TEST_CASE("notify: a late control tick still looks at once") {
    Watchdog w;
    w.interval_ns = 1000 * kMs;
    CHECK(watchdog_check(w, 0, 1) == WatchdogAction::Ping);
    // The control thread was busy for 3 s: the next look is at once, and the
    // one after half an interval later.
    CHECK(watchdog_check(w, 3000 * kMs, 2) == WatchdogAction::Ping);
    CHECK(watchdog_check(w, 3400 * kMs, 3) == WatchdogAction::None);
    CHECK(watchdog_check(w, 3500 * kMs, 3) == WatchdogAction::Ping);
}
