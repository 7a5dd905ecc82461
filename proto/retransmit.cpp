// retransmit.cpp — see retransmit.h.
#include "retransmit.h"

#include <algorithm>

#include "wire.h"

namespace onebox::proto {

namespace {
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpSyn = 0x02;

// Sequence numbers wrap: a is at or before b when b - a, as a signed 32-bit
// distance, is not negative.
bool seq_at_or_before(uint32_t a, uint32_t b) { return int32_t(b - a) >= 0; }

unsigned slot_of(uint32_t src, uint32_t dst, uint32_t ports) {
    uint32_t h = src * 0x9e3779b1u ^ dst * 0x85ebca77u ^ ports * 0xc2b2ae3du;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 13;
    return h & (RetransmitTracker::kSlots - 1);
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
    bool syn = tcp[13] & kTcpSyn;
    if (data == 0 && !syn) return false;  // an acknowledgement: nothing to resend

    uint32_t src = get_be32(ip + 12), dst = get_be32(ip + 16), ports = get_be32(tcp);
    uint32_t end = get_be32(tcp + 4) + data + (syn ? 1u : 0u);
    Slot& s = slots[slot_of(src, dst, ports)];
    bool same_flow = s.last_ns != 0 && s.src == src && s.dst == dst && s.ports == ports &&
                     now - s.last_ns < kIdleNs;
    if (!same_flow || syn) {
        s = Slot{src, dst, ports, end, now ? now : 1};
        return false;
    }
    s.last_ns = now ? now : 1;
    if (seq_at_or_before(end, s.high_end)) return true;
    s.high_end = end;
    return false;
}

}  // namespace onebox::proto
