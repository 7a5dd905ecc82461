// The UDP GSO batcher (dataplane/send_batch.h): which datagrams go out
// together, in what order, and what the msghdr says.
#include <doctest.h>

#include <netinet/udp.h>

#include <cstring>
#include <vector>

#include "dataplane/send_batch.h"

using namespace onebox::dataplane;

namespace {

struct Recorder {
    SendBatcher b;
    std::vector<std::vector<uint32_t>> sent;  // datagram indices per flushed batch, in order
    uint8_t data[1 << 16]{};
    void add(int fd, uint32_t idx, uint32_t len, const sockaddr_in* to = nullptr) {
        bool ok = b.add(fd, to, 0, idx, data, len, [&](uint32_t bi) { take(bi); });
        REQUIRE(ok);
    }
    void take(uint32_t bi) {
        const SendBatch& sb = b.batches[bi];
        std::vector<uint32_t> v(sb.idx, sb.idx + sb.count);
        sent.push_back(v);
        b.release(bi);
    }
    void flush() {
        b.flush_all([&](uint32_t bi) { take(bi); });
    }
};

uint16_t segment_of(const SendBatch& sb) {
    const cmsghdr* c = CMSG_FIRSTHDR(&sb.msg);
    REQUIRE(c != nullptr);
    CHECK(c->cmsg_level == IPPROTO_UDP);
    CHECK(c->cmsg_type == UDP_SEGMENT);
    uint16_t v;
    std::memcpy(&v, CMSG_DATA(c), sizeof v);
    return v;
}

}  // namespace

TEST_CASE("gso: equal datagrams for one socket go together, in order") {
    Recorder r;
    for (uint32_t i = 0; i < 5; ++i) r.add(3, i, 1472);
    CHECK(r.sent.empty());  // open until the loop flushes
    r.flush();
    REQUIRE(r.sent.size() == 1);
    CHECK(r.sent[0] == std::vector<uint32_t>{0, 1, 2, 3, 4});
}

TEST_CASE("gso: a shorter datagram ends a batch; a longer one starts a new one") {
    Recorder r;
    r.add(3, 0, 1472);
    r.add(3, 1, 1472);
    r.add(3, 2, 100);  // the short last segment: sent at once
    REQUIRE(r.sent.size() == 1);
    CHECK(r.sent[0] == std::vector<uint32_t>{0, 1, 2});
    r.add(3, 3, 100);
    r.add(3, 4, 1472);  // longer than the batch's segment: the batch goes first
    REQUIRE(r.sent.size() == 2);
    CHECK(r.sent[1] == std::vector<uint32_t>{3});
    r.flush();
    CHECK(r.sent[2] == std::vector<uint32_t>{4});
}

TEST_CASE("gso: sockets and destinations are batched apart") {
    Recorder r;
    sockaddr_in a{}, b{};
    a.sin_family = b.sin_family = AF_INET;
    a.sin_addr.s_addr = 0x01020304;
    b.sin_addr.s_addr = 0x01020305;
    a.sin_port = b.sin_port = 9;
    r.add(3, 0, 1000, &a);
    r.add(3, 1, 1000, &b);
    r.add(4, 2, 1000);
    r.add(3, 3, 1000, &a);
    r.add(4, 4, 1000);
    r.flush();
    REQUIRE(r.sent.size() == 3);
    CHECK(r.sent[0] == std::vector<uint32_t>{0, 3});
    CHECK(r.sent[1] == std::vector<uint32_t>{1});
    CHECK(r.sent[2] == std::vector<uint32_t>{2, 4});
}

TEST_CASE("gso: a batch stops at 64 segments and at 65000 bytes") {
    Recorder r;
    for (uint32_t i = 0; i < 70; ++i) r.add(3, i, 200);
    REQUIRE(r.sent.size() == 1);  // full at 64: sent at once
    CHECK(r.sent[0].size() == kMaxSegments);
    r.flush();
    CHECK(r.sent[1].size() == 6);
    Recorder big;
    for (uint32_t i = 0; i < 50; ++i) big.add(3, i, 1472);
    big.flush();
    REQUIRE(big.sent.size() == 2);
    CHECK(big.sent[0].size() == 65000 / 1472);  // 44 x 1472 <= 65000 < 45 x 1472
    CHECK(big.sent[1].size() == 50 - 65000 / 1472);
}

TEST_CASE("gso: the msghdr has one iovec per datagram and UDP_SEGMENT") {
    SendBatcher b;
    uint8_t buf[3][1500];
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = 77;
    uint32_t got = kNoBatch;
    auto keep = [&](uint32_t bi) { got = bi; };
    REQUIRE(b.add(5, &to, 2, 10, buf[0], 1400, keep));
    REQUIRE(b.add(5, &to, 2, 11, buf[1], 1400, keep));
    REQUIRE(b.add(5, &to, 2, 12, buf[2], 900, keep));
    REQUIRE(got != kNoBatch);
    const SendBatch& sb = b.batches[got];
    CHECK(sb.fd == 5);
    CHECK(sb.link == 2);
    CHECK(sb.msg.msg_name == &sb.addr);
    CHECK(sb.msg.msg_iovlen == 3);
    CHECK(sb.msg.msg_iov[0].iov_base == buf[0]);
    CHECK(sb.msg.msg_iov[2].iov_len == 900);
    CHECK(segment_of(sb) == 1400);
    // A batch of one needs no UDP_SEGMENT.
    SendBatcher one;
    uint32_t bi = kNoBatch;
    REQUIRE(one.add(5, nullptr, 0, 1, buf[0], 1400, [&](uint32_t x) { bi = x; }));
    one.flush_all([&](uint32_t x) { bi = x; });
    CHECK(one.batches[bi].msg.msg_controllen == 0);
    CHECK(one.batches[bi].msg.msg_name == nullptr);
}

TEST_CASE("gso: with every batch in flight, add says so and the caller sends alone") {
    SendBatcher b;
    uint8_t d[64];
    std::vector<uint32_t> flying;
    for (unsigned i = 0; i < SendBatcher::kBatches; ++i)
        REQUIRE(b.add(100 + int(i), nullptr, 0, i, d, 64, [&](uint32_t x) { flying.push_back(x); }));
    b.flush_all([&](uint32_t x) { flying.push_back(x); });
    CHECK(flying.size() == SendBatcher::kBatches);
    CHECK_FALSE(b.add(1, nullptr, 0, 999, d, 64, [&](uint32_t) {}));
    b.release(flying[0]);
    CHECK(b.add(1, nullptr, 0, 999, d, 64, [&](uint32_t) {}));
}
