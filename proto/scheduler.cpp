// scheduler.cpp — see scheduler.h.
#include "scheduler.h"

#include <algorithm>

namespace onebox::proto {

namespace {

constexpr double kCycleGains[8] = {1.25, 0.75, 1, 1, 1, 1, 1, 1};
constexpr uint64_t kNs = 1'000'000'000;
constexpr uint64_t kMaxDrainNs = 500'000'000;
constexpr uint64_t kDemandWindowNs = 100'000'000;  // "refused lately" for on_queue_sample
constexpr uint64_t kQueueSeenWindowNs = 2'000'000'000;  // admission: queues seen this recently
constexpr uint64_t kRecentQueueNs = 300'000'000;        // later_elsewhere: queue samples this recent
// A link whose probes saw a real queue of budget/2 or more this recently was
// being sent faster than it delivers, so its delivery rate (a max over
// >= 1 s) is not stale-low: no restart of Startup for it (budget/2, not the
// budget/4 that arms admission: a probe's echo delayed a few ms by a busy CPU
// should not look like proof). Without this, 4 saturating
// flows whose queue drains for a moment between their bursts sent a link
// with a right rate back to Startup 2-3 times in 15 s, and each time
// admission was off and that link paced at twice its rate: its 100 ms
// bottleneck queue filled, and a ping across it took 100+ ms more.
constexpr uint64_t kRateProvenNs = 1'000'000'000;

}  // namespace

void sched_inputs_from(const LinkEstimator& e, SchedLink& l) {
    l.rate_bytes_per_s = e.rate_bytes_per_s();
    l.owd_ns = e.owd_ns();
    l.min_rtt_ns = e.min_rtt_ns();
    l.srtt_ns = e.srtt_ns();
}

uint64_t Scheduler::phase_len(unsigned i) const {
    uint64_t floor = st_[i].phase == Phase::Startup ? cfg.min_startup_round_ns : cfg.min_phase_ns;
    return std::max(links[i].min_rtt_ns, floor);
}

double Scheduler::gain(unsigned i) const {
    switch (st_[i].phase) {
        case Phase::Startup: return cfg.startup_gain;
        case Phase::Drain: return cfg.drain_gain;
        case Phase::ProbeBw: return kCycleGains[st_[i].cycle_idx % 8];
    }
    return 1;
}

uint64_t Scheduler::pacing_rate(unsigned i) const {
    const SchedLink& l = links[i];
    // Never modelled slower than the initial rate: a rate learned from
    // keepalives (tens of kbit/s) would make one ping "take" 30 ms and be
    // refused by admission; a slower real link is caught by re-anchoring.
    uint64_t base = std::max(l.rate_bytes_per_s, cfg.initial_rate_bytes_per_s);
    uint64_t r = uint64_t(double(base) * gain(i));
    if (l.max_rate_bps) r = std::min(r, l.max_rate_bps / 8);
    return std::max<uint64_t>(r, 1);
}

// Startup found the link full with about `queue_ns` queued: drain for
// twice that (at least a round, at most kMaxDrainNs).
void Scheduler::enter_drain(unsigned i, uint64_t now, uint64_t queue_ns) {
    LinkState& s = st_[i];
    uint64_t round = phase_len(i);  // a Startup round
    s.phase = Phase::Drain;
    s.drain_until = now + std::min(std::max(round, 2 * queue_ns), kMaxDrainNs);
}

// Moves link i's state machine up to `now` (lazily, on the packet path).
void Scheduler::advance(unsigned i, uint64_t now) {
    LinkState& s = st_[i];
    const SchedLink& l = links[i];
    if (!s.started) {
        s.started = true;
        s.phase = Phase::Startup;
        s.phase_start = now;
        s.free_at = now;
        return;
    }
    uint64_t len = phase_len(i);
    switch (s.phase) {
        case Phase::Startup:
            if (now - s.phase_start < len) return;
            if (startup_round_app_limited(i, now)) {
                // Offered less than the estimate: no growth proves nothing.
                s.phase_start = now;
                s.round_bytes = 0;
                return;
            }
            s.phase_start = now;  // one round
            s.round_bytes = 0;
            if (l.rate_bytes_per_s >= s.full_bw + s.full_bw / 4 || s.full_bw == 0) {
                s.full_bw = l.rate_bytes_per_s;
                s.full_bw_rounds = 0;
            } else if (++s.full_bw_rounds >= 3) {
                // Delivery stopped growing for 3 rounds: the pipe is full. Drain
                // the queue Startup built (measured by the RTT probes).
                enter_drain(i, now, l.srtt_ns > l.min_rtt_ns ? l.srtt_ns - l.min_rtt_ns : 0);
            }
            return;
        case Phase::Drain:
            if (now < s.drain_until) return;
            s.phase = Phase::ProbeBw;
            s.phase_start = now;
            s.cycle_idx = 2 + (i * 3) % 6;  // links probe at different times
            return;
        case Phase::ProbeBw:
            if (now - s.phase_start < len) return;
            s.phase_start = now;
            s.cycle_idx = (s.cycle_idx + 1) % 8;
            return;
    }
}

int Scheduler::pick_round_robin(uint32_t bytes) {
    for (unsigned k = 0; k < kMaxLinks; ++k) {
        unsigned i = (rr_next_ + k) % kMaxLinks;
        if (takes(i, bytes)) {
            rr_next_ = (i + 1) % kMaxLinks;
            return int(i);
        }
    }
    return -1;
}

// Smooth weighted round robin (nginx): exact split by weight, evenly interleaved.
int Scheduler::pick_weighted(uint32_t bytes) {
    double total = 0;
    int best = -1;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!takes(i, bytes)) continue;
        st_[i].wrr_current += links[i].weight;
        total += links[i].weight;
        if (best < 0 || st_[i].wrr_current > st_[unsigned(best)].wrr_current) best = int(i);
    }
    if (best >= 0) st_[unsigned(best)].wrr_current -= total;
    return best;
}

// A Startup round in which the link was given less than half of what its
// current estimate carries in that time (the LinkEstimator's app-limited
// rule): a long-delay link gets only what the short one cannot deliver
// sooner, so a rate that did not grow says nothing about the link being full.
bool Scheduler::startup_round_app_limited(unsigned i, uint64_t now) const {
    const LinkState& s = st_[i];
    long double could = (long double)links[i].rate_bytes_per_s * (now - s.phase_start) / kNs;
    return links[i].rate_bytes_per_s && 2 * (long double)s.round_bytes < could;
}

// Another usable link j delivers later than link i would (owd_j + its queue
// at its last probe, within the last 300 ms, is more than owd_i + budget/4):
// the traffic waiting on j would arrive sooner on i, so if i looks idle its
// rate is stale-low. This is what catches a long-delay link that learned a
// low rate while a window-limited flow queues on the short one below the
// admission budget.
bool Scheduler::later_elsewhere(unsigned i, uint64_t now) const {
    for (unsigned j = 0; j < kMaxLinks; ++j) {
        if (j == i || !links[j].usable) continue;
        const LinkState& o = st_[j];
        if (!o.last_queue.within(now, kRecentQueueNs)) continue;
        if (links[j].owd_ns + o.last_queue_ns > links[i].owd_ns + queue_ref() / 4) return true;
    }
    return false;
}

// Admission trusts the virtual queues only when the network has shown real
// ones: a rate learned while a link carried little (an idle session's
// keepalives) is far too low, and refusing a ping because of it would be
// wrong. Under load every link's probes see queueing, so this holds.
bool Scheduler::all_queues_seen(uint64_t now) const {
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!links[i].usable) continue;
        // A link held to its cap by the model counts as queued: its real
        // queue stays short because the cap is below its capacity.
        if (at_cap(i)) continue;
        // A link still in Startup has no rate to trust yet: its model queue
        // is what a rate it has outgrown makes, and a drop now would teach
        // the inner TCP a window that fits the other links alone (Cubic then
        // takes seconds to grow past it).
        if (st_[i].phase == Phase::Startup) return false;
        if (!st_[i].queue_seen.within(now, kQueueSeenWindowNs)) return false;
    }
    return true;
}

// The queue admission allows: at least cfg.budget_ns, and at least the
// largest one-way delay. A single Cubic flow cuts its window by 30 % on a
// loss; for both links to stay busy after the cut, the queue it had must have
// been at least 0.43 x its RTT, and through the bond that RTT is about twice
// the largest one-way delay (the receiver waits for the slowest link). With
// 20 ms on a 10 + 40 ms pair, one flow reached only ~84 % of the links' sum.
uint64_t Scheduler::budget(uint64_t max_owd_ns) const {
    return std::max(cfg.budget_ns, max_owd_ns);
}

// What "a real queue" is measured against: the budget, but never below
// kTunedBudgetNs. The thresholds below (a probe that saw a quarter or half
// of it, or an eighth) tell a full link from an idle one through the noise
// of probe RTTs and of flows pausing between bursts; they were tuned at 20
// ms, and a smaller budget (queue_budget 10ms, the default) shortens the
// queue admission allows without making those tests jumpier: with them at
// half of 10 ms, one Cubic stream on a 10 + 40 ms pair lost its long link's
// rate and moved 73-81 % of the links' sum instead of 88-90 % (2026-12-07).
uint64_t Scheduler::queue_ref() const {
    return std::max(cfg.budget_ns, kTunedBudgetNs);
}

// The link's rate was found stale-low: back to Startup, doubling per round.
void Scheduler::restart_startup(unsigned i, uint64_t now) {
    LinkState& s = st_[i];
    s.stale_samples = 0;
    s.phase = Phase::Startup;
    s.phase_start = now;
    s.full_bw = 0;
    s.full_bw_rounds = 0;
    s.round_bytes = 0;
    ++restarts_;
    ++link_restarts_[i];
}

// Link i's last probe, taken lately, saw less than a quarter of the budget
// of real queue.
bool Scheduler::network_idle(unsigned i, uint64_t now) const {
    const LinkState& s = st_[i];
    return s.last_queue.within(now, kRecentQueueNs) && s.last_queue_ns < queue_ref() / 4;
}

// Link i's rate can be stale-low only if its probes have not seen it queue lately.
bool Scheduler::rate_proven(unsigned i, uint64_t now) const {
    return st_[i].full_seen.within(now, kRateProvenNs);
}

bool Scheduler::models_arrival() const {
    if (cfg.mode != SchedMode::Bond && cfg.mode != SchedMode::Backup) return false;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (links[i].usable && !(links[i].weight > 0)) return true;
    return false;
}

int Scheduler::pick(uint64_t now, uint32_t bytes, uint64_t headroom_ns, Admission admission) {
    if (cfg.mode == SchedMode::RoundRobin) return pick_round_robin(bytes);

    bool any = false, all_weighted = true;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!takes(i, bytes)) continue;
        any = true;
        if (!(links[i].weight > 0)) all_weighted = false;
    }
    if (!any) return -1;
    if (all_weighted) return pick_weighted(bytes);

    int best = -1;
    uint64_t best_arrival = UINT64_MAX, best_tx = 0, max_owd = 0;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (!takes(i, bytes)) continue;
        advance(i, now);
        uint64_t rate = pacing_rate(i);
        uint64_t tx = uint64_t((long double)bytes * kNs / rate);
        uint64_t start = std::max(now, st_[i].free_at);
        uint64_t arrival = start + tx + links[i].owd_ns;
        max_owd = std::max(max_owd, links[i].owd_ns);
        if (arrival < best_arrival) {
            best_arrival = arrival;
            best = int(i);
            best_tx = tx;
        }
    }
    // Small packets (pings, calls, games, TCP's acknowledgements) cost the
    // links little and matter most: they get twice the budget.
    uint64_t allowed = budget(max_owd) * (bytes <= cfg.small_bytes ? 2 : 1) + headroom_ns +
                       (admission == Admission::Exempt ? kExemptHeadroomNs : 0);
    bool over = cfg.budget_ns && best_arrival > now + max_owd + allowed;
    if (over) last_over_.mark(now);
    // Mode redundant never refuses: it exists for packets that must arrive
    // (calls, games), and sends little.
    if (over && cfg.mode != SchedMode::Redundant && all_queues_seen(now)) {
        // Every link full on paper, and the earliest one's last probe found
        // its real queue nearly empty: the rate on paper is stale-low (learned
        // while it carried only acknowledgements, say) and refusing now would
        // cut a flow that the link could carry; a refused initial window
        // leaves TCP in retransmission timeouts, sending too little to ever
        // look loaded again. Find the rate (Startup) instead.
        if (network_idle(unsigned(best), now) && !rate_proven(unsigned(best), now)) {
            restart_startup(unsigned(best), now);
        } else {
            ++refused_;
            return -1;
        }
    }
    LinkState& s = st_[unsigned(best)];
    s.free_at = std::max(now, s.free_at) + best_tx;
    s.round_bytes += bytes;
    return best;
}

void Scheduler::on_queue_sample(unsigned i, uint64_t now, uint64_t modeled_ns,
                                uint64_t measured_ns) {
    if (i >= kMaxLinks) return;
    LinkState& s = st_[i];
    // The model thought the link loaded, the network says it is idle: the
    // rate was learned while the link carried little (acknowledgements, an
    // idle session) and is far below what it can carry. ProbeBw would find
    // the rest only 25 % per gain cycle; Startup doubles per round.
    // "Loaded" means the model held budget/2 for the link, or every link's
    // arrival was past the budget lately (pick() refused, or would have if
    // every link had shown a real queue),
    // so a link whose real queue is empty either has its rate underestimated
    // or is so slow on paper that it gets nothing. Two samples in a row,
    // neither in the 0.75 round (which drains the real queue faster than the
    // model's).
    bool loaded = modeled_ns >= queue_ref() / 2 ||
                  last_over_.less_than(now, kDemandWindowNs) ||
                  later_elsewhere(i, now);
    bool idle_but_modeled_busy = s.started && s.phase == Phase::ProbeBw && gain(i) >= 1 &&
                                 cfg.budget_ns && loaded && measured_ns < queue_ref() / 8 &&
                                 !rate_proven(i, now);
    s.stale_samples = idle_but_modeled_busy ? s.stale_samples + 1 : 0;
    if (s.stale_samples >= 2) restart_startup(i, now);
    // Startup whose probe saw half the budget of real queue has filled the
    // link: its delivery rate is the link's now, and waiting for 3 rounds
    // without growth would go on at twice that pace, with admission off, for
    // 300 ms or more and fill the bottleneck's queue to the brim (seen: a
    // ping at the start of a download 100+ ms slower). Drain it.
    if (s.started && s.phase == Phase::Startup && cfg.budget_ns && measured_ns >= queue_ref() / 2 &&
        links[i].rate_bytes_per_s)
        enter_drain(i, now, measured_ns);
    if (measured_ns >= queue_ref() / 4) s.queue_seen.mark(now);
    if (measured_ns >= queue_ref() / 2) s.full_seen.mark(now);
    s.last_queue.mark(now);
    s.last_queue_ns = measured_ns;
    uint64_t base = std::max(now, s.free_at);
    // A link held to the user's max_rate has its virtual queue from the cap,
    // not from the network: a real queue shorter than the model's is what a
    // cap below the link's capacity looks like, and must not let more through.
    bool capped = at_cap(i);
    if (measured_ns >= modeled_ns) {
        s.free_at = base + (measured_ns - modeled_ns);
    } else if (!capped) {
        uint64_t down = std::min(modeled_ns - measured_ns, base - now);
        s.free_at = base - down;
    }
}

uint64_t gap_timeout_for(const uint64_t* owd_ns, unsigned n, uint64_t floor_ns, uint64_t ceil_ns,
                         uint64_t jitter_ns) {
    if (n == 0 || owd_ns == nullptr) return floor_ns;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (unsigned i = 0; i < n; ++i) {
        lo = std::min(lo, owd_ns[i]);
        hi = std::max(hi, owd_ns[i]);
    }
    uint64_t margin = jitter_ns ? 2 * jitter_ns : 10'000'000;
    uint64_t v = hi - lo;
    v = v > UINT64_MAX - margin ? UINT64_MAX : v + margin;
    if (ceil_ns < floor_ns) ceil_ns = floor_ns;
    return std::clamp(v, floor_ns, ceil_ns);
}

}  // namespace onebox::proto
