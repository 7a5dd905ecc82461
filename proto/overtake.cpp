// overtake.cpp — see overtake.h.
#include "overtake.h"

#include <algorithm>

#include "wire.h"

namespace onebox::proto {

namespace {
constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04;
}  // namespace

bool may_overtake(const uint8_t* ip, uint32_t len) {
    if (len < 20 || (ip[0] >> 4) != 4) return false;
    uint32_t ihl = (ip[0] & 15u) * 4;
    if (ihl < 20 || len < ihl) return false;
    // A fragment: the rest of its datagram is behind or ahead of it.
    uint16_t frag = get_be16(ip + 6);
    if (frag & 0x3fff) return false;  // MF, or an offset
    if (ip[9] == kProtoIcmp) return true;
    if (ip[9] != kProtoTcp) return false;
    if (len < ihl + 20) return false;
    const uint8_t* tcp = ip + ihl;
    if (tcp[13] & (kTcpFin | kTcpSyn | kTcpRst)) return false;
    uint32_t total = std::min<uint32_t>(get_be16(ip + 2), len);
    uint32_t doff = (tcp[12] >> 4) * 4u;
    return total <= ihl + doff;
}

bool may_pass_gap(const uint8_t* ip, uint32_t len) {
    return may_overtake(ip, len) && ip[9] == kProtoIcmp;
}

}  // namespace onebox::proto
