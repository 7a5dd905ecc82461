// test_keyring.cpp — which key opens a packet across rekeys, on a fake clock:
// the server's pending keys and their promotion, the client's switch, the
// previous key's grace and its wiping.
#include <doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "proto/keyring.h"

#include "hex.h"

using namespace onebox::proto;

namespace {

constexpr uint64_t kSec = 1'000'000'000;

// One direction's key: we seal with it as the peer would and open with recv.
SessionKeys keys_of(uint8_t fill) {
    SessionKeys k;
    std::memset(k.send, fill, sizeof k.send);
    std::memset(k.recv, fill, sizeof k.recv);
    return k;
}

struct Packet {
    Header h;
    std::vector<uint8_t> bytes;
};

Packet sealed_by(uint8_t fill, uint64_t seq, const std::string& text = "inner packet") {
    Packet p{Header{PacketType::Data, kProtocolVersion, 0x11223344u, seq}, {}};
    p.bytes.resize(text.size() + kDataOverhead);
    std::memcpy(p.bytes.data() + kHeaderSize, text.data(), text.size());
    SessionKeys k = keys_of(fill);
    seal_in_place(k.send, p.h, p.bytes.data(), text.size());
    return p;
}

// Opens a packet sealed by key `fill` and says which key it opened under
// (and that its plaintext is intact).
KeyRing::Opened open_by(KeyRing& ring, uint8_t fill, uint64_t seq, uint64_t now, bool fresh = true) {
    Packet p = sealed_by(fill, seq);
    size_t n = 0;
    auto which = ring.open(p.h, p.bytes.data(), p.bytes.size(), fresh, now, &n);
    if (which != KeyRing::Opened::None) {
        CHECK(n == 12);
        CHECK(std::memcmp(p.bytes.data() + kHeaderSize, "inner packet", 12) == 0);
    }
    return which;
}

bool all_zero(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i]) return false;
    return true;
}

using O = KeyRing::Opened;
constexpr uint8_t A = 0xa1, B = 0xb2, C = 0xc3, D = 0xd4;

}  // namespace

TEST_CASE("keyring: one key, then a packet under any other key is refused") {
    KeyRing ring;
    ring.start(keys_of(A));
    CHECK(open_by(ring, A, 0, 0) == O::Current);
    CHECK(open_by(ring, B, 1, 0) == O::None);
    CHECK(open_by(ring, A, 2, 0, false) == O::None);  // a number the window has seen: not even tried
    CHECK(ring.uses == 1);
}

TEST_CASE("keyring: authentic_seen checks a seen number's tag under the current or previous key, untouched") {
    KeyRing ring;
    ring.start(keys_of(A));
    Packet p = sealed_by(A, 5);
    std::vector<uint8_t> before = p.bytes;
    CHECK(ring.authentic_seen(p.h, p.bytes.data(), p.bytes.size()));
    CHECK(p.bytes == before);  // nothing decrypted
    CHECK(ring.uses == 0);
    Packet other = sealed_by(B, 5);
    CHECK_FALSE(ring.authentic_seen(other.h, other.bytes.data(), other.bytes.size()));
    Packet tampered = sealed_by(A, 6);
    tampered.bytes[kHeaderSize] ^= 1;
    CHECK_FALSE(ring.authentic_seen(tampered.h, tampered.bytes.data(), tampered.bytes.size()));
    // After a rekey the old key is the previous one, still authentic.
    ring.rekey(keys_of(B));
    CHECK(open_by(ring, B, 7, kSec) == O::Current);
    CHECK(ring.authentic_seen(p.h, p.bytes.data(), p.bytes.size()));
    CHECK(ring.authentic_seen(other.h, other.bytes.data(), other.bytes.size()));
}

TEST_CASE("keyring: server, a fresh start and then a rekey that goes on") {
    KeyRing ring;
    ring.set_pending(keys_of(A), false);
    CHECK(open_by(ring, A, 0, 1 * kSec) == O::Pending);
    CHECK_FALSE(ring.promote(1 * kSec));  // nothing to go on from: start at sequence 0
    CHECK(ring.has_current);
    CHECK_FALSE(ring.has_previous);
    CHECK(open_by(ring, A, 1, 1 * kSec) == O::Current);

    // The client rekeys: A keeps working until a packet opens under B.
    ring.set_pending(keys_of(B), true);
    CHECK(open_by(ring, A, 2, 2 * kSec) == O::Current);
    CHECK(open_by(ring, B, 3, 2 * kSec) == O::Pending);
    CHECK(ring.promote(2 * kSec));  // same sequence space
    CHECK(ring.uses == 1);
    CHECK(open_by(ring, B, 4, 2 * kSec) == O::Current);

    // Packets the client sealed under A before it switched, still in flight.
    struct Row { uint64_t at; bool expire; O expect; };
    const Row table[] = {
        {2 * kSec + 1, false, O::Previous},
        {2 * kSec + KeyRing::kGraceNs - 1, false, O::Previous},
        {2 * kSec + KeyRing::kGraceNs, true, O::None},
    };
    uint64_t seq = 10;
    for (const auto& row : table) {
        CAPTURE(row.at);
        CHECK(ring.expire(row.at) == row.expire);
        CHECK(open_by(ring, A, seq++, row.at) == row.expect);
    }
    CHECK(all_zero(ring.previous, sizeof ring.previous));
    CHECK(open_by(ring, B, seq++, 9 * kSec) == O::Current);
}

TEST_CASE("keyring: server, pending keys never used leave the session as it was") {
    KeyRing ring;
    ring.set_pending(keys_of(A), false);
    REQUIRE(open_by(ring, A, 0, 0) == O::Pending);
    ring.promote(0);
    ring.set_pending(keys_of(B), true);  // a replayed or unanswered rekey
    ring.set_pending(keys_of(C), true);  // the client's retry: B is kept as older
    ring.set_pending(keys_of(D), true);  // and another: B is gone, C is older
    CHECK(open_by(ring, A, 1, kSec) == O::Current);
    CHECK(open_by(ring, B, 2, kSec) == O::None);
    CHECK(open_by(ring, D, 3, kSec) == O::Pending);
    CHECK(ring.promote(kSec));
    CHECK(open_by(ring, C, 4, kSec) == O::None);  // the other candidate is wiped with the promotion
    CHECK(ring.take_wiped() == 0);  // nothing was kept before
}

TEST_CASE("keyring: server, the client took the answer to its older Init (a slow path)") {
    KeyRing ring;
    ring.set_pending(keys_of(A), false);  // Init 1
    ring.set_pending(keys_of(B), false);  // its retry, Init 2; the answer to Init 1 arrives first
    CHECK(open_by(ring, A, 0, kSec) == O::Pending);
    CHECK_FALSE(ring.promote(kSec));
    CHECK(open_by(ring, A, 1, kSec) == O::Current);
    CHECK(open_by(ring, B, 2, kSec) == O::None);
    // The same during a rekey: the older pending keys go on in the same space.
    ring.set_pending(keys_of(C), true);
    ring.set_pending(keys_of(D), true);
    CHECK(open_by(ring, C, 3, 2 * kSec) == O::Pending);
    CHECK(ring.promote(2 * kSec));
    CHECK(open_by(ring, A, 4, 2 * kSec) == O::Previous);
    CHECK(open_by(ring, D, 5, 2 * kSec) == O::None);
}

TEST_CASE("keyring: the replay verdict decides which keys are tried") {
    KeyRing ring;
    ring.set_pending(keys_of(A), false);
    REQUIRE(open_by(ring, A, 0, 0) == O::Pending);
    ring.promote(0);
    SUBCASE("a rekey shares the window: a seen number is refused under the new keys too") {
        ring.set_pending(keys_of(B), true);
        CHECK(open_by(ring, B, 5, 0, false) == O::None);
        CHECK(open_by(ring, B, 6, 0, true) == O::Pending);
    }
    SUBCASE("a fresh start has its own numbers: tried whatever the old window says") {
        ring.set_pending(keys_of(B), false);
        CHECK(open_by(ring, B, 0, 0, false) == O::Pending);
        CHECK_FALSE(ring.promote(0));
        CHECK_FALSE(ring.has_previous);  // the old space's packets could not be told apart
        CHECK(open_by(ring, A, 7, 0) == O::None);
    }
}

TEST_CASE("keyring: client, the old receive key lasts until the server is heard under the new one") {
    KeyRing ring;
    ring.start(keys_of(A));
    REQUIRE(open_by(ring, A, 0, 0) == O::Current);
    ring.rekey(keys_of(B));
    CHECK(ring.uses == 0);
    // The server goes on under A until it opens our first packet under B.
    CHECK(open_by(ring, A, 1, 1 * kSec) == O::Previous);
    CHECK_FALSE(ring.expire(3600 * kSec));  // not heard under B yet: kept
    CHECK(open_by(ring, A, 2, 3600 * kSec) == O::Previous);
    CHECK(open_by(ring, B, 3, 3600 * kSec) == O::Current);
    CHECK(open_by(ring, A, 4, 3600 * kSec + 1) == O::Previous);  // in flight behind it
    CHECK_FALSE(ring.expire(3600 * kSec + KeyRing::kGraceNs - 1));
    CHECK(ring.expire(3600 * kSec + KeyRing::kGraceNs));
    CHECK(ring.take_wiped() == 1);
    CHECK(ring.take_wiped() == 0);
    CHECK(open_by(ring, A, 5, 3601 * kSec) == O::None);
    CHECK(all_zero(ring.previous, sizeof ring.previous));
}

TEST_CASE("keyring: client, a rekey the server never took up keeps the key it still uses") {
    KeyRing ring;
    ring.start(keys_of(A));
    REQUIRE(open_by(ring, A, 0, 0) == O::Current);
    ring.rekey(keys_of(B));  // the server never opened a packet under B
    ring.rekey(keys_of(C));  // so the next rekey drops B, not A
    CHECK(open_by(ring, A, 1, kSec) == O::Previous);
    CHECK(open_by(ring, B, 2, kSec) == O::None);
    CHECK(open_by(ring, C, 3, kSec) == O::Current);
    CHECK(ring.take_wiped() == 0);  // A kept all along
    ring.rekey(keys_of(A));  // C was heard: now C is the one kept, A overwritten
    CHECK(open_by(ring, C, 4, 2 * kSec) == O::Previous);
    CHECK(ring.take_wiped() == 1);
}

TEST_CASE("keyring: wipe leaves no key behind") {
    KeyRing ring;
    ring.start(keys_of(A));
    REQUIRE(open_by(ring, A, 0, 0) == O::Current);
    ring.rekey(keys_of(B));
    ring.set_pending(keys_of(C), true);
    ring.wipe();
    CHECK(all_zero(ring.current.send, kKeySize));
    CHECK(all_zero(ring.current.recv, kKeySize));
    CHECK(all_zero(ring.pending.recv, kKeySize));
    CHECK(all_zero(ring.previous, kKeySize));
    CHECK(open_by(ring, A, 1, 0) == O::None);
    CHECK(open_by(ring, B, 2, 0) == O::None);
}
