// proto/tso: TSO segments from a TUN with offloads cut into the packets they
// stand for, and partial checksums finished, each checked by recomputing
// the checksums the way a receiver does.
#include <doctest.h>

#include <cstring>
#include <vector>

#include "proto/tso.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {

uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// An IPv4 + TCP packet (20 + 20 + 12 bytes of options) with `payload` bytes,
// as the kernel hands over a TSO segment: total length of the whole, TCP
// checksum holding the pseudo-header sum (partial).
std::vector<uint8_t> tso_packet(size_t payload, uint8_t flags) {
    std::vector<uint8_t> p(52 + payload);
    p[0] = 0x45;
    p[2] = uint8_t(p.size() >> 8);
    p[3] = uint8_t(p.size());
    p[4] = 0x12, p[5] = 0x34;  // id
    p[6] = 0x40;               // DF
    p[8] = 64;
    p[9] = 6;
    const uint8_t src[4] = {10, 0, 0, 2}, dst[4] = {192, 0, 2, 88};
    std::memcpy(p.data() + 12, src, 4);
    std::memcpy(p.data() + 16, dst, 4);
    uint8_t* t = p.data() + 20;
    t[0] = 0x9c, t[1] = 0x40, t[2] = 0x14, t[3] = 0x51;  // ports
    put_be32(t + 4, 0xfffffff0u);                          // seq, wraps within the packet
    put_be32(t + 8, 0x01020304u);
    t[12] = 8 << 4;  // data offset: 32 bytes (12 of options)
    t[13] = flags;
    t[14] = 0x01, t[15] = 0xf5;
    for (size_t i = 0; i < 12; ++i) t[20 + i] = uint8_t(i == 0 ? 1 : i);  // NOPs and junk options
    for (size_t i = 0; i < payload; ++i) p[52 + i] = uint8_t(i * 7 + 3);
    return p;
}

bool ip_checksum_ok(const uint8_t* ip) { return csum_fold(csum_add(0, ip, 20)) == 0; }

bool tcp_checksum_ok(const uint8_t* ip, size_t len) {
    uint32_t sum = csum_add(0, ip + 12, 8);
    sum += 6;
    sum += uint32_t(len - 20);
    sum = csum_add(sum, ip + 20, len - 20);
    return csum_fold(sum) == 0;
}

}  // namespace

TEST_CASE("tso: the Internet checksum of RFC 1071's example") {
    // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (before inversion).
    const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    CHECK(csum_fold(csum_add(0, d, sizeof d)) == uint16_t(~0xddf2));
    const uint8_t odd[] = {0x01};  // an odd byte counts as the high half of a word
    CHECK(csum_fold(csum_add(0, odd, 1)) == uint16_t(~0x0100));
}

TEST_CASE("tso: a TSO segment becomes MSS-size packets with headers and checksums right") {
    const size_t mss = 1388, payload = 3 * mss + 500;
    auto in = tso_packet(payload, 0x18 | 0x01 | 0x80);  // PSH ACK FIN CWR
    VnetHdr vh;
    vh.flags = kVnetNeedsCsum;
    vh.gso_type = kGsoTcpV4;
    vh.gso_size = uint16_t(mss);
    vh.hdr_len = 52;
    vh.csum_start = 20;
    vh.csum_offset = 16;
    TunPacket tp;
    REQUIRE(parse_tun_packet(vh, in.data(), in.size(), tp));
    REQUIRE(tp.count == 4);
    size_t total = 0;
    for (unsigned i = 0; i < tp.count; ++i) {
        CAPTURE(i);
        uint8_t out[2048];
        size_t n = tun_segment(tp, i, out, sizeof out);
        size_t chunk = i < 3 ? mss : 500;
        REQUIRE(n == 52 + chunk);
        CHECK(get16(out + 2) == n);
        CHECK(get16(out + 4) == 0x1234 + i);
        CHECK(ip_checksum_ok(out));
        CHECK(tcp_checksum_ok(out, n));
        CHECK(get_be32(out + 24) == 0xfffffff0u + uint32_t(i * mss));  // wraps past 2^32
        bool last = i == 3;
        CHECK(bool(out[33] & 0x01) == last);  // FIN on the last only
        CHECK(bool(out[33] & 0x08) == last);  // PSH on the last only
        CHECK(bool(out[33] & 0x80) == (i == 0));  // CWR on the first only
        CHECK(std::memcmp(out + 52, in.data() + 52 + i * mss, chunk) == 0);
        CHECK(std::memcmp(out + 40, in.data() + 40, 12) == 0);  // the options, as they were
        total += chunk;
    }
    CHECK(total == payload);
    uint8_t small[100];
    CHECK(tun_segment(tp, 0, small, sizeof small) == 0);  // does not fit: nothing
    CHECK(tun_segment(tp, 4, small, sizeof small) == 0);  // no such packet
}

TEST_CASE("tso: a plain packet with its checksum left partial gets it finished") {
    auto p = tso_packet(100, 0x10);
    // What the kernel leaves: the pseudo-header's sum, folded, not inverted.
    uint32_t pseudo = csum_add(0, p.data() + 12, 8) + 6 + uint32_t(p.size() - 20);
    uint16_t folded = uint16_t(~csum_fold(pseudo));
    p[36] = uint8_t(folded >> 8);
    p[37] = uint8_t(folded);
    // and a correct IP header checksum, as any packet has
    uint16_t ipc = csum_fold(csum_add(0, p.data(), 20));
    p[10] = uint8_t(ipc >> 8), p[11] = uint8_t(ipc);
    VnetHdr vh;
    vh.flags = kVnetNeedsCsum;
    vh.csum_start = 20;
    vh.csum_offset = 16;
    TunPacket tp;
    REQUIRE(parse_tun_packet(vh, p.data(), p.size(), tp));
    REQUIRE(tp.count == 1);
    uint8_t out[2048];
    REQUIRE(tun_segment(tp, 0, out, sizeof out) == p.size());
    CHECK(ip_checksum_ok(out));
    CHECK(tcp_checksum_ok(out, p.size()));
    // Without NEEDS_CSUM the packet is copied as it is.
    VnetHdr plain;
    REQUIRE(parse_tun_packet(plain, p.data(), p.size(), tp));
    REQUIRE(tun_segment(tp, 0, out, sizeof out) == p.size());
    CHECK(std::memcmp(out, p.data(), p.size()) == 0);
}

TEST_CASE("tso: what cannot be made whole is refused") {
    auto p = tso_packet(3000, 0x10);
    VnetHdr vh;
    vh.gso_type = kGsoTcpV4;
    vh.gso_size = 1000;
    TunPacket tp;
    CHECK(parse_tun_packet(vh, p.data(), p.size(), tp));
    VnetHdr zero = vh;
    zero.gso_size = 0;
    CHECK_FALSE(parse_tun_packet(zero, p.data(), p.size(), tp));
    VnetHdr udp = vh;
    udp.gso_type = 3;  // GSO_UDP
    CHECK_FALSE(parse_tun_packet(udp, p.data(), p.size(), tp));
    VnetHdr csum;
    csum.flags = kVnetNeedsCsum;
    csum.csum_start = uint16_t(p.size() - 1);
    csum.csum_offset = 0;
    CHECK_FALSE(parse_tun_packet(csum, p.data(), p.size(), tp));  // the field past the end
    auto notcp = p;
    notcp[9] = 17;
    CHECK_FALSE(parse_tun_packet(vh, notcp.data(), notcp.size(), tp));
    auto v6 = p;
    v6[0] = 0x60;
    CHECK_FALSE(parse_tun_packet(vh, v6.data(), v6.size(), tp));
    auto badoff = p;
    badoff[32] = 2 << 4;  // TCP data offset 8: too short
    CHECK_FALSE(parse_tun_packet(vh, badoff.data(), badoff.size(), tp));
    VnetHdr tiny = vh;
    tiny.gso_size = 1;  // 3000 segments of one byte
    CHECK_FALSE(parse_tun_packet(tiny, p.data(), p.size(), tp));
    CHECK_FALSE(parse_tun_packet(vh, p.data(), 30, tp));
}
