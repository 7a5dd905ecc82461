// link_estimator.h — sender-side estimate of one WAN link, from feedback.
//
// Pure arithmetic: time is a nanosecond value on any monotonic clock passed
// in by the caller (it must never go backwards), no allocation, O(1) per sent
// packet and O(kSnapshots) per feedback message.
//
// Inputs:
//   on_send      every datagram the sender puts on this link (bytes as sent);
//   on_feedback  the peer's cumulative per-link counters (Feedback payload)
//                and, if it sent one, the time of the report on its clock;
//                older (reordered) reports are ignored, the u32 packet
//                counter may wrap;
//   on_rtt       a probe's round trip (now - echoed sender_time_ns).
// Outputs:
//   rate_bytes_per_s()  delivery rate: windowed max over max(1 s, 10 x min RTT)
//                       of (bytes delivered between two feedbacks / interval),
//                       the interval on the peer's clock when the reports
//                       carry its time: their arrival here varies with the
//                       queues they cross, and a max filter keeps every
//                       interval that queueing shortened (seen: a 40 Mbit/s
//                       link estimated at 43-57).
//                       0 until the second feedback. A sample taken while the
//                       link was given less than half of the current estimate
//                       (app-limited) can only raise the estimate, so an idle
//                       link keeps what it had learned.
//   srtt_ns(), rttvar_ns(), min_rtt_ns() (windowed min over 10 s), owd_ns()
//                       (= min_rtt / 2: base one-way delay, paths assumed
//                       symmetric; queueing is modelled by the scheduler);
//   inflight_bytes()    sent - delivered - bytes presumed lost (sent more
//                       than srtt + 2 feedback intervals before the newest
//                       feedback and still not delivered);
//   loss_rate()         1 - delivered / sent packets over about the last second
//                       (sends shifted by srtt so that packets still in
//                       flight are not counted as lost), 0..1.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moment.h"

namespace onebox::proto {

// Kathleen Nichols' windowed min/max filter (as in Linux lib/minmax.c): the
// best, second-best and third-best values in a time window, O(1) per sample.
struct WindowedFilter {
    struct Sample { uint64_t t = 0; uint64_t v = 0; };
    Sample s[3]{};
    bool empty = true;

    uint64_t get() const { return empty ? 0 : s[0].v; }
    void reset(uint64_t t, uint64_t v) {
        s[0] = s[1] = s[2] = Sample{t, v};
        empty = false;
    }
    uint64_t running_max(uint64_t win, uint64_t t, uint64_t v);
    uint64_t running_min(uint64_t win, uint64_t t, uint64_t v);

  private:
    void subwin_update(uint64_t win, Sample val);
};

struct LinkEstimator {
    struct Config {
        uint64_t min_rate_window_ns = 1'000'000'000;  // rate max filter: at least 1 s ...
        unsigned rate_window_rtts = 10;               // ... or this many min RTTs
        uint64_t min_sample_ns = 5'000'000;           // feedbacks closer than this are merged
        uint64_t min_rtt_window_ns = 10'000'000'000;  // min RTT filter window
        uint64_t loss_window_ns = 1'000'000'000;      // loss_rate() window
    };
    Config cfg{};

    void on_send(uint64_t now, uint32_t bytes);
    void on_feedback(uint64_t now, uint64_t cum_rx_bytes, uint32_t cum_rx_packets, uint64_t peer_ns = 0);
    void on_rtt(uint64_t now, uint64_t rtt_ns);

    uint64_t rate_bytes_per_s() const { return rate_.get(); }
    bool has_rate() const { return !rate_.empty; }
    uint64_t srtt_ns() const { return srtt_; }
    uint64_t rttvar_ns() const { return rttvar_; }
    uint64_t latest_rtt_ns() const { return latest_rtt_; }
    uint64_t min_rtt_ns() const { return min_rtt_.get(); }
    uint64_t owd_ns() const { return min_rtt_.get() / 2; }
    uint64_t inflight_bytes() const;
    double loss_rate() const { return loss_; }
    uint64_t feedback_interval_ns() const { return fb_interval_; }  // smoothed, 0 until known

    uint64_t sent_bytes() const { return sent_bytes_; }
    uint64_t sent_packets() const { return sent_pkts_; }
    uint64_t delivered_bytes() const { return dlv_bytes_; }
    uint64_t delivered_packets() const { return dlv_pkts_; }  // unwrapped
    uint64_t ignored_feedback() const { return ignored_; }     // older reports dropped
    // When a Feedback last showed more bytes delivered (never: !ever).
    Moment last_delivery() const { return last_delivery_; }
    // Bytes sent as of the newest Feedback taken at or before t (the oldest
    // kept if none): what the link had been given by then, at feedback
    // granularity.
    uint64_t sent_bytes_by(uint64_t t) const {
        const Snapshot* sn = snapshot_at(t);
        return sn ? sn->sent_bytes : 0;
    }
    uint64_t sent_packets_by(uint64_t t) const {
        const Snapshot* sn = snapshot_at(t);
        return sn ? sn->sent_pkts : 0;
    }

    // Forget everything (new session; counters restart at 0 on both ends).
    void reset() {
        Config c = cfg;
        *this = LinkEstimator{};
        cfg = c;
    }

  private:
    struct Snapshot {
        uint64_t t = 0;
        uint64_t sent_bytes = 0, sent_pkts = 0, dlv_pkts = 0;
    };
    static constexpr unsigned kSnapshots = 128;

    const Snapshot* snapshot_at(uint64_t t) const;  // newest with .t <= t, else oldest
    void push_snapshot(uint64_t now);

    uint64_t sent_bytes_ = 0, sent_pkts_ = 0;
    bool have_fb_ = false;
    uint64_t dlv_bytes_ = 0, dlv_pkts_ = 0;
    uint32_t last_rx_pkts32_ = 0;
    uint64_t last_fb_time_ = 0;
    Moment last_delivery_;
    uint64_t fb_interval_ = 0;
    // rate sample baseline
    uint64_t base_time_ = 0, base_dlv_bytes_ = 0, base_sent_bytes_ = 0;
    bool base_on_peer_clock_ = false;  // base_time_ is the peer's time (else ours)
    // The next rate sample is measured from here: time t (on the peer's
    // clock or ours) and the counters now.
    void start_rate_interval(uint64_t t, bool peer_clock);
    WindowedFilter rate_{};
    // rtt
    uint64_t srtt_ = 0, rttvar_ = 0, latest_rtt_ = 0;
    WindowedFilter min_rtt_{};
    // loss / inflight
    uint64_t lost_bytes_ = 0;
    double loss_ = 0;
    uint64_t ignored_ = 0;
    Snapshot snaps_[kSnapshots]{};
    unsigned snap_head_ = 0;   // index of the next write
    unsigned snap_count_ = 0;
};

}  // namespace onebox::proto
