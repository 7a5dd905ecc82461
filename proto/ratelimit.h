// ratelimit.h — how many handshakes one source address may start per second.
//
// A token bucket per IPv4 source address in a fixed table: `rate_per_s`
// tokens a second, at most `burst` saved up, one per handshake. The server
// asks after an Init's MAC verified and before any Diffie-Hellman, so a
// sender that holds the key cannot make it spend more than `rate_per_s`
// key exchanges a second per address (a real client sends one a second at
// most, while its server is away). Memory is the table, whatever arrives:
// an address that finds its slot and the next kProbe ones taken by
// addresses seen within the last second shares the bucket of its first
// slot, so a flood from many addresses is limited as a group rather than
// growing anything. Time is passed in (nanoseconds, never going back).
#pragma once

#include <cstdint>

namespace onebox::proto {

struct SourceRateLimit {
    static constexpr unsigned kSlots = 4096;  // a power of two
    static constexpr unsigned kProbe = 4;     // slots tried per address
    uint32_t rate_per_s = 20;
    uint32_t burst = 20;

    // True if `addr` (host order) may start a handshake at `now` (and takes
    // its token); false if it is over its rate.
    bool allow(uint32_t addr, uint64_t now);

  private:
    struct Slot {
        uint32_t addr = 0;
        bool used = false;
        uint64_t last_ns = 0;      // last refill
        uint64_t tokens_x1e9 = 0;  // tokens, in billionths (exact integer refill)
    };
    Slot slots_[kSlots]{};
    Slot& slot_for(uint32_t addr, uint64_t now);
};

}  // namespace onebox::proto
