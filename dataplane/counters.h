// counters.h — per-worker statistics: written by one worker thread only,
// read by the control thread at any time. No locks: each counter is an atomic
// the worker updates with a relaxed load+store (it is the only writer), so the
// packet path pays no locked instruction.
#pragma once

#include <atomic>
#include <cstdint>

#include "proto/wire.h"

namespace onebox::dataplane {

// Every drop reason is a counter. Names are what `stats:` lines print.
#define ONEBOX_COUNTERS(X)                                                              \
    X(tx_packets)           /* inner packets sealed and sent (not resends or copies) */ \
    X(tx_bytes)             /* inner bytes sent */                                      \
    X(rx_packets)           /* inner packets delivered to the TUN */                    \
    X(rx_bytes)             /* inner bytes delivered */                                 \
    X(keepalive_tx)         /* keepalives sent */                                       \
    X(keepalive_rx)         /* keepalives received */                                   \
    X(close_rx)             /* authenticated Close packets received */                  \
    X(drop_short)           /* datagram shorter than a header + tag */                  \
    X(drop_bad_header)      /* bad version, type or reserved bits */                    \
    X(drop_unknown_session) /* no session with that id */                               \
    X(drop_bad_tag)         /* AEAD authentication failed */                            \
    X(drop_replay)          /* sequence number older than the replay window */          \
    X(drop_duplicate)       /* a copy of a packet already received: Feedback's second */ \
                            /* copy, mode redundant's and resends' copies, a replay */  \
    X(late_delivered)       /* arrived after the reorder buffer gave up on it: */       \
                            /* delivered out of order rather than dropped */            \
    X(drop_spoofed_source)  /* inner source is not the session's tunnel address */      \
    X(drop_no_session)      /* nothing to send it on (no session / no route) */         \
    X(drop_no_link)         /* client: no WAN link is up */                             \
    X(drop_over_budget)     /* every link already had its queue budget (scheduler) */   \
    X(held)                 /* over budget, held for room instead (a failover, queue_hold) */ \
    X(hold_expired)         /* ... after a link failed, dropped after waiting 250 ms */ \
    X(hold_refused)         /* ... or not held: the hold list full or buffers short */ \
    X(hold_signals)         /* held ones dropped early, a loss for the sender to slow down on */ \
    X(queue_held)           /* of those held, by queue_hold (no failover going on) */ \
    X(queue_hold_expired)   /* ... and dropped after waiting queue_hold (drop_over_budget too) */ \
    X(tcp_retransmits)      /* inner TCP segments that send again what their flow sent */ \
    X(retransmits_ahead)    /* ... sent at once with a repair's headroom, past the hold */ \
    X(drop_bad_control)     /* malformed Feedback/Probe, or an echo never asked for */  \
    X(feedback_tx)          /* Feedback messages sent */                                \
    X(feedback_rx)          /* Feedback messages received */                            \
    X(probe_tx)             /* RTT probes sent */                                       \
    X(probe_echoed)         /* peer probes echoed back */                               \
    X(probe_rtt)            /* RTT samples taken from echoes */                         \
    X(probe_rx_stamped)     /* ... ended at the kernel's receive time, not when handled */ \
    X(drop_not_ipv4)        /* inner packet is not IPv4 */                              \
    X(drop_handshake_queue) /* handshake message arrived while control was backed up */ \
    X(drop_send_error)      /* the kernel refused a send */                             \
    X(drop_too_big)         /* bigger than the path MTU the kernel knows of (EMSGSIZE) */\
    X(pmtu_probes)          /* path MTU size probes sent */                             \
    X(drop_tun_write)       /* the kernel refused a TUN write */                        \
    X(no_buffer)            /* a receive could not be re-armed for want of a buffer */  \
    X(handshake_rx)         /* handshake messages passed to the control thread */       \
    X(resent)               /* data sent again on a live link after its own stalled */  \
    X(resend_dropped)       /* ... or given up on: no other link would take it */      \
    X(resent_late)          /* of those, still being sent when their link stalled */    \
    X(repaired)             /* reported lost on its link by the peer, sent again */     \
    X(repair_dropped)       /* ... or given up on: no other link would take it */      \
    X(redundant_copies)     /* mode redundant: extra copies sent on the other links */  \
    X(feedback_copies)      /* Feedback also sent on a second link */                  \
    X(light_copies)         /* pings and TCP acks also sent on an idle link (proto) */ \
    X(late_originals)       /* originals after their copy: dropped, counted on their link */ \
    X(reorder_held)         /* packets that waited in the reorder buffer */             \
    X(reorder_passed)       /* small ICMP packets written at once past a gap (pings) */ \
    X(reorder_timeouts)     /* gaps given up on after the gap timeout */                \
    X(reorder_overflows)    /* gaps given up on because the buffer was full */          \
    X(sessions_promoted)    /* sessions confirmed by their first sealed packet */       \
    X(rekeys)               /* new keys taken up by a live session (sequence goes on) */\
    X(rx_previous_key)      /* packets opened under the key before the last rekey */   \
    X(keys_wiped)           /* previous keys wiped once their grace was over */        \
    X(gso_sends)            /* UDP GSO: sendmsg calls that carried several datagrams */ \
    X(gso_datagrams)        /* ... and the datagrams they carried */                    \
    X(gso_refused)          /* GSO batches the kernel refused (sent again one by one) */\
    X(gso_fallbacks)        /* a socket whose path refused GSO: back to one by one */   \
    X(gro_receives)         /* UDP GRO: receives that held several datagrams */         \
    X(gro_datagrams)        /* ... and the datagrams they held */                       \
    X(gro_copied)           /* datagrams copied out of a slab for the reorder buffer */ \
    X(tun_runs)             /* TUN writes that carried a run of TCP packets as one */ \
    X(tun_run_packets)      /* ... and the packets they carried */                      \
    X(files_registered)     /* fds put in the ring's file table (TUN, sockets) */       \
    X(multishot_arms)       /* multishot receives armed (each ends when the ring runs dry) */ \
    X(tso_reads)            /* TUN reads that stood for several packets (TSO) */        \
    X(tso_packets)          /* ... and the packets cut from them */                     \
    X(events_lost)          /* control events lost with ring and backlog full */

enum class Counter : unsigned {
#define ONEBOX_COUNTER_ENUM(name) name,
    ONEBOX_COUNTERS(ONEBOX_COUNTER_ENUM)
#undef ONEBOX_COUNTER_ENUM
    count
};

inline constexpr const char* kCounterNames[] = {
#define ONEBOX_COUNTER_NAME(name) #name,
    ONEBOX_COUNTERS(ONEBOX_COUNTER_NAME)
#undef ONEBOX_COUNTER_NAME
};

// Per WAN link (the client's link ids; on the server, summed over clients).
struct LinkCounters {
    std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, rx_packets{0}, rx_bytes{0};
    // A slot taken by a new link starts from zero (the worker, its only writer).
    void reset() {
        for (auto* a : {&tx_packets, &tx_bytes, &rx_packets, &rx_bytes, &rate_bps, &pace_bps, &srtt_us, &state,
                        &used, &loss_pm, &jitter_us, &downs, &stalls, &stalls_undone, &lossy, &restarts, &pmtu})
            a->store(0, std::memory_order_relaxed);
    }
    // Gauges, every 5 ms: estimated delivery rate, the scheduler's pacing
    // rate, smoothed RTT (the client's session; on the server, rates summed
    // over sessions and the largest RTT).
    std::atomic<uint64_t> rate_bps{0}, pace_bps{0}, srtt_us{0};
    // Health (proto/link_health.h): state 0 unknown / 1 up / 2 down, whether
    // the scheduler uses it, probe loss in per mille, RFC 3550 jitter, and
    // how often it went Down, stalled (and how many of those stalls were
    // undone: late, not dead) or was taken out for loss, and how often the
    // scheduler found its rate stale and went back to Startup (on the
    // server: the worst state, loss and jitter over sessions; the counts summed).
    std::atomic<uint64_t> state{0}, used{0}, loss_pm{0}, jitter_us{0}, downs{0}, stalls{0}, stalls_undone{0}, lossy{0},
        restarts{0};
    std::atomic<uint64_t> pmtu{0};  // path MTU in use (the whole IPv4 datagram; pmtu.h); 0 = no session
};

inline void bump(std::atomic<uint64_t>& v, uint64_t n) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct Counters {
    std::atomic<uint64_t> values[unsigned(Counter::count)]{};
    LinkCounters links[proto::kMaxLinks];
    std::atomic<uint64_t> reorder_depth{0};  // gauge: packets held in reorder buffers now

    // Single writer: no read-modify-write instruction needed.
    void add(Counter c, uint64_t n = 1) {
        auto& v = values[unsigned(c)];
        v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get(Counter c) const { return values[unsigned(c)].load(std::memory_order_relaxed); }
};

}  // namespace onebox::dataplane
