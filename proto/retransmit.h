// retransmit.h — which TCP segments are retransmissions, seen from the
// tunnel's sending end, so admission can let them through.
//
// When the links get slower at once (a link cut, a BBR sender still at the
// old sum), admission refuses or holds a flow's surplus. Its
// retransmissions are among what is refused or held, and a retransmission
// that waits in the hold behind up to 250 ms of its flow's newer segments,
// or is refused again, costs the flow a retransmission timeout: the
// receiver has a hole and gives its application nothing until it is
// filled (measured: BBR downloads stalled 300-400 ms at a cut, with all
// of the flow's data after the hole already at the receiver). A
// retransmission is what fills that hole, and there are only as many as
// there were losses, so it goes ahead of the hold with a repair's headroom.
// Always, not only in a failover: one that ordinary admission refuses costs
// the same timeout (bench/latency.sh under a BBR load measured the same
// ping times with this as without).
//
// A segment is a retransmission when it carries data (or a SYN or FIN,
// which take a sequence number each) that ends at or before the highest end
// its flow (addresses and ports) has sent, by less than a TCP window (2^30):
// TCP never sends new data below what it sent before. The tracker keeps that
// highest end per flow in a fixed table, two flows per bucket of a hash of
// the flow; a third flow in a bucket takes the way used least lately, and a
// flow whose slot was taken is seen as new again (no retransmission found,
// nothing wrong done). A flow starts over at a SYN that is not the same
// SYN again, after kIdleNs of quiet (its ports may be reused by a new
// connection whose sequence numbers mean nothing against the old ones),
// and at a segment more than a window away from its record either way (a
// record of another connection, seen on another worker meanwhile, say).
// Pure, O(1), no allocation after construction; `now` is passed in.
#pragma once

#include <cstdint>
#include <memory>

namespace onebox::proto {

struct RetransmitTracker {
    static constexpr unsigned kSlots = 1024;  // a power of two
    static constexpr unsigned kWays = 2;      // slots per bucket
    static constexpr uint64_t kIdleNs = 30'000'000'000;

    struct Slot {
        uint32_t src = 0, dst = 0, ports = 0;
        uint32_t high_end = 0;  // the highest sequence number + length sent
        uint64_t last_ns = 0;   // 0: free
    };
    std::unique_ptr<Slot[]> slots = std::make_unique<Slot[]>(kSlots);

    // Records the IPv4 packet `ip` of `len` bytes (what the buffer holds)
    // as sent; true if it is a TCP segment with data, SYN or FIN that its
    // flow has sent before (in full). Anything else (not TCP, an
    // acknowledgement without any of those, a fragment, a truncated
    // header): false, and nothing recorded.
    bool is_retransmission(const uint8_t* ip, uint32_t len, uint64_t now);
};

}  // namespace onebox::proto
