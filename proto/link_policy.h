// link_policy.h — the client's keepalive payload: which links it uses now and
// how the server should spread the client's downstream traffic over them.
//
// Plaintext, sealed by the caller like any payload (see PROTOCOL.md, "Links"):
//   u8 link_set (bit n = link n in use) | u8 mode (0 bond, 1 round-robin,
//   2 redundant, 3 backup) | u8 count | count x { u8 link | u8 priority |
//   u16 weight_centi | u32 max_rate_kbit }
// weight_centi is the user's weight x 100 (0 = learn the rate), max_rate_kbit
// the user's cap for the direction towards the client in kbit/s (0 = none),
// priority the user's order for mode backup (2..255; 0 means 1, the first,
// as older clients send; a 1 on the wire is refused so that every policy has
// one encoding). Only links with an override are listed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "scheduler.h"
#include "wire.h"

namespace onebox::proto {

inline constexpr size_t kPolicyHeaderSize = 3;
inline constexpr size_t kPolicyEntrySize = 8;
inline constexpr size_t kPolicyMaxSize = kPolicyHeaderSize + kMaxLinks * kPolicyEntrySize;  // 67

struct LinkOverride {
    uint8_t link = 0;
    uint16_t weight_centi = 0;
    uint32_t max_rate_kbit = 0;
    uint8_t priority = 1;
};

struct LinkPolicy {
    uint8_t link_set = 0;
    SchedMode mode = SchedMode::Bond;
    uint8_t count = 0;
    LinkOverride entries[kMaxLinks]{};
};

// Bytes written, or 0 if the value is invalid (count > kMaxLinks, a link >=
// kMaxLinks or listed twice, an entry with nothing to override) or out_cap is
// too small.
size_t encode_link_policy(const LinkPolicy& p, uint8_t* out, size_t out_cap);

// Exact parse: false on a wrong length, an unknown mode, count > kMaxLinks, a
// link >= kMaxLinks or listed twice, a priority byte of 1, or an entry with
// nothing to override. On false the output is unspecified.
bool decode_link_policy(const uint8_t* in, size_t len, LinkPolicy& p);

// Applies the policy to a scheduler (the server's, for one session): the mode,
// and for every link its override or "automatic" when it has none.
void apply_link_policy(const LinkPolicy& p, Scheduler& s);

}  // namespace onebox::proto
