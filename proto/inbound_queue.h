// inbound_queue.h — the queue a link's packets meet on their way *to* us,
// from the peer's probes.
//
// A probe RTT holds the queues of both directions. What our reorder buffer
// must wait for is only the inbound one: after a failover the client's
// download fills the surviving link's downstream queue, and a server that
// took that queue (its RTT) as the wait for upstream gaps held the
// client's acknowledgements behind a gap left by the dead link for ~270 ms
// (bench/results.md, "Failover", the 1000 ms BBR stall).
//
// Each peer probe carries the peer's clock at sending (sender_time_ns); we
// know when it arrived on ours. Their difference is the one-way delay plus
// an unknown clock offset, so its excess over the windowed minimum (10 s,
// as min RTT) is the inbound queue, the offset cancelling out. Smoothed like
// srtt (1/8), with a mean deviation like rttvar (1/4). Clock drift between the hosts reads as at most a few
// microseconds per ppm over the window. Pure: times are passed in.
#pragma once

#include <cstdint>

#include "link_estimator.h"

namespace onebox::proto {

struct InboundQueue {
    uint64_t window_ns = 10'000'000'000;

    // A peer probe sent at `peer_sent_ns` (the peer's clock) that reached us
    // at `rx_ns` (ours).
    void on_probe(uint64_t rx_ns, uint64_t peer_sent_ns);
    // The smoothed inbound queue, ns; known() false until the first sample.
    uint64_t queue_ns() const { return queue_; }
    uint64_t var_ns() const { return var_; }
    bool known() const { return samples_ > 0; }
    uint64_t latest_ns() const { return latest_; }

  private:
    WindowedFilter base_{};  // min of the biased one-way delay over window_ns
    uint64_t queue_ = 0, var_ = 0, latest_ = 0;
    uint64_t samples_ = 0;
};

}  // namespace onebox::proto
