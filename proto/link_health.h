// link_health.h — is a WAN link alive, and may the scheduler use it?
//
// Pure arithmetic, time passed in (nanoseconds, never going backwards). The
// sender keeps one per link; its inputs are the link's probes (proto/bond.h
// sends them, every probe_every_ns while data flows and idle_probe_every_ns
// otherwise) and, much faster, the peer's Feedback:
//
//   on_probe_echoed(now, rtt)  an echo of one of our probes came back;
//   on_probe_lost(now)         a probe was not echoed within its timeout;
//   on_feedback_stall(now)     the peer's Feedback shows the link delivered
//                              nothing for a few RTTs while others did
//                              (Bond decides; see PROTOCOL.md "Link health");
//   on_lossy(now)              the peer's Feedback shows the link losing a
//                              share of what it is given, with no queue to
//                              blame, while another link is clean (Bond).
//
// States (as in the seed README):
//   Unknown -> Up     on an echoed probe;
//   Up      -> Down   after `down_after` probes in a row were lost
//                     (Unknown -> Down too: a link that never answered);
//   Down    -> Up     on an echoed probe.
// A link that was Down (or stalled) is *schedulable* again only after it has
// been Up, with every probe echoed, for `stable_ns`: a flapping link is not
// given traffic every time one probe gets through. A link that never failed
// that way stays schedulable through single lost probes (single losses are
// not a dead link; a link losing a share of its data is taken out by
// on_lossy instead). A link taken out for loss again within a minute must
// stay clean twice as long as the time before (stable_ns, 2x, 4x ... 16x):
// a link that keeps losing is tried less and less often.
//
// Statistics: RTT (last), jitter (RFC 3550's estimator J += (|D| - J) / 16
// over the difference D between consecutive probe RTTs), and loss (lost
// probes / probes judged, over the last 32 judged probes).
#pragma once

#include <cstdint>

#include "moment.h"

namespace onebox::proto {

enum class LinkState : uint8_t { Unknown = 0, Up = 1, Down = 2 };

const char* link_state_name(LinkState s);

struct LinkHealthConfig {
    unsigned down_after = 4;             // lost probes in a row: Up -> Down
    uint64_t stable_ns = 2'000'000'000;  // Up this long without a loss before reuse
    uint64_t lossy_memory_ns = 60'000'000'000;  // a loss exclusion within this of the last one doubles stable_ns
    unsigned lossy_max_doublings = 4;
};

struct LinkHealth {
    LinkHealthConfig cfg{};

    void on_probe_echoed(uint64_t now, uint64_t rtt_ns);
    void on_probe_lost(uint64_t now);
    // Feedback says the link stopped delivering: unschedulable at once (no
    // state change: probes decide Up/Down), until the echo of a probe sent
    // after `now` and then `stable_ns` of clean probes.
    void on_feedback_stall(uint64_t now);
    // Its newest datagrams went unreported (Bond::detect_silent_links): no
    // new packets until the echo of a probe sent after `now`, then as
    // before (no stall counted, no hold).
    void on_suspect(uint64_t now);
    // The stall was wrong: the peer has since reported data the link carried
    // before it (late, not dead). Schedulable again as before the stall,
    // unless a probe was lost since.
    void on_stall_undone();
    // Feedback says the link loses much of what it carries (Bond decides):
    // unschedulable until it has been clean for stable_needed(). Not a
    // stall: it still delivers, so it stays in the "Up" tier a bond falls
    // back to when no link is schedulable.
    void on_lossy(uint64_t now);

    LinkState state() const { return state_; }
    // May the scheduler give it new packets? Up, not stalled, and (if it was
    // ever Down or stalled) clean for stable_ns since it came back.
    bool schedulable(uint64_t now) const;
    bool stalled() const { return stalled_; }

    uint64_t rtt_ns() const { return rtt_; }
    uint64_t jitter_ns() const { return uint64_t(jitter_); }
    double loss() const;                 // 0..1 over the last 32 judged probes
    unsigned lost_in_a_row() const { return lost_run_; }
    uint64_t downs() const { return downs_; }    // Up -> Down transitions (not Unknown -> Down)
    uint64_t stalls() const { return stalls_; }  // feedback stalls
    uint64_t stalls_undone() const { return undone_; }  // ... of which undone
    uint64_t lossy() const { return lossy_; }    // exclusions for loss
    // How long the link must be clean to be used again after a Down, stall
    // or loss exclusion.
    uint64_t stable_needed() const { return cfg.stable_ns << doublings_; }

  private:
    LinkState state_ = LinkState::Unknown;
    unsigned lost_run_ = 0;
    bool stalled_ = false;
    uint64_t stall_at_ = 0;
    bool needs_stability_ = false;  // came back from Down or a stall
    Moment clean_since_;            // first echo of the current clean run
    // As they were before the last stall (on_stall_undone), and whether a
    // probe was lost since it.
    bool needs_before_stall_ = false;
    Moment clean_before_stall_;
    bool lost_since_stall_ = false;
    bool suspect_ = false;          // stalled_ by on_suspect only
    uint64_t undone_ = 0;
    uint64_t rtt_ = 0;
    double jitter_ = 0;
    uint32_t history_ = 0;          // bit k = k-th most recent judged probe was lost
    unsigned judged_ = 0;           // judged probes so far, saturating at 32
    uint64_t downs_ = 0;
    uint64_t stalls_ = 0;
    uint64_t lossy_ = 0;
    Moment last_lossy_;
    unsigned doublings_ = 0;

    void judge(bool lost);
};

}  // namespace onebox::proto
