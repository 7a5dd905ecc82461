// test_replay.cpp — anti-replay window, table-driven plus a randomised model check.
#include <doctest.h>

#include <random>
#include <set>
#include <vector>

#include "proto/replay.h"

using namespace onebox::proto;

namespace {

using V = ReplayVerdict;
constexpr uint64_t kMax = UINT64_MAX;
constexpr uint64_t k2_63 = uint64_t(1) << 63;
constexpr uint64_t W = kReplayWindow;

const char* name(V v) {
    switch (v) {
        case V::Fresh: return "Fresh";
        case V::Duplicate: return "Duplicate";
        case V::TooOld: return "TooOld";
    }
    return "?";
}

struct Step { uint64_t seq; V expect; };
struct Case { const char* name; std::vector<Step> steps; };

// Each step: check() must give `expect`; Fresh packets are then committed,
// as the data plane does after the AEAD verified.
void run(const Case& c) {
    CAPTURE(c.name);
    ReplayWindow w;
    for (size_t i = 0; i < c.steps.size(); ++i) {
        const Step& s = c.steps[i];
        CAPTURE(i);
        CAPTURE(s.seq);
        const V got = w.check(s.seq);
        CHECK_MESSAGE(got == s.expect, "got ", name(got), " expected ", name(s.expect));
        if (got == V::Fresh) w.commit(s.seq);
    }
}

}  // namespace

TEST_CASE("replay: table") {
    const Case cases[] = {
        {"in order from 0", {{0, V::Fresh}, {1, V::Fresh}, {2, V::Fresh}, {3, V::Fresh}}},
        {"reordered",
         {{0, V::Fresh}, {5, V::Fresh}, {3, V::Fresh}, {4, V::Fresh}, {1, V::Fresh},
          {2, V::Fresh}, {3, V::Duplicate}, {6, V::Fresh}}},
        {"duplicated",
         {{0, V::Fresh}, {0, V::Duplicate}, {1, V::Fresh}, {1, V::Duplicate}, {0, V::Duplicate},
          {2, V::Fresh}, {2, V::Duplicate}}},
        {"seq 0 is valid and only once", {{0, V::Fresh}, {0, V::Duplicate}}},
        {"first packet need not be 0",
         {{100, V::Fresh}, {0, V::Fresh}, {99, V::Fresh}, {100, V::Duplicate}}},
        {"window edge exactly kReplayWindow behind",
         {{5000, V::Fresh},
          {5000 - W, V::TooOld},
          {5000 - W + 1, V::Fresh},
          {5000 - W + 1, V::Duplicate},
          {5000 - W - 1, V::TooOld},
          {4999, V::Fresh}}},
        {"too old after the window slides",
         {{0, V::Fresh}, {1, V::Fresh}, {W, V::Fresh}, {0, V::TooOld}, {1, V::Duplicate},
          {W + 1, V::Fresh}, {1, V::TooOld}, {2, V::Fresh}}},
        {"big jump to 2^63",
         {{0, V::Fresh}, {k2_63, V::Fresh}, {0, V::TooOld}, {k2_63 - 1, V::Fresh},
          {k2_63, V::Duplicate}, {k2_63 - W + 1, V::Fresh}, {k2_63 - W, V::TooOld},
          {k2_63 + 1, V::Fresh}}},
        {"near UINT64_MAX, no wraparound",
         {{kMax - 5, V::Fresh}, {kMax, V::Fresh}, {kMax - 1, V::Fresh}, {kMax, V::Duplicate},
          {kMax - 5, V::Duplicate}, {kMax - 3, V::Fresh}, {0, V::TooOld}, {5, V::TooOld},
          {kMax - W + 1, V::Fresh}, {kMax - W, V::TooOld}}},
        {"jump from 0 to UINT64_MAX",
         {{0, V::Fresh}, {kMax, V::Fresh}, {0, V::TooOld}, {kMax - 1, V::Fresh}}},
        {"slide by exactly one ring (65 words)",
         {{10, V::Fresh}, {10 + 64 * 65, V::Fresh}, {10, V::TooOld},
          {10 + 64 * 65 - W + 1, V::Fresh}, {10 + 64 * 64, V::Fresh}}},
        {"slide by 64 words keeps the in-window bits",
         {{0, V::Fresh}, {70, V::Fresh}, {71, V::Fresh}, {70 + W - 1, V::Fresh},
          {70, V::Duplicate}, {71, V::Duplicate}, {72, V::Fresh}, {70 + W, V::Fresh},
          {70, V::TooOld}, {71, V::Duplicate}}},
    };
    for (const auto& c : cases) run(c);
}

TEST_CASE("replay: check() alone never changes the window") {
    ReplayWindow w;
    CHECK(w.check(7) == V::Fresh);
    CHECK(w.check(7) == V::Fresh);  // not committed: a forged packet moves nothing
    CHECK_FALSE(w.any);
    w.commit(7);
    CHECK(w.check(7) == V::Duplicate);
    CHECK(w.check(7 + 100000) == V::Fresh);
    CHECK(w.top == 7);
}

TEST_CASE("replay: every seq in a full window is remembered") {
    ReplayWindow w;
    for (uint64_t s = 0; s < 3 * W; s += 2) {
        REQUIRE(w.check(s) == V::Fresh);
        w.commit(s);
    }
    const uint64_t top = w.top;
    for (uint64_t s = top - W + 1; s <= top; ++s) {
        CAPTURE(s);
        CHECK(w.check(s) == (s % 2 == 0 ? V::Duplicate : V::Fresh));
    }
    CHECK(w.check(top - W) == V::TooOld);
}

// Reference model: a set of committed seqs and the highest one.
// missing() against the model: every bit of the block says whether its
// number was committed.
static void check_missing(const ReplayWindow& w, const std::set<uint64_t>& seen, uint64_t top) {
    uint64_t first = 0, out[16];
    bool some = w.missing(&first, out, 16);
    REQUIRE(first % 64 == 0);
    REQUIRE(first <= top);
    REQUIRE(top - first < 16 * 64);
    bool any_missing = false;
    for (unsigned k = 0; k < 16 * 64; ++k) {
        uint64_t seq = first + k;
        bool bit = some && (out[k / 64] >> (k % 64) & 1u);
        bool expect = seq <= top && !seen.count(seq);
        CAPTURE(seq);
        REQUIRE(bit == expect);
        any_missing |= expect;
    }
    REQUIRE(some == any_missing);
}

TEST_CASE("replay: randomised comparison with a std::set model") {
    for (uint64_t base : {uint64_t(0), k2_63, kMax - 200000}) {
        CAPTURE(base);
        std::mt19937_64 rng(base ^ 0x5eed);
        ReplayWindow w;
        std::set<uint64_t> seen;
        uint64_t top = base;
        for (int i = 0; i < 100000; ++i) {
            // Mostly near the top, sometimes far behind, sometimes a jump.
            const uint64_t r = rng() % 100;
            uint64_t seq;
            if (r < 70) seq = top + rng() % 64;
            else if (r < 95) seq = top - std::min<uint64_t>(top - base, rng() % (W + 200));
            else seq = top + rng() % (3 * W);
            if (seq > base + 190000) continue;  // stay clear of UINT64_MAX for the last base

            V expect;
            if (seen.empty() || seq > top) expect = V::Fresh;
            else if (top - seq >= W) expect = V::TooOld;
            else expect = seen.count(seq) ? V::Duplicate : V::Fresh;
            CAPTURE(seq);
            REQUIRE(w.check(seq) == expect);
            if (expect == V::Fresh) {
                w.commit(seq);
                seen.insert(seq);
                top = std::max(top, seq);
            }
            if (i % 97 == 0 && !seen.empty()) check_missing(w, seen, top);
        }
    }
}

TEST_CASE("replay: missing() reports the gaps below top, none above it") {
    ReplayWindow w;
    uint64_t first = 7, out[16];
    CHECK_FALSE(w.missing(&first, out, 16));  // nothing committed
    for (uint64_t s = 0; s <= 100; ++s)
        if (s != 3 && s != 64 && s != 99) w.commit(s);
    REQUIRE(w.missing(&first, out, 16));
    CHECK(first == 0);  // top in word 1: the block starts at 0
    CHECK(out[0] == uint64_t(1) << 3);
    CHECK(out[1] == ((uint64_t(1) << 0) | (uint64_t(1) << (99 - 64))));  // not 101..127
    for (unsigned k = 2; k < 16; ++k) CHECK(out[k] == 0);
    w.commit(3);
    w.commit(64);
    w.commit(99);
    CHECK_FALSE(w.missing(&first, out, 16));
    // top at 64 x 20 + 5: words 5..20, everything after 100 missing up to top.
    w.commit(64 * 20 + 5);
    REQUIRE(w.missing(&first, out, 16));
    CHECK(first == 64 * 5);
    CHECK(out[0] == ~uint64_t(0));
    CHECK(out[15] == (uint64_t(1) << 5) - 1);  // 1280..1284; 1285 arrived
    CHECK_FALSE(w.missing(&first, out, 0));
    CHECK_FALSE(w.missing(&first, out, ReplayWindow::kWords));
}
