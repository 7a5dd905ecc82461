// test_ratelimit.cpp — the per-source handshake rate limit, on a fake clock.
#include <doctest.h>

#include <cstdint>

#include "proto/ratelimit.h"

using onebox::proto::SourceRateLimit;

namespace {
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kStart = 1'000'000 * kMs;  // some time after boot
constexpr uint32_t kA = 0xC0000201;           // 192.0.2.1
constexpr uint32_t kB = 0xC0000202;
}  // namespace

TEST_CASE("rate limit: a burst, then the rate, per address") {
    SourceRateLimit rl;  // 20 a second, burst 20
    struct Step { uint64_t at_ms; uint32_t addr; unsigned tries; unsigned allowed; };
    const Step steps[] = {
        {0, kA, 25, 20},     // a new address has a full bucket: 20 of 25 at once
        {0, kB, 5, 5},       // another address has its own
        {49, kA, 1, 0},      // 49 ms refills 0.98 of a token: not yet
        {50, kA, 2, 1},      // 50 ms: exactly one
        {550, kA, 20, 10},   // 500 ms: 10 more
        {10550, kA, 30, 20}, // a long pause refills the burst, no more
    };
    for (const Step& s : steps) {
        unsigned got = 0;
        for (unsigned i = 0; i < s.tries; ++i) got += rl.allow(s.addr, kStart + s.at_ms * kMs);
        CAPTURE(s.at_ms);
        CHECK(got == s.allowed);
    }
}

TEST_CASE("rate limit: a steady sender gets the rate and no more") {
    SourceRateLimit rl;
    unsigned got = 0;
    for (uint64_t t = 0; t <= 10'000; ++t) got += rl.allow(kA, kStart + t * kMs);  // 1000 a second for 10 s
    CHECK(got == 20 + 10 * 20);  // the burst, then 20 a second
}

TEST_CASE("rate limit: a flood from many addresses stays in the table and limits as a group") {
    SourceRateLimit rl;
    // One address per try, far more addresses than slots, all within 100 ms:
    // whatever is allowed is bounded by the table's buckets (each slot's burst
    // and what 100 ms refill), not by the flood.
    unsigned got = 0;
    const unsigned n = 200'000;
    for (unsigned i = 0; i < n; ++i) got += rl.allow(0x0A000000 + i, kStart + uint64_t(i) * 100 * kMs / n);
    CHECK(got <= SourceRateLimit::kSlots * (20 + 2));
    CHECK(got < n / 2);
    // A real client at a fresh address a second later still gets in.
    CHECK(rl.allow(kA, kStart + 1100 * kMs));
}
