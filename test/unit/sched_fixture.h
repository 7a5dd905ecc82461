// sched_fixture.h — a scheduler link brought to steady state, for the unit
// tests of the scheduler and of what uses it (the bond).
#pragma once

#include <doctest.h>

#include <cstdint>

#include "proto/scheduler.h"

namespace onebox::proto::test {

// Drives link i (alone, at its learned rate) out of Startup and Drain into
// ProbeBw at a gain-1 phase, with an empty model queue; returns the time.
inline uint64_t settle_in_probe_bw(Scheduler& s, unsigned i, uint64_t t) {
    constexpr uint64_t kMs = 1'000'000;
    s.pick(t, 1);
    const uint32_t round_bytes = uint32_t(s.links[i].rate_bytes_per_s / 5);
    for (int k = 0; k < 20 && s.phase(i) != Scheduler::Phase::ProbeBw; ++k) {
        t += 100 * kMs;  // a Startup round; offered more than the estimate carries
        s.pick(t, round_bytes);
    }
    // Let the model's queue drain (time passes, nothing sent) and wait for a gain-1 phase.
    for (int k = 0; k < 1000 && (s.gain(i) != 1.0 || s.backlog_ns(i, t) > 10'000); ++k)
        s.pick(t += 10 * kMs, 1);
    REQUIRE(s.phase(i) == Scheduler::Phase::ProbeBw);
    REQUIRE(s.gain(i) == 1.0);
    return t + 10'000;  // past the last 1-byte pick
}

}  // namespace onebox::proto::test
