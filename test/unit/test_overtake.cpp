// proto/overtake: which inner packets may pass earlier ones of their session
// (table-driven: one header field changed per row).
#include <doctest.h>

#include <vector>

#include "proto/overtake.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {

using Bytes = std::vector<uint8_t>;

// An IPv4 packet of protocol `proto`: a 20-byte TCP header (flags ACK, or
// `tcp_flags`) with `payload` bytes for TCP, `payload` bytes after the IP
// header otherwise.
Bytes packet(uint8_t proto, size_t payload, uint8_t tcp_flags = 0x10) {
    size_t l4 = proto == 6 ? 20 : 0;
    Bytes p(20 + l4 + payload);
    p[0] = 0x45;
    put_be16(p.data() + 2, uint16_t(p.size()));
    p[6] = 0x40;  // DF
    p[8] = 64;
    p[9] = proto;
    if (proto == 6) {
        p[20 + 12] = 5 << 4;
        p[20 + 13] = tcp_flags;
    }
    return p;
}

}  // namespace

TEST_CASE("may_overtake: pings and pure acknowledgements pass; data, SYN, FIN, RST, UDP, tunnels and fragments keep order") {
    struct Row {
        const char* what;
        Bytes p;
        bool want;
    };
    Bytes frag_more = packet(1, 100);
    frag_more[6] = 0x20;  // MF: the first fragment
    Bytes frag_later = packet(1, 100);
    frag_later[6] = 0x00, frag_later[7] = 0x10;  // offset 128 bytes
    Bytes v6 = packet(1, 56);
    v6[0] = 0x60;
    Bytes short_ihl = packet(1, 56);
    short_ihl[0] = 0x44;
    Bytes options = packet(6, 0);
    options[20 + 12] = 8 << 4;  // 32-byte TCP header: 12 of its bytes are "payload" above
    Bytes padded_ack = packet(6, 6);
    put_be16(padded_ack.data() + 2, 40);  // IP length 40: the 6 bytes after it are padding
    const Row rows[] = {
        {"ICMP echo", packet(1, 56), true},
        {"UDP datagram (maybe QUIC or a VPN's small tail)", packet(17, 160), false},
        {"GRE", packet(47, 60), false},
        {"ESP", packet(50, 60), false},
        {"IP in IP", packet(4, 60), false},
        {"TCP pure ACK", packet(6, 0), true},
        {"TCP ACK with PSH and ECE", packet(6, 0, 0x10 | 0x08 | 0x40), true},
        {"TCP ACK, options counted by data offset", options, true},
        {"TCP ACK, frame padded past the IP length", padded_ack, true},
        {"TCP with 1 byte of data", packet(6, 1), false},
        {"TCP SYN", packet(6, 0, 0x02), false},
        {"TCP FIN", packet(6, 0, 0x11), false},
        {"TCP RST", packet(6, 0, 0x04), false},
        {"first fragment (MF)", frag_more, false},
        {"later fragment (offset)", frag_later, false},
        {"IPv6", v6, false},
        {"IHL below 20 bytes", short_ihl, false},
    };
    for (const Row& r : rows) {
        CAPTURE(r.what);
        CHECK(may_overtake(r.p.data(), uint32_t(r.p.size())) == r.want);
    }
}

TEST_CASE("may_pass_gap: ICMP only, never a fragment") {
    Bytes icmp = packet(1, 56), ack = packet(6, 0), udp = packet(17, 40);
    CHECK(may_pass_gap(icmp.data(), uint32_t(icmp.size())));
    CHECK_FALSE(may_pass_gap(ack.data(), uint32_t(ack.size())));
    CHECK_FALSE(may_pass_gap(udp.data(), uint32_t(udp.size())));
    icmp[6] = 0x20;  // MF
    CHECK_FALSE(may_pass_gap(icmp.data(), uint32_t(icmp.size())));
    CHECK_FALSE(may_pass_gap(icmp.data(), 19));
}

TEST_CASE("may_overtake: a truncated buffer is never read past its end") {
    Bytes p = packet(6, 0);
    for (uint32_t len = 0; len < p.size(); ++len) {
        CAPTURE(len);
        CHECK_FALSE(may_overtake(p.data(), len));
    }
    Bytes icmp = packet(1, 8);
    CHECK_FALSE(may_overtake(icmp.data(), 19));
    CHECK(may_overtake(icmp.data(), 20));
}
