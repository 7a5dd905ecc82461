// tcp_coalesce.cpp — see tcp_coalesce.h.
#include "tcp_coalesce.h"

#include <cstring>

#include "wire.h"

namespace onebox::proto {

namespace {
constexpr uint8_t kTcpAck = 0x10, kTcpPsh = 0x08;
constexpr uint8_t kProtoTcp = 6;
constexpr size_t kIpHdr = 20;  // no IPv4 options in a run

uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
void put16(uint8_t* p, uint16_t v) {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
void put_host16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// The TCP header length of a packet that may be in a run, or 0.
size_t run_tcp_hdr(const uint8_t* p, size_t len) {
    if (len < kIpHdr + 20 || p[0] != 0x45 || p[9] != kProtoTcp) return 0;
    if (get16(p + 2) != len) return 0;
    uint16_t frag = get16(p + 6);
    if (frag != 0x4000) return 0;  // DF, not MF, offset 0
    size_t tcp_hdr = size_t(p[kIpHdr + 12] >> 4) * 4;
    if (tcp_hdr < 20 || len <= kIpHdr + tcp_hdr) return 0;  // data only: no pure acks
    uint8_t flags = p[kIpHdr + 13];
    if (!(flags & kTcpAck) || (flags & ~(kTcpAck | kTcpPsh))) return 0;
    return tcp_hdr;
}
}  // namespace

bool tcp_run_start(TcpRun& r, const uint8_t* pkt, size_t len) {
    r = TcpRun{};
    size_t tcp_hdr = run_tcp_hdr(pkt, len);
    if (tcp_hdr == 0) return false;
    r.first = pkt;
    r.count = 1;
    r.hdr_len = uint16_t(kIpHdr + tcp_hdr);
    r.mss = uint16_t(len - r.hdr_len);
    r.total = uint32_t(len);
    r.next_seq = get_be32(pkt + kIpHdr + 4) + r.mss;
    r.psh = pkt[kIpHdr + 13] & kTcpPsh;
    r.closed = r.psh;
    return true;
}

bool tcp_run_append(TcpRun& r, const uint8_t* pkt, size_t len) {
    if (r.count == 0 || r.closed || r.count >= kMaxRunPackets) return false;
    if (run_tcp_hdr(pkt, len) + kIpHdr != r.hdr_len) return false;
    size_t payload = len - r.hdr_len;
    if (payload > r.mss || r.total + payload > 0xffff) return false;
    const uint8_t* f = r.first;
    if (pkt[1] != f[1] || pkt[8] != f[8]) return false;               // TOS, TTL
    if (std::memcmp(pkt + 12, f + 12, 8) != 0) return false;         // addresses
    const uint8_t* t = pkt + kIpHdr;
    const uint8_t* ft = f + kIpHdr;
    if (std::memcmp(t, ft, 4) != 0) return false;                    // ports
    if (get_be32(t + 4) != r.next_seq) return false;
    if (std::memcmp(t + 8, ft + 8, 4) != 0) return false;            // ack
    if (std::memcmp(t + 14, ft + 14, 2) != 0) return false;          // window
    if (std::memcmp(t + 20, ft + 20, r.hdr_len - kIpHdr - 20) != 0) return false;  // options
    ++r.count;
    r.total += uint32_t(payload);
    r.next_seq += uint32_t(payload);
    r.psh = t[13] & kTcpPsh;
    r.closed = r.psh || payload < r.mss;
    return true;
}

void tcp_run_finish(const TcpRun& r, uint8_t* first, uint8_t vnet[kVnetHdrSize]) {
    put16(first + 2, uint16_t(r.total));
    put16(first + 10, 0);
    put16(first + 10, csum_fold(csum_add(0, first, kIpHdr)));
    uint8_t* tcp = first + kIpHdr;
    if (r.psh) tcp[13] |= kTcpPsh;
    // NEEDS_CSUM: the field holds the pseudo-header's sum (folded, not
    // inverted), over the length of the whole; the kernel adds the rest.
    uint32_t sum = csum_add(0, first + 12, 8);
    sum += kProtoTcp;
    sum += r.total - uint32_t(kIpHdr);
    put16(tcp + 16, uint16_t(~csum_fold(sum)));
    vnet[0] = kVnetNeedsCsum;
    vnet[1] = kGsoTcpV4;
    put_host16(vnet + 2, r.hdr_len);
    put_host16(vnet + 4, r.mss);
    put_host16(vnet + 6, uint16_t(kIpHdr));
    put_host16(vnet + 8, 16);
}

}  // namespace onebox::proto
