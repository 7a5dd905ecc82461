// proto/tcp_coalesce: packets cut from a TSO segment (tso.h) join into one
// run again, and the run, cut by tun_segment as the kernel would, gives back
// exactly the packets it was made of. Then each rule that keeps a packet
// out, one at a time (table-driven).
#include <doctest.h>

#include <cstring>
#include <functional>
#include <vector>

#include "proto/tcp_coalesce.h"
#include "proto/tso.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {

using Bytes = std::vector<uint8_t>;

void set_checksums(Bytes& p) {
    put_be16(p.data() + 10, 0);
    put_be16(p.data() + 10, csum_fold(csum_add(0, p.data(), 20)));
    put_be16(p.data() + 36, 0);
    uint32_t sum = csum_add(0, p.data() + 12, 8) + 6 + uint32_t(p.size() - 20);
    put_be16(p.data() + 36, csum_fold(csum_add(sum, p.data() + 20, p.size() - 20)));
}

// An IPv4 + TCP packet (12 bytes of TCP options) with `payload` bytes at
// sequence number `seq`, DF, ACK, checksums right.
Bytes tcp_packet(size_t payload, uint32_t seq, uint8_t flags = 0x10) {
    Bytes p(52 + payload);
    p[0] = 0x45;
    p[2] = uint8_t(p.size() >> 8);
    p[3] = uint8_t(p.size());
    p[4] = 0x12, p[5] = 0x34;
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    const uint8_t src[4] = {192, 0, 2, 88}, dst[4] = {10, 0, 0, 2};
    std::memcpy(p.data() + 12, src, 4);
    std::memcpy(p.data() + 16, dst, 4);
    uint8_t* t = p.data() + 20;
    t[0] = 0x14, t[1] = 0x51, t[2] = 0x9c, t[3] = 0x40;
    put_be32(t + 4, seq);
    put_be32(t + 8, 0x01020304u);
    t[12] = 8 << 4;
    t[13] = flags;
    t[14] = 0x01, t[15] = 0xf5;
    t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10;  // NOP NOP timestamps
    put_be32(t + 24, 1000), put_be32(t + 28, 2000);
    for (size_t i = 0; i < payload; ++i) p[52 + i] = uint8_t((seq + i) * 7 + 3);
    set_checksums(p);
    return p;
}

// n packets of `mss` (the last `last` bytes), in sequence from `seq`.
std::vector<Bytes> flow(unsigned n, size_t mss, size_t last, uint32_t seq) {
    std::vector<Bytes> out;
    for (unsigned i = 0; i < n; ++i) {
        size_t len = i + 1 == n ? last : mss;
        out.push_back(tcp_packet(len, seq));
        seq += uint32_t(len);
    }
    return out;
}

// The run written out as the TUN gets it: the first packet with its new
// headers, then every other packet's payload.
Bytes run_bytes(const TcpRun& r, const std::vector<Bytes>& pkts, Bytes first, uint8_t vnet[kVnetHdrSize]) {
    tcp_run_finish(r, first.data(), vnet);
    Bytes out = first;
    for (unsigned i = 1; i < r.count; ++i) out.insert(out.end(), pkts[i].begin() + r.hdr_len, pkts[i].end());
    return out;
}

// How many of `pkts` join a run started by the first.
unsigned joined(const std::vector<Bytes>& pkts) {
    TcpRun r;
    if (!tcp_run_start(r, pkts[0].data(), pkts[0].size())) return 0;
    for (size_t i = 1; i < pkts.size(); ++i)
        if (!tcp_run_append(r, pkts[i].data(), pkts[i].size())) break;
    return r.count;
}

}  // namespace

TEST_CASE("tcp_coalesce: a run written as one segment cuts back into the same packets") {
    const size_t mss = 1388;
    auto pkts = flow(5, mss, 700, 0xfffff000u);  // the sequence number wraps inside
    pkts.back()[20 + 13] |= 0x08;                 // PSH on the last
    // As the packets would come from tun_segment: IDs counting up.
    for (unsigned i = 0; i < pkts.size(); ++i) {
        put_be16(pkts[i].data() + 4, uint16_t(0x1234 + i));
        set_checksums(pkts[i]);
    }
    TcpRun r;
    REQUIRE(tcp_run_start(r, pkts[0].data(), pkts[0].size()));
    for (unsigned i = 1; i < pkts.size(); ++i) REQUIRE(tcp_run_append(r, pkts[i].data(), pkts[i].size()));
    CHECK(r.count == 5);
    CHECK(r.closed);  // the short last packet (and its PSH) ends it
    CHECK(r.total == 52 + 4 * mss + 700);

    uint8_t vnet[kVnetHdrSize];
    Bytes whole = run_bytes(r, pkts, pkts[0], vnet);
    VnetHdr vh = read_vnet_hdr(vnet);
    CHECK(vh.flags == kVnetNeedsCsum);
    CHECK(vh.gso_type == kGsoTcpV4);
    CHECK(vh.hdr_len == 52);
    CHECK(vh.gso_size == mss);
    CHECK(vh.csum_start == 20);
    CHECK(vh.csum_offset == 16);
    CHECK(get_be16(whole.data() + 2) == whole.size());
    CHECK(csum_fold(csum_add(0, whole.data(), 20)) == 0);  // the IPv4 header checksum holds

    // Finishing the partial checksum over the whole gives a valid segment.
    Bytes check = whole;
    uint32_t sum = csum_add(0, check.data() + 20, check.size() - 20);
    put_be16(check.data() + 36, csum_fold(sum));
    uint32_t verify = csum_add(0, check.data() + 12, 8) + 6 + uint32_t(check.size() - 20);
    CHECK(csum_fold(csum_add(verify, check.data() + 20, check.size() - 20)) == 0);

    // Cut as the kernel would: the packets it was made of, byte for byte.
    TunPacket tp;
    REQUIRE(parse_tun_packet(vh, whole.data(), whole.size(), tp));
    REQUIRE(tp.count == 5);
    for (unsigned i = 0; i < 5; ++i) {
        CAPTURE(i);
        Bytes seg(2048);
        size_t n = tun_segment(tp, i, seg.data(), seg.size());
        seg.resize(n);
        CHECK(seg == pkts[i]);
    }
}

TEST_CASE("tcp_coalesce: what keeps a packet out of a run") {
    const size_t mss = 1000;
    struct Case {
        const char* what;
        std::function<void(std::vector<Bytes>&)> change;  // applied to 3 full packets in sequence
        unsigned joined;
    };
    auto set = [](Bytes& p, size_t off, uint8_t v) { p[off] = v; };
    const Case cases[] = {
        {"three in sequence", [](std::vector<Bytes>&) {}, 3},
        {"a gap in the sequence", [](std::vector<Bytes>& v) { put_be32(v[1].data() + 24, 5); }, 1},
        {"another source port", [&](std::vector<Bytes>& v) { set(v[2], 20, 0x15); }, 2},
        {"another destination", [&](std::vector<Bytes>& v) { set(v[1], 19, 3); }, 1},
        {"another ack", [&](std::vector<Bytes>& v) { set(v[1], 31, 5); }, 1},
        {"another window", [&](std::vector<Bytes>& v) { set(v[1], 35, 0); }, 1},
        {"other options (timestamp)", [&](std::vector<Bytes>& v) { set(v[1], 51, 9); }, 1},
        {"another TTL", [&](std::vector<Bytes>& v) { set(v[1], 8, 63); }, 1},
        {"another TOS", [&](std::vector<Bytes>& v) { set(v[1], 1, 4); }, 1},
        {"FIN", [&](std::vector<Bytes>& v) { set(v[1], 33, 0x11); }, 1},
        {"SYN on the first", [&](std::vector<Bytes>& v) { set(v[0], 33, 0x12); }, 0},
        {"no ACK", [&](std::vector<Bytes>& v) { set(v[0], 33, 0x08); }, 0},
        {"ECE", [&](std::vector<Bytes>& v) { set(v[1], 33, 0x50); }, 1},
        {"PSH ends it after itself", [&](std::vector<Bytes>& v) { set(v[1], 33, 0x18); }, 2},
        {"PSH on the first", [&](std::vector<Bytes>& v) { set(v[0], 33, 0x18); }, 1},
        {"no DF", [&](std::vector<Bytes>& v) { set(v[1], 6, 0); }, 1},
        {"a fragment", [&](std::vector<Bytes>& v) { set(v[1], 6, 0x60); }, 1},
        {"IPv4 options", [&](std::vector<Bytes>& v) { set(v[0], 0, 0x46); }, 0},
        {"not TCP", [&](std::vector<Bytes>& v) { set(v[0], 9, 17); }, 0},
        {"a total length that lies", [&](std::vector<Bytes>& v) { set(v[1], 3, uint8_t(v[1][3] + 1)); }, 1},
        {"a pure ack", [&](std::vector<Bytes>& v) { v[0].resize(52); put_be16(v[0].data() + 2, 52); }, 0},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        auto pkts = flow(3, mss, mss, 100);
        c.change(pkts);
        CHECK(joined(pkts) == c.joined);
    }
}

TEST_CASE("tcp_coalesce: segment sizes, the packet limit and the 64 KiB limit") {
    // A larger packet after the first cannot join; a smaller one ends the run.
    auto pkts = flow(2, 1000, 1000, 1);
    pkts[1] = tcp_packet(1001, 1001);
    CHECK(joined(pkts) == 1);
    pkts = flow(3, 1000, 1000, 1);
    pkts[1] = tcp_packet(999, 1001);
    pkts[2] = tcp_packet(1000, 2000);
    CHECK(joined(pkts) == 2);

    // 100-byte payloads: kMaxRunPackets at most.
    CHECK(joined(flow(80, 100, 100, 1)) == kMaxRunPackets);
    // 1400-byte payloads: what fits in 65535 bytes (52 + 45 * 1400 = 63052; 46 would be 64452; 47: 65852).
    CHECK(joined(flow(60, 1400, 1400, 1)) == 46);
    // An empty run takes nothing.
    TcpRun none;
    auto one = tcp_packet(10, 1);
    CHECK_FALSE(tcp_run_append(none, one.data(), one.size()));
}
