// handshake.cpp — PSK-authenticated ephemeral X25519 handshake.
//
// Key schedule (PROTOCOL.md, "Key derivation"):
//   psk_key  = Argon2id13(passphrase, salt "onebox-psk-salt1", interactive limits)
//   mac_init = KDF(psk_key, id 1, ctx "onebox01")   keys the Init MAC
//   mac_resp = KDF(psk_key, id 2, ctx "onebox01")   keys the Resp MAC
//   kdf_sess = KDF(psk_key, id 3, ctx "onebox01")   keys the session KDF
//   (KDF = crypto_kdf_derive_from_key, i.e. BLAKE2b with a subkey id)
// MAC and traffic keys are separate, so nothing learned about one helps with
// the other. Subkeys are re-derived on each use (one BLAKE2b call each; a
// handshake is rare) so PskKey stays the 32 bytes the header declares.
#include "handshake.h"

#include <sodium.h>

namespace onebox::proto {

namespace {

// Fixed salt: the PSK key must be the same on both ends, and the passphrase
// is the only secret. Argon2id still makes each guess cost ~0.1 s / 64 MiB.
constexpr char kPskSalt[] = "onebox-psk-salt1";
static_assert(sizeof kPskSalt - 1 == crypto_pwhash_SALTBYTES, "salt is 16 bytes");

constexpr char kKdfContext[] = "onebox01";
static_assert(sizeof kKdfContext - 1 == crypto_kdf_CONTEXTBYTES, "context is 8 bytes");
static_assert(kKeySize == crypto_kdf_KEYBYTES, "PSK key is a KDF master key");

enum class Subkey : uint64_t { InitMac = 1, RespMac = 2, SessionKdf = 3, CookieSeal = 4 };

// Byte offsets inside the messages (see wire.h).
constexpr size_t kInitPub = kHeaderSize;            // 16
constexpr size_t kInitTimestamp = kInitPub + 32;    // 48
constexpr size_t kInitTunnelIp = kInitTimestamp + 8; // 56
constexpr size_t kInitFlags = kInitTunnelIp + 4;    // 60
constexpr size_t kInitMac = kInitFlags + 4;         // 64
constexpr size_t kInitMac2 = kInitMac + kMacSize;   // 80
static_assert(kInitMac2 + kMacSize == kInitSize, "Init layout");

constexpr size_t kCookieNonce = kHeaderSize;                   // 16
constexpr size_t kCookieSealed = kCookieNonce + kCookieNonceSize;  // 40
static_assert(kCookieSealed + kCookieSize + kTagSize == kCookieReplySize, "CookieReply layout");

constexpr size_t kRespPub = kHeaderSize;            // 16
constexpr size_t kRespStatus = kRespPub + 32;       // 48
constexpr size_t kRespFlags = kRespStatus + 1;      // 49
constexpr size_t kRespZero = kRespFlags + 1;        // 50
constexpr size_t kRespMac = kRespZero + 6;          // 56
static_assert(kRespMac + kMacSize == kRespSize, "Resp layout");

// A subkey that wipes itself.
struct Subkey32 {
    uint8_t bytes[32]{};
    Subkey32(const PskKey& psk, Subkey id) {
        crypto_kdf_derive_from_key(bytes, sizeof bytes, uint64_t(id), kKdfContext, psk.bytes);
    }
    Subkey32(const Subkey32&) = delete;
    Subkey32& operator=(const Subkey32&) = delete;
    ~Subkey32() { sodium_memzero(bytes, sizeof bytes); }
};

// Keyed BLAKE2b-128 over a || b (b may be empty).
void mac16(const PskKey& psk, Subkey id, const uint8_t* a, size_t a_len, const uint8_t* b,
           size_t b_len, uint8_t out[kMacSize]) {
    const Subkey32 key(psk, id);
    crypto_generichash_state st;
    crypto_generichash_init(&st, key.bytes, sizeof key.bytes, kMacSize);
    crypto_generichash_update(&st, a, a_len);
    if (b_len) crypto_generichash_update(&st, b, b_len);
    crypto_generichash_final(&st, out, kMacSize);
    sodium_memzero(&st, sizeof st);
}

void init_mac(const PskKey& psk, const uint8_t* msg, uint8_t out[kMacSize]) {
    mac16(psk, Subkey::InitMac, msg, kInitMac, nullptr, 0, out);
}

// The Resp MAC also covers the Init's MAC: a Resp only verifies against the
// exact Init it answers.
void resp_mac(const PskKey& psk, const uint8_t* msg, const uint8_t init_mac_[kMacSize],
              uint8_t out[kMacSize]) {
    mac16(psk, Subkey::RespMac, msg, kRespMac, init_mac_, kMacSize, out);
}

bool mac_matches(const uint8_t expected[kMacSize], const uint8_t* got) {
    static_assert(kMacSize == 16, "crypto_verify_16");
    return crypto_verify_16(expected, got) == 0;
}

bool all_zero(const uint8_t* p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; ++i) acc |= p[i];
    return acc == 0;
}

// Handshake headers carry sequence number 0 (they are outside the data
// sequence space) and must be of the expected type.
bool handshake_header_ok(const uint8_t* pkt, size_t len, PacketType type, Header& h) {
    // Handshake headers carry seq 0 and link 0: the link a handshake travels
    // on does not matter to it, and the MAC-covered bytes must round-trip.
    return read_header(pkt, len, h) == HeaderError::Ok && h.type == type && h.seq == 0 &&
           h.link == 0;
}

void write_handshake_header(uint8_t* out, PacketType type, uint32_t session_id) {
    write_header(out, Header{type, kProtocolVersion, session_id, 0});
}

bool status_known(uint8_t s) { return s <= uint8_t(RespStatus::ServerFull); }

}  // namespace

PskKey::~PskKey() { sodium_memzero(bytes, sizeof bytes); }
EphemeralKey::~EphemeralKey() { sodium_memzero(priv, sizeof priv); }

const char* hs_error_name(HsError e) {
    switch (e) {
        case HsError::Ok: return "ok";
        case HsError::BadLength: return "bad length";
        case HsError::BadHeader: return "bad header";
        case HsError::BadMac: return "bad mac";
        case HsError::BadField: return "bad field";
        case HsError::WrongSession: return "wrong session";
        case HsError::Replayed: return "replayed";
        case HsError::WeakKey: return "weak key";
    }
    return "unknown";
}

bool derive_psk_key(std::string_view passphrase, PskKey& out) {
    return crypto_pwhash(out.bytes, sizeof out.bytes, passphrase.data(), passphrase.size(),
                         reinterpret_cast<const uint8_t*>(kPskSalt),
                         crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                         crypto_pwhash_ALG_ARGON2ID13) == 0;
}

EphemeralKey ephemeral_from_random(const uint8_t random32[32]) {
    EphemeralKey k;
    std::memcpy(k.priv, random32, sizeof k.priv);
    crypto_scalarmult_base(k.pub, k.priv);  // clamps the scalar internally
    return k;
}

void write_init(const PskKey& psk, InitMsg& msg, uint8_t out[kInitSize], const uint8_t* cookie) {
    write_handshake_header(out, PacketType::HandshakeInit, msg.session_id);
    std::memcpy(out + kInitPub, msg.eph_pub, kPublicKeySize);
    put_be64(out + kInitTimestamp, msg.timestamp);
    put_be32(out + kInitTunnelIp, msg.tunnel_ip);
    put_be32(out + kInitFlags, msg.flags);
    init_mac(psk, out, msg.mac);
    std::memcpy(out + kInitMac, msg.mac, kMacSize);
    if (cookie)
        init_mac2(cookie, out, out + kInitMac2);
    else
        std::memset(out + kInitMac2, 0, kMacSize);
}

void init_mac2(const uint8_t cookie[kCookieSize], const uint8_t* init, uint8_t out[kMacSize]) {
    crypto_generichash(out, kMacSize, init, kInitMac2, cookie, kCookieSize);
}

bool init_mac2_ok(const uint8_t cookie[kCookieSize], const uint8_t* init, size_t len) {
    if (len != kInitSize) return false;
    uint8_t expected[kMacSize];
    init_mac2(cookie, init, expected);
    return mac_matches(expected, init + kInitMac2);
}

void write_cookie_reply(const PskKey& psk, uint32_t session_id, const uint8_t init_mac1[kMacSize],
                        const uint8_t cookie[kCookieSize], const uint8_t nonce[kCookieNonceSize],
                        uint8_t out[kCookieReplySize]) {
    write_handshake_header(out, PacketType::CookieReply, session_id);
    std::memcpy(out + kCookieNonce, nonce, kCookieNonceSize);
    const Subkey32 key(psk, Subkey::CookieSeal);
    // Bound to the Init it answers: mac1 is the associated data.
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + kCookieSealed, nullptr, cookie, kCookieSize, init_mac1,
                                               kMacSize, nullptr, nonce, key.bytes);
}

HsError read_cookie_reply(const PskKey& psk, const uint8_t* pkt, size_t len, const InitMsg& sent,
                          uint8_t cookie[kCookieSize]) {
    if (len != kCookieReplySize) return HsError::BadLength;
    Header h{};
    if (!handshake_header_ok(pkt, len, PacketType::CookieReply, h)) return HsError::BadHeader;
    if (h.session_id != sent.session_id) return HsError::WrongSession;
    const Subkey32 key(psk, Subkey::CookieSeal);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, nullptr, nullptr, pkt + kCookieSealed,
                                                   kCookieSize + kTagSize, sent.mac, kMacSize,
                                                   pkt + kCookieNonce, key.bytes) != 0)
        return HsError::BadMac;
    return HsError::Ok;
}

HsError read_init(const PskKey& psk, const uint8_t* pkt, size_t len, InitMsg& out) {
    if (len != kInitSize) return HsError::BadLength;
    uint8_t expected[kMacSize];
    init_mac(psk, pkt, expected);
    if (!mac_matches(expected, pkt + kInitMac)) return HsError::BadMac;
    Header h{};
    if (!handshake_header_ok(pkt, len, PacketType::HandshakeInit, h)) return HsError::BadHeader;
    const uint32_t flags = get_be32(pkt + kInitFlags);
    if (flags & ~kInitFlagContinue) return HsError::BadField;
    out.session_id = h.session_id;
    out.flags = flags;
    std::memcpy(out.eph_pub, pkt + kInitPub, kPublicKeySize);
    out.timestamp = get_be64(pkt + kInitTimestamp);
    out.tunnel_ip = get_be32(pkt + kInitTunnelIp);
    std::memcpy(out.mac, pkt + kInitMac, kMacSize);
    return HsError::Ok;
}

bool peek_init_tunnel_ip(const uint8_t* pkt, size_t len, uint32_t* ip) {
    if (len != kInitSize) return false;
    *ip = get_be32(pkt + kInitTunnelIp);
    return true;
}

void write_resp(const PskKey& psk, const RespMsg& msg, const uint8_t init_mac_[kMacSize],
                uint8_t out[kRespSize]) {
    write_handshake_header(out, PacketType::HandshakeResp, msg.session_id);
    std::memcpy(out + kRespPub, msg.eph_pub, kPublicKeySize);
    out[kRespStatus] = uint8_t(msg.status);
    out[kRespFlags] = msg.flags;
    std::memset(out + kRespZero, 0, 6);
    resp_mac(psk, out, init_mac_, out + kRespMac);
}

HsError read_resp(const PskKey& psk, const uint8_t* pkt, size_t len, const InitMsg& sent,
                  RespMsg& out) {
    if (len != kRespSize) return HsError::BadLength;
    // A Resp to any other Init (an older attempt, another session) fails here:
    // the MAC covers sent.mac.
    uint8_t expected[kMacSize];
    resp_mac(psk, pkt, sent.mac, expected);
    if (!mac_matches(expected, pkt + kRespMac)) return HsError::BadMac;
    Header h{};
    if (!handshake_header_ok(pkt, len, PacketType::HandshakeResp, h)) return HsError::BadHeader;
    if (h.session_id != sent.session_id) return HsError::WrongSession;
    if (!all_zero(pkt + kRespZero, 6) || !status_known(pkt[kRespStatus]))
        return HsError::BadField;
    // Only an Init that asked to go on may be told it does, and only an Ok may say so.
    const uint8_t flags = pkt[kRespFlags];
    if ((flags & ~kRespFlagContinued) ||
        ((flags & kRespFlagContinued) &&
         (!(sent.flags & kInitFlagContinue) || pkt[kRespStatus] != uint8_t(RespStatus::Ok))))
        return HsError::BadField;
    out.session_id = h.session_id;
    out.flags = flags;
    std::memcpy(out.eph_pub, pkt + kRespPub, kPublicKeySize);
    out.status = RespStatus(pkt[kRespStatus]);
    return HsError::Ok;
}

HsError derive_session_keys(const PskKey& psk, const EphemeralKey& mine,
                            const uint8_t client_pub[kPublicKeySize],
                            const uint8_t server_pub[kPublicKeySize], bool is_client,
                            SessionKeys& out) {
    const uint8_t* peer_pub = is_client ? server_pub : client_pub;
    uint8_t shared[crypto_scalarmult_BYTES];
    // crypto_scalarmult fails on an all-zero result (low-order peer point);
    // check again explicitly so the guarantee does not depend on the version.
    if (crypto_scalarmult(shared, mine.priv, peer_pub) != 0 ||
        sodium_is_zero(shared, sizeof shared)) {
        sodium_memzero(shared, sizeof shared);
        return HsError::WeakKey;
    }
    uint8_t both[2 * kKeySize];  // client->server key | server->client key
    {
        const Subkey32 kdf_key(psk, Subkey::SessionKdf);
        crypto_generichash_state st;
        crypto_generichash_init(&st, kdf_key.bytes, sizeof kdf_key.bytes, sizeof both);
        crypto_generichash_update(&st, shared, sizeof shared);
        crypto_generichash_update(&st, client_pub, kPublicKeySize);
        crypto_generichash_update(&st, server_pub, kPublicKeySize);
        crypto_generichash_final(&st, both, sizeof both);
        sodium_memzero(&st, sizeof st);
    }
    sodium_memzero(shared, sizeof shared);
    const uint8_t* c2s = both;
    const uint8_t* s2c = both + kKeySize;
    std::memcpy(out.send, is_client ? c2s : s2c, kKeySize);
    std::memcpy(out.recv, is_client ? s2c : c2s, kKeySize);
    sodium_memzero(both, sizeof both);
    return HsError::Ok;
}

// ---- InitGuard -----------------------------------------------------------
//
// Direct-mapped table: one entry per hash bucket of session_id, newest Init
// wins the bucket. Guarantees: while a session id is still in its bucket, an
// Init for it is accepted only if its timestamp is strictly newer than the
// last accepted one (so any replay of an accepted Init, or of an older one, is
// rejected). After eviction by another session id hashing to the same bucket
// an old Init can be accepted again; that is safe because the server only
// promotes a session when the client's first packet sealed under the new keys
// arrives, which an attacker replaying an Init cannot produce (no ephemeral
// private key). Call accept() only after read_init() verified the MAC, so an
// attacker without the PSK cannot write to the table.

namespace {

static_assert((InitGuard::kEntries & (InitGuard::kEntries - 1)) == 0, "power of two");

constexpr unsigned log2_entries() {
    unsigned bits = 0;
    while ((1u << bits) < InitGuard::kEntries) ++bits;
    return bits;
}

// Fibonacci hashing: spreads sequential ids as well as random ones.
unsigned bucket_of(uint32_t session_id) {
    return unsigned((session_id * 2654435769u) >> (32 - log2_entries()));
}

}  // namespace

HsError InitGuard::accept(const InitMsg& msg, uint64_t scope) {
    Entry& e = entries[bucket_of(msg.session_id ^ uint32_t(scope * 0x9e3779b97f4a7c15ull >> 32))];
    if (e.used && e.session_id == msg.session_id && e.scope == scope &&
        (e.timestamp >= msg.timestamp || crypto_verify_16(e.mac, msg.mac) == 0))
        return HsError::Replayed;
    e.session_id = msg.session_id;
    e.scope = scope;
    e.timestamp = msg.timestamp;
    std::memcpy(e.mac, msg.mac, kMacSize);
    e.used = true;
    return HsError::Ok;
}

}  // namespace onebox::proto
