// scheduler.h — the bonding scheduler: which WAN link carries the next packet.
//
// Pure arithmetic (no syscalls, no clock reads, no allocation), deterministic
// given its inputs, O(kMaxLinks) per packet. Time is nanoseconds on any
// monotonic clock, passed in; it must never go backwards.
//
// Modes:
//   Bond        (default) earliest arrival over per-link virtual queues, at
//               rates learned from delivery feedback (see PROTOCOL.md,
//               "Scheduling and feedback"); if every usable link has a
//               weight > 0, the weights decide instead (WeightedRR below);
//   RoundRobin  one usable link after the other, rates ignored.
//
// Earliest arrival: for every usable link i
//     arrival_i = max(now, free_at_i) + bytes / pace_i + owd_i
// and the packet goes to the smallest; free_at_i then advances by
// bytes / pace_i. free_at_i - now models the queue the link's bottleneck
// holds, so a link with more delay is given packets that arrive in order with
// the rest, and the split follows the pacing rates. pace_i = gain_i x
// max(rate_i, initial_rate),
// capped by max_rate_bps / 8. A link without an estimate starts at
// initial_rate and doubles per round (max(min RTT, min_startup_round_ns))
// while its delivery keeps up (Startup; a round in which the link was given
// less than half of what its estimate carries does not count as "no growth"),
// drains the queue that made, then cycles gains 1.25, 0.75, 1 x 6 (one
// phase = max(min RTT, min_phase_ns) each; links start at different phases)
// so that an under-used link finds spare capacity and a vanished one is seen.
//
// Admission: pick() returns -1 when the earliest arrival is more than
// max(budget_ns, largest owd) after now + the largest owd among usable
// links, i.e. when every link already has that much queued: the caller drops
// (or holds) the packet instead of building a queue in the network. Only
// while every usable link is out of Startup and its probes have seen at
// least budget/4 of real queue within the last 2 s (on_queue_sample), or the
// link is paced at its max_rate cap: otherwise the model's queues may come
// from rates learned while the links carried little, and nothing is refused.
// budget_ns = 0 disables this, and pick() then only returns -1 when no link
// is usable.
#pragma once

#include <cstddef>
#include <cstdint>

#include "link_estimator.h"
#include "moment.h"
#include "wire.h"

namespace onebox::proto {

// Redundant and Backup pick like Bond (Redundant without admission: it never
// returns -1 while a link is usable); the Bond above the scheduler decides
// which links are usable (Backup) and the data plane copies each packet to
// every usable link (Redundant).
enum class SchedMode : uint8_t { Bond, RoundRobin, Redundant, Backup };

// Whether pick() may refuse a packet for the admission budget. Exempt: a
// ping or a TCP acknowledgement without data (small, and may overtake:
// overtake.h). It costs the links little, and refusing it costs much more:
// a held acknowledgement stalls the peer's sender and a refused ping is a
// lost ping. After a failover the client's probes on the surviving link see
// the download's queue coming the other way, and admission held the
// download's acknowledgements for 150-270 ms (bench/results.md, "Failover").
// Exempt still has a ceiling, kExemptHeadroomNs past the budget: a flood of
// them (an inner host's ACK or ICMP flood) must not grow a link's queue
// without bound, or every budgeted packet would be refused behind it.
enum class Admission : uint8_t { Budgeted, Exempt };

// What the caller tells the scheduler about one link (update it from the
// LinkEstimator with sched_inputs_from() whenever feedback or an RTT arrives).
struct SchedLink {
    bool usable = false;
    double weight = 0;            // user override; 0 = automatic
    uint64_t max_rate_bps = 0;    // user cap in bits/s; 0 = none
    // Estimator inputs.
    uint64_t rate_bytes_per_s = 0;  // delivery rate; 0 = no estimate yet
    uint64_t owd_ns = 0;            // base one-way delay
    uint64_t min_rtt_ns = 0;
    uint64_t srtt_ns = 0;
    uint8_t priority = 1;         // user's order for mode Backup: 1 first
    uint32_t max_datagram = UINT32_MAX;  // its path MTU less IP and UDP (pmtu.h): bigger ones go elsewhere
};

void sched_inputs_from(const LinkEstimator& e, SchedLink& l);

struct Scheduler {
    struct Config {
        SchedMode mode = SchedMode::Bond;
        uint64_t initial_rate_bytes_per_s = 125'000;  // 1 Mbit/s
        uint64_t min_phase_ns = 40'000'000;           // probe phase >= this (feedback ~20 ms)
        // A Startup round must outlast the time a rate takes to show in the
        // estimate (feedback interval + sample merging + RTT), or Startup
        // sees "no growth" for 3 rounds and stops long before the link is full.
        uint64_t min_startup_round_ns = 100'000'000;
        uint64_t budget_ns = 20'000'000;              // see "Admission"; 0 = never refuse (the daemons set queue_budget, 10 ms unless configured)
        // Packets of at most this many bytes are admitted up to twice the
        // budget: a bulk flow's queue does not get a ping or an ack refused.
        uint32_t small_bytes = 256;
        double startup_gain = 2.0;
        double drain_gain = 0.5;
    };
    Config cfg{};
    SchedLink links[kMaxLinks]{};

    // Picks the link for a packet of `bytes` at `now`: 0..kMaxLinks-1, or -1
    // (no usable link, or every link is over budget in Bond mode).
    // `headroom_ns` is added to the admission budget (Bond: for a while after
    // a link failed). Admission::Exempt: kExemptHeadroomNs (1 s) more, so
    // refused only behind a second of queue (it is placed, and counted in
    // the links' queues, as any other).
    int pick(uint64_t now, uint32_t bytes, uint64_t headroom_ns = 0,
             Admission admission = Admission::Budgeted);
    static constexpr uint64_t kExemptHeadroomNs = 1'000'000'000;

    // Re-anchors link i's virtual queue to a measurement: a probe sent when
    // backlog_ns(i, sent) was `modeled_ns` saw `measured_ns` of queueing
    // (its RTT minus the link's min RTT). The difference is added to the
    // virtual queue (it never goes below now), so rate errors and queues the
    // model did not make (Startup, cross traffic) cannot accumulate (a link
    // paced at its max_rate cap is only ever moved later). A link
    // in ProbeBw whose probe saw less than budget/8 of queue while the link
    // was loaded (the model held at least budget/2, or pick() found every
    // link's arrival past the budget within the last 100 ms, or another
    // link's last probe showed it delivering later than this one would) goes
    // back to Startup (two such samples in a row, not in the 0.75 round): its
    // rate estimate is stale-low. Not a link whose probes saw budget/2 of
    // real queue within the last second (rate_proven): it was full at that
    // rate, and a queue that drained for a moment is the flows' doing.
    void on_queue_sample(unsigned i, uint64_t now, uint64_t modeled_ns, uint64_t measured_ns);

    // Introspection (tests, stats).
    enum class Phase : uint8_t { Startup, Drain, ProbeBw };
    Phase phase(unsigned i) const { return st_[i].phase; }
    // Is link i being filled on purpose: Startup given its rate's worth or
    // more this round (gain 2: its queue grows and overflows by design), or
    // Drain (that queue going down)? Losses then are ours.
    bool filling(unsigned i, uint64_t now) const {
        if (!st_[i].started) return false;
        return st_[i].phase == Phase::Drain ||
               (st_[i].phase == Phase::Startup && !startup_round_app_limited(i, now));
    }
    double gain(unsigned i) const;
    uint64_t pacing_rate(unsigned i) const;  // bytes/s used now
    uint64_t backlog_ns(unsigned i, uint64_t now) const {
        return st_[i].free_at > now ? st_[i].free_at - now : 0;
    }
    // Does pick() place packets by earliest arrival now (mode Bond or
    // Backup, not every usable link weighted)? Then a packet given to link i
    // at `now` is expected at the far end at now + backlog_ns(i, now) +
    // owd_i (Bond's stall detection compares links by it).
    bool models_arrival() const;
    uint64_t refused() const { return refused_; }
    uint64_t restarts() const { return restarts_; }  // ProbeBw -> Startup (rate found stale)
    uint64_t restarts(unsigned i) const { return link_restarts_[i]; }  // ... of link i

    // Forget learned state of link i (it went away and came back).
    void reset_link(unsigned i) { st_[i] = LinkState{}; st_[i].wrr_current = 0; }

  private:
    struct LinkState {
        Phase phase = Phase::Startup;
        bool started = false;
        uint64_t phase_start = 0;
        unsigned cycle_idx = 0;
        uint64_t full_bw = 0;       // Startup: best rate seen at a round end
        unsigned full_bw_rounds = 0;
        uint64_t drain_until = 0;
        uint64_t free_at = 0;       // virtual queue: when the link is idle again
        uint64_t round_bytes = 0;   // Startup: bytes given this round
        double wrr_current = 0;
        unsigned stale_samples = 0;  // probes in a row that found the rate stale-low
        Moment queue_seen;           // the last probe that saw >= budget/4 of queue
        Moment full_seen;            // ... >= budget/2 (rate_proven())
        Moment last_queue;           // the last probe ...
        uint64_t last_queue_ns = 0;  // ... and the queueing it measured
    };
    LinkState st_[kMaxLinks]{};
    unsigned rr_next_ = 0;
    uint64_t refused_ = 0;
    uint64_t restarts_ = 0;
    uint64_t link_restarts_[kMaxLinks]{};  // kept across reset_link: a count, not learned state
    Moment last_over_;           // the last pick() with every arrival past the budget

    void advance(unsigned i, uint64_t now);
    bool all_queues_seen(uint64_t now) const;
    // Usable, and its path carries a datagram of `bytes`.
    bool takes(unsigned i, uint32_t bytes) const { return links[i].usable && bytes <= links[i].max_datagram; }
    void restart_startup(unsigned i, uint64_t now);
    void enter_drain(unsigned i, uint64_t now, uint64_t queue_ns);
    bool network_idle(unsigned i, uint64_t now) const;
    bool rate_proven(unsigned i, uint64_t now) const;
    bool startup_round_app_limited(unsigned i, uint64_t now) const;
    uint64_t budget(uint64_t max_owd_ns) const;
    uint64_t queue_ref() const;
  public:
    // The admission budget the probe thresholds and Bond's headrooms were
    // tuned at (queue_ref(), Bond::budget_shortfall()).
    static constexpr uint64_t kTunedBudgetNs = 20'000'000;
  private:  // max(budget_ns, 20 ms): the probes' yardstick for "a real queue"
    // Paced at the user's max_rate (the cap, not the network, sets its queue).
    bool at_cap(unsigned i) const {
        return links[i].max_rate_bps && pacing_rate(i) >= links[i].max_rate_bps / 8;
    }
    bool later_elsewhere(unsigned i, uint64_t now) const;
    uint64_t phase_len(unsigned i) const;
    int pick_weighted(uint32_t bytes);
    int pick_round_robin(uint32_t bytes);
};

// Reorder gap timeout from the links' delays (PROTOCOL.md):
//   clamp(max owd - min owd + margin, floor_ns, ceil_ns)
// margin = 2 x jitter_ns if jitter_ns > 0, else 10 ms. n == 0 gives floor_ns.
uint64_t gap_timeout_for(const uint64_t* owd_ns, unsigned n, uint64_t floor_ns, uint64_t ceil_ns,
                         uint64_t jitter_ns = 0);

}  // namespace onebox::proto
