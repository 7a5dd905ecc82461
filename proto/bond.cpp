// bond.cpp — see bond.h.
#include "bond.h"

#include <algorithm>

namespace onebox::proto {

namespace {
constexpr uint64_t kBusyWindowNs = 1'000'000'000;  // probe fast while data went out this recently
constexpr uint64_t kStallPackets = 3;  // undelivered packets that make a stall
// A link with nothing received this long before another's newest arrival is
// not used for Feedback (a live link gets a probe at least every 100 ms while
// the peer sends, and Feedback every 20 ms).
constexpr uint64_t kQuietFloorNs = 150'000'000;
}

void Bond::set_usable(unsigned i, bool usable) {
    if (i >= kMaxLinks || exists(i) == usable) return;
    if (usable) {
        exists_ |= uint8_t(1u << i);
        last_probe_[i] = Moment{};  // probe it at once
        start_pmtu(i, last_update_, if_mtu_[i]);
    } else {
        exists_ &= uint8_t(~(1u << i));
    }
    refresh(last_update_);
}

// Keeps the estimator (its counters must stay in step with the peer's
// cumulative Feedback); restarts the scheduler's discovery of a link it
// starts using again.
void Bond::use_link(unsigned i, bool use, uint64_t now) {
    if (sched.links[i].usable == use) return;
    sched.links[i].usable = use;
    if (!use) return;
    used_since_[i] = now;
    undo_armed_ &= uint8_t(~(1u << i));       // in use again: nothing left to undo
    acked_sent_seen_ &= uint8_t(~(1u << i));  // loss is counted from what it carries now
    sched.reset_link(i);
    forget_marks(i);  // what it lost before is not news: time a stall from what it carries now
}

void Bond::refresh(uint64_t now) {
    uint8_t tiers[5] = {0, 0, 0, 0, 0};  // schedulable, Up, Unknown, not stalled, any
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!exists(i)) continue;
        const LinkHealth& h = health[i];
        uint8_t bit = uint8_t(1u << i);
        if (h.schedulable(now)) tiers[0] |= bit;
        if (h.state() == LinkState::Up && !h.stalled()) tiers[1] |= bit;
        if (h.state() == LinkState::Unknown) tiers[2] |= bit;
        if (!h.stalled()) tiers[3] |= bit;
        tiers[4] |= bit;
    }
    uint8_t use = 0;
    for (uint8_t t : tiers)
        if ((use = t) != 0) break;
    if (sched.cfg.mode == SchedMode::Backup) use = best_priority(use);
    for (unsigned i = 0; i < kMaxLinks; ++i) use_link(i, use >> i & 1u, now);
}

// Mode backup: of the links `use` allows, only those of the best (lowest)
// priority; the next ones take over when all of those are out of use.
uint8_t Bond::best_priority(uint8_t use) const {
    unsigned best = 256;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (use >> i & 1u) best = std::min<unsigned>(best, sched.links[i].priority);
    uint8_t out = 0;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if ((use >> i & 1u) && sched.links[i].priority == best) out |= uint8_t(1u << i);
    return out;
}

uint64_t Bond::probe_timeout_ns(unsigned i) const {
    uint64_t t = 2 * est[i].srtt_ns() + 4 * est[i].rttvar_ns();
    return std::clamp(t, cfg.probe_timeout_floor_ns, cfg.probe_timeout_ceil_ns);
}

// A link whose probes take it Down had its packets lost since it died, like
// a stalled one: they are to be sent again (take_stalled) unless a stall
// already did that.
void Bond::probe_lost(unsigned i, uint64_t now) {
    if (!exists(i)) return;
    bool was_down = health[i].state() == LinkState::Down;
    health[i].on_probe_lost(now);
    if (!was_down && health[i].state() == LinkState::Down) last_failure_.mark(now);
    if (!was_down && health[i].state() == LinkState::Down && !health[i].stalled())
        new_stalls_ |= uint8_t(1u << i);
}

void Bond::update(uint64_t now) {
    last_update_ = now;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        uint64_t timeout = probe_timeout_ns(i);
        for (Outstanding& o : probes_[i]) {
            if (!o.used) continue;
            if (o.size) {  // a size probe: its loss is the size's, not the link's
                if (now - o.sent_ns < pmtu[i].cfg.probe_timeout_ns) continue;
                o.used = false;
                pmtu[i].on_lost(now, o.size);
                sched.links[i].max_datagram = max_datagram(i);
                continue;
            }
            if (now - o.sent_ns < timeout) continue;
            o.used = false;
            probe_lost(i, now);
        }
    }
    detect_silent_links(now);
    refresh(now);
}

// A link whose deliveries stopped while another's went on (the peer is
// there and reporting): bytes were given to it after its last delivery, long
// enough ago that they should have arrived (the timeout), or they are late
// behind what another link delivered (BondConfig::stall_late_ns). Probes
// would take 4 intervals to call it Down; this takes a few RTTs.
void Bond::detect_stalls(uint64_t now, uint8_t progressed) {
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!usable(i) || (progressed & ~(1u << i)) == 0) continue;
        const LinkEstimator& e = est[i];
        Moment last = e.last_delivery();
        if (!last.ever || health[i].stalled()) continue;
        uint64_t lag = std::max(e.srtt_ns() + 4 * e.rttvar_ns() + 2 * e.feedback_interval_ns(),
                                cfg.stall_floor_ns);
        // Quiet: no delivery at all for two Feedback intervals (at least the
        // floor). A link whose queue grows faster than its srtt follows is
        // late, not dead: its deliveries go on.
        bool quiet = now - last.at >= std::max(2 * e.feedback_interval_ns(), cfg.stall_floor_ns);
        bool stalled = acked_seen_ >> i & 1u
                           ? quiet && stalled_by_seq(i, now, lag)
                           // Before the peer reported a sequence number on the
                           // link: timed from its last delivery. Several
                           // packets, not one: a single lost keepalive on an
                           // idle link is loss, not a dead link (probes catch
                           // an idle dead one).
                           : now - last.at >= lag &&
                                 e.sent_packets_by(now - lag) >= e.sent_packets_by(last.at) + kStallPackets;
        uint64_t through = 0;
        bool late = !stalled && late_datagrams(i, now, &through) >= kStallPackets;
        if (stalled || late) stall_link(i, now);
    }
}

// BondConfig::stall_late_ns: if link i may be judged late now (the
// scheduler forecasts arrivals, it is not filling the link, its forecast
// was not found wrong lately, and it delivered nothing in the last report),
// the due time at or before which what it has not delivered is late: the
// newest another used link delivered, less the margin. 0: none.
uint64_t Bond::late_reference(unsigned i, uint64_t now) const {
    if (!may_judge_late(i, now)) return 0;
    uint64_t other = 0;
    for (unsigned j = 0; j < kMaxLinks; ++j)
        if (j != i && usable(j)) other = std::max(other, acked_due_[j]);
    return other > late_margin(i) ? other - late_margin(i) : 0;
}

bool Bond::may_judge_late(unsigned i, uint64_t now) const {
    if (cfg.stall_late_ns == 0) return false;
    if (!sched.models_arrival() || sched.filling(i, now)) return false;
    if (undone_at_[i].less_than(now, kLateOffAfterUndoNs)) return false;
    Moment last = est[i].last_delivery();
    return last.ever && now - last.at >= std::max(est[i].feedback_interval_ns() / 2, kMinFeedbackGapNs);
}

// Probes correct the forecast a round trip after they measure, so its error
// grows with the link's round trip (seen: up to 42 ms on a 40 ms one-way
// link under load, 80-90 ms srtt).
uint64_t Bond::late_margin(unsigned i) const {
    return std::max(cfg.stall_late_ns, est[i].srtt_ns() * 3 / 4);
}

// Link i's newest data datagram (tail_seq_) has not been reported, and a
// report of it is overdue: due at the peer at tail_due_, reported within
// the peer's Feedback interval, which comes back in at least the shortest
// one-way delay; plus the margin.
bool Bond::tail_silent(unsigned i, uint64_t now) const {
    bool unreported = (tail_seen_ >> i & 1u) && (!(acked_seen_ >> i & 1u) || tail_seq_[i] > acked_seq_[i]);
    if (!unreported || tail_due_[i] == 0) return false;
    if ((silent_seen_ >> i & 1u) && tail_seq_[i] <= silent_through_[i]) return false;  // judged already
    uint64_t back = UINT64_MAX;
    for (unsigned j = 0; j < kMaxLinks; ++j)
        if (usable(j)) back = std::min(back, sched.links[j].owd_ns);
    if (back == UINT64_MAX) return false;
    return now >= tail_due_[i] + late_margin(i) + cfg.feedback_every_ns + back;
}

// The timer's side of the late judgement: a flow that stops sending (a
// window of packets lost on the link: nothing comes back to make the peer
// report) gets no Feedback that could show the link late behind the others.
// A link whose tail is silent while another's is not has stalled if
// kStallPackets or more went unreported. Fewer are sent again (take_lost),
// and the link gets no new packets until a probe sent after this comes back
// (LinkHealth::on_suspect), with no hold: one lost datagram with nothing
// after it is loss (a lossy link carrying little loses its tail often),
// but a dead link would swallow whatever comes next, and a flow whose few
// packets in flight all went there must not lose its next few too. If
// every link is silent, the peer or the way back is gone, not a link.
void Bond::detect_silent_links(uint64_t now) {
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!usable(i) || health[i].stalled() || !may_judge_late(i, now) || !tail_silent(i, now)) continue;
        bool other_fine = false;
        for (unsigned j = 0; j < kMaxLinks && !other_fine; ++j) other_fine = j != i && usable(j) && !tail_silent(j, now);
        if (!other_fine) continue;
        if (unreported_since(i, tx_data_[i]) >= kStallPackets) {
            stall_link(i, now);
            continue;
        }
        health[i].on_suspect(now);
        if (cfg.repair_window_ns) repair_unreported(i);
        silent_through_[i] = tail_seq_[i];  // judged once
        silent_seen_ |= uint8_t(1u << i);
    }
}

// A silent tail is sent again: each number since the newest the peer
// reported on link i that went out on it, newest first, as far as the ring
// remembers.
void Bond::repair_unreported(unsigned i) {
    uint64_t floor = acked_seen_ >> i & 1u ? acked_seq_[i] + 1 : 0;
    for (uint64_t seq = tail_seq_[i] + 1; seq-- > floor && sent_newest_ - seq < kSeqLinks && lost_n_ < kLostMax;) {
        uint8_t& link = seq_link_[seq % kSeqLinks];
        if (link != i) continue;
        lost_[lost_n_++] = Lost{seq, uint8_t(i)};
        link = kNoLink;  // found once
        ++lost_found_;
    }
}

void Bond::stall_link(unsigned i, uint64_t now) {
    arm_undo(i);
    health[i].on_feedback_stall(now);
    last_failure_.mark(now);
    new_stalls_ |= uint8_t(1u << i);
    forget_marks(i);
}

// How many of the datagrams link i has not delivered are late
// (late_reference), and the newest of them (*through). Counted from the
// send marks, so a few more than went out since the newest delivered one
// may be counted, never fewer.
uint64_t Bond::late_datagrams(unsigned i, uint64_t now, uint64_t* through) const {
    uint64_t ref = late_reference(i, now);
    if (ref == 0) return 0;
    uint64_t sent = 0;  // sent_data of the newest late one
    // The newest datagram on the link first (marks are one per
    // kSendMarkEveryNs: the tail itself may have none): if it is late, all are.
    bool tail_unreported = (tail_seen_ >> i & 1u) && (!(acked_seen_ >> i & 1u) || tail_seq_[i] > acked_seq_[i]);
    if (tail_unreported && tail_due_[i] && tail_due_[i] <= ref) {
        *through = tail_seq_[i];
        sent = tx_data_[i];
    } else {
        for (unsigned k = 0; k < mark_count_[i] && mark(i, k).due && mark(i, k).due <= ref; ++k) {
            *through = mark(i, k).seq;
            sent = mark(i, k).sent_data;
        }
    }
    return sent == 0 ? 0 : unreported_since(i, sent);
}

// How many datagrams link i carried, up to the one that was the `sent`-th,
// since the newest its peer reported (at least 1).
uint64_t Bond::unreported_since(unsigned i, uint64_t sent) const {
    uint64_t before = acked_sent_seen_ >> i & 1u ? acked_sent_[i]
                      : mark_count_[i] > 0       ? mark(i, 0).sent_data - 1
                                                 : sent - 1;
    return sent > before ? sent - before : 1;
}

// What a stall can be undone by: a data datagram sent on link i before it
// (at most tx_top_) and newer than what the peer had reported then.
void Bond::arm_undo(unsigned i) {
    uint8_t bit = uint8_t(1u << i);
    stall_top_[i] = tx_top_[i];
    stall_acked_[i] = acked_seq_[i];
    stall_acked_seen_ = uint8_t((stall_acked_seen_ & ~bit) | (acked_seen_ & bit));
    undo_armed_ |= bit;
}

// The peer reports link i delivered `newest_seq`: if that went out on it
// before its stall, the link was late, not dead, and it is used again.
void Bond::maybe_undo_stall(unsigned i, uint64_t now, uint64_t newest_seq) {
    uint8_t bit = uint8_t(1u << i);
    if (!(undo_armed_ & bit) || newest_seq > stall_top_[i]) return;
    if ((stall_acked_seen_ & bit) && newest_seq <= stall_acked_[i]) return;
    undo_armed_ &= uint8_t(~bit);
    undone_at_[i].mark(now);
    health[i].on_stall_undone();
}

// The peer's 16-bit count of data-channel arrivals on link i, unwrapped: a
// report more than 2^15 behind is an older one overtaken (ignored).
void Bond::take_peer_data(unsigned i, uint16_t rx_data) {
    uint8_t bit = uint8_t(1u << i);
    if (!(peer_data_seen_ & bit)) {
        peer_data_seen_ |= bit;
        peer_data16_[i] = rx_data;
        peer_data_[i] = rx_data;
        return;
    }
    uint16_t d = uint16_t(rx_data - peer_data16_[i]);
    if (d >= 0x8000u) return;
    peer_data16_[i] = rx_data;
    peer_data_[i] += d;
}

void Bond::sample_loss(unsigned i, uint64_t now) {
    if (!(acked_sent_seen_ >> i & 1u) || !(peer_data_seen_ >> i & 1u)) return;
    unsigned n = loss_count_[i];
    if (n > 0 && now - loss_[i][(loss_head_[i] + n - 1) % kLossSamples].at < kLossSampleEveryNs) return;
    if (n == kLossSamples) {
        loss_head_[i] = uint8_t((loss_head_[i] + 1) % kLossSamples);
        --n;
    }
    loss_[i][(loss_head_[i] + n) % kLossSamples] = LossSample{now, acked_sent_[i], peer_data_[i]};
    loss_count_[i] = uint8_t(n + 1);
}

// Link i's losses over the last 500 ms (since it was last given traffic,
// if later): what was sent on it up to its newest reported arrival and not
// counted by the peer, from the samples sample_loss took. `lost` is the
// rise of that gap over the window (its running maximum, so a count that
// jitters by a datagram or two is not news); a new maximum is a loss event.
struct LinkLosses {
    uint64_t sent = 0, lost = 0;
    unsigned events = 0;
    uint64_t first_event = 0, last_event = 0;
};

bool Bond::losses(unsigned i, uint64_t now, LinkLosses* out) const {
    unsigned n = loss_count_[i];
    // (A sample taken at used_since_ itself came before the link was used
    // again; one taken when the scheduler last filled the link, while it did.)
    uint64_t from = std::max({now > kLossWindowNs ? now - kLossWindowNs : 0, used_since_[i] + 1, filled_at_[i] + 1});
    const LossSample* first = nullptr;
    int64_t top = 0;
    LinkLosses l;
    for (unsigned k = 0; k < n; ++k) {
        const LossSample& s = loss_[i][(loss_head_[i] + k) % kLossSamples];
        if (s.at < from) continue;
        int64_t gap = int64_t(s.sent) - int64_t(s.delivered);
        if (!first) {
            first = &s;
            top = gap;
            continue;
        }
        if (s.sent < first->sent) return false;  // counters restarted
        l.sent = s.sent - first->sent;
        if (gap <= top) continue;
        top = gap;
        if (l.events++ == 0) l.first_event = s.at;
        l.last_event = s.at;
    }
    if (!first || l.sent == 0) return false;
    l.lost = uint64_t(top - (int64_t(first->sent) - int64_t(first->delivered)));
    *out = l;
    return true;
}

// Did link i lose at least share_pm thousandths of what it was sent (and
// lossy_min_lost)? With `spread`, only if the losses came in at least
// lossy_min_events Feedback reports over lossy_min_spread_ns: random loss
// goes on, while the burst a queue overflowing at a link's start (or a
// flow's) drops comes in one or two reports.
bool Bond::losing(const LinkLosses& l, uint64_t share_pm, bool spread) const {
    if (l.lost < cfg.lossy_min_lost || l.lost * 1000 < share_pm * l.sent) return false;
    return !spread || (l.events >= cfg.lossy_min_events && l.last_event - l.first_event >= cfg.lossy_min_spread_ns);
}

// A queue well above the link's base round trip: it drops because it is
// full, and sending less is the cure.
bool Bond::queue_explains_loss(unsigned i) const {
    const LinkEstimator& e = est[i];
    uint64_t base = e.min_rtt_ns();
    return e.srtt_ns() > base + std::max(cfg.lossy_queue_floor_ns, base / 2);
}

// Links losing a share of their packets at random while another is clean:
// out of use until they have been clean for a while (LinkHealth::on_lossy).
// What was in flight on them goes out again elsewhere, like a stall's.
void Bond::detect_lossy(uint64_t now) {
    // Switched off; mode redundant (every link carries everything anyway) or
    // round-robin (one link after the other, whatever they do: a baseline).
    if (cfg.lossy_share <= 0 || sched.cfg.mode == SchedMode::Redundant || sched.cfg.mode == SchedMode::RoundRobin)
        return;
    uint8_t clean = 0, lossy = 0;
    uint32_t pm[kMaxLinks]{};
    uint64_t share_pm = uint64_t(cfg.lossy_share * 1000 + 0.5);
    uint64_t heavy_pm = std::max(share_pm, uint64_t(cfg.lossy_heavy_share * 1000 + 0.5));
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!usable(i) || !health[i].schedulable(now)) continue;
        uint8_t bit = uint8_t(1u << i);
        // What it lost while the scheduler filled it is the scheduler's doing.
        if (sched.filling(i, now)) filled_at_[i] = now;
        LinkLosses l;
        // Clean: under half the share (so two links losing alike are not
        // told apart by which crossed the line first), or not yet judged.
        if (!losses(i, now, &l) || !losing(l, share_pm / 2, false)) {
            clean |= bit;
            continue;
        }
        pm[i] = uint32_t(l.lost * 1000 / l.sent);
        if (losing(l, heavy_pm, true) || (losing(l, share_pm, true) && !queue_explains_loss(i))) lossy |= bit;
    }
    if (clean == 0) return;  // every link losing: better all of them than none
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!(lossy >> i & 1u)) continue;
        health[i].on_lossy(now);
        last_failure_.mark(now);
        new_stalls_ |= uint8_t(1u << i);
        new_lossy_ |= uint8_t(1u << i);
        lossy_pm_[i] = pm[i];
        forget_marks(i);
    }
}

void Bond::on_sent(unsigned i, uint64_t now, uint32_t datagram_bytes) {
    if (i < kMaxLinks) est[i].on_send(now, datagram_bytes);
}

void Bond::on_sent_data(unsigned i, uint64_t now, uint64_t seq, bool payload) {
    if (i >= kMaxLinks) return;
    seq_link_[seq % kSeqLinks] = uint8_t(i);
    if (!sent_any_ || seq > sent_newest_) sent_newest_ = seq;
    sent_any_ = true;
    tx_top_[i] = std::max(tx_top_[i], seq);
    // When the scheduler expects it at the peer (late_reference; judged
    // only while it forecasts arrivals: Scheduler::models_arrival).
    uint64_t owd = sched.links[i].owd_ns;
    uint64_t due = owd ? now + sched.backlog_ns(i, now) + owd : 0;
    if (payload && (!(tail_seen_ >> i & 1u) || seq > tail_seq_[i])) {
        tail_seq_[i] = seq;
        tail_due_[i] = due;
        tail_seen_ |= uint8_t(1u << i);
    }
    ++tx_data_[i];
    unsigned n = mark_count_[i];
    if (n > 0 && now - mark(i, n - 1).at < kSendMarkEveryNs) return;
    if (n == kSendMarks) {  // full: the oldest goes (a stall is then timed a little late)
        mark_head_[i] = uint8_t((mark_head_[i] + 1) % kSendMarks);
        --n;
    }
    marks_[i][(mark_head_[i] + n) % kSendMarks] = SendMark{seq, now, tx_data_[i], due};
    mark_count_[i] = uint8_t(n + 1);
}

void Bond::forget_marks_through(unsigned i, uint64_t seq) {
    while (mark_count_[i] > 0 && mark(i, 0).seq <= seq) {
        acked_sent_[i] = mark(i, 0).sent_data;  // this many had been sent when it went
        acked_due_[i] = mark(i, 0).due;
        acked_sent_seen_ |= uint8_t(1u << i);
        mark_head_[i] = uint8_t((mark_head_[i] + 1) % kSendMarks);
        --mark_count_[i];
    }
}

// Link i stalled (once it is also quiet, see detect_stalls) if
// kStallPackets of its remembered datagrams, all above the newest sequence
// number the peer reported on it, went out `lag` ago or earlier: each has
// had a round trip and a Feedback interval to be reported. Timed from the
// send of the first datagram it lost, not from the last delivery Feedback
// showed: the queue ahead of a cut drains and is reported for a while after
// it, and that delay is not added.
bool Bond::stalled_by_seq(unsigned i, uint64_t now, uint64_t lag) const {
    if (mark_count_[i] < kStallPackets) return false;
    uint64_t at = mark(i, kStallPackets - 1).at;
    return now >= at && now - at >= lag;
}

void Bond::on_received(unsigned i, uint64_t now, uint32_t datagram_bytes, bool answer) {
    if (i >= kMaxLinks) return;
    last_rx_[i] = now;
    rx_bytes_[i] += datagram_bytes;
    ++rx_pkts_[i];  // wraps, as Feedback says
    rx_seen_ |= uint8_t(1u << i);
    if (answer) rx_dirty_ = true;
}

size_t Bond::make_feedback(uint64_t now, uint8_t* out, size_t out_cap, const ReplayWindow* data_window) {
    Feedback fb;
    if (data_window)
        fb.has_missing = data_window->missing(&fb.missing_first, fb.missing, kFeedbackMissingWords);
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (rx_seen_ & (1u << i)) {
            bool has_seq = rx_seq_seen_ >> i & 1u;
            fb.entries[fb.count++] =
                FeedbackEntry{uint8_t(i), rx_pkts_[i], rx_bytes_[i], has_seq, has_seq ? rx_seq_[i] : 0, true, rx_data_[i]};
        }
    fb.has_time = true;
    fb.report_time_ns = now;
    size_t n = encode_feedback(fb, out, out_cap);
    if (n == 0) return 0;
    rx_dirty_ = false;
    next_feedback_ = now + cfg.feedback_every_ns;
    return n;
}

// Loss repair: each number of the missing block that went out on a link
// which, in the same report, had delivered a later one (its newest_seq)
// was lost there: one snapshot, so a report overtaken by a newer one
// cannot show as lost what the newer one saw arrive. And only from a
// report newer than the last block used.
void Bond::find_lost(uint64_t now, const Feedback& fb) {
    if (!fb.has_missing || !sent_any_ || cfg.repair_window_ns == 0) return;
    if (missing_time_.ever && fb.report_time_ns <= missing_time_.at) return;
    missing_time_.mark(fb.report_time_ns);
    uint64_t newest[kMaxLinks]{};
    uint8_t has = 0;
    for (unsigned k = 0; k < fb.count; ++k)
        if (fb.entries[k].has_seq) {
            newest[fb.entries[k].link] = fb.entries[k].newest_seq;
            has |= uint8_t(1u << fb.entries[k].link);
        }
    // Late on a quiet link (late_datagrams): a tail, with nothing after it
    // on its link to show it missing.
    uint64_t late_through[kMaxLinks]{};
    uint8_t late = 0;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (late_datagrams(i, now, &late_through[i]) > 0) late |= uint8_t(1u << i);
    for (unsigned w = 0; w < kFeedbackMissingWords; ++w) {
        for (uint64_t bits = fb.missing[w]; bits; bits &= bits - 1) {
            if (lost_n_ == kLostMax) return;  // the rest wait for the next report
            uint64_t seq = fb.missing_first + 64 * w + unsigned(__builtin_ctzll(bits));
            if (seq > sent_newest_) return;  // the rest are higher still
            if (sent_newest_ - seq >= kSeqLinks) continue;  // its link is forgotten
            uint8_t& link = seq_link_[seq % kSeqLinks];
            if (link >= kMaxLinks) continue;
            bool later_arrived = (has >> link & 1u) && newest[link] > seq;
            bool tail = (late >> link & 1u) && seq <= late_through[link];
            if (!later_arrived && !tail) continue;
            lost_[lost_n_++] = Lost{seq, link};
            link = kNoLink;  // found once
            ++lost_found_;
        }
    }
}

bool Bond::on_feedback(uint64_t now, const uint8_t* in, size_t len) {
    Feedback fb;
    if (!decode_feedback(in, len, fb)) return false;
    if (last_fb_.less_than(now, kMinFeedbackGapNs)) return true;
    last_fb_.mark(now);
    uint8_t progressed = 0;  // links whose deliveries advanced in this report
    for (unsigned k = 0; k < fb.count; ++k) {
        unsigned i = fb.entries[k].link;
        if (fb.entries[k].has_seq && (!(acked_seen_ >> i & 1u) || fb.entries[k].newest_seq > acked_seq_[i])) {
            maybe_undo_stall(i, now, fb.entries[k].newest_seq);
            acked_seq_[i] = fb.entries[k].newest_seq;
            acked_seen_ |= uint8_t(1u << i);
            forget_marks_through(i, acked_seq_[i]);
        }
        if (fb.entries[k].has_data) take_peer_data(i, fb.entries[k].rx_data);
        Moment before = est[i].last_delivery();
        est[i].on_feedback(now, fb.entries[k].rx_bytes, fb.entries[k].rx_packets, fb.has_time ? fb.report_time_ns : 0);
        Moment after = est[i].last_delivery();
        if (after.ever && (!before.ever || after.at != before.at)) progressed |= uint8_t(1u << i);
        sample_loss(i, now);
        refresh_inputs(i);
    }
    find_lost(now, fb);
    detect_stalls(now, progressed);
    detect_lossy(now);
    refresh(now);
    return true;
}

int Bond::pick_other_than(unsigned failed, uint64_t now, uint32_t bytes, uint64_t extra_headroom_ns,
                          Admission admission) {
    last_pick_.mark(now);
    // With the failover headroom: the failure just happened.
    uint64_t room = headroom(now) + extra_headroom_ns;
    if (failed >= kMaxLinks || !sched.links[failed].usable) return sched.pick(now, bytes, room, admission);
    sched.links[failed].usable = false;  // for this one pick only
    int l = sched.pick(now, bytes, room, admission);
    sched.links[failed].usable = true;
    return l;
}

uint8_t Bond::light_copies(unsigned first, uint64_t now, uint32_t bytes) {
    if (first >= kMaxLinks) return 0;
    light_at_[first].mark(now);
    if (cfg.light_copy_every_ns == 0 || sched.cfg.mode == SchedMode::Redundant) return 0;
    uint8_t copies = 0;
    for (unsigned j = 0; j < kMaxLinks; ++j) {
        if (j == first || !usable(j)) continue;
        // The cheap test first: under a download most light packets end here,
        // and the division below runs at most once per link per interval.
        if (light_at_[j].less_than(now, cfg.light_copy_every_ns)) continue;
        // The link's share: `bytes` every this long is 1/light_copy_share of its rate.
        double share_ns = double(bytes) * std::max<uint32_t>(cfg.light_copy_share, 1) * 1e9 /
                          double(sched.pacing_rate(j));
        share_ns = std::min(share_ns, 1e18);  // a valid uint64_t whatever the rate
        if (share_ns > double(cfg.light_copy_every_ns) && light_at_[j].less_than(now, uint64_t(share_ns))) continue;
        light_at_[j].mark(now);
        copies |= uint8_t(1u << j);
    }
    return copies;
}

int Bond::probe_due(uint64_t now) const {
    bool busy = last_pick_.less_than(now, kBusyWindowNs);
    uint64_t every = busy ? cfg.probe_every_ns : cfg.idle_probe_every_ns;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!exists(i)) continue;  // unused ones too: their probes bring them back
        if (!last_probe_[i].less_than(now, every)) return int(i);
    }
    return -1;
}

size_t Bond::make_probe(unsigned i, uint64_t now, uint8_t* out, size_t out_cap) {
    if (i >= kMaxLinks) return 0;
    Probe p{uint8_t(i), ProbeFlags::Probe, ++probe_seq_, now};
    size_t n = encode_probe(p, out, out_cap);
    if (n == 0) return 0;
    // A free slot, or else the oldest: with kProbeSlots past the longest
    // timeout, that one is overdue and counts as lost.
    Outstanding* slot = &probes_[i][0];
    for (Outstanding& o : probes_[i]) {
        if (!o.used) { slot = &o; break; }
        if (o.sent_ns < slot->sent_ns) slot = &o;
    }
    if (slot->used) slot->size ? pmtu[i].on_lost(now, slot->size) : probe_lost(i, now);
    *slot = Outstanding{p.probe_seq, now, sched.backlog_ns(i, now), true, 0};
    last_probe_[i].mark(now);
    return n;
}

void Bond::start_pmtu(unsigned i, uint64_t now, uint16_t interface_mtu) {
    if (i >= kMaxLinks) return;
    pmtu[i].start(now, interface_mtu);
    sched.links[i].max_datagram = max_datagram(i);
}

int Bond::size_probe_due(uint64_t now, uint16_t* size) {
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!exists(i) || health[i].state() != LinkState::Up) continue;  // a dead link's losses say nothing of size
        pmtu[i].update(now);
        uint16_t s = pmtu[i].due(now);
        if (s == 0) continue;
        *size = s;
        return int(i);
    }
    return -1;
}

size_t Bond::make_size_probe(unsigned i, uint64_t now, uint16_t size, uint8_t* out, size_t out_cap) {
    if (i >= kMaxLinks || size < kIpUdpHeaders + kDataOverhead + kProbeSize) return 0;
    size_t len = size - kIpUdpHeaders - kDataOverhead;
    if (len > out_cap) return 0;
    Probe p{uint8_t(i), ProbeFlags::SizeProbe, ++probe_seq_, now};
    if (encode_probe(p, out, out_cap) == 0) return 0;
    std::memset(out + kProbeSize, 0, len - kProbeSize);
    Outstanding* slot = &probes_[i][0];
    for (Outstanding& o : probes_[i]) {
        if (!o.used) { slot = &o; break; }
        if (o.sent_ns < slot->sent_ns) slot = &o;
    }
    if (slot->used) slot->size ? pmtu[i].on_lost(now, slot->size) : probe_lost(i, now);
    *slot = Outstanding{p.probe_seq, now, 0, true, size};
    pmtu[i].on_sent(now, size);
    return len;
}

void Bond::on_too_big(unsigned i, uint64_t now, uint16_t size) {
    if (i >= kMaxLinks) return;
    pmtu[i].on_too_big(now, size);
    sched.links[i].max_datagram = max_datagram(i);
}

Bond::ProbeAction Bond::on_probe(unsigned i, uint64_t now, uint8_t* payload, size_t len, size_t* echo_len,
                                 uint64_t rx_ns) {
    Probe p;
    if (i >= kMaxLinks || !decode_probe(payload, len, p) || p.link != i) return ProbeAction::Ignored;
    if (!is_echo(p.flags)) {
        // Its one-way delay (size probes aside: their padding takes longer
        // to cross the link) tells the queue on the way here.
        if (!is_size_probe(p.flags)) inbound[i].on_probe(rx_ns && rx_ns < now ? rx_ns : now, p.sender_time_ns);
        size_t n = encode_probe(echo_of(p), payload, len);
        if (echo_len) *echo_len = n;  // the body only: the padding stays behind
        return ProbeAction::SendEcho;
    }
    // Our own record, not the echoed time, gives the RTT: the peer cannot skew it.
    for (Outstanding& o : probes_[i]) {
        if (!o.used || o.seq != p.probe_seq) continue;
        if (is_size_probe(p.flags) != (o.size != 0)) break;  // an echo of another kind: not ours
        o.used = false;
        if (o.size) {
            pmtu[i].on_echo(now, o.size);
            sched.links[i].max_datagram = max_datagram(i);
            return ProbeAction::Sampled;
        }
        // An arrival before the probe left or after now is a clock step between
        // the kernel's stamp and ours: not believed.
        uint64_t arrived = rx_ns > o.sent_ns && rx_ns < now ? rx_ns : now;
        uint64_t rtt = arrived > o.sent_ns ? arrived - o.sent_ns : 0;
        est[i].on_rtt(now, rtt);
        health[i].on_probe_echoed(now, rtt);
        refresh_inputs(i);
        refresh(now);
        uint64_t base = est[i].min_rtt_ns();
        sched.on_queue_sample(i, now, o.modeled_ns, rtt > base ? rtt - base : 0);
        return ProbeAction::Sampled;
    }
    ++unmatched_;
    return ProbeAction::Ignored;
}

uint64_t Bond::gap_timeout_ns() const {
    // For each link both the earliest a packet can arrive (its base one-way
    // delay) and the latest one usually does (plus the queue on the way
    // here, from the peer's probes; srtt - min RTT until there is one): a gap
    // is given up on only after the slowest link's packet, queued as they
    // are now, could have filled it. Not the round trip's queue: the other
    // direction's (a download's, seen from the server) would make the wait
    // for a gap the dead link left as long as that queue.
    uint64_t delay[2 * kMaxLinks];
    unsigned n = 0;
    uint64_t jitter = 0;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!exists(i)) continue;  // the peer may send on any of them
        const LinkEstimator& e = est[i];
        if (e.srtt_ns() == 0) return cfg.gap_unknown_ns;
        const InboundQueue& in = inbound[i];
        uint64_t queue = in.known() ? in.queue_ns() : e.srtt_ns() > e.min_rtt_ns() ? e.srtt_ns() - e.min_rtt_ns() : 0;
        delay[n++] = e.owd_ns();
        delay[n++] = e.owd_ns() + queue;
        jitter = std::max(jitter, in.known() ? in.var_ns() : e.rttvar_ns());
    }
    if (n == 0) return cfg.gap_unknown_ns;
    return gap_timeout_for(delay, n, cfg.gap_floor_ns, cfg.gap_ceil_ns, jitter);
}

int Bond::control_link(int except) const {
    // Arrivals on any link that exists count: in mode backup the idle backup
    // link still brings probes, and is where Feedback must go when the
    // primary is cut.
    uint64_t newest = 0;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (exists(i) && (rx_seen_ >> i & 1u)) newest = std::max(newest, last_rx_[i]);
    auto quiet = [&](unsigned i) {
        if (!(rx_seen_ >> i & 1u)) return false;
        uint64_t q = std::max(2 * est[i].srtt_ns() + 4 * est[i].rttvar_ns(), kQuietFloorNs);
        return newest - last_rx_[i] > q;
    };
    // A link with a measured RTT beats one without; then the smaller RTT.
    auto pick = [&](auto&& eligible) {
        int best = -1;
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            if (!eligible(i)) continue;
            uint64_t r = est[i].srtt_ns();
            if (best < 0) { best = int(i); continue; }
            uint64_t rb = est[unsigned(best)].srtt_ns();
            if (r != 0 && (rb == 0 || r < rb)) best = int(i);
        }
        return best;
    };
    auto other = [&](unsigned i) { return int(i) != except; };
    int best = pick([&](unsigned i) { return other(i) && usable(i) && !quiet(i); });
    if (best < 0) best = pick([&](unsigned i) { return other(i) && exists(i) && !quiet(i); });
    if (best < 0) best = pick([&](unsigned i) { return other(i) && usable(i); });
    return best;
}

}  // namespace onebox::proto
