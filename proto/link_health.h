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
//                              (Bond decides; see PROTOCOL.md "Link health").
//
// States (as in the seed README):
//   Unknown -> Up     on an echoed probe;
//   Up      -> Down   after `down_after` probes in a row were lost
//                     (Unknown -> Down too: a link that never answered);
//   Down    -> Up     on an echoed probe.
// A link that was Down (or stalled) is *schedulable* again only after it has
// been Up, with every probe echoed, for `stable_ns`: a flapping link is not
// given traffic every time one probe gets through. A link that never failed
// that way stays schedulable through single lost probes (a lossy link is
// still a link; the scheduler's estimates see its loss).
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
};

struct LinkHealth {
    LinkHealthConfig cfg{};

    void on_probe_echoed(uint64_t now, uint64_t rtt_ns);
    void on_probe_lost(uint64_t now);
    // Feedback says the link stopped delivering: unschedulable at once (no
    // state change: probes decide Up/Down), until the echo of a probe sent
    // after `now` and then `stable_ns` of clean probes.
    void on_feedback_stall(uint64_t now);

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

  private:
    LinkState state_ = LinkState::Unknown;
    unsigned lost_run_ = 0;
    bool stalled_ = false;
    uint64_t stall_at_ = 0;
    bool needs_stability_ = false;  // came back from Down or a stall
    Moment clean_since_;            // first echo of the current clean run
    uint64_t rtt_ = 0;
    double jitter_ = 0;
    uint32_t history_ = 0;          // bit k = k-th most recent judged probe was lost
    unsigned judged_ = 0;           // judged probes so far, saturating at 32
    uint64_t downs_ = 0;
    uint64_t stalls_ = 0;

    void judge(bool lost);
};

}  // namespace onebox::proto
