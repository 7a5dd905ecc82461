// InboundQueue: the queue on the way to us, from the peer's probes' one-way
// delays, whatever the offset between the two clocks.
#include <doctest/doctest.h>

#include <cstdint>

#include "proto/bond.h"
#include "proto/feedback.h"
#include "proto/inbound_queue.h"

using namespace onebox::proto;

namespace {
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;
}  // namespace

TEST_CASE("inbound queue: the excess one-way delay over its 10 s minimum, offset cancelled") {
    // The peer's clock is ahead of ours, behind, or equal: the same answer.
    const int64_t offsets[] = {0, int64_t(5000 * kSec), -int64_t(3 * kSec)};
    for (int64_t off : offsets) {
        CAPTURE(off);
        InboundQueue q;
        CHECK(!q.known());
        uint64_t t = 100 * kSec;
        // 10 ms one way, no queue, a probe every 100 ms.
        for (int k = 0; k < 20; ++k, t += 100 * kMs) q.on_probe(t + 10 * kMs, uint64_t(int64_t(t) + off));
        CHECK(q.known());
        CHECK(q.queue_ns() == 0);
        CHECK(q.latest_ns() == 0);
        // 30 ms of queue from now on: the latest at once, the smoothed value
        // within a few samples (1/8 each).
        q.on_probe(t + 40 * kMs, uint64_t(int64_t(t) + off));
        t += 100 * kMs;
        CHECK(q.latest_ns() == 30 * kMs);
        CHECK(q.queue_ns() == 30 * kMs / 8);
        CHECK(q.var_ns() > 0);
        for (int k = 0; k < 40; ++k, t += 100 * kMs) q.on_probe(t + 40 * kMs, uint64_t(int64_t(t) + off));
        CHECK(q.queue_ns() > 29 * kMs);
        CHECK(q.queue_ns() <= 30 * kMs);
    }
}

TEST_CASE("inbound queue: a longer path is the new base once the old minimum leaves the window") {
    InboundQueue q;
    uint64_t t = kSec;
    for (int k = 0; k < 10; ++k, t += 100 * kMs) q.on_probe(t + 10 * kMs, t);
    // The path now takes 25 ms: read as 15 ms of queue ...
    q.on_probe(t + 25 * kMs, t);
    CHECK(q.latest_ns() == 15 * kMs);
    // ... until the 10 ms samples are over 10 s old.
    for (int k = 0; k < 120; ++k, t += 100 * kMs) q.on_probe(t + 25 * kMs, t);
    CHECK(q.latest_ns() == 0);
}

TEST_CASE("bond: the reorder wait is the inbound queue, not the round trip's") {
    // Both links 10 ms each way. The peer's downstream fills link 0 with 60
    // ms of queue (our probes' RTTs show it), while the peer's packets come
    // to us unqueued: a gap waits as for two equal, empty links.
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    uint64_t t = kSec;
    for (unsigned i = 0; i < 2; ++i) {
        b.est[i].on_rtt(t, 20 * kMs);           // base
        b.est[i].on_rtt(t, 20 * kMs);
    }
    for (int k = 0; k < 30; ++k) b.est[0].on_rtt(t, 80 * kMs);  // 60 ms queued on the round trip
    uint64_t rtt_based = b.gap_timeout_ns();
    CHECK(rtt_based >= 60 * kMs);
    // The peer's probes arriving on both links, 10 ms each way, no queue.
    for (int k = 0; k < 20; ++k, t += 100 * kMs) {
        for (unsigned i = 0; i < 2; ++i) {
            uint8_t buf[kProbeSize];
            Probe p{uint8_t(i), ProbeFlags::Probe, uint32_t(k), t};
            REQUIRE(encode_probe(p, buf, sizeof buf) == kProbeSize);
            REQUIRE(b.on_probe(i, t + 12 * kMs, buf, sizeof buf, nullptr, t + 10 * kMs) == Bond::ProbeAction::SendEcho);
        }
    }
    CHECK(b.inbound[0].known());
    CHECK(b.inbound[0].queue_ns() == 0);
    CHECK(b.gap_timeout_ns() < 20 * kMs);
    CHECK(b.gap_timeout_ns() < rtt_based);
}
