// retransmit.cpp — see retransmit.h.
#include "retransmit.h"

#include <algorithm>

#include "wire.h"

namespace onebox::proto {

namespace {
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02;

// How far behind its flow's highest end a segment may end and still be a
// retransmission: a TCP window is at most 2^30 bytes (window scale 14).
// Further behind, the record is not of this connection (see retransmit.h).
constexpr uint32_t kMaxBehind = 1u << 30;

// MurmurHash3's finalizer: every input bit moves every output bit.
uint32_t mix(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

unsigned bucket_of(uint32_t src, uint32_t dst, uint32_t ports) {
    return mix(src ^ mix(dst ^ mix(ports))) & (RetransmitTracker::kSlots / RetransmitTracker::kWays - 1);
}
}  // namespace

bool RetransmitTracker::is_retransmission(const uint8_t* ip, uint32_t len, uint64_t now) {
    if (len < 20 || (ip[0] >> 4) != 4 || ip[9] != kProtoTcp) return false;
    uint32_t ihl = (ip[0] & 15u) * 4;
    if (ihl < 20 || len < ihl + 20) return false;
    if (get_be16(ip + 6) & 0x3fff) return false;  // a fragment: no whole TCP header to trust
    const uint8_t* tcp = ip + ihl;
    uint32_t total = std::min<uint32_t>(get_be16(ip + 2), len);
    uint32_t doff = (tcp[12] >> 4) * 4u;
    if (doff < 20 || total < ihl + doff) return false;
    uint32_t data = total - ihl - doff;
    bool syn = tcp[13] & kTcpSyn, fin = tcp[13] & kTcpFin;
    if (data == 0 && !syn && !fin) return false;  // an acknowledgement: nothing to send again
    // SYN and FIN each take a sequence number, as a byte of data would.
    uint32_t end = get_be32(tcp + 4) + data + (syn ? 1u : 0u) + (fin ? 1u : 0u);
    uint64_t stamp = now ? now : 1;  // 0 marks a free slot

    uint32_t src = get_be32(ip + 12), dst = get_be32(ip + 16), ports = get_be32(tcp);
    Slot* way = &slots[bucket_of(src, dst, ports) * kWays];
    Slot* match = nullptr;
    for (unsigned w = 0; w < kWays; ++w)
        if (way[w].last_ns != 0 && way[w].src == src && way[w].dst == dst && way[w].ports == ports) match = &way[w];
    Slot* s = match;
    if (s && now - s->last_ns >= kIdleNs) s = nullptr;  // quiet that long: its ports may be a new connection's
    // A SYN sent again ends where the first did; any other SYN is a new connection.
    if (s && syn && end != s->high_end) s = nullptr;
    if (s) {
        uint32_t behind = s->high_end - end, ahead = end - s->high_end;
        if (syn || behind < kMaxBehind) {  // a SYN again, or ends at or before what the flow sent
            s->last_ns = stamp;
            return true;
        }
        if (ahead < kMaxBehind) {  // new data
            s->high_end = end;
            s->last_ns = stamp;
            return false;
        }
        // Neither within a window of the record: it is another connection's.
    }
    s = match;  // starting over: in the flow's own slot, or else the way used least lately
    if (!s) {
        s = &way[0];
        for (unsigned w = 1; w < kWays; ++w)
            if (way[w].last_ns < s->last_ns) s = &way[w];
    }
    *s = Slot{src, dst, ports, end, stamp};  // the flow starts (over) here
    return false;
}

}  // namespace onebox::proto
