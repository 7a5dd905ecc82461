// overtake.h — which inner packets may overtake earlier packets of their
// session.
//
// A bonded session keeps its packets in order (the receiver's reorder
// buffer, the sender's hold list) because a TCP flow reads a reordered
// segment as a loss. That order costs a small packet the wait of whatever
// bulk data is ahead of it, although some small packets have nothing of
// their own flow to be behind: ICMP (a ping) and a TCP acknowledgement
// without data (a TCP receiver takes acknowledgements out of order with
// the data going its way; an older one is simply ignored).
//
// may_overtake() says yes for an IPv4 packet that is not a fragment and is
// either ICMP, or TCP with no data and none of SYN, FIN or RST (those must
// not pass the flow's last data: a RST overtaking it would discard it).
// Everything else keeps its order, UDP included: its small datagram may be
// the tail of a bulk flow that reordering slows down (QUIC, a VPN carrying
// TCP), and so may GRE, ESP or IP in IP. Callers also ask for a size limit
// (Scheduler::Config::small_bytes). Pure, no allocation; `len` is what the
// buffer holds.
#pragma once

#include <cstdint>

namespace onebox::proto {

bool may_overtake(const uint8_t* ip, uint32_t len);

// The receiver's reorder buffer lets less pass a gap: ICMP only (not a
// fragment). A TCP acknowledgement that passes there reaches the sending
// TCP ahead of older ones, and its RTT and delivery samples then come from
// the fast link alone: one BBR stream over a 10 + 40 ms pair moved 64-80 %
// of the links' sum instead of 86-87 % (bench/bonding.sh (b), 2026-12-07,
// one run each). The sender's hold is different: an acknowledgement it
// lets go ahead still arrives in the order the links deliver.
bool may_pass_gap(const uint8_t* ip, uint32_t len);

}  // namespace onebox::proto
