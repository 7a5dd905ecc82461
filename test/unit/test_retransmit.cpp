// proto/retransmit: which TCP segments send again what their flow sent
// (table-driven: a flow's segments in the order a sender sends them).
#include <doctest.h>

#include <vector>

#include "proto/retransmit.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint8_t kAck = 0x10, kSyn = 0x02, kFin = 0x01;

// An IPv4 TCP segment 10.0.0.2:port -> 192.0.2.88:5201 with `data` bytes
// from sequence number `seq`.
Bytes segment(uint32_t seq, uint16_t data, uint8_t flags = kAck, uint16_t port = 40000) {
    Bytes p(40 + data);
    p[0] = 0x45;
    put_be16(p.data() + 2, uint16_t(p.size()));
    p[6] = 0x40;  // DF
    p[8] = 64;
    p[9] = 6;
    put_be32(p.data() + 12, 0x0a000002);
    put_be32(p.data() + 16, 0xc0000258);
    put_be16(p.data() + 20, port);
    put_be16(p.data() + 22, 5201);
    put_be32(p.data() + 24, seq);
    p[32] = 5 << 4;
    p[33] = flags;
    return p;
}

bool seen(RetransmitTracker& t, const Bytes& p, uint64_t now = 1'000'000) {
    return t.is_retransmission(p.data(), uint32_t(p.size()), now);
}

}  // namespace

TEST_CASE("RetransmitTracker: a segment ending at or before its flow's highest end is a retransmission") {
    struct Row {
        const char* what;
        Bytes p;
        bool want;
    };
    RetransmitTracker t;
    const Row rows[] = {
        {"the SYN starts the flow", segment(999, 0, kSyn), false},
        {"first data", segment(1000, 1000), false},
        {"next data", segment(2000, 1000), false},
        {"the first again", segment(1000, 1000), true},
        {"the second again", segment(2000, 1000), true},
        {"a part of what was sent", segment(1500, 200), true},
        {"an acknowledgement (no data)", segment(3000, 0), false},
        {"new data after it", segment(3000, 1000), false},
        {"new data reaching past the highest end", segment(3500, 1000), false},
        {"another flow's first data", segment(1000, 1000, kAck, 40001), false},
        {"that flow's data again", segment(1000, 1000, kAck, 40001), true},
        {"the first flow's still counts", segment(3000, 1000), true},
    };
    for (const Row& r : rows) {
        CAPTURE(r.what);
        CHECK(seen(t, r.p) == r.want);
    }
}

TEST_CASE("RetransmitTracker: sequence numbers wrap") {
    RetransmitTracker t;
    CHECK_FALSE(seen(t, segment(0xfffffc00u, 1000)));
    CHECK_FALSE(seen(t, segment(0xffffffe8u, 1000)));  // ends past zero
    CHECK(seen(t, segment(0xfffffc00u, 1000)));
    CHECK_FALSE(seen(t, segment(1000 - 24, 1000)));
}

TEST_CASE("RetransmitTracker: SYN and FIN take a sequence number each, and are found sent again") {
    RetransmitTracker t;
    CHECK_FALSE(seen(t, segment(999, 0, kSyn)));
    CHECK(seen(t, segment(999, 0, kSyn)));   // the same SYN again (its timeout)
    CHECK_FALSE(seen(t, segment(1000, 500)));
    CHECK_FALSE(seen(t, segment(1500, 0, kFin | kAck)));  // the FIN after the data
    CHECK(seen(t, segment(1500, 0, kFin | kAck)));        // ... again
    CHECK(seen(t, segment(1000, 500, kFin | kAck)));      // data and FIN again, in one
    CHECK_FALSE(seen(t, segment(1501, 0)));               // the last acknowledgement: not tracked
}

TEST_CASE("RetransmitTracker: a segment a window or more away from its flow's record starts the flow over") {
    RetransmitTracker t;
    CHECK_FALSE(seen(t, segment(0x80000000u, 1000)));
    // A new connection on the same ports, its SYN not seen here: far behind.
    CHECK_FALSE(seen(t, segment(1000, 1000)));
    CHECK_FALSE(seen(t, segment(2000, 1000)));  // its new data is new, not "behind"
    CHECK(seen(t, segment(2000, 1000)));
    CHECK_FALSE(seen(t, segment(0x60000000u, 1000)));  // far ahead: over again
    CHECK(seen(t, segment(0x60000000u, 1000)));
}

TEST_CASE("RetransmitTracker: of 300 flows at once at least 90 % keep their records (two ways per bucket)") {
    RetransmitTracker t;
    for (uint16_t f = 0; f < 300; ++f) CHECK_FALSE(seen(t, segment(1000, 1000, kAck, uint16_t(20000 + f))));
    unsigned found = 0;
    for (uint16_t f = 0; f < 300; ++f) found += seen(t, segment(1000, 1000, kAck, uint16_t(20000 + f)));
    // A third flow in a bucket takes the way used least lately, and a flow
    // found forgotten here starts over, taking another's way in turn.
    CHECK(found >= 270);
    MESSAGE("retransmissions found for " << found << " of 300 flows");
}

TEST_CASE("RetransmitTracker: a SYN or a quiet flow starts over (ports reused by a new connection)") {
    RetransmitTracker t;
    CHECK_FALSE(seen(t, segment(500000, 1000)));
    CHECK_FALSE(seen(t, segment(1000, 0, kSyn)));  // a new connection, lower numbers
    CHECK_FALSE(seen(t, segment(1001, 1000)));
    CHECK(seen(t, segment(1001, 1000)));
    uint64_t later = 1'000'000 + RetransmitTracker::kIdleNs;
    CHECK_FALSE(seen(t, segment(1001, 1000), later));  // quiet for kIdleNs: new again
    CHECK(seen(t, segment(1001, 1000), later + 1));
}

TEST_CASE("RetransmitTracker: what is not a whole TCP data segment is never one, and is not recorded") {
    RetransmitTracker t;
    Bytes p = segment(1000, 1000);
    CHECK_FALSE(seen(t, p));
    Bytes frag = p;
    put_be16(frag.data() + 6, 0x2000);  // MF
    CHECK_FALSE(seen(t, frag));
    Bytes udp = p;
    udp[9] = 17;
    CHECK_FALSE(seen(t, udp));
    Bytes v6 = p;
    v6[0] = 0x60;
    CHECK_FALSE(seen(t, v6));
    CHECK_FALSE(t.is_retransmission(p.data(), 39, 1'000'000));  // truncated TCP header
    Bytes bad_doff = p;
    bad_doff[32] = 4 << 4;  // a 16-byte TCP header
    CHECK_FALSE(seen(t, bad_doff));
    CHECK(seen(t, p));  // the flow's record is untouched
}
