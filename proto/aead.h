// aead.h — seal and open data packets in place with ChaCha20-Poly1305 (IETF).
//
// A data packet is laid out in one buffer as  header | payload | tag.  The
// header is associated data; the payload is encrypted in place; the tag is
// written right after it. Nothing is copied.
//
// Nonce (12 bytes): the 32-bit channel of the packet type (wire.h:
// nonce_channel, 0 data / 1 control) then the 64-bit sequence number, both
// big-endian. Each direction of a session has its own key, and each channel
// its own strictly increasing sequence counter, so a (key, nonce) pair is
// never used twice.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace onebox::proto {

// Keys for one session: one per direction. Wiped on destruction.
struct SessionKeys {
    uint8_t send[kKeySize]{};
    uint8_t recv[kKeySize]{};
    SessionKeys() = default;
    SessionKeys(const SessionKeys&) = default;
    SessionKeys& operator=(const SessionKeys&) = default;
    ~SessionKeys();
    void wipe();
};

// Writes the header at pkt[0..16) and seals pkt[16..16+payload_len) in place,
// appending the tag. pkt must have room for payload_len + kDataOverhead bytes.
// Returns the datagram length.
size_t seal_in_place(const uint8_t key[kKeySize], const Header& h, uint8_t* pkt,
                     size_t payload_len);

// Opens a datagram in place (header already parsed into h). On success the
// plaintext is at pkt[16..16+*payload_len) and true is returned. On failure
// (bad tag, too short) returns false and leaves no plaintext behind.
bool open_in_place(const uint8_t key[kKeySize], const Header& h, uint8_t* pkt, size_t len,
                   size_t* payload_len);

// The two halves of open_in_place, for a receiver that holds several keys
// across a rekey (keyring.h): verify_tag checks the tag under one key and
// changes nothing (a failed open_in_place zeroes the ciphertext, so it cannot
// be tried under a second key); decrypt_verified then decrypts in place under
// the key whose tag verified.
bool verify_tag(const uint8_t key[kKeySize], const Header& h, const uint8_t* pkt, size_t len);
size_t decrypt_verified(const uint8_t key[kKeySize], const Header& h, uint8_t* pkt, size_t len);

}  // namespace onebox::proto
