// wire.h — every onebox packet layout, size and limit, in one place.
//
// proto/ is pure: no syscalls, no clock reads, no threads. Everything here is
// bytes in, bytes and decisions out. PROTOCOL.md describes the same layouts in
// prose; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace onebox::proto {

inline constexpr uint8_t kProtocolVersion = 1;

enum class PacketType : uint8_t {
    HandshakeInit = 1,  // client -> server, PSK-MACed, carries client ephemeral
    HandshakeResp = 2,  // server -> client, PSK-MACed, carries server ephemeral
    Data = 3,           // sealed inner IP packet
    Keepalive = 4,      // sealed empty payload; shares the data sequence space
    Close = 5,          // sealed empty payload: the sender is stopping; forget the session
    Feedback = 6,       // sealed, control channel: what the receiver got per link (feedback.h)
    Probe = 7,          // sealed, control channel: RTT probe or its echo (feedback.h)
    CookieReply = 8,    // server -> client, instead of a Resp when busy: prove your address (cookie.h)
};

// Sealed packets use one of two nonce channels, each with its own sequence
// space, replay window and counter: channel 0 (Data, Keepalive, Close) goes
// through the receiver's reorder buffer; channel 1 (Feedback, Probe) is acted
// on the moment it arrives, so a probe is never held behind a gap and never
// leaves one in the data sequence.
inline constexpr uint32_t kDataChannel = 0;
inline constexpr uint32_t kControlChannel = 1;
inline constexpr uint32_t nonce_channel(PacketType t) {
    return t == PacketType::Feedback || t == PacketType::Probe ? kControlChannel : kDataChannel;
}

// Common header: plaintext on the wire, authenticated as AEAD associated data
// for Data/Keepalive/Close and covered by the MAC for handshake messages.
//
//   0      1         2      3          4              8                     16
//   | type | version | link | reserved | session_id   | sequence number     |
//
// All multi-byte fields are big-endian. link is the sender's WAN link the
// datagram was sent on (0 .. kMaxLinks-1; authenticated with the rest of the
// header, so the receiver can keep per-link state). reserved must be zero.
inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kTagSize = 16;                     // Poly1305 tag
inline constexpr size_t kDataOverhead = kHeaderSize + kTagSize;
inline constexpr size_t kKeySize = 32;                     // ChaCha20-Poly1305 key
inline constexpr size_t kPublicKeySize = 32;               // X25519
inline constexpr size_t kMacSize = 16;                     // keyed BLAKE2b-128

// Largest inner IP packet we carry (the TUN MTU can be at most this).
inline constexpr size_t kMaxInnerPacket = 1500;
// Largest datagram a peer may send us.
inline constexpr size_t kMaxDatagram = kMaxInnerPacket + kDataOverhead;
// Default TUN MTU: a 1500-byte WAN MTU minus IPv4 (20), UDP (8) and our overhead.
inline constexpr unsigned kDefaultTunMtu = 1500 - 20 - 8 - kDataOverhead;

// HandshakeInit body (after the header):
//   ephemeral public key (32) | timestamp (8, BE) | tunnel IPv4 (4, network order) |
//   flags (4, BE) | mac1 (16) | mac2 (16: made with a cookie, or zero)
inline constexpr size_t kInitSize = kHeaderSize + 32 + 8 + 4 + 4 + kMacSize + kMacSize;
// HandshakeResp body: ephemeral public key (32) | status (1) | flags (1) | zero (6) | mac (16)
inline constexpr size_t kRespSize = kHeaderSize + 32 + 1 + 1 + 6 + kMacSize;
// Init flags: the client holds this session (keys, sequence numbers) and
// asks to go on with it under new keys: a rekey. Other bits must be 0.
inline constexpr uint32_t kInitFlagContinue = 1;
// Resp flags: the server holds the session too, so both ends go on in the
// same sequence spaces under the new keys. Only in an Ok answer to an Init
// that asked; otherwise the client starts the session afresh.
inline constexpr uint8_t kRespFlagContinued = 1;
// CookieReply body: nonce (24) | the cookie sealed with XChaCha20-Poly1305 (16 + tag 16)
inline constexpr size_t kCookieSize = 16;
inline constexpr size_t kCookieNonceSize = 24;
inline constexpr size_t kCookieReplySize = kHeaderSize + kCookieNonceSize + kCookieSize + kTagSize;
static_assert(kInitSize == 96, "HandshakeInit is 96 bytes on the wire");
static_assert(kCookieReplySize == 72, "CookieReply is 72 bytes on the wire");
static_assert(kRespSize == 72, "HandshakeResp is 72 bytes on the wire");
static_assert(kDataOverhead == 32, "data packets add 32 bytes");
static_assert(kDefaultTunMtu == 1440, "default TUN MTU");

// Status carried in a HandshakeResp.
enum class RespStatus : uint8_t {
    Ok = 0,
    AddressInUse = 1,   // another live session holds the requested tunnel address
    AddressRefused = 2, // the address is outside the server's tunnel subnet
    ServerFull = 3,     // the session table is full
};

// WAN links one client may bond.
inline constexpr unsigned kMaxLinks = 8;

// Session id 0 is never valid: a zeroed buffer must not match a session.
inline constexpr uint32_t kInvalidSessionId = 0;

// Limits.
inline constexpr unsigned kReplayWindow = 4096;     // sequence numbers tracked behind the newest
inline constexpr unsigned kReorderCapacity = 1024;  // packets held waiting for a gap to fill

struct Header {
    PacketType type;
    uint8_t version;
    uint32_t session_id;
    uint64_t seq;
    uint8_t link = 0;
};

inline void put_be16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }
inline void put_be32(uint8_t* p, uint32_t v) {
    for (int i = 3; i >= 0; --i) { p[i] = uint8_t(v); v >>= 8; }
}
inline void put_be64(uint8_t* p, uint64_t v) {
    for (int i = 7; i >= 0; --i) { p[i] = uint8_t(v); v >>= 8; }
}
inline uint16_t get_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t get_be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline uint64_t get_be64(const uint8_t* p) {
    return uint64_t(get_be32(p)) << 32 | get_be32(p + 4);
}

inline void write_header(uint8_t* out, const Header& h) {
    out[0] = uint8_t(h.type);
    out[1] = h.version;
    out[2] = h.link;
    out[3] = 0;
    put_be32(out + 4, h.session_id);
    put_be64(out + 8, h.seq);
}

enum class HeaderError : uint8_t { Ok, Short, BadVersion, BadType, BadReserved, BadSession, BadLink };

// Parses and validates the common header. Does not check the size of the body.
inline HeaderError read_header(const uint8_t* in, size_t len, Header& h) {
    if (len < kHeaderSize) return HeaderError::Short;
    if (in[1] != kProtocolVersion) return HeaderError::BadVersion;
    if (in[0] < uint8_t(PacketType::HandshakeInit) || in[0] > uint8_t(PacketType::CookieReply))
        return HeaderError::BadType;
    if (in[3] != 0) return HeaderError::BadReserved;
    if (in[2] >= kMaxLinks) return HeaderError::BadLink;
    h.type = PacketType(in[0]);
    h.version = in[1];
    h.session_id = get_be32(in + 4);
    h.seq = get_be64(in + 8);
    h.link = in[2];
    if (h.session_id == kInvalidSessionId) return HeaderError::BadSession;
    return HeaderError::Ok;
}

}  // namespace onebox::proto
