// test_aead.cpp — data packet sealing: known answers, round trips, forgeries.
#include <doctest.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "proto/aead.h"

#include "hex.h"

using namespace onebox::proto;

namespace {

using onebox::test::sodium_ready;
using onebox::test::to_hex;

struct Fixture {
    uint8_t key[kKeySize];
    Header h{PacketType::Data, kProtocolVersion, 0x01020304u, 0x0000000500000007ull};
    std::string payload = "onebox known-answer payload";
    Fixture() {
        for (size_t i = 0; i < kKeySize; ++i) key[i] = uint8_t(i);
    }
    // What libsodium's combined-mode AEAD makes of the payload under the
    // header h and nonce = channel (4 bytes BE) | seq (8 bytes BE).
    std::vector<uint8_t> reference_ct(uint32_t channel) const {
        uint8_t ad[kHeaderSize];
        write_header(ad, h);
        uint8_t nonce[12];
        put_be32(nonce, channel);
        put_be64(nonce + 4, h.seq);
        std::vector<uint8_t> ct(payload.size() + kTagSize);
        unsigned long long ct_len = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(
            ct.data(), &ct_len, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
            ad, sizeof ad, nullptr, nonce, key);
        REQUIRE(ct_len == ct.size());
        return ct;
    }
    std::vector<uint8_t> sealed() const {
        std::vector<uint8_t> pkt(payload.size() + kDataOverhead);
        std::memcpy(pkt.data() + kHeaderSize, payload.data(), payload.size());
        REQUIRE(seal_in_place(key, h, pkt.data(), payload.size()) == pkt.size());
        return pkt;
    }
};

bool contains(const std::vector<uint8_t>& hay, const std::string& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

}  // namespace

TEST_CASE("aead: libsodium is initialised") { REQUIRE(sodium_ready); }

TEST_CASE_FIXTURE(Fixture, "aead: sealed packet matches libsodium's combined-mode AEAD") {
    const auto pkt = sealed();
    const auto ct = reference_ct(0);  // data: channel 0
    uint8_t ad[kHeaderSize];
    write_header(ad, h);
    CHECK(std::memcmp(pkt.data(), ad, kHeaderSize) == 0);
    CHECK(std::memcmp(pkt.data() + kHeaderSize, ct.data(), ct.size()) == 0);
}

TEST_CASE_FIXTURE(Fixture, "aead: sealed packet known-answer vector") {
    // Computed once with a separate program calling libsodium's combined-mode
    // crypto_aead_chacha20poly1305_ietf_encrypt directly (header as AD, nonce
    // 00000000 || seq BE); pinned so the wire format can never drift silently.
    // Layout: header (16) | ciphertext (27) | tag (16).
    const char* expected =
        "03010000010203040000000500000007"
        "92ee903829bfa99359338c1018e5760aec2e1c5f57684c4bd86021"
        "7ff254531a4f44ca7845c54dc96a9290";
    const auto pkt = sealed();
    CHECK(to_hex(pkt.data(), pkt.size()) == expected);
}

TEST_CASE_FIXTURE(Fixture, "aead: round trip for many payload sizes") {
    for (size_t n : {size_t(0), size_t(1), size_t(15), size_t(16), size_t(17), size_t(63),
                     size_t(64), size_t(1000), kMaxInnerPacket}) {
        CAPTURE(n);
        std::vector<uint8_t> pkt(n + kDataOverhead);
        for (size_t i = 0; i < n; ++i) pkt[kHeaderSize + i] = uint8_t(i * 7 + 1);
        const std::vector<uint8_t> plain(pkt.begin() + kHeaderSize, pkt.begin() + kHeaderSize + n);
        REQUIRE(seal_in_place(key, h, pkt.data(), n) == n + kDataOverhead);

        Header parsed{};
        REQUIRE(read_header(pkt.data(), pkt.size(), parsed) == HeaderError::Ok);
        size_t out_len = 12345;
        REQUIRE(open_in_place(key, parsed, pkt.data(), pkt.size(), &out_len));
        CHECK(out_len == n);
        CHECK(std::equal(plain.begin(), plain.end(), pkt.begin() + kHeaderSize));
    }
}

TEST_CASE_FIXTURE(Fixture, "aead: flipping any byte of the datagram is rejected, no plaintext left") {
    const auto good = sealed();
    for (size_t i = 0; i < good.size(); ++i) {
        CAPTURE(i);
        auto pkt = good;
        pkt[i] ^= 0x01;
        Header parsed{};
        // Parse like the data plane does; a flip in the header may make it
        // unparseable, which is a rejection too.
        if (read_header(pkt.data(), pkt.size(), parsed) != HeaderError::Ok) continue;
        size_t out_len = 0;
        CHECK_FALSE(open_in_place(key, parsed, pkt.data(), pkt.size(), &out_len));
        CHECK_FALSE(contains(pkt, payload));
    }
}

TEST_CASE_FIXTURE(Fixture, "aead: rejections") {
    auto pkt = sealed();
    size_t out_len = 0;

    SUBCASE("wrong key") {
        uint8_t other[kKeySize];
        std::memcpy(other, key, sizeof other);
        other[31] ^= 0x80;
        CHECK_FALSE(open_in_place(other, h, pkt.data(), pkt.size(), &out_len));
        CHECK_FALSE(contains(pkt, payload));
    }
    SUBCASE("nonce from a different seq than the header bytes") {
        Header lying = h;
        lying.seq += 1;
        CHECK_FALSE(open_in_place(key, lying, pkt.data(), pkt.size(), &out_len));
    }
    SUBCASE("truncated by one byte") {
        CHECK_FALSE(open_in_place(key, h, pkt.data(), pkt.size() - 1, &out_len));
    }
    SUBCASE("shorter than the overhead") {
        for (size_t len = 0; len < kDataOverhead; ++len)
            CHECK_FALSE(open_in_place(key, h, pkt.data(), len, &out_len));
    }
}

TEST_CASE_FIXTURE(Fixture, "aead: empty payload (keepalive) seals to exactly the overhead") {
    h.type = PacketType::Keepalive;
    uint8_t pkt[kDataOverhead];
    REQUIRE(seal_in_place(key, h, pkt, 0) == kDataOverhead);
    size_t out_len = 99;
    CHECK(open_in_place(key, h, pkt, sizeof pkt, &out_len));
    CHECK(out_len == 0);
    pkt[kHeaderSize] ^= 1;  // first tag byte
    CHECK_FALSE(open_in_place(key, h, pkt, sizeof pkt, &out_len));
}

TEST_CASE_FIXTURE(Fixture, "aead: the same payload under a new seq encrypts differently") {
    const auto a = sealed();
    h.seq += 1;
    const auto b = sealed();
    CHECK(std::memcmp(a.data() + kHeaderSize, b.data() + kHeaderSize, a.size() - kHeaderSize) != 0);
}

TEST_CASE_FIXTURE(Fixture, "aead: control packets use nonce channel 1, so equal seqs never share a nonce") {
    h.type = PacketType::Probe;
    const auto ctl = sealed();
    const auto ct = reference_ct(1);  // control: channel 1
    CHECK(std::memcmp(ctl.data() + kHeaderSize, ct.data(), ct.size()) == 0);

    h.type = PacketType::Feedback;
    CHECK(nonce_channel(h.type) == kControlChannel);
    h.type = PacketType::Data;
    const auto data = sealed();  // same key, same seq, channel 0
    CHECK(std::memcmp(ctl.data() + kHeaderSize, data.data() + kHeaderSize, payload.size()) != 0);
}

TEST_CASE("aead: SessionKeys::wipe zeroes both keys") {
    SessionKeys k;
    std::memset(k.send, 0xaa, sizeof k.send);
    std::memset(k.recv, 0x55, sizeof k.recv);
    k.wipe();
    const uint8_t zero[kKeySize] = {};
    CHECK(std::memcmp(k.send, zero, kKeySize) == 0);
    CHECK(std::memcmp(k.recv, zero, kKeySize) == 0);
}

TEST_CASE_FIXTURE(Fixture, "aead: verify_tag checks without touching the packet; decrypt_verified opens it") {
    // A receiver holding several keys across a rekey tries each in turn, so a
    // failed try must leave the ciphertext as it was (open_in_place zeroes it).
    auto pkt = sealed();
    const auto before = pkt;
    uint8_t other[kKeySize];
    std::memset(other, 0x5a, sizeof other);
    CHECK_FALSE(verify_tag(other, h, pkt.data(), pkt.size()));
    CHECK(pkt == before);
    CHECK(verify_tag(key, h, pkt.data(), pkt.size()));
    CHECK(pkt == before);
    Header lying = h;
    ++lying.seq;
    CHECK_FALSE(verify_tag(key, lying, pkt.data(), pkt.size()));
    CHECK_FALSE(verify_tag(key, h, pkt.data(), kDataOverhead - 1));
    CHECK(pkt == before);
    REQUIRE(decrypt_verified(key, h, pkt.data(), pkt.size()) == payload.size());
    CHECK(std::string(reinterpret_cast<const char*>(pkt.data() + kHeaderSize), payload.size()) == payload);
}
