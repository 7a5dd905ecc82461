// test_cookie.cpp — a busy server's cookies: who they vouch for, the
// CookieReply that carries them, and the load meter that says "busy".
#include <doctest.h>
#include <sodium.h>

#include <array>
#include <cstring>

#include "proto/cookie.h"
#include "proto/handshake.h"

#include "hex.h"

using namespace onebox::proto;

namespace {

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kNow = 11 * kSec;  // a second after the fixture's secret was made

PskKey psk_of(uint8_t fill) {
    PskKey k;
    std::memset(k.bytes, fill, sizeof k.bytes);
    return k;
}

struct Cookies {
    PskKey psk = psk_of(0x42);
    CookieJar jar;
    InitMsg init;
    uint32_t ip = 0x0100000a;  // 10.0.0.1 as it sits in a sockaddr_in (network order)
    uint16_t port = 0x3930;
    Cookies() {
        REQUIRE(onebox::test::sodium_ready);
        uint8_t secret[32];
        std::memset(secret, 0x5c, sizeof secret);
        jar.set_secret(secret, 10 * kSec);
        init.session_id = 0xabcdef01;
        std::memset(init.eph_pub, 0x33, sizeof init.eph_pub);
        init.timestamp = 7;
        init.tunnel_ip = 0x0a000002;
    }
    std::array<uint8_t, kInitSize> init_with(const uint8_t* cookie) {
        std::array<uint8_t, kInitSize> b{};
        write_init(psk, init, b.data(), cookie);
        return b;
    }
};

}  // namespace

TEST_CASE_FIXTURE(Cookies, "cookie: an Init with mac2 from the cookie for its address is vouched for, no other") {
    uint8_t cookie[kCookieSize];
    jar.cookie_for(ip, port, cookie);
    auto good = init_with(cookie);
    CHECK(jar.vouches_for(good.data(), good.size(), ip, port, kNow));
    // mac2 does not disturb mac1: the Init still reads.
    InitMsg got;
    CHECK(read_init(psk, good.data(), good.size(), got) == HsError::Ok);

    struct Row { const char* name; uint32_t ip; uint16_t port; bool ok; };
    const Row table[] = {
        {"same address", ip, port, true},
        {"another port", ip, uint16_t(port + 1), false},
        {"another address", ip ^ 0x01000000, port, false},
    };
    for (const auto& row : table) {
        CAPTURE(row.name);
        CHECK(jar.vouches_for(good.data(), good.size(), row.ip, row.port, kNow) == row.ok);
    }
    auto none = init_with(nullptr);
    CHECK_FALSE(jar.vouches_for(none.data(), none.size(), ip, port, kNow));
    for (size_t i = 0; i < kInitSize; ++i) {  // any byte changed: mac2 covers 0..79 and is 80..95
        CAPTURE(i);
        auto b = good;
        b[i] ^= 0x01;
        CHECK_FALSE(jar.vouches_for(b.data(), b.size(), ip, port, kNow));
    }
    CHECK_FALSE(jar.vouches_for(good.data(), good.size() - 1, ip, port, kNow));
}

TEST_CASE_FIXTURE(Cookies, "cookie: a new secret makes old cookies worthless") {
    uint8_t cookie[kCookieSize];
    jar.cookie_for(ip, port, cookie);
    auto b = init_with(cookie);
    CHECK_FALSE(jar.needs_secret(10 * kSec + kCookieSecretLifetimeNs - 1));
    CHECK(jar.needs_secret(10 * kSec + kCookieSecretLifetimeNs));
    // An expired secret vouches for nothing, even before it is replaced.
    CHECK_FALSE(jar.vouches_for(b.data(), b.size(), ip, port, 10 * kSec + kCookieSecretLifetimeNs));
    uint8_t secret[32];
    std::memset(secret, 0x77, sizeof secret);
    jar.set_secret(secret, 200 * kSec);
    CHECK_FALSE(jar.vouches_for(b.data(), b.size(), ip, port, 201 * kSec));
    uint8_t fresh[kCookieSize];
    jar.cookie_for(ip, port, fresh);
    auto again = init_with(fresh);
    CHECK(jar.vouches_for(again.data(), again.size(), ip, port, 201 * kSec));
    CookieJar empty;
    CHECK(empty.needs_secret(0));
    CHECK_FALSE(empty.vouches_for(b.data(), b.size(), ip, port, kNow));
}

TEST_CASE_FIXTURE(Cookies, "cookie: a CookieReply opens only for the Init it answers, under the right key") {
    uint8_t cookie[kCookieSize], nonce[kCookieNonceSize], pkt[kCookieReplySize];
    jar.cookie_for(ip, port, cookie);
    std::memset(nonce, 0x99, sizeof nonce);
    auto sent = init_with(nullptr);
    InitMsg mine;
    REQUIRE(read_init(psk, sent.data(), sent.size(), mine) == HsError::Ok);
    write_cookie_reply(psk, init.session_id, mine.mac, cookie, nonce, pkt);
    CHECK(onebox::test::to_hex(pkt, 4) == "08010000");

    uint8_t got[kCookieSize] = {};
    REQUIRE(read_cookie_reply(psk, pkt, sizeof pkt, mine, got) == HsError::Ok);
    CHECK(std::memcmp(got, cookie, kCookieSize) == 0);

    InitMsg other = mine;
    other.mac[0] ^= 1;  // an answer to another Init
    CHECK(read_cookie_reply(psk, pkt, sizeof pkt, other, got) == HsError::BadMac);
    InitMsg other_session = mine;
    other_session.session_id ^= 1;
    CHECK(read_cookie_reply(psk, pkt, sizeof pkt, other_session, got) == HsError::WrongSession);
    CHECK(read_cookie_reply(psk_of(0x43), pkt, sizeof pkt, mine, got) == HsError::BadMac);
    CHECK(read_cookie_reply(psk, pkt, sizeof pkt - 1, mine, got) == HsError::BadLength);
    for (size_t i = 16; i < kCookieReplySize; ++i) {  // nonce, sealed cookie, tag
        CAPTURE(i);
        uint8_t b[kCookieReplySize];
        std::memcpy(b, pkt, sizeof b);
        b[i] ^= 0x80;
        CHECK(read_cookie_reply(psk, b, sizeof b, mine, got) == HsError::BadMac);
    }
    uint8_t as_resp[kCookieReplySize];
    std::memcpy(as_resp, pkt, sizeof as_resp);
    as_resp[0] = uint8_t(PacketType::HandshakeResp);
    CHECK(read_cookie_reply(psk, as_resp, sizeof as_resp, mine, got) == HsError::BadHeader);
}

TEST_CASE("cookie: the load meter counts about the last second") {
    LoadMeter m;
    const uint64_t t0 = 1000 * kSec;
    CHECK(m.rate(t0) == 0);
    for (unsigned i = 0; i < 300; ++i) m.record(t0 + i * (kSec / 1000));  // 300 in 0.3 s
    struct Row { uint64_t at; unsigned lo, hi; };
    const Row table[] = {
        {t0 + kSec / 2, 300, 300},          // all inside this second
        {t0 + kSec + kSec / 2, 140, 160},   // half of the previous second still counts
        {t0 + 2 * kSec + 1, 0, 0},          // gone
        {t0 + 60 * kSec, 0, 0},
    };
    for (const auto& row : table) {
        CAPTURE(row.at - t0);
        unsigned r = m.rate(row.at);
        CHECK(r >= row.lo);
        CHECK(r <= row.hi);
    }
    CHECK(kBusyHandshakes == 200);
}
