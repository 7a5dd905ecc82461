// tso.cpp — see tso.h.
#include "tso.h"

#include <algorithm>
#include <cstring>

#include "wire.h"

namespace onebox::proto {

namespace {
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;
constexpr uint8_t kProtoTcp = 6;

uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
void put16(uint8_t* p, uint16_t v) {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
uint16_t host16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
}  // namespace

VnetHdr read_vnet_hdr(const uint8_t in[kVnetHdrSize]) {
    VnetHdr h;
    h.flags = in[0];
    h.gso_type = in[1];
    h.hdr_len = host16(in + 2);
    h.gso_size = host16(in + 4);
    h.csum_start = host16(in + 6);
    h.csum_offset = host16(in + 8);
    return h;
}

uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t len) {
    // 16-bit words, big-endian; 64-bit accumulator folded at the end, so
    // the carries of a 64 KiB packet cannot overflow it.
    uint64_t acc = sum;
    while (len >= 8) {
        acc += uint64_t(get16(p)) + get16(p + 2) + get16(p + 4) + get16(p + 6);
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += get16(p);
        p += 2;
        len -= 2;
    }
    if (len) acc += uint64_t(p[0]) << 8;
    while (acc >> 32) acc = (acc & 0xffffffff) + (acc >> 32);
    return uint32_t(acc);
}

uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

bool parse_tun_packet(const VnetHdr& vh, const uint8_t* pkt, size_t len, TunPacket& out) {
    out = TunPacket{};
    out.pkt = pkt;
    out.len = len;
    out.vh = vh;
    if (len == 0) return false;
    if (vh.flags & kVnetNeedsCsum) {
        if (size_t(vh.csum_start) + vh.csum_offset + 2 > len) return false;
    }
    if (vh.gso_type == kGsoNone) {
        out.count = 1;
        return true;
    }
    if (vh.gso_type != kGsoTcpV4 || vh.gso_size == 0) return false;
    if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != kProtoTcp) return false;
    size_t ip_hdr = size_t(pkt[0] & 0x0f) * 4;
    if (ip_hdr < 20 || len < ip_hdr + 20) return false;
    size_t tcp_hdr = size_t(pkt[ip_hdr + 12] >> 4) * 4;
    if (tcp_hdr < 20 || len < ip_hdr + tcp_hdr) return false;
    out.ip_hdr = ip_hdr;
    out.hdr_len = ip_hdr + tcp_hdr;
    out.mss = vh.gso_size;
    size_t payload = len - out.hdr_len;
    size_t n = payload == 0 ? 1 : (payload + out.mss - 1) / out.mss;
    if (n > kMaxTsoSegments) return false;
    out.count = unsigned(n);
    return true;
}

namespace {

// Finishes a transport checksum left partial: the field holds the
// pseudo-header's sum; the sum from csum_start to the end goes in its place.
void finish_partial(uint8_t* p, size_t len, uint16_t start, uint16_t offset) {
    uint32_t sum = csum_add(0, p + start, len - start);
    put16(p + start + offset, csum_fold(sum));
}

uint16_t ipv4_header_checksum(uint8_t* ip, size_t ip_hdr) {
    put16(ip + 10, 0);
    return csum_fold(csum_add(0, ip, ip_hdr));
}

}  // namespace

size_t tun_segment(const TunPacket& p, unsigned i, uint8_t* out, size_t cap) {
    if (i >= p.count) return 0;
    if (p.vh.gso_type == kGsoNone) {
        if (p.len > cap) return 0;
        std::memcpy(out, p.pkt, p.len);
        if (p.vh.flags & kVnetNeedsCsum) finish_partial(out, p.len, p.vh.csum_start, p.vh.csum_offset);
        return p.len;
    }
    size_t payload = p.len - p.hdr_len;
    size_t off = size_t(i) * p.mss;
    size_t chunk = payload == 0 ? 0 : std::min(p.mss, payload - off);
    size_t n = p.hdr_len + chunk;
    if (n > cap || n > 0xffff) return 0;
    std::memcpy(out, p.pkt, p.hdr_len);
    std::memcpy(out + p.hdr_len, p.pkt + p.hdr_len + off, chunk);
    // IPv4: its own length and id, and the header checksum again.
    put16(out + 2, uint16_t(n));
    put16(out + 4, uint16_t(get16(p.pkt + 4) + i));
    put16(out + 10, ipv4_header_checksum(out, p.ip_hdr));
    // TCP: sequence number, flags, checksum over the pseudo-header and segment.
    uint8_t* tcp = out + p.ip_hdr;
    uint32_t seq = get_be32(p.pkt + p.ip_hdr + 4) + uint32_t(off);
    put_be32(tcp + 4, seq);
    bool last = i + 1 == p.count;
    if (!last) tcp[13] &= uint8_t(~(kTcpFin | kTcpPsh));
    if (i > 0) tcp[13] &= uint8_t(~kTcpCwr);
    size_t tcp_len = n - p.ip_hdr;
    put16(tcp + 16, 0);
    uint32_t sum = csum_add(0, out + 12, 8);  // source and destination addresses
    sum += kProtoTcp;
    sum += uint32_t(tcp_len);
    sum = csum_add(sum, tcp, tcp_len);
    put16(tcp + 16, csum_fold(sum));
    return n;
}

}  // namespace onebox::proto
