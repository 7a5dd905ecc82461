// bond.cpp — see bond.h.
#include "bond.h"

#include <algorithm>

namespace onebox::proto {

namespace {
constexpr uint64_t kBusyWindowNs = 1'000'000'000;  // probe fast while data went out this recently
}

void Bond::set_usable(unsigned i, bool usable) {
    if (i >= kMaxLinks || sched.links[i].usable == usable) return;
    sched.links[i].usable = usable;
    if (usable) {
        // Keep the estimator (its counters must stay in step with the peer's
        // cumulative Feedback); restart the scheduler's discovery and probe at once.
        sched.reset_link(i);
        last_probe_[i] = Moment{};
    }
}

void Bond::on_sent(unsigned i, uint64_t now, uint32_t datagram_bytes) {
    if (i < kMaxLinks) est[i].on_send(now, datagram_bytes);
}

void Bond::on_received(unsigned i, uint32_t datagram_bytes, bool answer) {
    if (i >= kMaxLinks) return;
    rx_bytes_[i] += datagram_bytes;
    ++rx_pkts_[i];  // wraps, as Feedback says
    rx_seen_ |= uint8_t(1u << i);
    if (answer) rx_dirty_ = true;
}

size_t Bond::make_feedback(uint64_t now, uint8_t* out, size_t out_cap) {
    Feedback fb;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (rx_seen_ & (1u << i)) fb.entries[fb.count++] = FeedbackEntry{uint8_t(i), rx_pkts_[i], rx_bytes_[i]};
    size_t n = encode_feedback(fb, out, out_cap);
    if (n == 0) return 0;
    rx_dirty_ = false;
    next_feedback_ = now + cfg.feedback_every_ns;
    return n;
}

bool Bond::on_feedback(uint64_t now, const uint8_t* in, size_t len) {
    Feedback fb;
    if (!decode_feedback(in, len, fb)) return false;
    if (last_fb_.less_than(now, kMinFeedbackGapNs)) return true;
    last_fb_.mark(now);
    for (unsigned k = 0; k < fb.count; ++k) {
        unsigned i = fb.entries[k].link;
        est[i].on_feedback(now, fb.entries[k].rx_bytes, fb.entries[k].rx_packets);
        refresh_inputs(i);
    }
    return true;
}

int Bond::probe_due(uint64_t now) const {
    bool busy = last_pick_.less_than(now, kBusyWindowNs);
    uint64_t every = busy ? cfg.probe_every_ns : cfg.idle_probe_every_ns;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!sched.links[i].usable) continue;
        if (!last_probe_[i].less_than(now, every)) return int(i);
    }
    return -1;
}

size_t Bond::make_probe(unsigned i, uint64_t now, uint8_t* out, size_t out_cap) {
    if (i >= kMaxLinks) return 0;
    Probe p{uint8_t(i), ProbeFlags::Probe, ++probe_seq_, now};
    size_t n = encode_probe(p, out, out_cap);
    if (n == 0) return 0;
    // Oldest slot (or a free one) takes it; a probe older than 4 intervals is lost anyway.
    Outstanding* slot = &probes_[i][0];
    for (Outstanding& o : probes_[i]) {
        if (!o.used) { slot = &o; break; }
        if (o.sent_ns < slot->sent_ns) slot = &o;
    }
    *slot = Outstanding{p.probe_seq, now, sched.backlog_ns(i, now), true};
    last_probe_[i].mark(now);
    return n;
}

Bond::ProbeAction Bond::on_probe(unsigned i, uint64_t now, uint8_t* payload, size_t len) {
    Probe p;
    if (i >= kMaxLinks || !decode_probe(payload, len, p) || p.link != i) return ProbeAction::Ignored;
    if (p.flags == ProbeFlags::Probe) {
        encode_probe(echo_of(p), payload, len);
        return ProbeAction::SendEcho;
    }
    // Our own record, not the echoed time, gives the RTT: the peer cannot skew it.
    for (Outstanding& o : probes_[i]) {
        if (!o.used || o.seq != p.probe_seq) continue;
        o.used = false;
        uint64_t rtt = now > o.sent_ns ? now - o.sent_ns : 0;
        est[i].on_rtt(now, rtt);
        refresh_inputs(i);
        uint64_t base = est[i].min_rtt_ns();
        sched.on_queue_sample(i, now, o.modeled_ns, rtt > base ? rtt - base : 0);
        return ProbeAction::Sampled;
    }
    ++unmatched_;
    return ProbeAction::Ignored;
}

uint64_t Bond::gap_timeout_ns() const {
    // For each link both the earliest a packet can arrive (its base one-way
    // delay) and the latest one usually does (plus the queueing its probes
    // measure, srtt - min RTT): a gap is given up on only after the slowest
    // link's packet, queued as they are now, could have filled it.
    uint64_t delay[2 * kMaxLinks];
    unsigned n = 0;
    uint64_t jitter = 0;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!sched.links[i].usable) continue;
        const LinkEstimator& e = est[i];
        if (e.srtt_ns() == 0) return cfg.gap_unknown_ns;
        uint64_t queue = e.srtt_ns() > e.min_rtt_ns() ? e.srtt_ns() - e.min_rtt_ns() : 0;
        delay[n++] = e.owd_ns();
        delay[n++] = e.owd_ns() + queue;
        jitter = std::max(jitter, e.rttvar_ns());
    }
    if (n == 0) return cfg.gap_unknown_ns;
    return gap_timeout_for(delay, n, cfg.gap_floor_ns, cfg.gap_ceil_ns, jitter);
}

int Bond::control_link() const {
    int best = -1;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!sched.links[i].usable) continue;
        uint64_t r = est[i].srtt_ns();
        if (best < 0) { best = int(i); continue; }
        uint64_t rb = est[unsigned(best)].srtt_ns();
        // A link with a measured RTT beats one without; then the smaller RTT.
        if (r != 0 && (rb == 0 || r < rb)) best = int(i);
    }
    return best;
}

}  // namespace onebox::proto
