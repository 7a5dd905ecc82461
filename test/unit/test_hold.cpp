// test_hold.cpp — the worker's hold list (dataplane/hold.h): order, expiry
// and the early drop that keeps a failover hold from becoming a standing queue.
#include <doctest.h>

#include <memory>
#include <vector>

#include "dataplane/hold.h"

using onebox::dataplane::Held;
using onebox::dataplane::HoldDrop;
using onebox::dataplane::HoldKind;
using onebox::dataplane::HoldList;
using onebox::dataplane::Session;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint32_t kBig = 1400;   // a bulk flow's data packet
constexpr uint32_t kSmall = 84;   // a ping

struct Dropped {
    uint32_t idx;
    HoldDrop why;
};

// Runs one release pass at `now`; `room` says which buffers the links take.
template <class Room>
std::vector<Dropped> pass(HoldList& h, uint64_t now, Room room, std::vector<uint32_t>* sent = nullptr) {
    std::vector<Dropped> dropped;
    h.release(
        now,
        [&](const Held& x) {
            if (!room(x)) return false;
            if (sent) sent->push_back(x.idx);
            return true;
        },
        [&](const Held& x, HoldDrop why) { dropped.push_back({x.idx, why}); });
    return dropped;
}

const auto kNoRoom = [](const Held&) { return false; };

}  // namespace

TEST_CASE("hold: oldest first, and a session whose oldest finds no room keeps the rest of it") {
    auto a = std::make_unique<Session>(), b = std::make_unique<Session>();
    HoldList h;
    REQUIRE(h.add(a.get(), 1, kBig, 0, HoldList::kFailoverNs));
    REQUIRE(h.add(b.get(), 2, kBig, 0, HoldList::kFailoverNs));
    REQUIRE(h.add(a.get(), 3, kBig, 0, HoldList::kFailoverNs));
    REQUIRE(h.add(b.get(), 4, kBig, 0, HoldList::kFailoverNs));
    CHECK(a->held == 2);
    std::vector<uint32_t> asked, sent;
    // The links take b's packets, not a's: a's second is not even offered.
    auto dropped = pass(h, 1 * kMs, [&](const Held& x) { asked.push_back(x.idx); return x.s != a.get(); }, &sent);
    CHECK(dropped.empty());
    CHECK(asked == std::vector<uint32_t>{1, 2, 4});
    CHECK(sent == std::vector<uint32_t>{2, 4});
    CHECK(h.n == 2);
    CHECK(a->held == 2);
    CHECK(b->held == 0);
    sent.clear();
    pass(h, 2 * kMs, [](const Held&) { return true; }, &sent);
    CHECK(sent == std::vector<uint32_t>{1, 3});
    CHECK(h.n == 0);
    CHECK(a->held == 0);
}

TEST_CASE("hold: the list is bounded, and a session going away takes its packets out") {
    auto a = std::make_unique<Session>(), b = std::make_unique<Session>();
    HoldList h;
    for (uint32_t k = 0; k < HoldList::kMax; ++k) REQUIRE(h.add(k % 2 ? a.get() : b.get(), k, kBig, 0, HoldList::kFailoverNs));
    CHECK(h.full());
    CHECK_FALSE(h.add(a.get(), 9999, kBig, 0, HoldList::kFailoverNs));
    std::vector<uint32_t> put;
    h.remove_session(a.get(), [&](uint32_t idx) { put.push_back(idx); });
    CHECK(put.size() == HoldList::kMax / 2);
    CHECK(h.n == HoldList::kMax / 2);
    for (unsigned k = 0; k < h.n; ++k) CHECK(h.list[k].s == b.get());
}

TEST_CASE("hold: a packet past its limit is dropped, even behind a blocked one of its session") {
    auto a = std::make_unique<Session>();
    HoldList h;
    h.add(a.get(), 1, kSmall, 0, HoldList::kFailoverNs);           // a ping: never dropped early
    h.add(a.get(), 2, kBig, 10 * kMs, 10 * kMs, HoldList::kFresh, HoldKind::Queue);
    CHECK(pass(h, 20 * kMs, kNoRoom).empty());                     // at its limit: stays
    auto d = pass(h, 20 * kMs + 1, kNoRoom);
    REQUIRE(d.size() == 1);
    CHECK(d[0].idx == 2);
    CHECK(d[0].why == HoldDrop::Expired);
    CHECK(pass(h, 100 * kMs, kNoRoom).empty());                    // the ping, 100 ms in: stays
    d = pass(h, HoldList::kFailoverNs + 1, kNoRoom);
    REQUIRE(d.size() == 1);
    CHECK(d[0].idx == 1);
    CHECK(d[0].why == HoldDrop::Expired);
    CHECK(h.n == 0);
    CHECK(a->held == 0);
}

TEST_CASE("hold: which oldest held packet is dropped early") {
    struct Row {
        const char* what;
        HoldKind kind;
        uint8_t failed;
        uint32_t len;
        uint64_t waited_ms;
        uint64_t last_signal_ms_ago;  // 0: never
        bool dropped;
    };
    const Row rows[] = {
        {"a bulk packet held 50 ms", HoldKind::Failover, HoldList::kFresh, kBig, 50, 0, true},
        {"held 49 ms", HoldKind::Failover, HoldList::kFresh, kBig, 49, 0, false},
        {"a signal 100 ms ago", HoldKind::Failover, HoldList::kFresh, kBig, 80, 100, true},
        {"a signal 99 ms ago", HoldKind::Failover, HoldList::kFresh, kBig, 80, 99, false},
        {"a ping", HoldKind::Failover, HoldList::kFresh, kSmall, 200, 0, false},
        {"the largest small packet", HoldKind::Failover, HoldList::kFresh, 256 - 32, 200, 0, false},
        {"the smallest not small", HoldKind::Failover, HoldList::kFresh, 256 - 31, 200, 0, true},
        {"a resend", HoldKind::Failover, 0, kBig, 200, 0, false},
        {"a queue_hold packet", HoldKind::Queue, HoldList::kFresh, kBig, 80, 0, false},
    };
    for (const Row& r : rows) {
        CAPTURE(r.what);
        auto s = std::make_unique<Session>();
        const uint64_t now = 1000 * kMs;
        if (r.last_signal_ms_ago) s->hold_signal_ns = now - r.last_signal_ms_ago * kMs;
        HoldList h;
        h.add(s.get(), 7, r.len, now - r.waited_ms * kMs, 100 * kMs + HoldList::kFailoverNs, r.failed, r.kind);
        auto d = pass(h, now, kNoRoom);
        CHECK(d.size() == (r.dropped ? 1u : 0u));
        if (r.dropped) CHECK(d[0].why == HoldDrop::Signal);
    }
}

TEST_CASE("hold: a standing failover hold loses one packet per 100 ms, the oldest, from 50 ms on") {
    auto a = std::make_unique<Session>(), b = std::make_unique<Session>(), c = std::make_unique<Session>();
    HoldList h;
    std::vector<uint64_t> a_at, b_at;
    std::vector<uint32_t> a_idx;
    // Each millisecond for 240 ms a data packet of a, of b and of c; the
    // links take c's, not a's or b's: a's and b's holds stand, each loses
    // its own, c's never does. b's started 20 ms later.
    for (uint64_t t = 0; t < 240; ++t) {
        h.add(a.get(), uint32_t(t), kBig, t * kMs, HoldList::kFailoverNs);
        if (t >= 20) h.add(b.get(), uint32_t(1000 + t), kBig, t * kMs, HoldList::kFailoverNs);
        h.add(c.get(), uint32_t(2000 + t), kBig, t * kMs, HoldList::kFailoverNs);
        for (const Dropped& d : pass(h, t * kMs, [&](const Held& x) { return x.s == c.get(); })) {
            CHECK(d.why == HoldDrop::Signal);
            CHECK(d.idx < 2000);
            if (d.idx < 1000) a_at.push_back(t), a_idx.push_back(d.idx);
            else b_at.push_back(t);
        }
    }
    CHECK(a_at == std::vector<uint64_t>{50, 150});
    CHECK(a_idx == std::vector<uint32_t>{0, 1});  // the oldest of a's each time
    CHECK(b_at == std::vector<uint64_t>{70, 170});
    CHECK(a->held == 240 - 2);
    CHECK(b->held == 220 - 2);
    CHECK(c->held == 0);
}

TEST_CASE("hold: nothing is dropped early while a resend or a ping is a session's oldest") {
    auto a = std::make_unique<Session>();
    HoldList h;
    h.add(a.get(), 1, kBig, 0, HoldList::kFailoverNs, 0);          // a stall's resend (failed link 0)
    h.add(a.get(), 2, kSmall, 0, HoldList::kFailoverNs);           // a ping
    h.add(a.get(), 3, kBig, 0, HoldList::kFailoverNs);             // data
    h.add(a.get(), 4, kBig, 0, HoldList::kFailoverNs);
    CHECK(pass(h, 200 * kMs, kNoRoom).empty());
    // The resend goes; the ping is the oldest now: still nothing.
    CHECK(pass(h, 201 * kMs, [](const Held& x) { return x.idx == 1; }).empty());
    // The ping goes; at the next pass the oldest is data that waited
    // 203 ms: dropped early.
    CHECK(pass(h, 202 * kMs, [](const Held& x) { return x.idx == 2; }).empty());
    auto d = pass(h, 203 * kMs, kNoRoom);
    REQUIRE(d.size() == 1);
    CHECK(d[0].idx == 3);
    CHECK(d[0].why == HoldDrop::Signal);
    CHECK(a->held == 1);
}
