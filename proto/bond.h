// bond.h — one session's bonding state at one end of the tunnel.
//
// Both ends send and both ends receive, so each end keeps, per session:
//   as a sender   a LinkEstimator per link, fed by the peer's Feedback and by
//                 the echoes of its own Probes, and the Scheduler that picks
//                 the link of every packet it sends;
//   as a receiver what arrived per link (reported back in Feedback every
//                 feedback_every_ns while packets arrive) and the reorder gap
//                 timeout, sized from the links' delays.
// Pure: no syscalls, time passed in, no allocation. The data plane calls it
// per packet (pick, on_sent, on_received) and per timer tick (feedback_due,
// probe_due, gap_timeout_ns); PROTOCOL.md, "Scheduling and feedback", has
// the numbers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "feedback.h"
#include "replay.h"
#include "inbound_queue.h"
#include "link_estimator.h"
#include "link_health.h"
#include "moment.h"
#include "pmtu.h"
#include "scheduler.h"
#include "wire.h"

namespace onebox::proto {

struct BondConfig {
    uint64_t feedback_every_ns = 20'000'000;      // while packets arrive
    uint64_t probe_every_ns = 100'000'000;        // per link, while sending
    uint64_t idle_probe_every_ns = 500'000'000;   // per link, when nothing was sent for 1 s
    // A probe not echoed within clamp(2 x srtt + 4 x rttvar, floor, ceil) is lost.
    uint64_t probe_timeout_floor_ns = 200'000'000;
    uint64_t probe_timeout_ceil_ns = 2'000'000'000;
    // Feedback stall: a link that delivered nothing for
    // max(srtt + 4 x rttvar + 2 x feedback interval, floor) while bytes
    // sent on it since its last delivery are that old, and another link
    // delivered meanwhile, gets no new packets until a probe comes back.
    // One srtt: a packet sent after the last delivery needs one round trip
    // (srtt includes the queue it waits in) and a Feedback interval to be
    // reported; rttvar and a second interval are the margin. Once the peer
    // reports sequence numbers, the lag is timed from the first datagram
    // not reported, and the link must also have delivered nothing for
    // max(2 x feedback interval, floor) (detect_stalls).
    uint64_t stall_floor_ns = 60'000'000;
    // Late behind the others (faster, where the scheduler forecasts
    // arrivals: Scheduler::models_arrival): a link that delivered nothing in
    // the last Feedback, whose kStallPackets-th undelivered datagram was due
    // at the peer max(stall_late_ns, 3/4 srtt) or more before one another
    // link has delivered. A datagram's due time is the scheduler's own
    // forecast (its virtual queue plus the link's one-way delay), and both
    // links' deliveries come from the same report, so the feedback delay
    // and the way back cancel out; what is left is the forecast's error,
    // which the margin covers. Not while the scheduler fills the link
    // (Startup at gain 2, Drain: its real queue then runs ahead of the
    // model's). A cut is seen about the margin plus a Feedback interval
    // after it, where the timeout above takes 90-165 ms on the lab's links;
    // every datagram of those milliseconds must be sent again, and the
    // survivors must carry it. The same judgement finds a lost tail (loss
    // repair), and on the timer a link whose flow stopped after losing its
    // window there (detect_silent_links). A stall whose datagrams arrive
    // after all (a late link, not a dead one) is undone: the link is used
    // again at once (LinkHealth::stalls_undone). 0: off.
    uint64_t stall_late_ns = 30'000'000;
    // Failover headroom: for failover_window_ns after a link stalled, went
    // Down or was taken out for loss, admission allows this much more queue
    // on the links left, and the data plane holds what it still refuses
    // rather than drop it (worker.cpp, hold). Every flow's window was sized
    // for the old sum of the links, and a BBR sender goes on at the old rate
    // until its bandwidth filter forgets it (ten of its round trips, which
    // the queue lengthens: 1-2 s on the lab's links); refusing that surplus
    // drops bursts, the flows' retransmissions with them, and a TCP flow
    // stalls for a retransmission timeout. Only a little more goes into the
    // links' own queues, which may be shorter than the burst (the lab's hold
    // 100 ms); the rest waits in the sender. (Measured on 3 cuts of each of
    // 40 + 20 Mbit/s under a BBR download: longest stalls 200-500 ms with
    // 150 ms for 1 s and nothing held; 100 ms with 60 ms for 3 s and the hold.)
    uint64_t failover_headroom_ns = 60'000'000;
    uint64_t failover_window_ns = 3'000'000'000;
    // Lossy link: one that lost at least lossy_share of the data-channel
    // datagrams sent on it over the last 500 ms (counting only since it was
    // last given traffic again), and at least lossy_min_lost of them, gets
    // no new packets (LinkHealth::on_lossy) while another link is
    // schedulable and loses less than half that share. Lost: sent on the
    // link before the newest data-channel datagram the peer reported
    // arriving on it, and not counted by the peer (Feedback's rx_data; a
    // link delivers in order, so what is missing behind the newest arrival
    // is lost, however long the link's queue).
    // Not what it lost while the scheduler filled it (Scheduler::filling:
    // Startup at gain 2 overflows the link's queue by design, Drain empties
    // it): the window starts after the last such moment. And the losses
    // must come in lossy_min_events Feedback reports spread over
    // lossy_min_spread_ns: a queue overflowing drops a burst (a flow's slow
    // start), random loss goes on.
    // Below lossy_heavy_share, not when its queue explains the loss (srtt
    // above min_rtt + max(lossy_queue_floor_ns, min_rtt / 2)): a link we
    // fill drops from its full queue, and the answer to that is to send
    // less, which the scheduler's rate estimate does, not to stop using it.
    // A loaded link always has some queue (a saturating download keeps
    // 10-25 ms on the lab's links and loses 0.3-3 % from it), so at
    // lossy_heavy_share and above the queue is no excuse.
    // Why bother: a link losing at random loses the same share of every
    // flow's packets whatever we send; a TCP flow takes each loss as
    // congestion, so a few per cent on one link cost the whole bond its
    // rate, and a call its audio.
    double lossy_share = 0.10;
    double lossy_heavy_share = 0.20;
    uint64_t lossy_min_lost = 4;
    unsigned lossy_min_events = 3;
    uint64_t lossy_min_spread_ns = 150'000'000;
    uint64_t lossy_queue_floor_ns = 20'000'000;
    // Loss repair: a data datagram the peer reports missing (Feedback's
    // missing block) although the link it went out on has since delivered
    // a later one was lost on that link (a link delivers in order); if it
    // went out less than this long ago, it is sent again on another link
    // (take_lost). A ping or a call's audio then loses nothing to a link's
    // random loss or to the first moments of a fault, and a TCP flow sees
    // its segment late rather than lost. 0: off.
    uint64_t repair_window_ns = 500'000'000;
    // A repair is admitted with this much more queue than a new packet: it
    // is one of few (a link's losses, not its traffic), each already late,
    // and refusing it makes the loss final. (Measured on 15 % loss of one
    // of two links under a download: without it the server refused 10-20 %
    // of its repairs, and 1-7 of 750 pings stayed lost.)
    uint64_t repair_headroom_ns = 20'000'000;
    // Light copies: a ping or a TCP acknowledgement without data (a light
    // packet: small, and it may overtake, overtake.h) also goes, byte for
    // byte, on each other usable link that carried no light packet for this
    // long (light_copies). The peer keeps the first to arrive. TCP's
    // acknowledgements are cumulative, so a few on each link keep the
    // sender's clock going whichever link dies: with the upstream idle the
    // scheduler puts every one of them on the same link (the earliest
    // arrival), and when that link is cut they all went into it until the
    // cut was seen (68-372 ms after it, bench/results.md "Failover"), and a
    // BBR download stalled for 300 ms. At most one copy per link per
    // interval: under a gigabit download the acknowledgements are tens of
    // thousands a second, and copying each would cost CPU for nothing.
    // And at most 1/light_copy_share of the link's pacing rate (its
    // estimate, at least the scheduler's initial 1 Mbit/s, times the gain
    // of its phase: a 92-byte copy every 6-24 ms then), so a slow uplink (DSL's 1 Mbit/s) is not filled with copies
    // of a download's acknowledgements that another link carries.
    // 0: off.
    uint64_t light_copy_every_ns = 1'000'000;
    uint32_t light_copy_share = 16;
    uint64_t gap_floor_ns = 10'000'000;           // reorder gap timeout bounds
    uint64_t gap_ceil_ns = 500'000'000;
    uint64_t gap_unknown_ns = 50'000'000;         // until every link has an RTT sample
};

struct LinkLosses;  // bond.cpp: a link's losses over the last 500 ms

struct Bond {
    BondConfig cfg{};
    Scheduler sched{};
    LinkEstimator est[kMaxLinks]{};
    // The queue the peer's packets meet on each link on their way here
    // (from its probes' one-way delays): what gap_timeout_ns() waits for.
    InboundQueue inbound[kMaxLinks]{};
    LinkHealth health[kMaxLinks]{};
    PmtuSearch pmtu[kMaxLinks]{};  // how big a datagram each link carries (pmtu.h)

    Bond() {
        // Real feedback comes in bursts (a receive batch, a timer tick), so a
        // 20 ms sample can show twice the link's rate; 50 ms samples don't.
        for (LinkEstimator& e : est) e.cfg.min_sample_ns = 50'000'000;
        for (uint8_t& l : seq_link_) l = kNoLink;
    }

    // ---- links ----------------------------------------------------------------
    // A link exists (the client has it, the server heard from it lately): it
    // is probed, and the scheduler may use it if its health allows (below).
    // One that comes back is probed at once.
    void set_usable(unsigned i, bool usable);
    // Does the scheduler use link i now? Of the links that exist, those whose
    // LinkHealth is schedulable; if there is none, those Up (not yet stable),
    // then those Unknown, then those not stalled, then all of them (a best
    // effort beats dropping everything when every probe is failing, e.g.
    // while the peer restarts).
    // A link that becomes used again goes back to Startup, doubling from the
    // rate it had learned (which the 1 s max filter forgets if the path changed).
    bool usable(unsigned i) const { return i < kMaxLinks && sched.links[i].usable; }
    bool exists(unsigned i) const { return i < kMaxLinks && (exists_ >> i & 1u); }

    // Once per timer tick: probes past their timeout count as lost, and the
    // set of used links follows the links' health.
    void update(uint64_t now);
    // Mode or priorities changed (the client's policy, or SetMode): which
    // links are used follows at once.
    void refresh(uint64_t now);
    // Links that stalled, went Down without a stall first, or were taken
    // out for loss, since the last call (bit i = link i): what was sent on
    // them and not reported delivered should go out again elsewhere.
    // Sent on link i at or after this time, a datagram may not be among
    // those its last progressing Feedback counted: the last delivery's time
    // minus 2 x srtt + 4 x rttvar + 2 x the feedback interval (the round trip
    // as queued, and the wait for a Feedback to be sent), 0 if it never
    // delivered. Generous on purpose: a copy of a delivered datagram costs
    // its bytes, a datagram left out is lost. Counting datagrams instead
    // would go wrong after the first loss: a lost one is never delivered, so
    // the counts drift apart.
    uint64_t undelivered_since(unsigned i) const {
        if (i >= kMaxLinks) return 0;
        Moment last = est[i].last_delivery();
        if (!last.ever) return 0;
        const LinkEstimator& e = est[i];
        uint64_t back = 2 * e.srtt_ns() + 4 * e.rttvar_ns() + 2 * e.feedback_interval_ns();
        return last.at > back ? last.at - back : 0;
    }
    // The highest data-channel sequence number the peer reported arriving on
    // link i (Feedback's newest_seq), if it reported one since the session's
    // keys last changed. What went out on link i with a higher one had not
    // arrived when that report was made: exactly what a stalled link lost
    // (a link delivers in order). A resend that went out on link i carries an
    // older number and is not covered: after a second stall it is left to the
    // inner protocol.
    bool delivered_through(unsigned i, uint64_t* seq) const {
        if (i >= kMaxLinks || !(acked_seen_ >> i & 1u)) return false;
        *seq = acked_seq_[i];
        return true;
    }
    // *lossy (if given): those of them taken out for loss.
    uint8_t take_stalled(uint8_t* lossy = nullptr) {
        uint8_t s = new_stalls_;
        if (lossy) *lossy = new_lossy_;
        new_stalls_ = new_lossy_ = 0;
        return s;
    }
    // The share of its packets link i had lost when it was last taken out
    // for loss, in thousandths.
    uint32_t loss_pm_at_exclusion(unsigned i) const { return i < kMaxLinks ? lossy_pm_[i] : 0; }

    // ---- sending --------------------------------------------------------------
    // The link for the next data packet, or -1 (no usable link, or all over
    // the admission budget: the caller drops the packet). `extra_headroom_ns`:
    // more admission budget (a TCP retransmission's: repair_headroom()).
    // Admission::Exempt: never refused for the budget (a ping, a TCP
    // acknowledgement: scheduler.h).
    int pick(uint64_t now, uint32_t bytes, uint64_t extra_headroom_ns = 0,
             Admission admission = Admission::Budgeted) {
        last_pick_.mark(now);
        return sched.pick(now, bytes, headroom(now) + extra_headroom_ns, admission);
    }
    // The admission headroom now (BondConfig::failover_headroom_ns, plus
    // budget_shortfall()).
    uint64_t headroom(uint64_t now) const {
        return last_failure_.less_than(now, cfg.failover_window_ns) ? cfg.failover_headroom_ns + budget_shortfall()
                                                                     : 0;
    }
    // The failover and repair headrooms were set for a 20 ms admission
    // budget; below it they make up the difference, so a failure's surplus
    // and the repairs get as much queue as they did there (80 and 40 ms).
    uint64_t budget_shortfall() const {
        constexpr uint64_t kTuned = Scheduler::kTunedBudgetNs;
        return sched.cfg.budget_ns < kTuned ? kTuned - sched.cfg.budget_ns : 0;
    }
    // A repair's extra admission budget (BondConfig::repair_headroom_ns,
    // plus budget_shortfall()).
    uint64_t repair_headroom() const { return cfg.repair_headroom_ns + budget_shortfall(); }
    // pick(), but never link `failed` (a resend of what it lost), even when
    // every link is failing and the fallback uses them all: -1 if it is the
    // only one. Resends get no more queue than new packets: a dead fast
    // link leaves more in flight than the others can take, and a TCP flow
    // loses less time retransmitting what does not fit than waiting behind
    // a few hundred ms of resends (measured: longest stalls of 300-400 ms
    // with 250 ms more for resends, 100-300 ms without).
    // `extra_headroom_ns`: more admission budget still (a repair's:
    // BondConfig::repair_headroom_ns); Admission::Exempt for a light
    // packet's resend or repair, as for the packet itself (pick).
    int pick_other_than(unsigned failed, uint64_t now, uint32_t bytes, uint64_t extra_headroom_ns = 0,
                        Admission admission = Admission::Budgeted);
    // A light packet of `bytes` (sealed; BondConfig::light_copy_every_ns)
    // went out on link `first` at `now`: the other usable links that should
    // carry a copy of it now (bit n = link n), which count as having carried
    // one. None in mode redundant, which copies every packet to every link.
    uint8_t light_copies(unsigned first, uint64_t now, uint32_t bytes);
    // Every sealed datagram sent on link i (data, keepalive, control), as sent.
    void on_sent(unsigned i, uint64_t now, uint32_t datagram_bytes);
    // A data-channel datagram (Data, Keepalive, Close; not a resend or a
    // redundant copy) with sequence number `seq` went out on link i. At most
    // one every kSendMarkEveryNs is remembered, with its time, until the
    // peer reports a newer number on the link: the oldest ones left are what
    // a stall is timed from (detect_stalls).
    // `payload`: a Data datagram (not a Keepalive or Close).
    void on_sent_data(unsigned i, uint64_t now, uint64_t seq, bool payload = true);
    static constexpr unsigned kSendMarks = 128;
    static constexpr uint64_t kSendMarkEveryNs = 2'000'000;

    // ---- receiving ------------------------------------------------------------
    // Every authenticated datagram received on link i, as received. Only
    // `answer` ones (everything but Feedback) make a Feedback due, so two
    // idle ends do not keep answering each other's Feedback.
    void on_received(unsigned i, uint64_t now, uint32_t datagram_bytes, bool answer = true);
    // An authenticated data-channel datagram (Data, Keepalive, Close) with
    // sequence number `seq` arrived on link i: Feedback reports the highest.
    // `copy`: its header names another link (a resend, a repair, a light or
    // redundant copy): neither counted in rx_data nor reported as the
    // link's newest number, which the peer holds against what it sent on
    // link i (what it sent there before that number and was not counted
    // is lost); a copy was never sent there as such, and a light copy of
    // a number newer than the link's queued data would make that data
    // look lost.
    void on_data_seq(unsigned i, uint64_t seq, bool copy = false) {
        if (i >= kMaxLinks || copy) return;
        if (!(rx_seq_seen_ >> i & 1u) || seq > rx_seq_[i]) rx_seq_[i] = seq;
        rx_seq_seen_ |= uint8_t(1u << i);
        ++rx_data_[i];  // wraps, as Feedback says
    }
    // An authenticated data-channel datagram whose header names link i
    // arrived on link i after a copy of it on another link (a light or
    // redundant copy, a resend) was taken: it is dropped as a duplicate, but
    // link i delivered it, and the peer holds rx_data and newest_seq against
    // what it sent there; uncounted it would read as loss (and a link whose
    // originals all lose the race as a stall). Counted only if newer than
    // the link's newest: a link delivers in order, so an older one is a
    // replay. True if counted.
    bool on_original_after_copy(unsigned i, uint64_t now, uint32_t datagram_bytes, uint64_t seq) {
        if (i >= kMaxLinks || ((rx_seq_seen_ >> i & 1u) && seq <= rx_seq_[i])) return false;
        on_received(i, now, datagram_bytes);
        on_data_seq(i, seq);
        return true;
    }

    // ---- feedback (receiver -> sender) ----------------------------------------
    bool feedback_due(uint64_t now) const { return rx_dirty_ && now >= next_feedback_; }
    // Writes the Feedback payload (what arrived per link so far) and schedules
    // the next one. Returns its length (0 if out_cap is too small).
    // `data_window` (the session's data-channel replay window), if given:
    // what has not arrived below its top goes in the missing block (whether
    // the peer repairs is the peer's repair_window).
    size_t make_feedback(uint64_t now, uint8_t* out, size_t out_cap, const ReplayWindow* data_window = nullptr);
    // The peer's Feedback: updates the estimators. False if malformed. One
    // arriving sooner than kMinFeedbackGapNs after the last one taken is
    // ignored (true): an authenticated peer flooding Feedback costs a decode,
    // not 8 estimator updates per packet.
    bool on_feedback(uint64_t now, const uint8_t* in, size_t len);
    static constexpr uint64_t kMinFeedbackGapNs = 5'000'000;

    // ---- loss repair (BondConfig::repair_window_ns) ----------------------------
    // The data-channel datagrams the last Feedbacks showed lost, each once,
    // with the link each went out on: the caller sends each, if it still
    // holds it on that link (not already sent again elsewhere) and it is
    // recent enough, again on another link. At most kLostMax per Feedback;
    // the rest are found in the next ones.
    struct Lost {
        uint64_t seq;
        uint8_t link;
    };
    unsigned take_lost(Lost* out, unsigned cap) {
        unsigned n = lost_n_ < cap ? lost_n_ : cap;
        for (unsigned k = 0; k < n; ++k) out[k] = lost_[k];
        lost_n_ = 0;
        return n;
    }
    static constexpr unsigned kLostMax = 64;   // per Feedback taken
    static constexpr unsigned kSeqLinks = 4096;  // sent sequence numbers whose link is remembered
    uint64_t lost_found() const { return lost_found_; }

    // The peer re-handshook and restarted its counters (its new session
    // starts Feedback at 0): forget what the estimators knew of the old ones.
    void on_peer_restart() {
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            est[i].reset();
            sched.reset_link(i);
            refresh_inputs(i);
            // Our own reports start again at 0 too: the peer's new estimators
            // take their first one as a baseline of what it sent since.
            rx_bytes_[i] = 0;
            rx_pkts_[i] = 0;
            last_rx_[i] = 0;
        }
        rx_seen_ = 0;
        // Both sequence spaces start again at 0 with the new keys.
        rx_seq_seen_ = 0;
        acked_seen_ = 0;
        acked_sent_seen_ = 0;
        peer_data_seen_ = 0;
        undo_armed_ = 0;
        tail_seen_ = silent_seen_ = 0;
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            forget_marks(i);
            tx_top_[i] = tail_seq_[i] = tail_due_[i] = acked_due_[i] = silent_through_[i] = 0;
            loss_count_[i] = 0;
            tx_data_[i] = peer_data_[i] = 0;
            rx_data_[i] = 0;
        }
        last_fb_ = Moment{};
        sent_any_ = false;
        lost_n_ = 0;
        missing_time_ = Moment{};
    }

    // ---- probes ---------------------------------------------------------------
    // A link (used or not: probes bring an unused one back) whose probe is
    // due, or -1. Call make_probe for it, send it,
    // and ask again until -1.
    int probe_due(uint64_t now) const;
    size_t make_probe(unsigned i, uint64_t now, uint8_t* out, size_t out_cap);
    enum class ProbeAction : uint8_t {
        SendEcho,  // a peer's probe: `payload` now holds the echo; send it back on link i
        Sampled,   // the echo of one of our probes: RTT and queue sample taken
        Ignored,   // malformed, on the wrong link, or an echo we did not ask for
    };
    // `*echo_len` (when SendEcho): how many bytes of payload the echo is (a
    // size probe's comes back without its padding). `rx_ns`: when the
    // datagram reached this host (the kernel's receive time), if the caller
    // knows it, else 0 (= now). The RTT of an echo ends there, not at `now`:
    // the time an echo waited in our socket behind other datagrams (a busy
    // worker, a flood) is not queue on the link, and counting it would make
    // admission refuse packets on idle links.
    ProbeAction on_probe(unsigned i, uint64_t now, uint8_t* payload, size_t len, size_t* echo_len = nullptr,
                         uint64_t rx_ns = 0);

    // ---- path MTU (pmtu.h) ------------------------------------------------------
    // Link i's interface MTU: its search starts (the server, knowing nothing
    // of the client's interfaces, starts every link at 1500).
    void start_pmtu(unsigned i, uint64_t now, uint16_t interface_mtu);
    // The interface MTU link i's search starts from when it becomes usable
    // (set_usable); 0 = 1500.
    void set_interface_mtu(unsigned i, uint16_t mtu) {
        if (i < kMaxLinks) if_mtu_[i] = mtu ? mtu : 1500;
    }
    // A link whose size probe is due, with the size (whole IPv4 datagram), or -1.
    int size_probe_due(uint64_t now, uint16_t* size);
    // A size probe of `size` for link i: the payload (probe + padding) to
    // seal; its sealed datagram plus IP and UDP headers is `size` bytes.
    size_t make_size_probe(unsigned i, uint64_t now, uint16_t size, uint8_t* out, size_t out_cap);
    // The kernel refused a datagram of `size` on link i (EMSGSIZE).
    void on_too_big(unsigned i, uint64_t now, uint16_t size);
    // The largest sealed datagram link i carries now.
    uint32_t max_datagram(unsigned i) const { return i < kMaxLinks ? pmtu[i].mtu() - kIpUdpHeaders : 0; }

    // ---- receiver's reorder buffer ----------------------------------------------
    // gap_timeout_for() over the links' (all that exist: the peer decides
    // which it sends on) one-way delays, each both
    // bare (owd) and with its measured queueing (owd + srtt - min RTT), with
    // the largest rttvar as jitter; gap_unknown_ns while a link has no
    // RTT sample yet.
    uint64_t gap_timeout_ns() const;

    // The link to send Feedback on: the usable one with the smallest smoothed
    // RTT (feedback is small and late feedback is stale), or -1. Skipped: a
    // link on which nothing has arrived for max(2 x srtt + 4 x rttvar, 150 ms)
    // before the newest arrival on any link: the link is probably cut both
    // ways, and Feedback sent on it would leave the peer blind to the cut. If
    // every usable link is quiet, an unused one that is not (mode backup's
    // idle backup link); if all are quiet, the usable one as before.
    // `except`: the same choice among the other links, for the copy of each
    // Feedback sent on a second link (one cut before it turns quiet would
    // otherwise swallow every Feedback, and the peer would learn of the cut
    // only from its probes). -1 if there is no other.
    int control_link(int except = -1) const;

    uint64_t probes_unmatched() const { return unmatched_; }
    // Enough for every probe a link can have in flight before its timeout
    // (ceil 2 s / 100 ms busy interval = 20), so each is judged by update().
    static constexpr unsigned kProbeSlots = 24;

  private:
    uint8_t exists_ = 0;        // set_usable() links, bit i = link i
    uint64_t last_update_ = 0;  // the clock as of the last update()
    Moment light_at_[kMaxLinks];  // the last light packet or copy on each link (light_copies)
    uint8_t new_stalls_ = 0;    // for take_stalled()
    uint8_t new_lossy_ = 0;     // ... of which taken out for loss
    uint32_t lossy_pm_[kMaxLinks]{};
    Moment last_failure_;       // the last stall, Down or loss exclusion (headroom())
    uint64_t used_since_[kMaxLinks]{};  // when each link was last given traffic again
    uint64_t filled_at_[kMaxLinks]{};   // when the scheduler was last seen filling it (Scheduler::filling)
    uint16_t if_mtu_[kMaxLinks] = {1500, 1500, 1500, 1500, 1500, 1500, 1500, 1500};
    // Receiver: cumulative per-link counts (what Feedback reports).
    uint64_t rx_bytes_[kMaxLinks]{};
    uint32_t rx_pkts_[kMaxLinks]{};
    uint8_t rx_seen_ = 0;       // links that ever received (listed in Feedback)
    uint64_t last_rx_[kMaxLinks]{};  // when each last received (if rx_seen_)
    uint64_t rx_seq_[kMaxLinks]{};   // highest data-channel seq arrived per link
    uint8_t rx_seq_seen_ = 0;        // ... valid for these links
    bool rx_dirty_ = false;     // something arrived since the last Feedback
    uint64_t next_feedback_ = 0;

    // Sender: probes in flight, a few per link, matched by probe_seq.
    struct Outstanding {
        uint32_t seq = 0;
        uint64_t sent_ns = 0;
        uint64_t modeled_ns = 0;  // the scheduler's backlog on the link when sent
        bool used = false;
        uint16_t size = 0;        // a size probe's size (0: an RTT probe)
    };
    Outstanding probes_[kMaxLinks][kProbeSlots]{};
    Moment last_probe_[kMaxLinks]{};
    Moment last_pick_;           // the last data packet scheduled
    uint32_t probe_seq_ = 0;
    uint64_t unmatched_ = 0;
    Moment last_fb_;               // the last Feedback taken
    uint64_t acked_seq_[kMaxLinks]{};  // the peer's newest_seq per link (delivered_through)
    uint8_t acked_seen_ = 0;
    // Per link, oldest first: sent data-channel datagrams not yet reported
    // (on_sent_data), a ring of kSendMarks.
    struct SendMark {
        uint64_t seq = 0;
        uint64_t at = 0;
        uint64_t sent_data = 0;  // data-channel datagrams sent on the link, this one included
        uint64_t due = 0;        // when the scheduler expected it at the peer; 0: not modelled
    };
    SendMark marks_[kMaxLinks][kSendMarks]{};
    uint8_t mark_head_[kMaxLinks]{};
    uint8_t mark_count_[kMaxLinks]{};
    const SendMark& mark(unsigned i, unsigned k) const { return marks_[i][(mark_head_[i] + k) % kSendMarks]; }
    void forget_marks_through(unsigned i, uint64_t seq);
    void forget_marks(unsigned i) { mark_head_[i] = mark_count_[i] = 0; }
    bool stalled_by_seq(unsigned i, uint64_t now, uint64_t lag) const;
    uint64_t acked_due_[kMaxLinks]{};   // due time of the newest mark the peer reported (0: not modelled)
    bool may_judge_late(unsigned i, uint64_t now) const;
    uint64_t late_margin(unsigned i) const;
    uint64_t late_reference(unsigned i, uint64_t now) const;
    bool tail_silent(unsigned i, uint64_t now) const;
    void detect_silent_links(uint64_t now);
    void repair_unreported(unsigned i);
    uint64_t unreported_since(unsigned i, uint64_t sent) const;
    uint64_t silent_through_[kMaxLinks]{};  // the newest silent tail judged (detect_silent_links)
    uint8_t silent_seen_ = 0;
    void stall_link(unsigned i, uint64_t now);
    uint64_t late_datagrams(unsigned i, uint64_t now, uint64_t* through) const;
    // A feedback stall is undone if the peer then reports a data datagram
    // the link carried before it (stall_top_): late, not dead.
    uint64_t tx_top_[kMaxLinks]{};      // highest data-channel number sent per link
    // The newest Data datagram (not a keepalive: a lost one is loss, and
    // probes judge an idle link) sent per link, and its due time (SendMark::due).
    uint64_t tail_seq_[kMaxLinks]{};
    uint64_t tail_due_[kMaxLinks]{};
    uint8_t tail_seen_ = 0;
    uint64_t stall_top_[kMaxLinks]{};
    uint64_t stall_acked_[kMaxLinks]{}; // acked_seq_ at the stall (if acked_seen_ then)
    uint8_t stall_acked_seen_ = 0;
    uint8_t undo_armed_ = 0;            // links whose stall may still be undone
    // A link whose stall was undone is not judged late again for a while:
    // the scheduler's forecast for it is wrong (a path longer one way than
    // the other, a queue it does not know of) until probes correct it, and
    // the timeout still catches a real failure meanwhile.
    Moment undone_at_[kMaxLinks];
    static constexpr uint64_t kLateOffAfterUndoNs = 10'000'000'000;
    void arm_undo(unsigned i);
    void maybe_undo_stall(unsigned i, uint64_t now, uint64_t newest_seq);
    // Per link, at each Feedback (at most one per kLossSampleEveryNs): the
    // data-channel datagrams sent up to the newest reported arrival (from
    // the send marks) and the peer's count of them (Feedback's rx_data), a
    // ring of kLossSamples. Data-channel only: control datagrams go out in
    // copies on two links (Feedback) and the later copy is never counted.
    struct LossSample {
        uint64_t at = 0;
        uint64_t sent = 0, delivered = 0;
    };
    static constexpr unsigned kLossSamples = 32;  // 640 ms at one per 20 ms: the window and a margin
    static constexpr uint64_t kLossSampleEveryNs = 20'000'000;
    static constexpr uint64_t kLossWindowNs = 500'000'000;  // short: a fault must show fast
    LossSample loss_[kMaxLinks][kLossSamples]{};
    uint8_t loss_head_[kMaxLinks]{};
    uint8_t loss_count_[kMaxLinks]{};
    uint64_t acked_sent_[kMaxLinks]{};  // sent_data of the newest mark the peer's reports covered
    uint8_t acked_sent_seen_ = 0;
    uint64_t tx_data_[kMaxLinks]{};     // data-channel datagrams sent per link (on_sent_data)
    uint64_t peer_data_[kMaxLinks]{};   // the peer's rx_data, unwrapped
    uint16_t peer_data16_[kMaxLinks]{};
    uint8_t peer_data_seen_ = 0;
    uint16_t rx_data_[kMaxLinks]{};     // receiver: data-channel arrivals per link (Feedback's rx_data)
    // Loss repair: the link each of the last kSeqLinks data-channel
    // sequence numbers went out on (kNoLink: not yet, or already found lost).
    static constexpr uint8_t kNoLink = 0xff;
    uint8_t seq_link_[kSeqLinks];
    uint64_t sent_newest_ = 0;   // the highest sequence number in seq_link_
    bool sent_any_ = false;
    Lost lost_[kLostMax]{};
    unsigned lost_n_ = 0;
    uint64_t lost_found_ = 0;
    Moment missing_time_;        // report time of the newest missing block used
    void find_lost(uint64_t now, const Feedback& fb);

    void sample_loss(unsigned i, uint64_t now);
    void take_peer_data(unsigned i, uint16_t rx_data);

    void refresh_inputs(unsigned i) { sched_inputs_from(est[i], sched.links[i]); }
    uint8_t best_priority(uint8_t use) const;
    void probe_lost(unsigned i, uint64_t now);
    void use_link(unsigned i, bool use, uint64_t now);
    uint64_t probe_timeout_ns(unsigned i) const;
    void detect_stalls(uint64_t now, uint8_t progressed);
    bool losses(unsigned i, uint64_t now, LinkLosses* out) const;
    bool losing(const LinkLosses& l, uint64_t share_pm, bool spread) const;
    bool queue_explains_loss(unsigned i) const;
    void detect_lossy(uint64_t now);
};

}  // namespace onebox::proto
