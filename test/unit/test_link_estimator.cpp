// test_link_estimator.cpp — LinkEstimator with a fake clock: first sample,
// steady rate, counter wrap, reordered feedback, zero intervals, RTT, loss,
// inflight, the windowed filters.
#include <doctest.h>

#include "proto/link_estimator.h"

using namespace onebox::proto;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;

// Sends `rate` bytes/s in 1000-byte packets and reports delivery of
// `deliver` of them (0..1) every 20 ms, for `dur` ns starting at t.
struct Driver {
    LinkEstimator e;
    uint64_t t = 0;
    uint64_t rx_bytes = 0;
    uint32_t rx_pkts = 0;
    double owed = 0;
    void run(uint64_t dur, uint64_t rate, double deliver = 1.0) {
        uint64_t end = t + dur;
        while (t < end) {
            uint64_t pk = rate * 20 / 1000 / 1000;  // packets per 20 ms
            for (uint64_t k = 0; k < pk; ++k) e.on_send(t, 1000);
            owed += double(pk) * deliver;
            while (owed >= 1) {
                owed -= 1;
                rx_bytes += 1000;
                ++rx_pkts;
            }
            t += 20 * kMs;
            e.on_feedback(t, rx_bytes, rx_pkts);
        }
    }
};

}  // namespace

TEST_SUITE_BEGIN("link estimator");

TEST_CASE("estimator: first feedback is a baseline only") {
    LinkEstimator e;
    CHECK_FALSE(e.has_rate());
    CHECK(e.rate_bytes_per_s() == 0);
    e.on_send(0, 1000);
    e.on_feedback(10 * kMs, 123456, 77);  // counters may start non-zero
    CHECK_FALSE(e.has_rate());
    CHECK(e.delivered_bytes() == 123456);
    CHECK(e.delivered_packets() == 77);
    e.on_feedback(30 * kMs, 123456 + 20'000, 97);  // 20 kB in 20 ms = 1 MB/s
    CHECK(e.has_rate());
    CHECK(e.rate_bytes_per_s() == 1'000'000);
}

TEST_CASE("estimator: rate intervals on the peer's clock ignore how the reports travelled") {
    // 20 kB delivered per 20 ms on the peer's clock (1 MB/s); the reports
    // arrive 5 ms early and 5 ms late in turn (queues on the way back).
    auto feed = [](LinkEstimator& e, bool peer_clock) {
        uint64_t bytes = 0;
        for (int k = 1; k <= 100; ++k) {
            uint64_t peer = 1000 * kSec + uint64_t(k) * 20 * kMs;  // another epoch
            uint64_t arrival = uint64_t(k) * 20 * kMs + (k % 2 ? 5 : 15) * kMs;
            e.on_send(arrival - 10 * kMs, 20'000);
            bytes += 20'000;
            e.on_feedback(arrival, bytes, uint32_t(k * 20), peer_clock ? peer : 0);
        }
    };
    LinkEstimator peer, arrival;
    feed(peer, true);
    feed(arrival, false);
    CHECK(peer.rate_bytes_per_s() == 1'000'000);
    CHECK(arrival.rate_bytes_per_s() > 1'300'000);  // what the max filter kept of a 10 ms interval

    // A report on the other clock, or with an earlier time: a new base, no sample.
    LinkEstimator e;
    e.on_feedback(10 * kMs, 0, 0, 5 * kSec);
    e.on_feedback(30 * kMs, 20'000, 20, 5 * kSec + 20 * kMs);
    CHECK(e.rate_bytes_per_s() == 1'000'000);
    e.on_feedback(40 * kMs, 40'000, 40, 0);                    // no time: rebase on ours
    e.on_feedback(41 * kMs, 60'000, 60, 5 * kSec);             // back to the peer's: rebase
    e.on_feedback(42 * kMs, 80'000, 80, 5 * kSec - kMs);       // earlier than the base: rebase
    CHECK(e.rate_bytes_per_s() == 1'000'000);                  // none of them was a sample
}

TEST_CASE("estimator: steady rate, windowed max, decay after the window") {
    Driver d;
    d.run(2 * kSec, 2'000'000);
    CHECK(d.e.rate_bytes_per_s() == 2'000'000);
    CHECK(d.e.loss_rate() == doctest::Approx(0.0));
    // The link slows to a quarter (the sender keeps offering its estimate):
    // the max holds for the window, then follows.
    d.run(500 * kMs, 2'000'000, 0.25);
    CHECK(d.e.rate_bytes_per_s() == 2'000'000);
    d.run(1500 * kMs, 2'000'000, 0.25);
    CHECK(d.e.rate_bytes_per_s() == doctest::Approx(500'000).epsilon(0.05));
    CHECK(d.e.loss_rate() == doctest::Approx(0.75).epsilon(0.05));
}

TEST_CASE("estimator: app-limited samples do not lower the estimate") {
    Driver d;
    d.run(1 * kSec, 2'000'000);
    d.run(3 * kSec, 200'000);  // offered 10% of the estimate: app-limited
    CHECK(d.e.rate_bytes_per_s() == 2'000'000);
    d.run(200 * kMs, 4'000'000);  // a higher sample always counts
    CHECK(d.e.rate_bytes_per_s() == 4'000'000);
}

TEST_CASE("estimator: packet counter wrap") {
    LinkEstimator e;
    e.on_feedback(0, 0, 0xfffffff0u);
    e.on_feedback(20 * kMs, 32'000, 0x00000010u);  // +32 across the wrap
    CHECK(e.delivered_packets() == uint64_t(0xfffffff0u) + 32);
    CHECK(e.ignored_feedback() == 0);
    CHECK(e.rate_bytes_per_s() == 1'600'000);
}

TEST_CASE("estimator: older (reordered) feedback is ignored") {
    LinkEstimator e;
    e.on_feedback(0, 1000, 1);
    e.on_feedback(20 * kMs, 21'000, 21);
    e.on_feedback(25 * kMs, 11'000, 11);   // older bytes
    e.on_feedback(26 * kMs, 22'000, 0);    // packets went backwards (older)
    CHECK(e.ignored_feedback() == 2);
    CHECK(e.delivered_bytes() == 21'000);
    CHECK(e.delivered_packets() == 21);
    CHECK(e.rate_bytes_per_s() == 1'000'000);
    e.on_feedback(40 * kMs, 41'000, 41);
    CHECK(e.rate_bytes_per_s() == 1'000'000);
}

TEST_CASE("estimator: zero and tiny intervals are merged, not divided by") {
    LinkEstimator e;
    e.on_feedback(0, 0, 0);
    e.on_feedback(0, 5'000, 5);          // same instant
    e.on_feedback(1 * kMs, 10'000, 10);  // < min_sample_ns
    CHECK_FALSE(e.has_rate());
    CHECK(e.delivered_bytes() == 10'000);
    e.on_feedback(10 * kMs, 10'000, 10);  // 10 kB over 10 ms
    CHECK(e.rate_bytes_per_s() == 1'000'000);
}

TEST_CASE("estimator: RTT smoothing and windowed min") {
    LinkEstimator e;
    CHECK(e.srtt_ns() == 0);
    e.on_rtt(0, 40 * kMs);
    CHECK(e.srtt_ns() == 40 * kMs);
    CHECK(e.rttvar_ns() == 20 * kMs);
    CHECK(e.min_rtt_ns() == 40 * kMs);
    CHECK(e.owd_ns() == 20 * kMs);
    e.on_rtt(100 * kMs, 80 * kMs);
    CHECK(e.srtt_ns() == 45 * kMs);  // 7/8 x 40 + 1/8 x 80
    CHECK(e.min_rtt_ns() == 40 * kMs);
    CHECK(e.latest_rtt_ns() == 80 * kMs);
    e.on_rtt(200 * kMs, 30 * kMs);
    CHECK(e.min_rtt_ns() == 30 * kMs);
    // After the 10 s window with only higher samples, the min follows them.
    for (uint64_t t = 1; t <= 12; ++t) e.on_rtt(t * kSec, 50 * kMs);
    CHECK(e.min_rtt_ns() == 50 * kMs);
}

TEST_CASE("estimator: inflight and loss") {
    LinkEstimator e;
    e.on_rtt(0, 20 * kMs);
    e.on_feedback(0, 0, 0);
    for (int k = 0; k < 10; ++k) e.on_send(1 * kMs, 1000);
    CHECK(e.inflight_bytes() == 10'000);
    e.on_feedback(20 * kMs, 6'000, 6);
    CHECK(e.inflight_bytes() == 4'000);
    // Nothing more arrives: once srtt + 2 feedback intervals have passed, the
    // 4 kB still missing are presumed lost, not in flight.
    for (uint64_t t = 40; t <= 200; t += 20) e.on_feedback(t * kMs, 6'000, 6);
    CHECK(e.inflight_bytes() == 0);
    e.reset();
    CHECK(e.sent_bytes() == 0);
    CHECK_FALSE(e.has_rate());
}

TEST_CASE("estimator: windowed max filter forgets old maxima in steps") {
    WindowedFilter f;
    CHECK(f.get() == 0);
    const uint64_t win = 1000;
    f.running_max(win, 0, 100);
    f.running_max(win, 300, 80);
    f.running_max(win, 600, 60);
    CHECK(f.get() == 100);
    f.running_max(win, 1100, 50);  // 100 expired: the next best takes over
    CHECK(f.get() == 80);
    f.running_max(win, 5000, 10);  // nothing left in the window
    CHECK(f.get() == 10);
    f.running_min(win, 6000, 5);
    CHECK(f.get() == 5);
}

TEST_SUITE_END();
