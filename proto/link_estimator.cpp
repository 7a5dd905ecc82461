// link_estimator.cpp — see link_estimator.h.
#include "link_estimator.h"

#include <algorithm>

namespace onebox::proto {

void WindowedFilter::subwin_update(uint64_t win, Sample val) {
    uint64_t dt = val.t - s[0].t;
    if (dt > win) {
        // The best sample is too old: promote the next ones.
        s[0] = s[1];
        s[1] = s[2];
        s[2] = val;
        if (val.t - s[0].t > win) {
            s[0] = s[1];
            s[1] = s[2];
            s[2] = val;
        }
    } else if (s[1].t == s[0].t && dt > win / 4) {
        s[2] = s[1] = val;  // a quarter of the window passed without a second choice
    } else if (s[2].t == s[1].t && dt > win / 2) {
        s[2] = val;         // half the window passed without a third choice
    }
}

uint64_t WindowedFilter::running_max(uint64_t win, uint64_t t, uint64_t v) {
    if (empty || v >= s[0].v || t - s[2].t > win) {
        reset(t, v);
        return v;
    }
    Sample val{t, v};
    if (v >= s[1].v) s[2] = s[1] = val;
    else if (v >= s[2].v) s[2] = val;
    subwin_update(win, val);
    return s[0].v;
}

uint64_t WindowedFilter::running_min(uint64_t win, uint64_t t, uint64_t v) {
    if (empty || v <= s[0].v || t - s[2].t > win) {
        reset(t, v);
        return v;
    }
    Sample val{t, v};
    if (v <= s[1].v) s[2] = s[1] = val;
    else if (v <= s[2].v) s[2] = val;
    subwin_update(win, val);
    return s[0].v;
}

void LinkEstimator::on_send(uint64_t /*now*/, uint32_t bytes) {
    sent_bytes_ += bytes;
    ++sent_pkts_;
}

const LinkEstimator::Snapshot* LinkEstimator::snapshot_at(uint64_t t) const {
    if (snap_count_ == 0) return nullptr;
    // Walk from newest to oldest: feedback is not per packet, and kSnapshots is small.
    const Snapshot* best = nullptr;
    for (unsigned k = 0; k < snap_count_; ++k) {
        const Snapshot& sn = snaps_[(snap_head_ + kSnapshots - 1 - k) % kSnapshots];
        best = &sn;
        if (sn.t <= t) break;
    }
    return best;
}

void LinkEstimator::push_snapshot(uint64_t now) {
    snaps_[snap_head_] = Snapshot{now, sent_bytes_, sent_pkts_, dlv_pkts_};
    snap_head_ = (snap_head_ + 1) % kSnapshots;
    if (snap_count_ < kSnapshots) ++snap_count_;
}

void LinkEstimator::start_rate_interval(uint64_t t, bool peer_clock) {
    base_time_ = t;
    base_on_peer_clock_ = peer_clock;
    base_dlv_bytes_ = dlv_bytes_;
    base_sent_bytes_ = sent_bytes_;
}

void LinkEstimator::on_feedback(uint64_t now, uint64_t cum_rx_bytes, uint32_t cum_rx_packets, uint64_t peer_ns) {
    uint64_t t = peer_ns ? peer_ns : now;  // the clock rate intervals are measured on
    if (!have_fb_) {
        // First report: a baseline only (the counters may already be non-zero).
        have_fb_ = true;
        dlv_bytes_ = cum_rx_bytes;
        last_rx_pkts32_ = cum_rx_packets;
        dlv_pkts_ = cum_rx_packets;
        last_fb_time_ = now;
        last_delivery_.mark(now);  // the reference a stall is measured from
        start_rate_interval(t, peer_ns != 0);
        push_snapshot(now);
        return;
    }
    uint32_t dpk = cum_rx_packets - last_rx_pkts32_;  // modulo 2^32
    if (cum_rx_bytes < dlv_bytes_ || dpk > 0x80000000u) {
        ++ignored_;  // an older report overtaken by a newer one
        return;
    }
    if (cum_rx_bytes > dlv_bytes_) last_delivery_.mark(now);
    dlv_bytes_ = cum_rx_bytes;
    dlv_pkts_ += dpk;
    last_rx_pkts32_ = cum_rx_packets;

    uint64_t gap = now - last_fb_time_;
    if (gap > 0) fb_interval_ = fb_interval_ == 0 ? gap : (7 * fb_interval_ + gap) / 8;
    last_fb_time_ = now;

    // A report on the other clock than the base's, or earlier than it:
    // a new base, no sample.
    if ((peer_ns != 0) != base_on_peer_clock_ || t < base_time_) start_rate_interval(t, peer_ns != 0);
    // Delivery rate sample (merge reports closer than min_sample_ns, which
    // also covers a zero interval).
    uint64_t interval = t - base_time_;
    if (interval >= cfg.min_sample_ns && interval > 0) {
        uint64_t dbytes = dlv_bytes_ - base_dlv_bytes_;
        uint64_t sbytes = sent_bytes_ - base_sent_bytes_;
        // bytes * 1e9 / ns without overflow for any realistic rate: use long double.
        // Clamped to 100 Gbit/s: a peer reporting absurd byte counts garbles
        // only its own estimate, and the conversion stays defined.
        long double r = (long double)dbytes * 1e9L / (long double)interval;
        uint64_t sample = r >= 12.5e9L ? uint64_t(12'500'000'000) : uint64_t(r);
        uint64_t win = std::max<uint64_t>(cfg.min_rate_window_ns,
                                          uint64_t(cfg.rate_window_rtts) * min_rtt_.get());
        uint64_t cur = rate_.get();
        // App-limited: the link was offered less than half its estimate.
        bool app_limited = !rate_.empty &&
                           (long double)sbytes * 1e9L < 0.5L * (long double)cur * interval;
        if (!app_limited || sample >= cur) rate_.running_max(win, now, sample);
        start_rate_interval(t, base_on_peer_clock_);
    }

    push_snapshot(now);

    // Bytes sent long enough ago that their delivery must have been reported.
    uint64_t lag = (srtt_ ? srtt_ : 200'000'000) + 2 * fb_interval_;
    if (now > lag) {
        const Snapshot* old = snapshot_at(now - lag);
        if (old && old->t <= now - lag && old->sent_bytes > dlv_bytes_)
            lost_bytes_ = std::max(lost_bytes_, old->sent_bytes - dlv_bytes_);
    }

    // Loss over the window: delivered packets vs packets sent one srtt earlier.
    uint64_t shift = srtt_ + fb_interval_ / 2;
    if (now > cfg.loss_window_ns + shift) {
        const Snapshot* a = snapshot_at(now - cfg.loss_window_ns);
        const Snapshot* s_end = snapshot_at(now - shift);
        const Snapshot* s_begin = a ? snapshot_at(a->t > shift ? a->t - shift : 0) : nullptr;
        if (a && s_end && s_begin && s_end->sent_pkts > s_begin->sent_pkts) {
            double sent = double(s_end->sent_pkts - s_begin->sent_pkts);
            double dlv = double(dlv_pkts_ - a->dlv_pkts);
            loss_ = std::clamp(1.0 - dlv / sent, 0.0, 1.0);
        }
    }
}

void LinkEstimator::on_rtt(uint64_t now, uint64_t rtt_ns) {
    latest_rtt_ = rtt_ns;
    if (srtt_ == 0) {
        srtt_ = rtt_ns;
        rttvar_ = rtt_ns / 2;
    } else {
        uint64_t err = rtt_ns > srtt_ ? rtt_ns - srtt_ : srtt_ - rtt_ns;
        rttvar_ = (3 * rttvar_ + err) / 4;
        srtt_ = (7 * srtt_ + rtt_ns) / 8;
    }
    min_rtt_.running_min(cfg.min_rtt_window_ns, now, rtt_ns);
}

uint64_t LinkEstimator::inflight_bytes() const {
    uint64_t accounted = dlv_bytes_ + lost_bytes_;
    return sent_bytes_ > accounted ? sent_bytes_ - accounted : 0;
}

}  // namespace onebox::proto
