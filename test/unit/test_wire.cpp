// test_wire.cpp — the common header and byte-order helpers, byte for byte.
#include <doctest.h>

#include <array>
#include <cstring>

#include "proto/wire.h"

using namespace onebox::proto;

namespace {

std::array<uint8_t, kHeaderSize> header_bytes(const Header& h) {
    std::array<uint8_t, kHeaderSize> b{};
    write_header(b.data(), h);
    return b;
}

}  // namespace

TEST_CASE("wire: header known-answer bytes") {
    const Header h{PacketType::Data, kProtocolVersion, 0x01020304u, 0x1112131415161718ull};
    const std::array<uint8_t, kHeaderSize> expected = {
        0x03, 0x01, 0x00, 0x00,                          // type, version, link, reserved
        0x01, 0x02, 0x03, 0x04,                          // session id, big-endian
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // seq, big-endian
    };
    CHECK(header_bytes(h) == expected);
}

TEST_CASE("wire: every packet type encodes as its number") {
    const struct { PacketType type; uint8_t byte; } table[] = {
        {PacketType::HandshakeInit, 1},
        {PacketType::HandshakeResp, 2},
        {PacketType::Data, 3},
        {PacketType::Keepalive, 4},
        {PacketType::Close, 5},
        {PacketType::Feedback, 6},
        {PacketType::Probe, 7},
    };
    for (const auto& row : table) {
        CAPTURE(int(row.byte));
        const auto b = header_bytes({row.type, kProtocolVersion, 7, 0});
        CHECK(b[0] == row.byte);
        Header back{};
        REQUIRE(read_header(b.data(), b.size(), back) == HeaderError::Ok);
        CHECK(back.type == row.type);
    }
}

TEST_CASE("wire: header round trip, including extreme values") {
    const Header table[] = {
        {PacketType::Data, kProtocolVersion, 1, 0},
        {PacketType::Keepalive, kProtocolVersion, 0xffffffffu, UINT64_MAX},
        {PacketType::HandshakeInit, kProtocolVersion, 0x80000000u, uint64_t(1) << 63},
    };
    for (const auto& h : table) {
        const auto b = header_bytes(h);
        Header back{};
        REQUIRE(read_header(b.data(), b.size(), back) == HeaderError::Ok);
        CHECK(back.type == h.type);
        CHECK(back.version == h.version);
        CHECK(back.session_id == h.session_id);
        CHECK(back.seq == h.seq);
    }
}

TEST_CASE("wire: read_header rejects malformed headers") {
    const auto good = header_bytes({PacketType::Data, kProtocolVersion, 42, 9});
    struct Row { const char* name; size_t byte; uint8_t value; HeaderError expect; };
    const Row table[] = {
        {"type 0", 0, 0, HeaderError::BadType},
        {"type 9", 0, 9, HeaderError::BadType},
        {"type 255", 0, 255, HeaderError::BadType},
        {"version 0", 1, 0, HeaderError::BadVersion},
        {"version 2", 1, 2, HeaderError::BadVersion},
        {"link out of range", 2, kMaxLinks, HeaderError::BadLink},
        {"reserved lo", 3, 0x80, HeaderError::BadReserved},
    };
    for (const auto& row : table) {
        CAPTURE(row.name);
        auto b = good;
        b[row.byte] = row.value;
        Header h{};
        CHECK(read_header(b.data(), b.size(), h) == row.expect);
    }

    SUBCASE("session id 0 is never valid") {
        auto b = header_bytes({PacketType::Data, kProtocolVersion, kInvalidSessionId, 0});
        Header h{};
        CHECK(read_header(b.data(), b.size(), h) == HeaderError::BadSession);
    }
    SUBCASE("short input") {
        Header h{};
        for (size_t len = 0; len < kHeaderSize; ++len) {
            CAPTURE(len);
            CHECK(read_header(good.data(), len, h) == HeaderError::Short);
        }
        CHECK(read_header(good.data(), kHeaderSize, h) == HeaderError::Ok);
    }
}

TEST_CASE("wire: big-endian helpers") {
    uint8_t b[8];
    put_be16(b, 0xabcd);
    CHECK(b[0] == 0xab);
    CHECK(b[1] == 0xcd);
    CHECK(get_be16(b) == 0xabcd);
    put_be32(b, 0xdeadbeef);
    CHECK(std::memcmp(b, "\xde\xad\xbe\xef", 4) == 0);
    CHECK(get_be32(b) == 0xdeadbeef);
    put_be64(b, 0x0102030405060708ull);
    CHECK(std::memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    CHECK(get_be64(b) == 0x0102030405060708ull);
    put_be64(b, UINT64_MAX);
    CHECK(get_be64(b) == UINT64_MAX);
}

TEST_CASE("wire: sizes and limits") {
    CHECK(kInitSize == 96);
    CHECK(kCookieReplySize == 72);
    CHECK(kRespSize == 72);
    CHECK(kDataOverhead == 32);
    CHECK(kMaxDatagram == 1532);
    CHECK(kDefaultTunMtu == 1440);
    CHECK(kReplayWindow == 4096);
    CHECK(kReorderCapacity == 1024);
}
