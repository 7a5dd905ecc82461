// test_bond.cpp — one session's bonding state (Bond) with a fake clock:
// feedback cadence, probe cadence, probe/echo matching, the reorder gap
// timeout, usability and the control link, and two Bonds wired back to back
// over simulated bottleneck links.
#include <doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <vector>

#include "proto/bond.h"
#include "proto/feedback.h"
#include "sched_fixture.h"

using namespace onebox::proto;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;
constexpr double kMbit = 1e6 / 8;  // bytes/s per Mbit/s

// A probe of `a` on link i sent at `sent`, echoed by a fresh peer at
// `echoed_at`: the echo, in `buf`.
void probe_echo(Bond& a, unsigned i, uint64_t sent, uint64_t echoed_at, uint8_t (&buf)[kProbeSize]) {
    REQUIRE(a.make_probe(i, sent, buf, sizeof buf) == kProbeSize);
    Bond peer;
    REQUIRE(peer.on_probe(i, echoed_at, buf, sizeof buf) == Bond::ProbeAction::SendEcho);
}

// Takes one RTT sample on link i of `a`: a probe sent at `sent`, echoed by a
// peer and back at sent + rtt.
void sample_rtt(Bond& a, unsigned i, uint64_t sent, uint64_t rtt) {
    uint8_t buf[kProbeSize];
    probe_echo(a, i, sent, sent + rtt / 2, buf);
    REQUIRE(a.on_probe(i, sent + rtt, buf, sizeof buf) == Bond::ProbeAction::Sampled);
}

Feedback decoded_feedback(Bond& b, uint64_t now) {
    uint8_t buf[kFeedbackMaxSize];
    size_t n = b.make_feedback(now, buf, sizeof buf);
    Feedback fb;
    REQUIRE(n > 0);
    REQUIRE(decode_feedback(buf, n, fb));
    return fb;
}

}  // namespace

TEST_SUITE_BEGIN("bond");

// ---- feedback cadence ----------------------------------------------------------

TEST_CASE("bond: feedback is due after arrivals, at most every feedback_every_ns") {
    Bond b;
    const uint64_t every = b.cfg.feedback_every_ns;
    CHECK_FALSE(b.feedback_due(0));
    CHECK_FALSE(b.feedback_due(100 * kSec));
    b.on_received(kMaxLinks, 0, 1000);  // out of range: ignored
    CHECK_FALSE(b.feedback_due(100 * kSec));

    // The first arrival: due at once.
    uint64_t t = 5 * kMs;
    b.on_received(2, 0, 100);
    CHECK(b.feedback_due(t));
    // Too small a buffer: nothing written, still due.
    uint8_t small[8];
    CHECK(b.make_feedback(t, small, sizeof small) == 0);
    CHECK(b.feedback_due(t));

    Feedback fb = decoded_feedback(b, t);
    REQUIRE(fb.count == 1);
    CHECK(fb.entries[0].link == 2);
    CHECK(fb.entries[0].rx_packets == 1);
    CHECK(fb.entries[0].rx_bytes == 100);
    uint64_t sent_at = t;

    // Nothing new: not due, however long we wait.
    CHECK_FALSE(b.feedback_due(sent_at));
    CHECK_FALSE(b.feedback_due(sent_at + every));
    CHECK_FALSE(b.feedback_due(sent_at + 10 * kSec));

    // Something new, but the interval has not passed yet.
    b.on_received(0, 0, 50);
    CHECK_FALSE(b.feedback_due(sent_at + every - 1));
    CHECK(b.feedback_due(sent_at + every));
    t = sent_at + every + 3 * kMs;  // sent a little late
    fb = decoded_feedback(b, t);
    // Every link that ever received, in link order, counters cumulative.
    REQUIRE(fb.count == 2);
    CHECK(fb.entries[0].link == 0);
    CHECK(fb.entries[0].rx_packets == 1);
    CHECK(fb.entries[0].rx_bytes == 50);
    CHECK(fb.entries[1].link == 2);
    CHECK(fb.entries[1].rx_packets == 1);
    CHECK(fb.entries[1].rx_bytes == 100);
    sent_at = t;

    // The interval passes first, then something arrives: due at that moment.
    CHECK_FALSE(b.feedback_due(sent_at + 5 * every));
    for (int k = 0; k < 3; ++k) b.on_received(2, 0, 1400);
    b.on_received(7, 0, 60);
    CHECK(b.feedback_due(sent_at + 5 * every));
    fb = decoded_feedback(b, sent_at + 5 * every);
    REQUIRE(fb.count == 3);
    CHECK(fb.entries[0].link == 0);  // nothing new on 0, still listed
    CHECK(fb.entries[0].rx_packets == 1);
    CHECK(fb.entries[0].rx_bytes == 50);
    CHECK(fb.entries[1].link == 2);
    CHECK(fb.entries[1].rx_packets == 4);
    CHECK(fb.entries[1].rx_bytes == 100 + 3 * 1400);
    CHECK(fb.entries[2].link == 7);
    CHECK(fb.entries[2].rx_packets == 1);
    CHECK(fb.entries[2].rx_bytes == 60);
}

TEST_CASE("bond: feedback drives the sender's estimator") {
    Bond rx, tx;
    tx.set_usable(0, true);
    uint64_t t = 0;
    for (int round = 0; round < 10; ++round) {
        for (int k = 0; k < 20; ++k) {  // 20 x 1000 bytes per 20 ms = 1 MB/s
            tx.on_sent(0, t, 1000);
            rx.on_received(0, t, 1000);
        }
        t += 20 * kMs;
        REQUIRE(rx.feedback_due(t));
        uint8_t buf[kFeedbackMaxSize];
        size_t n = rx.make_feedback(t, buf, sizeof buf);
        REQUIRE(tx.on_feedback(t, buf, n));
    }
    CHECK(tx.est[0].delivered_bytes() == 10 * 20 * 1000);
    CHECK(tx.est[0].rate_bytes_per_s() == 1'000'000);
    CHECK(tx.sched.links[0].rate_bytes_per_s == 1'000'000);  // scheduler inputs refreshed
    CHECK(tx.est[1].delivered_bytes() == 0);

    uint8_t bad[2] = {1, 0};
    CHECK_FALSE(tx.on_feedback(t, bad, sizeof bad));
    CHECK_FALSE(tx.on_feedback(t, nullptr, 0));
}

TEST_CASE("bond: Feedback alone never makes Feedback due (idle ends stay quiet)") {
    Bond b;
    b.on_received(0, 0, 150, false);  // a peer's Feedback
    CHECK_FALSE(b.feedback_due(0));
    CHECK_FALSE(b.feedback_due(10 * kSec));
    b.on_received(0, 0, 48);  // a probe or data
    CHECK(b.feedback_due(10 * kSec));
    // ... and the Feedback's bytes were counted all the same.
    Feedback fb = decoded_feedback(b, 10 * kSec);
    REQUIRE(fb.count == 1);
    CHECK(fb.entries[0].rx_bytes == 198);
    CHECK(fb.entries[0].rx_packets == 2);
}

TEST_CASE("bond: Feedback closer than 5 ms to the last one taken is ignored") {
    Bond rx, tx;
    tx.set_usable(0, true);
    uint8_t buf[kFeedbackMaxSize];
    rx.on_received(0, 0, 1000);
    size_t n = rx.make_feedback(0, buf, sizeof buf);
    REQUIRE(tx.on_feedback(0, buf, n));  // baseline
    rx.on_received(0, 0, 1000);
    rx.on_received(0, 0, 1000);
    n = rx.make_feedback(1 * kMs, buf, sizeof buf);
    CHECK(tx.on_feedback(4 * kMs, buf, n));  // well-formed, so true, but not taken
    CHECK(tx.est[0].delivered_bytes() == 1000);
    CHECK(tx.on_feedback(5 * kMs, buf, n));  // 5 ms after the last one taken
    CHECK(tx.est[0].delivered_bytes() == 3000);
}

TEST_CASE("bond: after the peer restarts its counters, its Feedback is taken again") {
    Bond tx;
    tx.set_usable(0, true);
    auto feed = [&](uint64_t t, uint64_t bytes) {
        Feedback fb;
        fb.count = 1;
        fb.entries[0] = FeedbackEntry{0, uint32_t(bytes / 1000), bytes};
        uint8_t buf[kFeedbackMaxSize];
        size_t n = encode_feedback(fb, buf, sizeof buf);
        REQUIRE(tx.on_feedback(t, buf, n));
    };
    feed(0, 0);
    feed(100 * kMs, 10'000'000);
    REQUIRE(tx.est[0].delivered_bytes() == 10'000'000);
    // A new session on the peer starts again at 0: without a restart those
    // reports look older than what we have and are ignored.
    feed(200 * kMs, 5'000);
    CHECK(tx.est[0].ignored_feedback() == 1);
    tx.on_peer_restart();
    CHECK(tx.est[0].rate_bytes_per_s() == 0);
    CHECK(tx.sched.phase(0) == Scheduler::Phase::Startup);
    feed(300 * kMs, 5'000);   // baseline
    feed(400 * kMs, 105'000);
    CHECK(tx.est[0].delivered_bytes() == 105'000);
    CHECK(tx.est[0].rate_bytes_per_s() == 1'000'000);
    CHECK(tx.est[0].ignored_feedback() == 0);
}

// ---- probe cadence ----------------------------------------------------------------

TEST_CASE("bond: probes right away, then every interval (busy or idle)") {
    Bond b;
    const uint64_t busy = b.cfg.probe_every_ns, idle = b.cfg.idle_probe_every_ns;
    REQUIRE(busy < idle);
    uint8_t buf[kProbeSize];
    CHECK(b.probe_due(0) == -1);  // no usable link

    const uint64_t t0 = 3 * kSec;
    b.set_usable(0, true);
    b.set_usable(2, true);
    // Each usable link once, at once; never link 1.
    std::vector<int> got;
    for (int l; (l = b.probe_due(t0)) >= 0 && got.size() < 10;) {
        got.push_back(l);
        REQUIRE(b.make_probe(unsigned(l), t0, buf, sizeof buf) == kProbeSize);
    }
    CHECK(got == std::vector<int>{0, 2});
    CHECK(b.make_probe(kMaxLinks, t0, buf, sizeof buf) == 0);
    uint8_t tiny[kProbeSize - 1];
    CHECK(b.make_probe(0, t0, tiny, sizeof tiny) == 0);

    // Idle (nothing ever picked): the idle interval.
    CHECK(b.probe_due(t0 + busy) == -1);
    CHECK(b.probe_due(t0 + idle - 1) == -1);
    const uint64_t t1 = t0 + idle;
    CHECK(b.probe_due(t1) == 0);
    REQUIRE(b.make_probe(0, t1, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t1) == 2);
    REQUIRE(b.make_probe(2, t1, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t1) == -1);

    // A data packet picked: the short interval, counted from the last probe.
    const uint64_t last_pick = t1 + 50 * kMs;
    REQUIRE(b.pick(last_pick, 1000) >= 0);
    CHECK(b.probe_due(t1 + busy - 1) == -1);
    CHECK(b.probe_due(t1 + busy) == 0);
    const uint64_t t2 = t1 + busy;
    REQUIRE(b.make_probe(0, t2, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t2) == 2);
    REQUIRE(b.make_probe(2, t2, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t2) == -1);
    CHECK(b.probe_due(t2 + busy - 1) == -1);
    CHECK(b.probe_due(t2 + busy) == 0);

    // A second after the last pick the session is idle again: the idle
    // interval applies, counted from the last probe.
    const uint64_t t3 = last_pick + kSec - 1;  // still busy: due
    CHECK(b.probe_due(t3) == 0);
    REQUIRE(b.make_probe(0, t3, buf, sizeof buf) == kProbeSize);
    REQUIRE(b.make_probe(2, t3, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t3 + busy) == -1);  // idle by then
    CHECK(b.probe_due(t3 + idle - 1) == -1);
    CHECK(b.probe_due(t3 + idle) == 0);

    // A link that goes away is not probed; when it comes back, at once.
    b.set_usable(0, false);
    CHECK(b.probe_due(t3 + idle) == 2);
    REQUIRE(b.make_probe(2, t3 + idle, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t3 + idle) == -1);
    b.set_usable(0, true);
    CHECK(b.probe_due(t3 + idle) == 0);
    REQUIRE(b.make_probe(0, t3 + idle, buf, sizeof buf) == kProbeSize);
    CHECK(b.probe_due(t3 + idle) == -1);
}

// ---- probes and echoes --------------------------------------------------------------

TEST_CASE("bond: a peer's probe becomes an echo in place") {
    Bond a, peer;
    a.set_usable(1, true);
    uint8_t probe[kProbeSize];
    REQUIRE(a.make_probe(1, 10 * kMs, probe, sizeof probe) == kProbeSize);
    Probe p;
    REQUIRE(decode_probe(probe, sizeof probe, p));
    CHECK(p.link == 1);
    CHECK(p.flags == ProbeFlags::Probe);
    CHECK(p.sender_time_ns == 10 * kMs);

    uint8_t buf[kProbeSize];
    std::memcpy(buf, probe, sizeof buf);
    CHECK(peer.on_probe(1, 25 * kMs, buf, sizeof buf) == Bond::ProbeAction::SendEcho);
    CHECK(buf[1] == 1);
    for (size_t k = 0; k < kProbeSize; ++k)
        if (k != 1) CHECK(buf[k] == probe[k]);
    CHECK(peer.probes_unmatched() == 0);
    CHECK(peer.est[1].srtt_ns() == 0);  // echoing takes no sample

    // Arrived on another link than the one it names: ignored, untouched.
    std::memcpy(buf, probe, sizeof buf);
    CHECK(peer.on_probe(0, 25 * kMs, buf, sizeof buf) == Bond::ProbeAction::Ignored);
    CHECK(peer.on_probe(kMaxLinks, 25 * kMs, buf, sizeof buf) == Bond::ProbeAction::Ignored);
    CHECK(std::memcmp(buf, probe, sizeof buf) == 0);
}

TEST_CASE("bond: an echo's RTT ends when it reached the host, not when it was handled") {
    // A worker busy with a flood reads an echo 40 ms after it arrived: the
    // link's RTT and its queue sample are the arrival's, or admission would
    // refuse packets on an idle link.
    struct Row { const char* name; uint64_t handled_after; uint64_t rx_after; uint64_t want_rtt; };
    const Row rows[] = {
        {"arrival known, handled late", 60 * kMs, 20 * kMs, 20 * kMs},
        {"arrival not known (0): now", 60 * kMs, 0, 60 * kMs},
        {"arrival after now (a clock step): now", 20 * kMs, 30 * kMs, 20 * kMs},
        {"arrival before the probe left (a clock step): now", 20 * kMs, 1, 20 * kMs},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        Bond a;
        a.set_usable(0, true);
        const uint64_t t0 = 100 * kMs;
        uint8_t buf[kProbeSize];
        probe_echo(a, 0, t0, t0 + 10 * kMs, buf);
        uint64_t rx = r.rx_after == 0 ? 0 : r.rx_after == 1 ? 1 : t0 + r.rx_after;
        REQUIRE(a.on_probe(0, t0 + r.handled_after, buf, sizeof buf, nullptr, rx) == Bond::ProbeAction::Sampled);
        CHECK(a.est[0].latest_rtt_ns() == r.want_rtt);
    }
}

TEST_CASE("bond: echoes are matched to our probes by probe_seq") {
    Bond a;
    a.set_usable(1, true);
    const uint64_t t0 = 10 * kMs;
    uint8_t echo[kProbeSize];
    probe_echo(a, 1, t0, t0 + 15 * kMs, echo);

    // An echo that comes back on the wrong link is not ours there.
    uint8_t buf[kProbeSize];
    std::memcpy(buf, echo, sizeof buf);
    CHECK(a.on_probe(0, t0 + 20 * kMs, buf, sizeof buf) == Bond::ProbeAction::Ignored);

    // The RTT is our own elapsed time, whatever the echoed timestamp says.
    std::memcpy(buf, echo, sizeof buf);
    put_be64(buf + 8, 0);
    CHECK(a.on_probe(1, t0 + 30 * kMs, buf, sizeof buf) == Bond::ProbeAction::Sampled);
    CHECK(a.est[1].srtt_ns() == 30 * kMs);
    CHECK(a.est[1].latest_rtt_ns() == 30 * kMs);
    CHECK(a.est[1].min_rtt_ns() == 30 * kMs);
    CHECK(a.sched.links[1].srtt_ns == 30 * kMs);  // scheduler inputs refreshed
    CHECK(a.probes_unmatched() == 0);

    // The same echo again: the probe was answered already.
    std::memcpy(buf, echo, sizeof buf);
    CHECK(a.on_probe(1, t0 + 40 * kMs, buf, sizeof buf) == Bond::ProbeAction::Ignored);
    CHECK(a.probes_unmatched() == 1);
    CHECK(a.est[1].srtt_ns() == 30 * kMs);

    // An echo of a probe we never sent.
    Probe forged{1, ProbeFlags::Echo, 0xdeadbeef, t0};
    REQUIRE(encode_probe(forged, buf, sizeof buf) == kProbeSize);
    CHECK(a.on_probe(1, t0 + 50 * kMs, buf, sizeof buf) == Bond::ProbeAction::Ignored);
    CHECK(a.probes_unmatched() == 2);

    // Malformed: wrong lengths, reserved bits, unknown flags, link out of range.
    // None of them counts as an unmatched echo.
    struct Row { const char* name; size_t len; int byte; uint8_t value; };  // byte < 0: as is
    Row rows[] = {
        {"empty", 0, -1, 0},
        {"one short", kProbeSize - 1, -1, 0},
        {"one long", kProbeSize + 1, -1, 0},
        {"reserved", kProbeSize, 2, 0x01},
        {"reserved low", kProbeSize, 3, 0x80},
        {"flags 4", kProbeSize, 1, 4},
        {"flags 255", kProbeSize, 1, 0xff},
        {"link 8", kProbeSize, 0, kMaxLinks},
    };
    uint8_t big[kProbeSize + 1]{};
    for (const Row& r : rows) {
        CAPTURE(r.name);
        Bond c;
        c.set_usable(1, true);
        uint8_t mine[kProbeSize];
        REQUIRE(c.make_probe(1, t0, mine, sizeof mine) == kProbeSize);
        std::memcpy(big, mine, kProbeSize);
        big[1] = 1;  // an echo of it
        if (r.byte >= 0) big[r.byte] = r.value;
        CHECK(c.on_probe(1, t0 + kMs, big, r.len) == Bond::ProbeAction::Ignored);
        CHECK(c.probes_unmatched() == 0);
        CHECK(c.est[1].srtt_ns() == 0);
        // The well-formed echo still matches afterwards.
        mine[1] = 1;
        CHECK(c.on_probe(1, t0 + 2 * kMs, mine, sizeof mine) == Bond::ProbeAction::Sampled);
    }
    CHECK(a.on_probe(1, t0, nullptr, 0) == Bond::ProbeAction::Ignored);
}

TEST_CASE("bond: a few probes outstanding per link; the oldest gives way") {
    Bond a, peer;
    a.set_usable(3, true);
    // kProbeSlots + 2 probes, 10 ms apart, none answered yet: only the last
    // kProbeSlots are remembered, and the two that gave way count as lost.
    constexpr unsigned kN = Bond::kProbeSlots + 2;
    uint8_t echoes[kN][kProbeSize];
    for (unsigned k = 0; k < kN; ++k) {
        REQUIRE(a.make_probe(3, k * 10 * kMs, echoes[k], kProbeSize) == kProbeSize);
        REQUIRE(peer.on_probe(3, k * 10 * kMs, echoes[k], kProbeSize) ==
                Bond::ProbeAction::SendEcho);
    }
    CHECK(a.health[3].lost_in_a_row() == 2);
    const uint64_t t = 300 * kMs;
    // Answered out of order.
    CHECK(a.on_probe(3, t, echoes[3], kProbeSize) == Bond::ProbeAction::Sampled);
    CHECK(a.est[3].latest_rtt_ns() == t - 30 * kMs);
    CHECK(a.on_probe(3, t, echoes[0], kProbeSize) == Bond::ProbeAction::Ignored);
    CHECK(a.on_probe(3, t, echoes[1], kProbeSize) == Bond::ProbeAction::Ignored);
    CHECK(a.probes_unmatched() == 2);
    for (unsigned k : {kN - 1, 2u, kN - 2}) {
        CAPTURE(k);
        CHECK(a.on_probe(3, t, echoes[k], kProbeSize) == Bond::ProbeAction::Sampled);
        CHECK(a.est[3].latest_rtt_ns() == t - k * 10 * kMs);
    }
    CHECK(a.probes_unmatched() == 2);
}

// ---- reorder gap timeout --------------------------------------------------------------

TEST_CASE("bond: gap timeout from the links' delays and jitter") {
    Bond b;
    const uint64_t unknown = b.cfg.gap_unknown_ns;
    CHECK(b.gap_timeout_ns() == unknown);  // no usable link
    b.set_usable(0, true);
    b.set_usable(1, true);
    CHECK(b.gap_timeout_ns() == unknown);

    sample_rtt(b, 0, 100 * kMs, 20 * kMs);
    CHECK(b.est[0].srtt_ns() == 20 * kMs);
    CHECK(b.gap_timeout_ns() == unknown);  // link 1 has no RTT yet
    sample_rtt(b, 1, 200 * kMs, 80 * kMs);

    const LinkEstimator& e0 = b.est[0];
    const LinkEstimator& e1 = b.est[1];
    REQUIRE(e0.owd_ns() == 10 * kMs);
    REQUIRE(e1.owd_ns() == 40 * kMs);
    REQUIRE(e0.srtt_ns() == e0.min_rtt_ns());  // no queueing measured
    REQUIRE(e1.srtt_ns() == e1.min_rtt_ns());
    REQUIRE(e0.rttvar_ns() > 0);
    auto expect = [&b](uint64_t span, uint64_t jitter) {
        return std::clamp(span + 2 * jitter, b.cfg.gap_floor_ns, b.cfg.gap_ceil_ns);
    };
    const uint64_t jitter = std::max(e0.rttvar_ns(), e1.rttvar_ns());
    const uint64_t two_links = expect(30 * kMs, jitter);
    CHECK(b.gap_timeout_ns() == two_links);
    CHECK(two_links > 30 * kMs);

    // The bounds.
    b.cfg.gap_ceil_ns = 60 * kMs;
    CHECK(b.gap_timeout_ns() == 60 * kMs);
    b.cfg.gap_ceil_ns = BondConfig{}.gap_ceil_ns;
    b.cfg.gap_floor_ns = 400 * kMs;
    CHECK(b.gap_timeout_ns() == 400 * kMs);
    b.cfg.gap_floor_ns = BondConfig{}.gap_floor_ns;
    CHECK(b.gap_timeout_ns() == two_links);

    // Unusable links do not count: neither one without an RTT ...
    b.set_usable(5, true);
    CHECK(b.gap_timeout_ns() == unknown);
    b.set_usable(5, false);
    CHECK(b.gap_timeout_ns() == two_links);
    // ... nor one with.
    b.set_usable(1, false);
    CHECK(b.gap_timeout_ns() == expect(0, e0.rttvar_ns()));
    b.set_usable(1, true);
    CHECK(b.gap_timeout_ns() == two_links);

    // Queueing measured by the probes (srtt above min RTT) widens the span:
    // link 1's packets now arrive up to owd + (srtt - min RTT) after sending.
    sample_rtt(b, 1, 400 * kMs, 400 * kMs);
    REQUIRE(e1.srtt_ns() > e1.min_rtt_ns());
    REQUIRE(e1.min_rtt_ns() == 80 * kMs);
    uint64_t hi = 0, lo = UINT64_MAX, jit = 0;
    for (const LinkEstimator* e : {&e0, &e1}) {
        uint64_t q = e->srtt_ns() > e->min_rtt_ns() ? e->srtt_ns() - e->min_rtt_ns() : 0;
        hi = std::max(hi, e->owd_ns() + q);
        lo = std::min(lo, e->owd_ns());
        jit = std::max(jit, e->rttvar_ns());
    }
    REQUIRE(hi - lo > 30 * kMs);
    CHECK(b.gap_timeout_ns() == expect(hi - lo, jit));
}

// ---- usability and the control link ------------------------------------------------------

TEST_CASE("bond: a link that becomes usable again restarts its discovery") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    // Rounds of one big pick each, as the scheduler's own test does: no path MTU in the way.
    for (unsigned i = 0; i < 2; ++i) b.sched.links[i].max_datagram = UINT32_MAX;
    b.sched.cfg.budget_ns = 0;
    // Drive both links out of Startup (as in the scheduler's Startup test).
    uint64_t t = 0, rate = 125'000;
    b.pick(t, 100);
    for (int round = 0; round < 12; ++round) {
        if (round < 6) rate *= 2;
        b.sched.links[0].rate_bytes_per_s = b.sched.links[1].rate_bytes_per_s = rate;
        t += 100 * kMs;  // one Startup round, each link offered more than its estimate
        for (int k = 0; k < 20; ++k) b.pick(t, uint32_t(rate / 10));
    }
    t += 600 * kMs;
    b.pick(t, 100);
    REQUIRE(b.sched.phase(0) == Scheduler::Phase::ProbeBw);
    REQUIRE(b.sched.phase(1) == Scheduler::Phase::ProbeBw);
    b.on_sent(0, t, 1234);
    const uint64_t sent0 = b.est[0].sent_bytes();

    // Usable again while usable: nothing happens.
    b.set_usable(1, true);
    CHECK(b.sched.phase(1) == Scheduler::Phase::ProbeBw);

    b.set_usable(0, false);
    CHECK_FALSE(b.usable(0));
    CHECK(b.sched.phase(0) == Scheduler::Phase::ProbeBw);  // frozen while away
    for (int k = 0; k < 20; ++k) CHECK(b.pick(t + uint64_t(k), 100) == 1);
    b.set_usable(0, false);  // twice: nothing more

    b.set_usable(0, true);
    CHECK(b.usable(0));
    CHECK(b.sched.phase(0) == Scheduler::Phase::Startup);
    CHECK(b.sched.phase(1) == Scheduler::Phase::ProbeBw);
    CHECK(b.est[0].sent_bytes() == sent0);  // the estimator stays in step with the peer

    CHECK_FALSE(b.usable(kMaxLinks));
    b.set_usable(kMaxLinks, true);  // out of range: ignored
    CHECK_FALSE(b.usable(kMaxLinks));
}

// ---- link health: probes, feedback stalls, which links are used ---------------------

// Four probes on each of `dead` go unanswered (250 ms apart, past the
// 200 ms timeout floor); links in `alive` answer theirs. Returns the time.
uint64_t starve_probes(Bond& b, std::initializer_list<unsigned> dead, std::initializer_list<unsigned> alive,
                       uint64_t t) {
    uint8_t buf[kProbeSize];
    for (int k = 0; k < 4; ++k) {
        for (unsigned i : dead) REQUIRE(b.make_probe(i, t, buf, sizeof buf) == kProbeSize);
        for (unsigned i : alive) sample_rtt(b, i, t, 20 * kMs);
        t += 250 * kMs;
        b.update(t);
    }
    return t;
}

// The peer's Feedback for two links: cumulative bytes and packets.
void feed(Bond& b, uint64_t now, uint64_t bytes0, uint64_t bytes1) {
    Feedback fb;
    fb.count = 2;
    fb.entries[0] = FeedbackEntry{0, uint32_t(bytes0 / 1000), bytes0};
    fb.entries[1] = FeedbackEntry{1, uint32_t(bytes1 / 1000), bytes1};
    uint8_t buf[kFeedbackMaxSize];
    size_t n = encode_feedback(fb, buf, sizeof buf);
    REQUIRE(b.on_feedback(now, buf, n));
}

TEST_CASE("bond: a link whose deliveries stop while another's go on is not used within a few RTTs") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    sample_rtt(b, 0, 0, 20 * kMs);
    sample_rtt(b, 1, 0, 20 * kMs);
    REQUIRE(b.usable(0));
    REQUIRE(b.usable(1));
    // 1000 bytes per ms on each link; the peer reports every 20 ms what was
    // sent up to 10 ms before. Link 1 dies at 500 ms.
    uint64_t sent[2] = {0, 0}, dlv[2] = {0, 0};
    uint64_t cut = 500 * kMs, gone_at = 0;
    for (uint64_t t = 20 * kMs; t <= 1000 * kMs; t += 20 * kMs) {
        for (unsigned i = 0; i < 2; ++i) {
            b.on_sent(i, t, 20'000);
            sent[i] += 20'000;
        }
        dlv[0] = sent[0] - 10'000;
        if (t < cut) dlv[1] = sent[1] - 10'000;
        feed(b, t, dlv[0], dlv[1]);
        b.update(t);
        if (t < cut) CHECK(b.usable(1));
        if (!b.usable(1) && gone_at == 0) gone_at = t;
        CHECK(b.usable(0));
    }
    // srtt 20 ms, rttvar 10 ms, feedback every 20 ms: a lag of 100 ms; the
    // last delivery was reported at 480 ms, and the third packet after it
    // (one per 20 ms here) went out at 540 ms: 640 ms.
    REQUIRE(gone_at > 0);
    CHECK(gone_at - cut <= 140 * kMs);
    CHECK(b.health[1].stalls() == 1);
    CHECK(b.health[1].state() == LinkState::Up);  // probes decide Down
}

TEST_CASE("bond: after a stall or a Down, admission has headroom for a while") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    sample_rtt(b, 0, 0, 20 * kMs);
    sample_rtt(b, 1, 0, 20 * kMs);
    CHECK(b.headroom(100 * kMs) == 0);
    uint64_t sent[2] = {0, 0}, dlv[2] = {0, 0}, failed_at = 0;
    for (uint64_t t = 20 * kMs; t <= 1000 * kMs && !failed_at; t += 20 * kMs) {
        for (unsigned i = 0; i < 2; ++i) {
            b.on_sent(i, t, 20'000);
            sent[i] += 20'000;
        }
        dlv[0] = sent[0] - 10'000;
        if (t < 500 * kMs) dlv[1] = sent[1] - 10'000;
        feed(b, t, dlv[0], dlv[1]);
        b.update(t);
        if (b.take_stalled()) failed_at = t;
        else CHECK(b.headroom(t) == 0);
    }
    REQUIRE(failed_at > 0);
    CHECK(b.headroom(failed_at) == b.cfg.failover_headroom_ns);
    CHECK(b.headroom(failed_at + b.cfg.failover_window_ns - 1) == b.cfg.failover_headroom_ns);
    CHECK(b.headroom(failed_at + b.cfg.failover_window_ns) == 0);
    // Below a 20 ms budget the headroom makes up the difference (the
    // failover's total stays 80 ms); at or above it, nothing is added.
    b.sched.cfg.budget_ns = 10 * kMs;
    CHECK(b.budget_shortfall() == 10 * kMs);
    CHECK(b.headroom(failed_at) == b.cfg.failover_headroom_ns + 10 * kMs);
    b.sched.cfg.budget_ns = 50 * kMs;
    CHECK(b.budget_shortfall() == 0);
    CHECK(b.headroom(failed_at) == b.cfg.failover_headroom_ns);

    // Probes that take a link Down count too.
    Bond c;
    c.set_usable(0, true);
    c.set_usable(1, true);
    sample_rtt(c, 0, 0, 20 * kMs);
    sample_rtt(c, 1, 0, 20 * kMs);
    uint64_t t = starve_probes(c, {1}, {0}, 100 * kMs);
    REQUIRE(c.health[1].state() == LinkState::Down);
    CHECK(c.headroom(t) == c.cfg.failover_headroom_ns);
    CHECK(c.headroom(t + c.cfg.failover_window_ns) == 0);
}

TEST_CASE("bond: an idle link or a lossy one is not a stall") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    sample_rtt(b, 0, 0, 20 * kMs);
    sample_rtt(b, 1, 0, 20 * kMs);
    uint64_t sent[2] = {0, 0}, dlv[2] = {0, 0};
    for (uint64_t t = 20 * kMs; t <= 3000 * kMs; t += 20 * kMs) {
        b.on_sent(0, t, 20'000);
        sent[0] += 20'000;
        dlv[0] = sent[0] - 10'000;
        // Link 1 carries a 100-byte keepalive every 500 ms, and lost the
        // first one: what it lost once is not "nothing delivered since".
        if (t % (500 * kMs) == 0) {
            b.on_sent(1, t, 100);
            if (t > 500 * kMs) dlv[1] += 100;
        }
        feed(b, t, dlv[0], dlv[1]);
        b.update(t);
        CHECK(b.usable(1));
    }
    CHECK(b.health[1].stalls() == 0);
}

// Two links each sent 20 data datagrams of 1000 bytes every 20 ms while the
// bond uses it; the peer's Feedback at each step counts (and names the
// newest sequence number of) what was sent the step before, less what link
// i lost (loss[i], a share, spread evenly). Every 100 ms each link's probe
// is echoed after rtt[i].
struct LossyLinks {
    Bond b;
    uint64_t t = 0, seq = 0;
    double loss[2] = {0, 0};
    uint64_t rtt[2] = {20 * kMs, 20 * kMs};
    uint64_t dlv[2] = {0, 0}, newest[2] = {0, 0};
    bool has[2] = {false, false};
    std::vector<uint64_t> in_flight[2];
    double owed[2] = {0, 0};
    uint8_t lossy_seen = 0;  // take_stalled's lossy bits so far
    unsigned picks = 0;      // if set: this many datagrams a step, on the links the scheduler picks

    LossyLinks() {
        b.set_usable(0, true);
        b.set_usable(1, true);
        sample_rtt(b, 0, 0, 20 * kMs);
        sample_rtt(b, 1, 0, 20 * kMs);
    }
    void step() {
        t += 20 * kMs;
        for (unsigned i = 0; i < 2; ++i) {
            for (uint64_t q : in_flight[i]) {
                owed[i] += loss[i];
                if (owed[i] >= 1) {
                    owed[i] -= 1;
                    continue;
                }
                ++dlv[i];
                newest[i] = q;
                has[i] = true;
            }
            in_flight[i].clear();
            if (picks || !b.usable(i)) continue;
            for (int k = 0; k < 20; ++k) send(i);
        }
        for (unsigned k = 0; k < picks; ++k) {
            int l = b.pick(t, 1000);
            if (l < 0) break;
            send(unsigned(l));
        }
        Feedback fb;
        fb.count = 2;
        for (unsigned i = 0; i < 2; ++i)
            fb.entries[i] = FeedbackEntry{uint8_t(i), uint32_t(dlv[i]), dlv[i] * 1000, has[i], has[i] ? newest[i] : 0,
                                          true, uint16_t(dlv[i])};
        uint8_t buf[kFeedbackMaxSize];
        size_t n = encode_feedback(fb, buf, sizeof buf);
        REQUIRE(b.on_feedback(t, buf, n));
        if (t % (100 * kMs) == 0)
            for (unsigned i = 0; i < 2; ++i) sample_rtt(b, i, t - rtt[i], rtt[i]);
        b.update(t);
        uint8_t lossy = 0;
        b.take_stalled(&lossy);
        lossy_seen |= lossy;
    }
    void send(unsigned i) {
        b.on_sent(i, t, 1000);
        b.on_sent_data(i, t, seq);
        in_flight[i].push_back(seq++);
    }
    // Steps until link i's use is `used` (or `limit` passes); the time then, or 0.
    uint64_t until_used(unsigned i, bool used, uint64_t limit) {
        for (uint64_t end = t + limit; t < end;) {
            step();
            if (b.usable(i) == used) return t;
        }
        return 0;
    }
};

TEST_CASE("bond: a link losing a share of its packets with no queue is taken out while another is clean") {
    LossyLinks l;
    for (int k = 0; k < 50; ++k) l.step();  // 1 s clean
    REQUIRE(l.b.usable(1));
    CHECK(l.b.health[1].lossy() == 0);
    l.loss[1] = 0.2;
    uint64_t start = l.t;
    uint64_t out = l.until_used(1, false, 2 * kSec);
    REQUIRE(out > 0);
    // 5 % of the window's 500 datagrams is 25 lost: 7 steps of 4, after
    // the round trip and the Feedback lag, and spread over 150 ms.
    CHECK(out - start <= 400 * kMs);
    CHECK(l.b.health[1].lossy() == 1);
    CHECK(l.lossy_seen == 2);
    CHECK(l.b.loss_pm_at_exclusion(1) >= 50);
    CHECK(l.b.health[1].state() == LinkState::Up);  // still delivering: not Down, not a stall
    CHECK(l.b.health[1].stalls() == 0);
    CHECK(l.b.usable(0));
    CHECK(l.b.headroom(out) == l.b.cfg.failover_headroom_ns);

    // Its probes come back clean: used again after 2 s, still losing, out
    // again within the same time, and now held for 4 s.
    uint64_t back = l.until_used(1, true, 3 * kSec);
    REQUIRE(back > 0);
    CHECK(back - out >= 2 * kSec);
    uint64_t out2 = l.until_used(1, false, 2 * kSec);
    REQUIRE(out2 > 0);
    CHECK(out2 - back <= 400 * kMs);
    CHECK(l.b.health[1].lossy() == 2);
    CHECK(l.b.health[1].stable_needed() == 4 * kSec);

    // The loss ends: back after the 4 s hold, and kept.
    l.loss[1] = 0;
    uint64_t back2 = l.until_used(1, true, 5 * kSec);
    REQUIRE(back2 > 0);
    CHECK(back2 - out2 >= 4 * kSec);
    for (int k = 0; k < 250; ++k) {
        l.step();
        CHECK(l.b.usable(1));
    }
    CHECK(l.b.health[1].lossy() == 2);
}

TEST_CASE("bond: what a link loses while the scheduler fills it in Startup is not held against it") {
    // The scheduler's picks, up to 100 datagrams a step (5 MB/s offered):
    // each link starts in Startup, doubling while its delivery keeps up;
    // link 1 loses 30 % from the start. While Startup fills it (gain 2,
    // given its rate's worth or more each round) its losses are taken for
    // the overflow of the queue that builds: it stays in use. Once the
    // offered load no longer fills it, the same losses take it out.
    LossyLinks l;
    l.picks = 100;
    l.loss[1] = 0.3;
    uint64_t filled_until = 0;
    for (int k = 0; k < 300 && l.b.usable(1); ++k) {
        l.step();
        if (l.b.sched.filling(1, l.t)) {
            filled_until = l.t;
            CHECK(l.b.usable(1));
        }
    }
    REQUIRE(filled_until > 0);  // the test did fill it
    CHECK_FALSE(l.b.usable(1));
    CHECK(l.b.health[1].lossy() == 1);
    CHECK(l.t > filled_until);
}

TEST_CASE("bond: a link losing a fifth or more is taken out even with a queue") {
    LossyLinks l;
    for (int k = 0; k < 50; ++k) l.step();
    l.rtt[1] = 80 * kMs;
    for (int k = 0; k < 50; ++k) l.step();
    l.loss[1] = 0.3;
    uint64_t start = l.t;
    uint64_t out = l.until_used(1, false, 2 * kSec);
    REQUIRE(out > 0);
    CHECK(out - start <= 400 * kMs);
    CHECK(l.b.health[1].lossy() == 1);
}

TEST_CASE("bond: every link losing, or a loss its own queue explains, takes nothing out") {
    SUBCASE("both links lose 20 %: better both than none") {
        LossyLinks l;
        l.loss[0] = l.loss[1] = 0.2;
        for (int k = 0; k < 150; ++k) {
            l.step();
            CHECK(l.b.usable(0));
            CHECK(l.b.usable(1));
        }
        CHECK(l.b.health[0].lossy() + l.b.health[1].lossy() == 0);
    }
    SUBCASE("link 1 drops 15 % from a full queue: its round trip is 80 ms over a 20 ms base") {
        LossyLinks l;
        for (int k = 0; k < 50; ++k) l.step();
        l.rtt[1] = 80 * kMs;
        for (int k = 0; k < 50; ++k) l.step();  // srtt follows the queue
        l.loss[1] = 0.15;
        for (int k = 0; k < 150; ++k) {
            l.step();
            CHECK(l.b.usable(1));
        }
        CHECK(l.b.health[1].lossy() == 0);
    }
    SUBCASE("a burst: all 20 of one step lost, twice 100 ms apart (a queue overflowing)") {
        LossyLinks l;
        for (int k = 0; k < 50; ++k) l.step();
        for (int burst = 0; burst < 2; ++burst) {
            l.loss[1] = 1.0;
            l.step();
            l.loss[1] = 0;
            for (int k = 0; k < 4; ++k) l.step();
        }
        for (int k = 0; k < 100; ++k) {
            l.step();
            CHECK(l.b.usable(1));
        }
        CHECK(l.b.health[1].lossy() == 0);
    }
    SUBCASE("1 % loss is a link, not a fault") {
        LossyLinks l;
        l.loss[1] = 0.01;
        for (int k = 0; k < 250; ++k) {
            l.step();
            CHECK(l.b.usable(1));
        }
        CHECK(l.b.health[1].lossy() == 0);
    }
}

TEST_CASE("bond: probes that are not echoed take a link down; it comes back after 2 s clean") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    sample_rtt(b, 0, 0, 20 * kMs);
    sample_rtt(b, 1, 0, 20 * kMs);
    // Link 1's probes go unanswered; link 0's are echoed.
    uint64_t t = starve_probes(b, {1}, {0}, 100 * kMs);
    CHECK(b.health[1].state() == LinkState::Down);
    CHECK_FALSE(b.usable(1));
    CHECK(b.usable(0));
    // Echoed again: Up, but not used until it has been clean for 2 s.
    t = 1000 * kMs;
    sample_rtt(b, 1, t, 20 * kMs);
    b.update(t + 20 * kMs);
    CHECK(b.health[1].state() == LinkState::Up);
    CHECK_FALSE(b.usable(1));
    for (t += 100 * kMs; t < 3100 * kMs; t += 100 * kMs) {
        sample_rtt(b, 1, t, 20 * kMs);
        b.update(t + 20 * kMs);
    }
    CHECK(b.usable(1));
}

TEST_CASE("bond: which links are used when none is healthy") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    // Nothing known yet: both (the session must start somewhere).
    CHECK(b.usable(0));
    CHECK(b.usable(1));
    // One Up: only that one; the other joins when its first echo comes.
    sample_rtt(b, 0, 0, 20 * kMs);
    CHECK(b.usable(0));
    CHECK_FALSE(b.usable(1));
    sample_rtt(b, 1, 0, 30 * kMs);
    CHECK(b.usable(1));
    // Both Down (the peer went away): both still carry a best effort.
    uint64_t t = starve_probes(b, {0, 1}, {}, 100 * kMs);
    REQUIRE(b.health[0].state() == LinkState::Down);
    REQUIRE(b.health[1].state() == LinkState::Down);
    CHECK(b.usable(0));
    CHECK(b.usable(1));
    // The first to answer is used alone at once, before its 2 s hold.
    sample_rtt(b, 1, t, 30 * kMs);
    CHECK_FALSE(b.usable(0));
    CHECK(b.usable(1));
    // A link that does not exist is never used, whatever its health.
    b.set_usable(1, false);
    CHECK_FALSE(b.usable(1));
    CHECK(b.usable(0));
}

TEST_CASE("bond: mode backup uses only the best priority that is healthy") {
    Bond b;
    b.sched.cfg.mode = SchedMode::Backup;
    for (unsigned i = 0; i < 3; ++i) b.set_usable(i, true);
    b.sched.links[0].priority = 2;  // the LTE backup
    b.sched.links[1].priority = 1;  // two primaries
    b.sched.links[2].priority = 1;
    b.refresh(0);
    for (unsigned i = 0; i < 3; ++i) sample_rtt(b, i, 0, 20 * kMs);
    CHECK_FALSE(b.usable(0));
    CHECK(b.usable(1));
    CHECK(b.usable(2));
    // Both primaries die: the backup takes over as soon as they are out of use.
    uint64_t t = starve_probes(b, {1, 2}, {0}, 100 * kMs);
    CHECK(b.usable(0));
    CHECK_FALSE(b.usable(1));
    CHECK_FALSE(b.usable(2));
    // One primary answers again: still the backup during its 2 s hold, then the primary alone.
    sample_rtt(b, 1, t, 20 * kMs);
    b.update(t + 20 * kMs);
    CHECK(b.usable(0));
    CHECK_FALSE(b.usable(1));
    for (uint64_t end = t + 2100 * kMs; t < end; t += 100 * kMs) {
        sample_rtt(b, 0, t, 20 * kMs);
        sample_rtt(b, 1, t, 20 * kMs);
        b.update(t + 20 * kMs);
    }
    CHECK_FALSE(b.usable(0));
    CHECK(b.usable(1));
    // In bond mode the same links are all used.
    b.sched.cfg.mode = SchedMode::Bond;
    b.refresh(t);
    CHECK(b.usable(0));
    CHECK(b.usable(1));
}

TEST_CASE("bond: the control link is the usable one with the smallest RTT") {
    Bond b;
    CHECK(b.control_link() == -1);
    b.set_usable(2, true);
    b.set_usable(5, true);
    CHECK(b.control_link() == 2);  // none measured: the first usable
    sample_rtt(b, 5, 0, 50 * kMs);
    CHECK(b.control_link() == 5);  // measured beats unmeasured
    b.set_usable(0, true);
    CHECK(b.control_link() == 5);  // ... even at a lower index
    sample_rtt(b, 2, 100 * kMs, 30 * kMs);
    CHECK(b.control_link() == 2);
    CHECK(b.control_link(2) == 5);   // the copy's link: the next best
    CHECK(b.control_link(5) == 2);
    sample_rtt(b, 6, 200 * kMs, 10 * kMs);  // fast, but not usable
    CHECK(b.control_link() == 2);
    b.set_usable(6, true);
    CHECK(b.control_link() == 6);
    b.set_usable(6, false);
    b.set_usable(2, false);
    CHECK(b.control_link() == 5);
    b.set_usable(5, false);
    CHECK(b.control_link() == 0);  // only an unmeasured one left
    CHECK(b.control_link(0) == -1);  // no other link: no copy
    b.set_usable(0, false);
    CHECK(b.control_link() == -1);
}

TEST_CASE("bond: Feedback leaves a link on which nothing arrives any more") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    sample_rtt(b, 0, 0, 20 * kMs);
    sample_rtt(b, 1, 0, 60 * kMs);
    uint64_t t = 100 * kMs;
    b.on_received(0, t, 100);
    b.on_received(1, t, 100);
    CHECK(b.control_link() == 0);  // the smaller RTT
    // Link 0 falls silent; link 1 keeps receiving (probes, data).
    for (t += 10 * kMs; t < 400 * kMs; t += 10 * kMs) {
        b.on_received(1, t, 100);
        // 150 ms (the floor; 2 x srtt + 4 x rttvar is 80 ms) after link 0's last arrival.
        CHECK(b.control_link() == (t - 100 * kMs > 150 * kMs ? 1 : 0));
    }
    b.on_received(0, t, 100);  // link 0 is back
    CHECK(b.control_link() == 0);
}

// ---- two Bonds back to back -------------------------------------------------------------

TEST_CASE("bond: two Bonds back to back learn 30 + 10 Mbit/s and split 3:1") {
    // A sends a saturating stream (1.5 x the total capacity) over two links;
    // each link A->B is a FIFO bottleneck (its capacity, drops beyond 100 ms
    // of queue) followed by a fixed one-way delay. B -> A (feedback, probe
    // echoes) has the same delay and no bottleneck. Time advances in 100 us
    // ticks; everything is delivered on the first tick at or after its time.
    constexpr unsigned kLinks = 2;
    const double cap_mbit[kLinks] = {30, 10};
    const uint64_t owd[kLinks] = {10 * kMs, 20 * kMs};
    const uint32_t kPkt = 1400, kProbeWire = 16 + 32 + 28;
    const uint64_t kTick = 100'000, kMaxQueue = 100 * kMs;
    const uint64_t kEnd = 5 * kSec, kWinStart = 3 * kSec;

    struct Msg {
        uint64_t at;
        uint32_t bytes;
        bool probe;
        size_t len;
        uint8_t payload[kFeedbackMaxSize];
    };
    std::deque<Msg> fwd[kLinks], rev[kLinks];
    uint64_t busy_until[kLinks] = {0, 0};
    Bond a, b;
    for (unsigned i = 0; i < kLinks; ++i) {
        a.set_usable(i, true);
        b.set_usable(i, true);
    }
    // Through link i's bottleneck at t: the arrival time, or 0 if dropped.
    auto through = [&](unsigned i, uint64_t t, uint32_t bytes) -> uint64_t {
        uint64_t q = busy_until[i] > t ? busy_until[i] - t : 0;
        if (q > kMaxQueue) return 0;
        busy_until[i] = std::max(busy_until[i], t) +
                        uint64_t(double(bytes) * 1e9 / (cap_mbit[i] * kMbit));
        return busy_until[i] + owd[i];
    };

    double total_mbit = 0;
    for (double c : cap_mbit) total_mbit += c;
    const double offered = 1.5 * total_mbit * kMbit;  // bytes/s
    double tokens = 0;
    uint64_t picks[kLinks] = {0, 0}, refused = 0, drops = 0;
    unsigned errors = 0, samples = 0, feedbacks = 0;

    for (uint64_t now = 0; now < kEnd; now += kTick) {
        // B: arrivals (data and probes).
        for (unsigned i = 0; i < kLinks; ++i) {
            while (!fwd[i].empty() && fwd[i].front().at <= now) {
                Msg m = fwd[i].front();
                fwd[i].pop_front();
                b.on_received(i, now, m.bytes);
                if (!m.probe) continue;
                if (b.on_probe(i, now, m.payload, m.len) != Bond::ProbeAction::SendEcho) {
                    ++errors;
                    continue;
                }
                m.at = now + owd[i];
                rev[i].push_back(m);
            }
        }
        // B: feedback, on its control link.
        if (b.feedback_due(now)) {
            int c = b.control_link();
            Msg m{now + (c >= 0 ? owd[c] : 0), 0, false, 0, {}};
            m.len = b.make_feedback(now, m.payload, sizeof m.payload);
            if (c < 0 || m.len == 0) ++errors;
            else rev[c].push_back(m);
        }
        // A: feedback and echoes.
        for (unsigned i = 0; i < kLinks; ++i) {
            while (!rev[i].empty() && rev[i].front().at <= now) {
                Msg& m = rev[i].front();
                if (m.probe) {
                    if (a.on_probe(i, now, m.payload, m.len) == Bond::ProbeAction::Sampled) ++samples;
                    else ++errors;
                } else {
                    if (a.on_feedback(now, m.payload, m.len)) ++feedbacks;
                    else ++errors;
                }
                rev[i].pop_front();
            }
        }
        // A: probes, through the bottleneck like everything else.
        for (int l, guard = 0; (l = a.probe_due(now)) >= 0 && guard < 8; ++guard) {
            unsigned i = unsigned(l);
            Msg m{0, kProbeWire, true, 0, {}};
            m.len = a.make_probe(i, now, m.payload, sizeof m.payload);
            if (m.len != kProbeSize) ++errors;
            a.on_sent(i, now, kProbeWire);
            m.at = through(i, now, kProbeWire);
            if (m.at) fwd[i].push_back(m);
        }
        // A: data.
        tokens += offered * double(kTick) / 1e9;
        while (tokens >= kPkt) {
            tokens -= kPkt;
            int l = a.pick(now, kPkt);
            if (l < 0) {
                ++refused;
                continue;
            }
            unsigned i = unsigned(l);
            if (now >= kWinStart) ++picks[i];
            a.on_sent(i, now, kPkt);
            uint64_t at = through(i, now, kPkt);
            if (!at) {
                ++drops;
                continue;
            }
            fwd[i].push_back(Msg{at, kPkt, false, 0, {}});
        }
    }

    double rate0 = double(a.est[0].rate_bytes_per_s()) / kMbit;
    double rate1 = double(a.est[1].rate_bytes_per_s()) / kMbit;
    double split = picks[1] ? double(picks[0]) / double(picks[1]) : 0;
    MESSAGE("back to back: est ", rate0, " + ", rate1, " Mbit/s, picks ", picks[0], ":", picks[1],
            " (", split, "), refused ", refused, ", drops ", drops, ", samples ", samples,
            ", feedbacks ", feedbacks, ", srtt ", double(a.est[0].srtt_ns()) / 1e6, " / ",
            double(a.est[1].srtt_ns()) / 1e6, " ms");
    CHECK(errors == 0);
    CHECK(samples > 2 * 5 * 5);  // probes every 100 ms on both links, most answered
    CHECK(feedbacks > 200);      // about every 20 ms for 5 s
    CHECK(rate0 == doctest::Approx(cap_mbit[0]).epsilon(0.15));
    CHECK(rate1 == doctest::Approx(cap_mbit[1]).epsilon(0.15));
    CHECK(split == doctest::Approx(cap_mbit[0] / cap_mbit[1]).epsilon(0.15));
    // B saw A's probes and data only; the RTTs A measured include the base delays.
    CHECK(a.est[0].min_rtt_ns() >= 2 * owd[0]);
    CHECK(a.est[1].min_rtt_ns() >= 2 * owd[1]);
    CHECK(a.gap_timeout_ns() != a.cfg.gap_unknown_ns);
    CHECK(a.control_link() == 0);
}

TEST_SUITE_END();

TEST_CASE("bond: Feedback tells the sender the newest data sequence number per link") {
    Bond rx, tx;
    for (unsigned i = 0; i < 2; ++i) {
        rx.set_usable(i, true);
        tx.set_usable(i, true);
    }
    uint64_t seq = 0;
    CHECK_FALSE(tx.delivered_through(0, &seq));
    auto report = [&](uint64_t now) {
        uint8_t buf[kFeedbackMaxSize];
        REQUIRE(rx.feedback_due(now));
        size_t n = rx.make_feedback(now, buf, sizeof buf);
        REQUIRE(n > 0);
        REQUIRE(tx.on_feedback(now, buf, n));
    };
    // Link 0 carries 10, 12, 11 (reordered on the way); link 1 only a probe.
    rx.on_received(0, kMs, 100);
    rx.on_data_seq(0, 10);
    rx.on_data_seq(0, 12);
    rx.on_data_seq(0, 11);
    rx.on_received(1, kMs, 40);
    report(20 * kMs);
    REQUIRE(tx.delivered_through(0, &seq));
    CHECK(seq == 12);
    CHECK_FALSE(tx.delivered_through(1, &seq));  // nothing of the data channel there
    // A resend of an old number arriving on link 1 does not move link 0.
    rx.on_received(1, 30 * kMs, 100);
    rx.on_data_seq(1, 3);
    report(40 * kMs);
    REQUIRE(tx.delivered_through(1, &seq));
    CHECK(seq == 3);
    REQUIRE(tx.delivered_through(0, &seq));
    CHECK(seq == 12);
    // New keys: both sequence spaces start again.
    tx.on_peer_restart();
    rx.on_peer_restart();
    CHECK_FALSE(tx.delivered_through(0, &seq));
    rx.on_received(0, 50 * kMs, 100);
    rx.on_data_seq(0, 0);
    report(60 * kMs);
    REQUIRE(tx.delivered_through(0, &seq));
    CHECK(seq == 0);
}

TEST_CASE("bond: a datagram missing behind a later one on its own link is reported lost, once") {
    Bond rx, tx;
    ReplayWindow window;  // the receiver's data channel
    for (unsigned i = 0; i < 2; ++i) {
        rx.set_usable(i, true);
        tx.set_usable(i, true);
    }
    // Even numbers on link 0, odd on link 1; link 1 loses 3 and 7, and 9 is
    // still on its way at the first report.
    for (uint64_t seq = 0; seq < 10; ++seq) tx.on_sent_data(unsigned(seq % 2), kMs, seq);
    auto arrive = [&](uint64_t seq) {
        rx.on_received(unsigned(seq % 2), 2 * kMs, 100);
        rx.on_data_seq(unsigned(seq % 2), seq);
        window.commit(seq);
    };
    for (uint64_t seq : {0, 1, 2, 4, 5, 6, 8}) arrive(seq);
    uint64_t t = 20 * kMs;
    auto report = [&](const ReplayWindow* w) {
        uint8_t buf[kFeedbackMaxSize];
        REQUIRE(rx.feedback_due(t));
        size_t n = rx.make_feedback(t, buf, sizeof buf, w);
        REQUIRE(n > 0);
        REQUIRE(tx.on_feedback(t, buf, n));
        t += 20 * kMs;
        return n;
    };
    Bond::Lost lost[Bond::kLostMax];
    CHECK(report(&window) == 1 + 2 * kFeedbackEntrySize + 8 + kFeedbackMissingSize);
    // 3: link 1 has delivered 5 since. 7 and 9: link 1 delivered nothing later yet.
    REQUIRE(tx.take_lost(lost, Bond::kLostMax) == 1);
    CHECK(lost[0].seq == 3);
    CHECK(lost[0].link == 1);
    CHECK(tx.take_lost(lost, Bond::kLostMax) == 0);  // taken
    arrive(9);
    report(&window);
    REQUIRE(tx.take_lost(lost, Bond::kLostMax) == 1);
    CHECK(lost[0].seq == 7);  // 3 is still missing, but was found already
    rx.on_received(0, t, 100);
    report(&window);
    CHECK(tx.take_lost(lost, Bond::kLostMax) == 0);
    CHECK(tx.lost_found() == 2);

    // Without the window the receiver sends no block. Its own repair_window
    // does not matter (it says what it repairs); the sender's 0 finds nothing.
    rx.on_received(0, t, 100);
    CHECK(report(nullptr) == 1 + 2 * kFeedbackEntrySize + 8);
    rx.cfg.repair_window_ns = 0;
    tx.on_sent_data(1, t, 10);
    tx.on_sent_data(1, t, 11);
    tx.cfg.repair_window_ns = 0;
    arrive(11);  // 10 lost behind it
    CHECK(report(&window) == 1 + 2 * kFeedbackEntrySize + 8 + kFeedbackMissingSize);
    CHECK(tx.take_lost(lost, Bond::kLostMax) == 0);
    // Nothing missing: no block.
    window.commit(10);
    window.commit(3);
    window.commit(7);
    rx.on_received(0, t, 100);
    CHECK(report(&window) == 1 + 2 * kFeedbackEntrySize + 8);
}

TEST_CASE("bond: a missing block older than one already used finds nothing") {
    Bond tx;
    tx.set_usable(0, true);
    for (uint64_t seq = 0; seq < 4; ++seq) tx.on_sent_data(0, kMs, seq);
    auto feedback = [&](uint64_t report_time, uint64_t missing, uint64_t now, uint64_t newest = 3) {
        Feedback fb;
        fb.count = 1;
        fb.entries[0] = FeedbackEntry{0, 3, 300, true, newest, true, 3};
        fb.has_time = true;
        fb.report_time_ns = report_time;
        fb.has_missing = true;
        fb.missing[0] = missing;
        uint8_t buf[kFeedbackMaxSize];
        REQUIRE(tx.on_feedback(now, buf, encode_feedback(fb, buf, sizeof buf)));
    };
    Bond::Lost lost[Bond::kLostMax];
    feedback(100 * kMs, 1u << 2, 200 * kMs);  // 2 missing, 3 arrived: lost
    REQUIRE(tx.take_lost(lost, Bond::kLostMax) == 1);
    CHECK(lost[0].seq == 2);
    // Reported earlier, overtaken by the one above: 1 shows as missing only
    // because this report predates its arrival.
    feedback(90 * kMs, 1u << 1, 220 * kMs);
    CHECK(tx.take_lost(lost, Bond::kLostMax) == 0);
    // After the peer restarts, its clock and numbers start again.
    tx.on_peer_restart();
    for (uint64_t seq = 0; seq < 4; ++seq) tx.on_sent_data(0, 300 * kMs, seq);
    feedback(5 * kMs, 1u << 1, 320 * kMs);
    REQUIRE(tx.take_lost(lost, Bond::kLostMax) == 1);
    CHECK(lost[0].seq == 1);
    // A report is judged by its own newest_seq: one that saw the link only
    // up to 0 does not make 1 lost, whatever a newer report said of the link.
    feedback(30 * kMs, 0, 340 * kMs, 3);  // newer, nothing missing
    feedback(40 * kMs, 1u << 2, 360 * kMs, 1);  // 2 missing, the link seen up to 1
    CHECK(tx.take_lost(lost, Bond::kLostMax) == 0);
}

TEST_CASE("bond: at most kLostMax lost per report; the next report finds the rest") {
    Bond tx;
    tx.set_usable(0, true);
    for (uint64_t seq = 0; seq <= 100; ++seq) tx.on_sent_data(0, kMs, seq);
    Feedback fb;
    fb.count = 1;
    fb.entries[0] = FeedbackEntry{0, 1, 100, true, 100, true, 1};
    fb.has_time = true;
    fb.has_missing = true;
    fb.missing[0] = ~uint64_t(0);              // 0..63
    fb.missing[1] = (uint64_t(1) << 36) - 1;   // 64..99: 100 lost in all
    Bond::Lost lost[Bond::kLostMax];
    uint8_t buf[kFeedbackMaxSize];
    fb.report_time_ns = 10 * kMs;
    REQUIRE(tx.on_feedback(100 * kMs, buf, encode_feedback(fb, buf, sizeof buf)));
    REQUIRE(tx.take_lost(lost, Bond::kLostMax) == Bond::kLostMax);
    CHECK(lost[0].seq == 0);
    CHECK(lost[Bond::kLostMax - 1].seq == Bond::kLostMax - 1);
    fb.report_time_ns = 30 * kMs;
    REQUIRE(tx.on_feedback(120 * kMs, buf, encode_feedback(fb, buf, sizeof buf)));
    REQUIRE(tx.take_lost(lost, Bond::kLostMax) == 100 - Bond::kLostMax);
    CHECK(lost[0].seq == Bond::kLostMax);
    CHECK(tx.lost_found() == 100);
}

TEST_CASE("bond: a copy (its header names another link) is not counted in rx_data nor reported as newest") {
    Bond rx;
    rx.set_usable(0, true);
    rx.set_usable(1, true);
    rx.on_received(0, kMs, 100);
    rx.on_data_seq(0, 7);
    rx.on_received(1, kMs, 100);
    rx.on_data_seq(1, 5);
    rx.on_received(1, kMs, 100);
    rx.on_data_seq(1, 9, true);  // a light copy of 9, sent on link 0
    Feedback fb = decoded_feedback(rx, 20 * kMs);
    REQUIRE(fb.count == 2);
    CHECK(fb.entries[0].rx_data == 1);
    CHECK(fb.entries[1].rx_data == 1);
    CHECK(fb.entries[1].rx_packets == 2);  // it arrived there all the same
    // Link 1's newest is its own 5: 6-8, queued behind on link 1, not lost.
    CHECK(fb.entries[1].has_seq);
    CHECK(fb.entries[1].newest_seq == 5);
}

TEST_CASE("bond: an original that arrives after its copy counts on its own link, once and in order") {
    Bond rx;
    rx.set_usable(0, true);
    rx.set_usable(1, true);
    rx.on_received(0, kMs, 100);
    rx.on_data_seq(0, 4);  // link 0's own 4
    struct Row { const char* name; uint64_t seq; bool counted; uint64_t newest; uint16_t rx_data; };
    const Row rows[] = {
        {"newer than link 0's newest: its link delivered it", 9, true, 9, 2},
        {"the same again (a replay): not counted twice", 9, false, 9, 2},
        {"older than the newest (a link delivers in order): a replay", 6, false, 9, 2},
        {"the next one", 12, true, 12, 3},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        CHECK(rx.on_original_after_copy(0, 2 * kMs, 100, r.seq) == r.counted);
        Feedback fb = decoded_feedback(rx, 20 * kMs);
        REQUIRE(fb.count >= 1);
        CHECK(fb.entries[0].link == 0);
        CHECK(fb.entries[0].newest_seq == r.newest);
        CHECK(fb.entries[0].rx_data == r.rx_data);
        rx.on_received(0, 3 * kMs, 100);  // the next Feedback is due again
    }
    // A link that has delivered no original yet counts the first.
    CHECK(rx.on_original_after_copy(1, 3 * kMs, 100, 2));
    CHECK_FALSE(rx.on_original_after_copy(kMaxLinks, 3 * kMs, 100, 2));
}

TEST_CASE("bond: light copies go on each other usable link at most once per interval") {
    Bond b;
    b.cfg.light_copy_every_ns = kMs;
    b.set_usable(0, true);
    b.set_usable(1, true);
    b.set_usable(2, true);
    const uint32_t kTiny = 1;  // far below the links' share (16 ns a copy at 1 Mbit/s): the interval decides
    struct Row { const char* name; unsigned first; uint64_t at; uint8_t want; };
    const Row rows[] = {
        {"first light packet: a copy on each other link", 0, 10 * kMs, 0b110},
        {"within the interval: none", 0, 10 * kMs + kMs / 2, 0},
        {"link 1's own packet marks it", 1, 11 * kMs + kMs / 2, 0b101},
        {"a ms after link 1's, link 2 carried a copy of it 0.5 ms ago", 0, 12 * kMs, 0},
        {"on link 2, 1.1 ms after link 1's", 2, 12 * kMs + 600'000, 0b010},
        {"later: both again", 0, 20 * kMs, 0b110},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        CHECK(b.light_copies(r.first, r.at, kTiny) == r.want);
    }
    // An unusable link gets none; mode redundant copies everything already; 0 is off.
    b.set_usable(2, false);
    CHECK(b.light_copies(0, 30 * kMs, kTiny) == 0b010);
    b.sched.cfg.mode = SchedMode::Redundant;
    CHECK(b.light_copies(0, 40 * kMs, kTiny) == 0);
    b.sched.cfg.mode = SchedMode::Bond;
    b.cfg.light_copy_every_ns = 0;
    CHECK(b.light_copies(0, 50 * kMs, kTiny) == 0);
}

TEST_CASE("bond: light copies take at most 1/light_copy_share of the other link's pacing rate") {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    const uint32_t bytes = 100;
    // Link 1 without an estimate paces at the scheduler's initial rate (and
    // gain): copies of 100 bytes 1/16 of that, far above one a ms.
    uint64_t every = uint64_t((long double)bytes * b.cfg.light_copy_share * 1e9L / b.sched.pacing_rate(1));
    REQUIRE(every > 5 * kMs);
    CHECK(b.light_copies(0, 100 * kMs, bytes) == 0b10);
    CHECK(b.light_copies(0, 100 * kMs + every - 1, bytes) == 0);
    CHECK(b.light_copies(0, 100 * kMs + every, bytes) == 0b10);
}

// The peer of the sequence-number tests: the Bond sends one data datagram
// per ms on each link it uses; every 20 ms the peer reports (Feedback with
// newest_seq) what had arrived by then minus 10 ms (its Feedback takes 10 ms
// back), given each datagram's delay and whether it is lost.
struct SeqPeer {
    struct Sent {
        uint64_t seq, at;
        unsigned link;
    };
    std::vector<Sent> sent;
    uint64_t newest[2]{}, bytes[2]{};
    bool has[2]{};

    void send(Bond& b, uint64_t t) {
        for (unsigned i = 0; i < 2; ++i) {
            if (!b.usable(i)) continue;
            uint64_t seq = sent.size();
            sent.push_back(Sent{seq, t, i});
            b.on_sent(i, t, 1000);
            b.on_sent_data(i, t, seq);
        }
    }
    template <class Delay, class Lost>
    void report(Bond& b, uint64_t t, Delay delay, Lost lost) {
        Feedback fb;
        fb.count = 2;
        for (unsigned i = 0; i < 2; ++i) {
            for (const Sent& d : sent) {
                if (d.link != i || lost(d) || d.at + delay(d) > t - 10 * kMs || (has[i] && d.seq <= newest[i]))
                    continue;
                bytes[i] += 1000;
                newest[i] = d.seq;
                has[i] = true;
            }
            fb.entries[i] = FeedbackEntry{uint8_t(i), uint32_t(bytes[i] / 1000), bytes[i], has[i], has[i] ? newest[i] : 0};
        }
        uint8_t buf[kFeedbackMaxSize];
        REQUIRE(b.on_feedback(t, buf, encode_feedback(fb, buf, sizeof buf)));
    }
};

Bond two_links_20ms() {
    Bond b;
    b.set_usable(0, true);
    b.set_usable(1, true);
    sample_rtt(b, 0, 0, 20 * kMs);
    sample_rtt(b, 1, 0, 20 * kMs);
    return b;
}

TEST_CASE("bond: a stall is timed from the first datagram the link lost, not from the last delivery") {
    // Link 1 is cut at 500 ms with 60 ms of queue ahead of the cut: the peer
    // keeps reporting deliveries on it until 580 ms, all of datagrams sent
    // before the cut (srtt 20 ms, rttvar 10 ms, feedback every 20 ms: lag
    // 100 ms). The timeout alone: the 60 ms queue is one the scheduler does
    // not know of, so its forecast would find the link late from the start.
    Bond b = two_links_20ms();
    b.cfg.stall_late_ns = 0;
    const uint64_t cut = 500 * kMs;
    SeqPeer peer;
    auto delay = [](const SeqPeer::Sent& d) { return 10 * kMs + (d.link == 1 ? 60 * kMs : 0); };
    auto lost = [&](const SeqPeer::Sent& d) { return d.link == 1 && d.at > cut; };
    uint64_t gone_at = 0;
    for (uint64_t t = kMs; t <= 1000 * kMs; t += kMs) {
        peer.send(b, t);
        if (t % (20 * kMs) == 0) peer.report(b, t, delay, lost);
        b.update(t);
        if (t < cut) CHECK(b.usable(1));
        if (!b.usable(1) && gone_at == 0) gone_at = t;
    }
    REQUIRE(gone_at > 0);
    // The third datagram after the cut went out at 503 ms and is missing
    // 100 ms later; the link must also have been quiet for max(2 Feedback
    // intervals, 60 ms) after its last delivery, reported at 580 ms: 640 ms.
    // Timed from the last delivery with the full lag it would be 700 ms.
    CHECK(gone_at - cut <= 140 * kMs);
    CHECK(b.health[1].stalls() == 1);
}

TEST_CASE("bond: a link whose queue outgrows its srtt is late, not stalled") {
    // Link 1 delivers every datagram, but its delay grows by 1 ms every
    // 10 ms (a queue filling up faster than probes show): by the end they
    // take 110 ms, far past srtt + 4 x rttvar + 2 feedback intervals. Its
    // deliveries never stop, so it is not a stall.
    Bond b = two_links_20ms();
    SeqPeer peer;
    auto delay = [](const SeqPeer::Sent& d) { return 10 * kMs + (d.link == 1 ? d.at / 10 : 0); };
    auto never = [](const SeqPeer::Sent&) { return false; };
    for (uint64_t t = kMs; t <= 1000 * kMs; t += kMs) {
        peer.send(b, t);
        if (t % (20 * kMs) != 0) continue;
        peer.report(b, t, delay, never);
        b.update(t);
        CHECK(b.usable(1));
    }
    CHECK(b.health[1].stalls() == 0);
}

// Runs the SeqPeer scenario for 1 s with `delay` and `lost`; returns when
// link 1 was first out of use (0: never), and whether it was in use at the
// end.
template <class Delay, class Lost>
uint64_t first_out_of_use(Bond& b, Delay delay, Lost lost, bool* used_at_end = nullptr) {
    SeqPeer peer;
    uint64_t gone_at = 0;
    for (uint64_t t = kMs; t <= 1000 * kMs; t += kMs) {
        peer.send(b, t);
        if (t % (20 * kMs) == 0) peer.report(b, t, delay, lost);
        b.update(t);
        if (!b.usable(1) && gone_at == 0) gone_at = t;
    }
    if (used_at_end) *used_at_end = b.usable(1);
    return gone_at;
}

TEST_CASE("bond: a cut link is out of use stall_late_ns and two Feedback intervals after the cut") {
    // Both links 10 ms one way, as the scheduler knows them; link 1 is cut
    // at 500 ms. Its third datagram after the cut was due at 515 ms; link 0
    // delivers one due at 545 ms and reports it at 560. The timeout alone
    // (srtt + 4 x rttvar + 2 Feedback intervals = 100 ms after that third
    // datagram) takes twice as long.
    const uint64_t cut = 500 * kMs;
    auto delay = [](const SeqPeer::Sent&) { return 10 * kMs; };
    auto lost = [&](const SeqPeer::Sent& d) { return d.link == 1 && d.at > cut; };
    struct Row {
        uint64_t late_ns, min_ms, max_ms;
    } rows[] = {
        {30 * kMs, 40, 70},   // the default: late behind link 0
        {0, 100, 160},        // the timeout alone
    };
    for (const Row& r : rows) {
        CAPTURE(r.late_ns);
        Bond b = two_links_20ms();
        b.cfg.stall_late_ns = r.late_ns;
        uint64_t gone_at = first_out_of_use(b, delay, lost);
        REQUIRE(gone_at > cut);
        CHECK(gone_at - cut >= r.min_ms * kMs);
        CHECK(gone_at - cut <= r.max_ms * kMs);
        CHECK(b.health[1].stalls() == 1);
        CHECK(b.health[1].stalls_undone() == 0);
    }
}

TEST_CASE("bond: a link late behind the others is taken out, and used again when its datagrams arrive after all") {
    // Link 1's datagrams sent between 500 and 600 ms take 90 ms instead of
    // 10 (a radio that held them): it looks cut at 560 ms, and at 600 ms
    // the peer reports the first of them: late, not dead. It is used again
    // at once (no 2 s of clean probes), and its forecast is not trusted
    // for a while: the same delay again is left to the timeout, which it
    // does not reach.
    auto delay = [](const SeqPeer::Sent& d) {
        bool held = d.link == 1 && ((d.at >= 500 * kMs && d.at < 600 * kMs) || (d.at >= 800 * kMs && d.at < 850 * kMs));
        return held ? 90 * kMs : 10 * kMs;
    };
    auto never = [](const SeqPeer::Sent&) { return false; };
    Bond b = two_links_20ms();
    bool used_at_end = false;
    uint64_t gone_at = first_out_of_use(b, delay, never, &used_at_end);
    CHECK(gone_at >= 540 * kMs);
    CHECK(gone_at <= 580 * kMs);
    CHECK(b.health[1].stalls() == 1);
    CHECK(b.health[1].stalls_undone() == 1);
    CHECK(used_at_end);
}

// A sender and its peer over two links of 10 ms each way, stepped by the
// ms: `send(t)` says which links carry a data datagram at t (bit i), `lost`
// which of those never arrive. The peer reports every 20 ms with its
// missing block; what the sender finds lost is collected.
struct TwoLinkRun {
    Bond rx, tx;
    ReplayWindow window;
    struct InFlight {
        uint64_t seq, at;
        unsigned link;
    };
    std::deque<InFlight> flight;
    uint64_t seq = 0;
    std::vector<std::pair<uint64_t, Bond::Lost>> found;  // when, what
    uint64_t stalled_at = 0;                              // link 1's first stall

    TwoLinkRun() {
        for (unsigned i = 0; i < 2; ++i) {
            rx.set_usable(i, true);
            tx.set_usable(i, true);
            sample_rtt(tx, i, 0, 20 * kMs);
        }
    }
    template <class Send, class Lost>
    void run(uint64_t until, Send send, Lost lost) {
        Bond::Lost out[Bond::kLostMax];
        for (uint64_t t = kMs; t <= until; t += kMs) {
            uint8_t links = send(t);
            for (unsigned i = 0; i < 2; ++i) {
                if (!(links >> i & 1u)) continue;
                tx.on_sent(i, t, 1000);
                tx.on_sent_data(i, t, seq);
                if (!lost(t, i)) flight.push_back({seq, t, i});
                ++seq;
            }
            while (!flight.empty() && flight.front().at + 10 * kMs <= t) {
                rx.on_received(flight.front().link, t, 1000);
                rx.on_data_seq(flight.front().link, flight.front().seq);
                window.commit(flight.front().seq);
                flight.pop_front();
            }
            if (t % (20 * kMs) == 0 && rx.feedback_due(t)) {
                uint8_t buf[kFeedbackMaxSize];
                size_t n = rx.make_feedback(t, buf, sizeof buf, &window);
                REQUIRE(tx.on_feedback(t, buf, n));
            }
            if (t % (5 * kMs) == 0) tx.update(t);  // the worker's tick
            for (unsigned k = 0, m = tx.take_lost(out, Bond::kLostMax); k < m; ++k) found.push_back({t, out[k]});
            if (tx.health[1].stalls() > 0 && stalled_at == 0) stalled_at = t;
        }
    }
};

TEST_CASE("bond: a tail lost on a link that sends nothing after it is found late behind the others") {
    // Both links carry a datagram every ms. From 100 ms on link 1 carries
    // one more (lost) and then nothing: no later one on its own link can
    // show it missing, and one datagram is not a stall. It is found once
    // link 0 has delivered one due stall_late_ns after it: due at 110 ms,
    // link 0 delivers one due at 140 ms by 140 ms.
    TwoLinkRun r;
    r.run(400 * kMs, [](uint64_t t) { return uint8_t(t > 100 * kMs ? 1 : 3); },
          [](uint64_t t, unsigned i) { return i == 1 && t == 100 * kMs; });
    REQUIRE(r.found.size() == 1);
    CHECK(r.found[0].second.link == 1);
    CHECK(r.found[0].second.seq == 199);  // the 100th on each link
    CHECK(r.found[0].first >= 140 * kMs);
    CHECK(r.found[0].first <= 160 * kMs);
    CHECK(r.tx.health[1].stalls() == 0);
}

TEST_CASE("bond: a flow that stops after a link lost its window: the timer finds the link silent") {
    // Both links carry a datagram every ms until 500 ms, when link 1 dies
    // and the flow stops after 4 more on it and one on link 0 (a window
    // lost: nothing comes back, so nothing is sent and the peer has nothing
    // new to report). Its tail was due at 510 ms; a report of it would have
    // come back by 510 + 30 (margin) + 20 (Feedback interval) + 10 ms.
    SUBCASE("four datagrams: a stall") {
        TwoLinkRun r;
        r.run(1000 * kMs,
              [](uint64_t t) { return uint8_t(t < 500 * kMs ? 3 : t == 500 * kMs ? 3 : t <= 503 * kMs ? 2 : 0); },
              [](uint64_t t, unsigned i) { return i == 1 && t >= 500 * kMs; });
        REQUIRE(r.stalled_at > 0);
        CHECK(r.stalled_at >= 573 * kMs);
        CHECK(r.stalled_at <= 580 * kMs);
        CHECK(r.found.empty());  // the stall sends them again, not repair
    }
    SUBCASE("one datagram: sent again, no stall; no new packets on the link until a probe comes back") {
        TwoLinkRun r;
        r.run(700 * kMs, [](uint64_t t) { return uint8_t(t <= 500 * kMs ? 3 : 0); },
              [](uint64_t t, unsigned i) { return i == 1 && t == 500 * kMs; });
        REQUIRE(r.found.size() == 1);
        CHECK(r.found[0].second.link == 1);
        CHECK(r.found[0].second.seq == 999);
        CHECK(r.found[0].first >= 570 * kMs);
        CHECK(r.found[0].first <= 575 * kMs);
        CHECK(r.stalled_at == 0);
        CHECK(r.tx.health[1].stalls() == 0);
        CHECK_FALSE(r.tx.usable(1));
        sample_rtt(r.tx, 1, 710 * kMs, 20 * kMs);  // a probe sent after it, echoed
        r.tx.update(730 * kMs);
        CHECK(r.tx.usable(1));
    }
    SUBCASE("both links silent: the peer is gone, no link is stalled") {
        TwoLinkRun r;
        r.run(1000 * kMs, [](uint64_t t) { return uint8_t(t <= 503 * kMs ? 3 : 0); },
              [](uint64_t t, unsigned) { return t >= 500 * kMs; });
        CHECK(r.stalled_at == 0);
        CHECK(r.tx.health[0].stalls() == 0);
    }
}

TEST_CASE("bond: a light packet's resend is picked past the admission budget, as the packet was") {
    // Link 1 failed; link 0 is full to its budget with bulk data. A bulk
    // resend is refused (the worker holds or drops it), a ping's or an
    // ACK's goes now, as the ping or the ACK did (Admission::Exempt).
    Bond b;
    b.sched.cfg.budget_ns = 10 * kMs;
    b.sched.links[0] = SchedLink{true, 0, 0, 1'000'000, 0, 0, 0};
    uint64_t t = test::settle_in_probe_bw(b.sched, 0, 0);
    b.sched.links[1] = SchedLink{true, 0, 0, 1'000'000, 0, 0, 0};  // in Startup: it would take anything
    b.sched.on_queue_sample(0, t, 0, 5 * kMs);
    int taken = 0;
    while (b.pick_other_than(1, t, 1000) == 0 && taken < 1000) ++taken;
    CHECK(taken == 5);  // 5 ms queued + 5 x 1 ms: the budget is full
    CHECK(b.pick_other_than(1, t, 1000) == -1);
    CHECK(b.pick_other_than(1, t, 1000, 0, Admission::Exempt) == 0);
    CHECK(b.sched.links[1].usable);  // out of the pick only for it
}
