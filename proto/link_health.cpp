// link_health.cpp — see link_health.h.
#include "link_health.h"

#include <algorithm>

namespace onebox::proto {

const char* link_state_name(LinkState s) {
    switch (s) {
        case LinkState::Unknown: return "unknown";
        case LinkState::Up: return "up";
        case LinkState::Down: return "down";
    }
    return "unknown";
}

void LinkHealth::judge(bool lost) {
    history_ = history_ << 1 | (lost ? 1u : 0u);
    if (judged_ < 32) ++judged_;
}

double LinkHealth::loss() const {
    if (judged_ == 0) return 0;
    uint32_t mask = judged_ >= 32 ? ~0u : (1u << judged_) - 1;
    return double(__builtin_popcount(history_ & mask)) / judged_;
}

void LinkHealth::on_probe_echoed(uint64_t now, uint64_t rtt_ns) {
    judge(false);
    // RFC 3550 A.8: J += (|D| - J) / 16, D the change in transit time; two
    // consecutive round trips stand in for the one-way transits.
    if (rtt_ != 0) {
        double d = rtt_ns > rtt_ ? double(rtt_ns - rtt_) : double(rtt_ - rtt_ns);
        jitter_ += (d - jitter_) / 16;
    }
    rtt_ = rtt_ns;
    lost_run_ = 0;
    state_ = LinkState::Up;
    // Only a probe sent after the stall shows the link delivering again.
    uint64_t sent = now > rtt_ns ? now - rtt_ns : 0;
    if (stalled_ && sent >= stall_at_) stalled_ = suspect_ = false;
    if (stalled_) return;
    if (!clean_since_.ever) clean_since_.mark(now);
    if (needs_stability_ && !stalled_ && now - clean_since_.at >= stable_needed())
        needs_stability_ = false;
}

void LinkHealth::on_probe_lost(uint64_t now) {
    (void)now;
    judge(true);
    ++lost_run_;
    lost_since_stall_ = true;
    clean_since_ = Moment{};  // matters only while the link must prove itself
    if (state_ != LinkState::Down && lost_run_ >= cfg.down_after) {
        // A link that never answered goes Down too, so that it is not
        // preferred (as Unknown) over links that did.
        if (state_ == LinkState::Up) ++downs_;
        state_ = LinkState::Down;
        needs_stability_ = true;
    }
}

void LinkHealth::on_suspect(uint64_t now) {
    if (stalled_) return;
    stalled_ = suspect_ = true;
    stall_at_ = now;
}

void LinkHealth::on_feedback_stall(uint64_t now) {
    if (!stalled_ || suspect_) {
        needs_before_stall_ = needs_stability_;
        clean_before_stall_ = clean_since_;
        lost_since_stall_ = false;
    }
    stalled_ = true;
    suspect_ = false;
    stall_at_ = now;
    ++stalls_;
    needs_stability_ = true;
    clean_since_ = Moment{};
}

void LinkHealth::on_stall_undone() {
    stalled_ = suspect_ = false;
    ++undone_;
    if (lost_since_stall_) return;  // then it must prove itself as after a Down
    needs_stability_ = needs_before_stall_;
    clean_since_ = clean_before_stall_;
}

void LinkHealth::on_lossy(uint64_t now) {
    bool again = last_lossy_.less_than(now, cfg.lossy_memory_ns);
    doublings_ = again ? std::min(doublings_ + 1, cfg.lossy_max_doublings) : 0;
    last_lossy_.mark(now);
    ++lossy_;
    needs_stability_ = true;
    clean_since_ = Moment{};
}

bool LinkHealth::schedulable(uint64_t now) const {
    if (state_ != LinkState::Up || stalled_) return false;
    if (!needs_stability_) return true;
    // (now may be a little older than the last echo: then not yet.)
    return clean_since_.ever && now >= clean_since_.at && now - clean_since_.at >= stable_needed();
}

}  // namespace onebox::proto
