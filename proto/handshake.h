// handshake.h — PSK-authenticated ephemeral X25519 key exchange.
//
//   client                                             server
//   Init{session_id, e_c, timestamp, tunnel_ip, mac1}  ->
//        server checks mac1 (keyed by the PSK) before any DH, then the
//        per-session_id timestamp and a recent-init cache (replays)
//                                                  <-  Resp{session_id, e_s, status, resp_mac}
//        resp_mac is keyed by the PSK and covers the Init's mac1 (binding)
//   both: dh = X25519(e, E_peer); keys = KDF(psk_key, dh, e_c, e_s)
//   client's first Keepalive/Data sealed with the new key confirms the
//   session to the server (a replayed Init can never complete it).
//
// All randomness is passed in by the caller (proto/ makes no syscalls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "aead.h"
#include "wire.h"

namespace onebox::proto {

// 32-byte key derived from the configured passphrase with Argon2id (so a
// captured handshake cannot be brute-forced cheaply). Wiped on destruction.
struct PskKey {
    uint8_t bytes[kKeySize]{};
    PskKey() = default;
    PskKey(const PskKey&) = default;
    PskKey& operator=(const PskKey&) = default;
    ~PskKey();
};

// Derives the PSK key. Deterministic (fixed, documented salt). Costs ~0.1 s
// and 64 MiB once at start-up. Returns false only if libsodium fails (memory).
bool derive_psk_key(std::string_view passphrase, PskKey& out);

// Ephemeral X25519 key pair; private half wiped on destruction.
struct EphemeralKey {
    uint8_t priv[32]{};
    uint8_t pub[kPublicKeySize]{};
    EphemeralKey() = default;
    EphemeralKey(const EphemeralKey&) = default;
    EphemeralKey& operator=(const EphemeralKey&) = default;
    ~EphemeralKey();
};
// Builds a key pair from 32 random bytes (clamped by X25519).
EphemeralKey ephemeral_from_random(const uint8_t random32[32]);

struct InitMsg {
    uint32_t session_id = 0;
    uint8_t eph_pub[kPublicKeySize]{};
    uint64_t timestamp = 0;   // client's wall clock in ns; strictly increasing per client
    uint32_t tunnel_ip = 0;   // host byte order
    uint32_t flags = 0;       // kInitFlagContinue: a rekey of a session the client still holds
    uint8_t mac[kMacSize]{};  // filled by write_init / read_init
};

struct RespMsg {
    uint32_t session_id = 0;
    uint8_t eph_pub[kPublicKeySize]{};
    RespStatus status = RespStatus::Ok;
    uint8_t flags = 0;        // kRespFlagContinued: the session goes on (same sequence numbers)
};

enum class HsError : uint8_t {
    Ok,
    BadLength,
    BadHeader,
    BadMac,        // not from someone who knows the PSK (checked before any DH)
    BadField,      // non-zero reserved bytes, unknown status, ...
    WrongSession,  // a correctly MACed Resp naming another session id (a Resp
                   // for an older Init fails its MAC binding: BadMac)
    Replayed,      // Init seen before, or timestamp not newer than the last one
    WeakKey,       // DH produced an all-zero shared secret
};
const char* hs_error_name(HsError e);

// Writes an Init into out[0..kInitSize) and stores its mac1 in msg.mac. With
// a cookie (from the server's CookieReply) mac2 is made with it, else zero.
void write_init(const PskKey& psk, InitMsg& msg, uint8_t out[kInitSize], const uint8_t* cookie = nullptr);

// mac2 = BLAKE2b-128(key = cookie, Init bytes 0..79): proof that the sender
// received the cookie the server made for its address (cookie.h).
void init_mac2(const uint8_t cookie[kCookieSize], const uint8_t* init, uint8_t out[kMacSize]);
bool init_mac2_ok(const uint8_t cookie[kCookieSize], const uint8_t* init, size_t len);

// A busy server's answer to an Init: the cookie for the Init's source
// address, sealed with XChaCha20-Poly1305 under a PSK subkey, the Init's
// mac1 as associated data (so it only opens for the Init it answers).
void write_cookie_reply(const PskKey& psk, uint32_t session_id, const uint8_t init_mac1[kMacSize],
                        const uint8_t cookie[kCookieSize], const uint8_t nonce[kCookieNonceSize],
                        uint8_t out[kCookieReplySize]);
HsError read_cookie_reply(const PskKey& psk, const uint8_t* pkt, size_t len, const InitMsg& sent,
                          uint8_t cookie[kCookieSize]);
// Verifies the MAC first, then parses. Does not check replay (see InitGuard).
HsError read_init(const PskKey& psk, const uint8_t* pkt, size_t len, InitMsg& out);

// The tunnel address an Init asks for, read before its MAC is checked: the
// server picks by it which key the MAC must verify under (per-client keys).
// False if `len` is not an Init's.
bool peek_init_tunnel_ip(const uint8_t* pkt, size_t len, uint32_t* ip);

// Writes a Resp bound to the Init whose mac is init_mac.
void write_resp(const PskKey& psk, const RespMsg& msg, const uint8_t init_mac[kMacSize],
                uint8_t out[kRespSize]);
// Verifies a Resp against the Init we sent (session id and mac binding).
HsError read_resp(const PskKey& psk, const uint8_t* pkt, size_t len, const InitMsg& sent,
                  RespMsg& out);

// Computes the session keys. is_client chooses which derived key sends.
HsError derive_session_keys(const PskKey& psk, const EphemeralKey& mine,
                            const uint8_t client_pub[kPublicKeySize],
                            const uint8_t server_pub[kPublicKeySize], bool is_client,
                            SessionKeys& out);

// Server-side replay guard for Init messages: remembers the newest timestamp
// per session id and the macs of recently accepted Inits. Bounded memory.
struct InitGuard {
    static constexpr unsigned kEntries = 4096;
    struct Entry { uint32_t session_id; uint64_t scope; uint64_t timestamp; uint8_t mac[kMacSize]; bool used; };
    Entry entries[kEntries]{};
    // Returns Ok and records msg if it is new; Replayed otherwise. `scope`
    // is the key that made the Init (per-client keys; 0 = the shared key):
    // an Init made with one client's key cannot spend another's timestamps.
    HsError accept(const InitMsg& msg, uint64_t scope = 0);
};

}  // namespace onebox::proto
