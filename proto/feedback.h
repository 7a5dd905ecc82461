// feedback.h — plaintext payloads of the bonding scheduler's control messages.
//
// The caller seals and opens them like any other payload; this file only
// encodes and decodes the plaintext, big-endian, with exact length checks and
// without ever reading outside the buffer it is given. See PROTOCOL.md,
// "Scheduling and feedback". proto/bond.h decides when they are sent and
// what they do.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace onebox::proto {

// Feedback (receiver -> sender, periodically): what arrived per link so far.
//   u8 count | count x { u8 link | u8 flags | u16 rx_data |
//                        u32 rx_packets (cumulative, wraps) | u64 rx_bytes (cumulative) |
//                        u64 newest_seq }
// flags bit 0: newest_seq is the highest data-channel sequence number that
// arrived on the link (else no data-channel packet has, and newest_seq is 0);
// bit 1: rx_data counts the data-channel datagrams (Data, Keepalive, Close)
// that arrived on the link, passed the replay window and name the link in
// their header (a resent copy does not count), cumulative, wrapping
// at 2^16 (else it is 0); the other bits are 0. Then, optionally, u64 report_time_ns: when the
// receiver wrote the report, on its own monotonic clock (only differences
// between reports mean anything); a report without it is still valid.
// Then, optionally (only after report_time_ns), the missing block:
//   u64 missing_first | kFeedbackMissingWords x u64 missing
// bit b of word w set: data-channel sequence number missing_first + 64w + b
// has not arrived (it has not passed the data channel's replay window);
// missing_first is a multiple of 64. The receiver sends it only when a bit
// is set, over the 1024 numbers that end with the word of the highest one
// arrived (none above it are set). The sender resends, on another link, a
// missing datagram that went out on a link which has since delivered a
// later one (Bond::take_lost): a link delivers in order, so it was lost.
inline constexpr size_t kFeedbackEntrySize = 24;
inline constexpr unsigned kFeedbackMissingWords = 16;
inline constexpr size_t kFeedbackMissingSize = 8 + kFeedbackMissingWords * 8;  // 136
inline constexpr size_t kFeedbackMaxSize = 1 + kMaxLinks * kFeedbackEntrySize + 8 + kFeedbackMissingSize;  // 337
static_assert(kFeedbackMaxSize == 337, "PROTOCOL.md gives this size");
inline constexpr uint8_t kFeedbackHasSeq = 1;
inline constexpr uint8_t kFeedbackHasData = 2;

struct FeedbackEntry {
    uint8_t link = 0;
    uint32_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    bool has_seq = false;
    uint64_t newest_seq = 0;
    bool has_data = false;
    uint16_t rx_data = 0;
};

struct Feedback {
    uint8_t count = 0;
    FeedbackEntry entries[kMaxLinks]{};
    bool has_time = false;
    uint64_t report_time_ns = 0;
    bool has_missing = false;  // needs has_time
    uint64_t missing_first = 0;
    uint64_t missing[kFeedbackMissingWords]{};
};

// Probe (sender -> receiver, echoed back on the same link with flags = Echo):
//   u8 link | u8 flags | u16 reserved=0 | u32 probe_seq | u64 sender_time_ns
// flags: bit 0 echo; bit 1 size probe (pmtu.h): the body is followed by
// padding to the size being tried, and its echo comes back without it.
inline constexpr size_t kProbeSize = 16;

enum class ProbeFlags : uint8_t { Probe = 0, Echo = 1, SizeProbe = 2, SizeEcho = 3 };
inline bool is_echo(ProbeFlags f) { return uint8_t(f) & 1; }
inline bool is_size_probe(ProbeFlags f) { return uint8_t(f) & 2; }

struct Probe {
    uint8_t link = 0;
    ProbeFlags flags = ProbeFlags::Probe;
    uint32_t probe_seq = 0;
    uint64_t sender_time_ns = 0;
};

// Writes the payload to out (capacity out_cap). Returns bytes written, or 0 if
// the value is invalid (count > kMaxLinks, a link >= kMaxLinks, a duplicate
// link, an unknown flag, a newest_seq without has_seq, an rx_data without
// has_data, a missing block without a report time or with missing_first not
// a multiple of 64) or out_cap is too small.
size_t encode_feedback(const Feedback& fb, uint8_t* out, size_t out_cap);
size_t encode_probe(const Probe& p, uint8_t* out, size_t out_cap);

// Parse the payload exactly (a size probe: at least kProbeSize, the rest
// padding): false on a wrong length, count > kMaxLinks, a link
// >= kMaxLinks, a duplicate link, a non-zero reserved field, an unknown flag,
// a newest_seq or rx_data without its flag or a missing_first not a multiple
// of 64.
// On false the output is unspecified.
bool decode_feedback(const uint8_t* in, size_t len, Feedback& fb);
bool decode_probe(const uint8_t* in, size_t len, Probe& p);

// The echo a receiver sends back for a probe: the same fields, the echo
// bit set (a size probe's echo stays a size echo, and comes without padding).
inline Probe echo_of(const Probe& p) {
    Probe e = p;
    e.flags = ProbeFlags(uint8_t(p.flags) | 1);
    return e;
}

}  // namespace onebox::proto
