// test_reorder.cpp — reorder buffer, table-driven with a fake clock.
#include <doctest.h>

#include <memory>
#include <vector>

#include "proto/reorder.h"

using namespace onebox::proto;

namespace {

using R = ReorderBuffer::Insert;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kCap = kReorderCapacity;
constexpr uint64_t k2_63 = uint64_t(1) << 63;

// Handles are derived from the seq so we can check they travel with it.
uint32_t handle_of(uint64_t seq) { return uint32_t(seq * 2654435761u) ^ 0x5a5a5a5au; }

enum class Op : uint8_t { Insert, Expire, Drain };

struct Step {
    Op op;
    uint64_t seq;                   // Insert only
    uint64_t now;                   // Insert and Expire
    R expect;                       // Insert only
    std::vector<uint64_t> released; // what must come out, in order
};

Step ins(uint64_t seq, uint64_t now, R expect, std::vector<uint64_t> released = {}) {
    return {Op::Insert, seq, now, expect, std::move(released)};
}
Step expire(uint64_t now, std::vector<uint64_t> released = {}) {
    return {Op::Expire, 0, now, R::Late, std::move(released)};
}
Step drain(std::vector<uint64_t> released = {}) {
    return {Op::Drain, 0, 0, R::Late, std::move(released)};
}

struct Case {
    const char* name;
    uint64_t start_next;
    std::vector<Step> steps;
};

std::vector<uint64_t> seqs_of(const ReorderEntry* out, size_t n) {
    std::vector<uint64_t> v;
    for (size_t i = 0; i < n; ++i) {
        CHECK(out[i].handle == handle_of(out[i].seq));
        v.push_back(out[i].seq);
    }
    return v;
}

// ReorderBuffer is ~50 KiB: keep it off the stack.
std::unique_ptr<ReorderBuffer> make_buffer(uint64_t start_next = 0) {
    auto rb = std::make_unique<ReorderBuffer>();
    rb->next = start_next;
    return rb;
}

void run(const Case& c) {
    CAPTURE(c.name);
    auto rb = make_buffer(c.start_next);
    std::vector<ReorderEntry> out(kCap + 1);
    for (size_t i = 0; i < c.steps.size(); ++i) {
        const Step& s = c.steps[i];
        CAPTURE(i);
        size_t n = 0;
        switch (s.op) {
            case Op::Insert: {
                CAPTURE(s.seq);
                CHECK(rb->insert(s.seq, handle_of(s.seq), s.now, out.data(), &n) == s.expect);
                break;
            }
            case Op::Expire: n = rb->expire(s.now, out.data()); break;
            case Op::Drain: n = rb->drain(out.data()); break;
        }
        CHECK(seqs_of(out.data(), n) == s.released);
    }
}

}  // namespace

TEST_CASE("reorder: table") {
    const Case cases[] = {
        {"in order from 0", 0,
         {ins(0, 0, R::Released, {0}), ins(1, 1, R::Released, {1}),
          ins(2, 2, R::Released, {2})}},
        {"reordered", 0,
         {ins(0, 0, R::Released, {0}), ins(2, 1, R::Held), ins(3, 2, R::Held),
          ins(1, 3, R::Released, {1, 2, 3}), ins(4, 4, R::Released, {4})}},
        {"first packet is not 0: held until 0 arrives", 0,
         {ins(1, 0, R::Held), ins(0, 1, R::Released, {0, 1})}},
        {"duplicate and late", 0,
         {ins(0, 0, R::Released, {0}), ins(2, 1, R::Held), ins(2, 2, R::Late),
          ins(0, 3, R::Late), ins(1, 4, R::Released, {1, 2}), ins(1, 5, R::Late),
          ins(2, 6, R::Late)}},
        {"gap then timeout", 0,
         {ins(0, 0, R::Released, {0}), ins(2, 10 * kMs, R::Held), ins(3, 20 * kMs, R::Held),
          expire(59 * kMs), expire(60 * kMs, {2, 3}), ins(1, 61 * kMs, R::Late),
          ins(4, 62 * kMs, R::Released, {4})}},
        {"timeout is measured from the earliest-arrived held packet", 0,
         // 5 waits since t=0, so at 50 ms both gaps (0..2 and 4) are skipped
         // even though 3 has only waited 40 ms.
         {ins(5, 0, R::Held), ins(3, 10 * kMs, R::Held), expire(49 * kMs),
          expire(50 * kMs, {3, 5})}},
        {"later gap gets its own timer", 0,
         {ins(2, 0, R::Held), ins(4, 40 * kMs, R::Held), expire(50 * kMs, {2}),
          expire(89 * kMs), ins(3, 89 * kMs, R::Released, {3, 4})}},
        {"later gap expires on its own", 0,
         {ins(2, 0, R::Held), ins(4, 40 * kMs, R::Held), expire(50 * kMs, {2}),
          expire(90 * kMs, {4}), ins(3, 91 * kMs, R::Late)}},
        {"overflow gives up on the oldest gap just enough", 0,
         {ins(0, 0, R::Released, {0}), ins(5, 1, R::Held), ins(700, 2, R::Held),
          ins(1025, 3, R::Held),           // gives up on 1 only: next -> 2
          ins(2, 4, R::Released, {2}),     // 2 was not given up on
          ins(1, 5, R::Late), ins(3, 6, R::Released, {3}),
          ins(1030, 7, R::Held, {5}),      // gives up on 4 and 6: next -> 7
          ins(6, 8, R::Late), drain({700, 1025, 1030})}},
        {"overflow releases the consecutive run after the skipped gap", 0,
         {ins(2, 0, R::Held), ins(3, 0, R::Held), ins(1025, 1, R::Held, {2, 3})}},
        {"overflow releases held packets below the new window", 0,
         {ins(1, 0, R::Held), ins(1025, 1, R::Held, {1}), ins(2, 2, R::Released, {2})}},
        {"huge jump", 0,
         {ins(0, 0, R::Released, {0}), ins(3, 1, R::Held), ins(7, 2, R::Held),
          ins(k2_63, 3, R::Held, {3, 7}),  // next -> 2^63 - 1023
          ins(k2_63 - 1024, 4, R::Late), ins(k2_63 - 1023, 5, R::Released, {k2_63 - 1023}),
          ins(7, 6, R::Late), drain({k2_63})}},
        {"large sequence numbers near 2^63", k2_63 - 2,
         {ins(k2_63 - 2, 0, R::Released, {k2_63 - 2}), ins(k2_63, 1, R::Held),
          ins(k2_63 + 1, 2, R::Held), ins(k2_63 - 1, 3, R::Released, {k2_63 - 1, k2_63, k2_63 + 1}),
          ins(k2_63 - 3, 4, R::Late), ins(k2_63 + 3, 5, R::Held),
          expire(50 * kMs + 5, {k2_63 + 3})}},
        {"near UINT64_MAX", UINT64_MAX - 10,
         {ins(UINT64_MAX - 8, 0, R::Held), ins(UINT64_MAX - 1, 1, R::Held),
          ins(UINT64_MAX - 10, 2, R::Released, {UINT64_MAX - 10}),
          expire(50 * kMs, {UINT64_MAX - 8}), expire(50 * kMs + 1, {UINT64_MAX - 1}),
          ins(UINT64_MAX - 2, 3, R::Late)}},
        {"UINT64_MAX is never accepted, so next cannot wrap", UINT64_MAX - 2,
         {ins(UINT64_MAX, 0, R::Late), ins(UINT64_MAX - 1, 1, R::Held),
          ins(UINT64_MAX - 2, 2, R::Released, {UINT64_MAX - 2, UINT64_MAX - 1}),
          ins(UINT64_MAX, 3, R::Late), ins(0, 4, R::Late), drain()}},
        {"drain releases in order and resets to 0", 0,
         {ins(0, 0, R::Released, {0}), ins(3, 1, R::Held), ins(7, 2, R::Held),
          ins(5, 3, R::Held), drain({3, 5, 7}), drain(), ins(0, 4, R::Released, {0})}},
        {"ring wrap: held packet in the start word below next's bit", 1000,
         // next is slot 1000 (word 15, bit 40); next+1023 is slot 999 (same
         // word, bit 39): the bitmap search must come all the way round.
         {ins(1000 + 1023, 0, R::Held), expire(50 * kMs, {2023})}},
        {"ring wrap: held packet in the words after the end of the ring", 1000,
         {ins(1000 + 30, 0, R::Held), ins(1000 + 500, 1, R::Held),
          expire(50 * kMs + 1, {1030, 1500})}},
    };
    for (const auto& c : cases) run(c);
}

TEST_CASE("reorder: stats") {
    auto rb = make_buffer();
    std::vector<ReorderEntry> out(kCap + 1);
    size_t n = 0;
    rb->insert(0, 0, 0, out.data(), &n);
    rb->insert(0, 0, 0, out.data(), &n);  // late
    rb->insert(2, 0, 0, out.data(), &n);
    rb->insert(2, 0, 0, out.data(), &n);  // duplicate
    CHECK(rb->held == 1);
    CHECK(rb->expire(50 * kMs, out.data()) == 1);
    rb->insert(4, 0, 50 * kMs, out.data(), &n);
    rb->insert(4 + kCap, 0, 50 * kMs, out.data(), &n);  // overflow
    CHECK(rb->late == 1);
    CHECK(rb->duplicates == 1);
    CHECK(rb->timeouts == 1);
    CHECK(rb->overflows == 1);
}

TEST_CASE("reorder: next_deadline and oldest_arrival follow the earliest-arrived packet") {
    auto rb = make_buffer();
    std::vector<ReorderEntry> out(kCap + 1);
    size_t n = 0;
    CHECK(rb->next_deadline() == UINT64_MAX);
    rb->insert(5, 5, 100, out.data(), &n);
    CHECK(rb->oldest_arrival == 100);
    CHECK(rb->next_deadline() == 100 + rb->gap_timeout_ns);
    rb->insert(3, 3, 200, out.data(), &n);  // lower seq, later: 5 is still the oldest
    CHECK(rb->oldest_arrival == 100);
    rb->insert(9, 9, 300, out.data(), &n);
    rb->insert(0, 0, 400, out.data(), &n);  // releases 0 only
    CHECK(n == 1);
    CHECK(rb->oldest_arrival == 100);
    for (uint64_t s : {1, 2, 4}) rb->insert(s, uint32_t(s), 500, out.data(), &n);
    CHECK(n == 2);  // inserting 4 released 4 and 5
    CHECK(rb->held == 1);
    CHECK(rb->oldest_arrival == 300);  // only 9 is left
    CHECK(rb->next_deadline() == 300 + rb->gap_timeout_ns);
    rb->drain(out.data());
    CHECK(rb->next_deadline() == UINT64_MAX);
    CHECK(rb->oldest_arrival == 0);

    rb->gap_timeout_ns = UINT64_MAX;  // saturates instead of wrapping
    rb->insert(2, 2, 1, out.data(), &n);
    CHECK(rb->next_deadline() == UINT64_MAX);
}

TEST_CASE("reorder: a full buffer overflows by exactly one and keeps order") {
    auto rb = make_buffer();
    std::vector<ReorderEntry> out(kCap + 1);
    size_t n = 0;
    // 1 .. kCap-1 fit (0 is missing); kCap does not.
    for (uint64_t s = 1; s < kCap; ++s) REQUIRE(rb->insert(s, handle_of(s), s, out.data(), &n) == R::Held);
    CHECK(rb->held == kCap - 1);
    CHECK(rb->overflows == 0);
    CHECK(rb->insert(kCap, handle_of(kCap), kCap, out.data(), &n) == R::Released);
    REQUIRE(n == kCap);  // 1 .. kCap, in one call
    for (size_t i = 0; i < n; ++i) {
        CHECK(out[i].seq == i + 1);
        CHECK(out[i].handle == handle_of(i + 1));
    }
    CHECK(rb->overflows == 1);
    CHECK(rb->held == 0);
    CHECK(rb->next == kCap + 1);
}

TEST_CASE("reorder: every packet is held at most gap_timeout (oldest-first expiry)") {
    // A late filler arriving every 40 ms must not keep re-arming the timer of
    // packets further ahead.
    auto rb = make_buffer();
    std::vector<ReorderEntry> out(kCap + 1);
    size_t n = 0;
    rb->insert(100, 100, 0, out.data(), &n);
    uint64_t now = 0;
    for (uint64_t s = 99; s >= 90; --s) {
        now += 40 * kMs;
        rb->insert(s, uint32_t(s), now, out.data(), &n);
        rb->expire(now, out.data());
        if (rb->next > 100) break;
    }
    CHECK(rb->next > 100);
    CHECK(now <= 80 * kMs);
}
