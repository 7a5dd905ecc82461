// hold.h — the worker's hold list: packets the links have no room for yet.
//
// For a while after a link stalled or went Down (Bond::headroom), an inner
// packet the links' admission refuses waits here instead of being dropped.
// Every flow's window was sized for the old sum of the links; what it has in
// flight beyond the survivors' budget would be lost in one burst, its
// retransmissions with it, and a TCP flow would stall for a retransmission
// timeout. (A BBR sender goes on at the old rate for a while whatever is
// lost.) Held here rather than in the links' own queues, which may be
// shorter than the burst (the lab's hold 100 ms). A stall's resends wait
// here too, sealed as they were, for a link other than the one that failed.
// With queue_hold, a packet refused outside a failover waits here the same
// way, for at most queue_hold (worker.cpp, hold_refused_packet).
//
// Held packets go out oldest first as the links make room (release, each
// loop pass), each session's before any newer packet of it; one that waited
// its limit is dropped (Expired). The list is one array in arrival order,
// shared by the worker's sessions: O(1) to add, a walk of it per pass.
//
// The early drop (Signal). A failover hold must not become a standing
// queue. A sender that slows down on loss (Cubic, Reno) and loses nothing
// keeps its window of both links, grows it, and fills the hold until its
// packets expire, a burst of them, with its retransmissions waiting the
// whole limit behind them: a retransmission timeout (measured: a 300 ms
// stall with 141 expired, 2026-12-06). So, CoDel's way but at a fixed rate:
// while a session's oldest held data packet has waited kSignalNs, it is
// dropped, at most one of the session's every kSignalEveryNs. One loss tells the sender the links got
// slower, and what it sends next still gets through; a BBR sender hardly
// slows for it, and the hold still takes its surplus. Never a packet of at
// most small_bytes (a ping, an acknowledgement), a resend, or a queue_hold
// packet (those wait queue_hold at most, 100 ms, and expire instead). And
// only the session's oldest held packet: while one of those is first (a
// stall's resends are, right after a cut), nothing is dropped early. Tried
// the other way (the oldest eligible one, whatever is ahead of it): over
// 40 runs of bench/failover_repeat.sh it dropped 0-10 per run, and Cubic
// stalled 400, 556 and 700 ms in three; the oldest only: 60 runs, 0-2 per
// run, longest stall 139 ms (2026-12-07).
#pragma once

#include <cstdint>
#include <memory>

#include "session.h"

namespace onebox::dataplane {

enum class HoldKind : uint8_t { Failover, Queue };

struct Held {
    Session* s;
    uint32_t idx;       // the buffer
    uint32_t len;       // an inner packet's, or a resend's sealed datagram's
    uint64_t since;     // when it was held
    uint64_t until;     // dropped if still here after this
    uint8_t failed;     // a resend: the link it is not to go on; kFresh: an inner packet
    HoldKind kind;
};

// Why release() gave up on a held packet.
enum class HoldDrop : uint8_t { Expired, Signal };

struct HoldList {
    static constexpr uint8_t kFresh = 0xff;
    static constexpr unsigned kMax = 2048;
    static constexpr uint64_t kFailoverNs = 250'000'000;   // a failover hold's limit
    static constexpr uint64_t kSignalNs = 50'000'000;
    static constexpr uint64_t kSignalEveryNs = 100'000'000;

    std::unique_ptr<Held[]> list = std::make_unique<Held[]>(kMax);
    unsigned n = 0;
    uint64_t pass = 0;  // release() calls (Session::hold_blocked_pass, hold_signal_pass)

    bool full() const { return n == kMax; }

    // Appends (and counts it in s->held); false when full.
    bool add(Session* s, uint32_t idx, uint32_t len, uint64_t now, uint64_t limit_ns,
             uint8_t failed = kFresh, HoldKind kind = HoldKind::Failover) {
        if (n == kMax) return false;
        list[n++] = Held{s, idx, len, now, now + limit_ns, failed, kind};
        ++s->held;
        return true;
    }

    // May `h` be dropped early at all: a failover hold of an inner data
    // packet larger than small_bytes (not a ping or an acknowledgement, not
    // a resend, not a queue_hold packet)?
    static bool signal_eligible(const Held& h) {
        return h.kind == HoldKind::Failover && h.failed == kFresh &&
               h.len + proto::kDataOverhead > h.s->bond.sched.cfg.small_bytes;
    }

    // Is `h`, an eligible packet its session holds (the oldest), to be
    // dropped early now: held kSignalNs, and none of its session dropped
    // early in the last kSignalEveryNs?
    static bool signal_due(const Held& h, uint64_t now) {
        uint64_t last = h.s->hold_signal_ns;  // 0: never
        return now >= h.since + kSignalNs && (last == 0 || now >= last + kSignalEveryNs);
    }

    // One pass, oldest first. try_send(const Held&) -> bool: true when it is
    // gone (sent, or dropped for its own reasons), false when the links have
    // no room for it yet: it stays, and so does every newer packet of its
    // session this pass. give_up(const Held&, HoldDrop): one dropped here
    // (the caller frees and counts it). An expired packet is dropped even
    // behind a blocked one of its session.
    template <class TrySend, class GiveUp>
    void release(uint64_t now, TrySend&& try_send, GiveUp&& give_up) {
        if (n == 0) return;
        ++pass;
        unsigned keep = 0;
        for (unsigned k = 0; k < n; ++k) {
            const Held h = list[k];
            Session* s = h.s;
            if (now > h.until) {
                --s->held;
                give_up(h, HoldDrop::Expired);
                continue;
            }
            if (s->hold_signal_pass != pass) {  // h is the oldest of its session still here
                s->hold_signal_pass = pass;
                if (signal_eligible(h) && signal_due(h, now)) {
                    s->hold_signal_ns = now;
                    --s->held;
                    give_up(h, HoldDrop::Signal);
                    continue;
                }
            }
            if (s->hold_blocked_pass == pass) { list[keep++] = h; continue; }
            if (try_send(h)) {
                --s->held;
                continue;
            }
            s->hold_blocked_pass = pass;
            list[keep++] = h;
        }
        n = keep;
    }

    // A session going away: each of its buffers to put(idx), out of the list.
    template <class Put>
    void remove_session(const Session* s, Put&& put) {
        unsigned keep = 0;
        for (unsigned k = 0; k < n; ++k) {
            if (list[k].s == s) put(list[k].idx);
            else list[keep++] = list[k];
        }
        n = keep;
    }
};

}  // namespace onebox::dataplane
