// aead.cpp — in-place ChaCha20-Poly1305 (IETF) sealing of data packets.
//
// Layout of one datagram:  header (16, AD) | ciphertext (n) | tag (16).
// The header bytes that travel on the wire are exactly the associated data,
// so every header field (type, session id, sequence number) is authenticated.
#include "aead.h"

#include <sodium.h>

namespace onebox::proto {

namespace {

constexpr size_t kNonceSize = crypto_aead_chacha20poly1305_ietf_NPUBBYTES;
static_assert(kNonceSize == 12, "IETF ChaCha20-Poly1305 uses 96-bit nonces");
static_assert(kKeySize == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "key size");
static_assert(kTagSize == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag size");

// The channel (wire.h: 0 data, 1 control) then the sequence number, both
// big-endian. Each channel has its own counter, so the channel keeps their
// nonces apart.
void make_nonce(const Header& h, uint8_t nonce[kNonceSize]) {
    put_be32(nonce, nonce_channel(h.type));
    put_be64(nonce + 4, h.seq);
}

}  // namespace

SessionKeys::~SessionKeys() { wipe(); }

void SessionKeys::wipe() {
    sodium_memzero(send, sizeof send);
    sodium_memzero(recv, sizeof recv);
}

size_t seal_in_place(const uint8_t key[kKeySize], const Header& h, uint8_t* pkt,
                     size_t payload_len) {
    write_header(pkt, h);
    uint8_t nonce[kNonceSize];
    make_nonce(h, nonce);
    uint8_t* payload = pkt + kHeaderSize;
    // Encrypting m into c == m is explicitly supported by libsodium.
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(payload, payload + payload_len, nullptr,
                                                       payload, payload_len, pkt, kHeaderSize,
                                                       nullptr, nonce, key);
    return payload_len + kDataOverhead;
}

bool open_in_place(const uint8_t key[kKeySize], const Header& h, uint8_t* pkt, size_t len,
                   size_t* payload_len) {
    if (len < kDataOverhead) return false;
    const size_t n = len - kDataOverhead;
    uint8_t nonce[kNonceSize];
    make_nonce(h, nonce);
    uint8_t* payload = pkt + kHeaderSize;
    // libsodium checks the tag before decrypting anything, and on failure it
    // zeroes the output buffer (here: the ciphertext), so a forged packet never
    // yields plaintext. test_aead.cpp checks this behaviour of the library.
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(payload, nullptr, payload, n,
                                                           payload + n, pkt, kHeaderSize,
                                                           nonce, key) != 0)
        return false;
    *payload_len = n;
    return true;
}

bool verify_tag(const uint8_t key[kKeySize], const Header& h, const uint8_t* pkt, size_t len) {
    if (len < kDataOverhead) return false;
    const size_t n = len - kDataOverhead;
    uint8_t nonce[kNonceSize];
    make_nonce(h, nonce);
    const uint8_t* payload = pkt + kHeaderSize;
    // With no output buffer libsodium computes and compares the tag and
    // returns, touching nothing (test_aead.cpp checks this).
    return crypto_aead_chacha20poly1305_ietf_decrypt_detached(nullptr, nullptr, payload, n, payload + n, pkt,
                                                              kHeaderSize, nonce, key) == 0;
}

size_t decrypt_verified(const uint8_t key[kKeySize], const Header& h, uint8_t* pkt, size_t len) {
    const size_t n = len - kDataOverhead;
    uint8_t nonce[kNonceSize];
    make_nonce(h, nonce);
    uint8_t* payload = pkt + kHeaderSize;
    // What the AEAD does after a good tag: the ChaCha20 stream from block 1
    // (block 0 made the Poly1305 key).
    crypto_stream_chacha20_ietf_xor_ic(payload, payload, n, nonce, 1, key);
    return n;
}

}  // namespace onebox::proto
