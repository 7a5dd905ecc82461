// fuzz_handshake.cpp — read_init, read_resp, derive_session_keys, InitGuard.
//
// Input: first byte selects the mode, the rest is its argument.
//   0: raw bytes given to read_init and to read_resp (against a fixed Init);
//   1: raw Init bytes whose MAC is recomputed first, so the fuzzer gets past
//      the MAC and into header/field validation; a message that parses must
//      re-encode to the same bytes;
//   2: the same for a Resp bound to the fixed Init;
//   3: 32 bytes used as the peer's public key for derive_session_keys;
//   4: a list of (session_id 1 byte, timestamp 2 bytes) Inits fed to one
//      InitGuard, checked against what it must guarantee;
//   5: raw bytes given to read_cookie_reply (against the fixed Init), and as
//      an Init to a CookieJar's mac2 check; a CookieReply built from the
//      first 16 bytes must open to them.
// The PSK key is fixed (32 x 0x42); the seed corpus was written with it.
#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "proto/cookie.h"
#include "proto/handshake.h"

using namespace onebox::proto;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

void init_once() {
    static bool done = false;
    if (!done) {
        if (sodium_init() < 0) std::abort();
        done = true;
    }
}

const PskKey& fixed_psk() {
    static const PskKey psk = [] {
        PskKey k;
        std::memset(k.bytes, 0x42, sizeof k.bytes);
        return k;
    }();
    return psk;
}

EphemeralKey fixed_ephemeral(uint8_t fill) {
    uint8_t random[32];
    std::memset(random, fill, sizeof random);
    return ephemeral_from_random(random);
}

// The Init "we sent": every Resp is read against it.
struct SentInit {
    InitMsg msg;
    std::array<uint8_t, kInitSize> bytes{};
};
const SentInit& fixed_init() {
    static const SentInit sent = [] {
        SentInit s;
        s.msg.session_id = 0x01020304;
        const EphemeralKey e = fixed_ephemeral(0x11);
        std::memcpy(s.msg.eph_pub, e.pub, kPublicKeySize);
        s.msg.timestamp = 1'000'000'000;
        s.msg.tunnel_ip = 0x0a000002;
        write_init(fixed_psk(), s.msg, s.bytes.data());
        return s;
    }();
    return sent;
}

// The MAC as PROTOCOL.md specifies it, written independently of handshake.cpp.
void spec_mac(uint64_t subkey_id, const uint8_t* a, size_t a_len, const uint8_t* b,
              size_t b_len, uint8_t out[kMacSize]) {
    uint8_t key[32];
    crypto_kdf_derive_from_key(key, sizeof key, subkey_id, "onebox01", fixed_psk().bytes);
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof key, kMacSize);
    crypto_generichash_update(&st, a, a_len);
    if (b_len) crypto_generichash_update(&st, b, b_len);
    crypto_generichash_final(&st, out, kMacSize);
}

// Copies up to n bytes of input into a zeroed message buffer.
template <size_t N>
std::array<uint8_t, N> message_from(const uint8_t* data, size_t size) {
    std::array<uint8_t, N> m{};
    std::memcpy(m.data(), data, size < N ? size : N);
    return m;
}

void fuzz_raw(const uint8_t* data, size_t size) {
    InitMsg init;
    if (read_init(fixed_psk(), data, size, init) == HsError::Ok) {
        auto guard = std::make_unique<InitGuard>();
        check(guard->accept(init) == HsError::Ok);
        check(guard->accept(init) == HsError::Replayed);
    }
    RespMsg resp;
    read_resp(fixed_psk(), data, size, fixed_init().msg, resp);
}

void fuzz_init_fields(const uint8_t* data, size_t size) {
    auto m = message_from<kInitSize>(data, size);
    spec_mac(1, m.data(), 64, nullptr, 0, m.data() + 64);  // mac1; mac2 (80..95) is the cookie's
    InitMsg got;
    const HsError e = read_init(fixed_psk(), m.data(), m.size(), got);
    check(e != HsError::BadMac && e != HsError::BadLength);
    if (e != HsError::Ok) return;
    std::array<uint8_t, kInitSize> again{};
    InitMsg copy = got;
    write_init(fixed_psk(), copy, again.data());
    check(std::memcmp(again.data(), m.data(), 80) == 0);
    check(std::memcmp(copy.mac, got.mac, kMacSize) == 0);
}

void fuzz_resp_fields(const uint8_t* data, size_t size) {
    const SentInit& sent = fixed_init();
    auto m = message_from<kRespSize>(data, size);
    spec_mac(2, m.data(), kRespSize - kMacSize, sent.msg.mac, kMacSize,
             m.data() + kRespSize - kMacSize);
    RespMsg got;
    const HsError e = read_resp(fixed_psk(), m.data(), m.size(), sent.msg, got);
    check(e != HsError::BadMac && e != HsError::BadLength);
    if (e != HsError::Ok) return;
    check(got.session_id == sent.msg.session_id);
    std::array<uint8_t, kRespSize> again{};
    write_resp(fixed_psk(), got, sent.msg.mac, again.data());
    check(again == m);
}

void fuzz_peer_key(const uint8_t* data, size_t size) {
    const auto peer = message_from<kPublicKeySize>(data, size);
    const EphemeralKey mine = fixed_ephemeral(0x22);
    SessionKeys client, server;
    const HsError a = derive_session_keys(fixed_psk(), mine, mine.pub, peer.data(), true, client);
    const HsError b = derive_session_keys(fixed_psk(), mine, peer.data(), mine.pub, false, server);
    check(a == HsError::Ok || a == HsError::WeakKey);
    check(a == b);
    if (a == HsError::Ok) check(std::memcmp(client.send, client.recv, kKeySize) != 0);
}

// What InitGuard must guarantee, whatever evictions happen: an Init for a
// session id newer than every Init accepted for it is accepted, and an Init
// accepted a moment ago is rejected if it comes again.
void fuzz_guard(const uint8_t* data, size_t size) {
    auto guard = std::make_unique<InitGuard>();
    std::map<uint32_t, uint64_t> newest;  // session id -> newest accepted timestamp
    for (; size >= 3; data += 3, size -= 3) {
        InitMsg m;
        // Few distinct ids, some of them far apart so buckets collide.
        m.session_id = 1 + uint32_t(data[0] & 0x0f) * 0x01000193u * (data[0] >> 4 | 1);
        m.timestamp = get_be16(data + 1);
        uint8_t bytes[kInitSize];
        write_init(fixed_psk(), m, bytes);
        const auto it = newest.find(m.session_id);
        const bool must_accept = it == newest.end() || m.timestamp > it->second;
        const HsError e = guard->accept(m);
        check(e == HsError::Ok || e == HsError::Replayed);
        if (must_accept) check(e == HsError::Ok);
        if (e == HsError::Ok) {
            if (it == newest.end() || m.timestamp > it->second) newest[m.session_id] = m.timestamp;
            check(guard->accept(m) == HsError::Replayed);
        }
    }
}

void fuzz_cookie(const uint8_t* data, size_t size) {
    const SentInit& sent = fixed_init();
    uint8_t cookie[kCookieSize];
    const HsError e = read_cookie_reply(fixed_psk(), data, size, sent.msg, cookie);
    check(e == HsError::Ok || e == HsError::BadLength || e == HsError::BadHeader || e == HsError::WrongSession ||
          e == HsError::BadMac);
    CookieJar jar;
    uint8_t secret[32];
    std::memset(secret, 0x5c, sizeof secret);
    jar.set_secret(secret, 1);
    (void)jar.vouches_for(data, size, 0x0100000a, 0x3930, 2);
    // Round trip: a reply made for the fixed Init opens to the same cookie.
    const auto c = message_from<kCookieSize>(data, size);
    uint8_t nonce[kCookieNonceSize] = {}, pkt[kCookieReplySize], back[kCookieSize];
    write_cookie_reply(fixed_psk(), sent.msg.session_id, sent.msg.mac, c.data(), nonce, pkt);
    check(read_cookie_reply(fixed_psk(), pkt, sizeof pkt, sent.msg, back) == HsError::Ok);
    check(std::memcmp(back, c.data(), kCookieSize) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    init_once();
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    ++data;
    --size;
    switch (mode % 6) {
        case 0: fuzz_raw(data, size); break;
        case 1: fuzz_init_fields(data, size); break;
        case 2: fuzz_resp_fields(data, size); break;
        case 3: fuzz_peer_key(data, size); break;
        case 4: fuzz_guard(data, size); break;
        default: fuzz_cookie(data, size); break;
    }
    return 0;
}
