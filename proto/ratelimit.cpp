#include "ratelimit.h"

#include <algorithm>

namespace onebox::proto {

namespace {

constexpr uint64_t kBillion = 1'000'000'000;

// A multiplicative hash: neighbouring addresses land far apart.
unsigned hash(uint32_t addr) { return unsigned((uint64_t(addr) * 0x9E3779B97F4A7C15ull) >> 52); }

}  // namespace

SourceRateLimit::Slot& SourceRateLimit::slot_for(uint32_t addr, uint64_t now) {
    unsigned first = hash(addr) & (kSlots - 1);
    for (unsigned k = 0; k < kProbe; ++k) {
        Slot& s = slots_[(first + k) & (kSlots - 1)];
        if (s.used && s.addr == addr) return s;
    }
    // Not there: take a free slot, or one whose address has been quiet for a
    // second (its bucket would be full again by now anyway).
    for (unsigned k = 0; k < kProbe; ++k) {
        Slot& s = slots_[(first + k) & (kSlots - 1)];
        if (!s.used || now - s.last_ns >= kBillion) {
            s = Slot{addr, true, now, uint64_t(burst) * kBillion};
            return s;
        }
    }
    return slots_[first];  // every candidate busy: share the first one's bucket
}

bool SourceRateLimit::allow(uint32_t addr, uint64_t now) {
    Slot& s = slot_for(addr, now);
    if (now > s.last_ns) {
        // 10 s refill a bucket of any sensible size; the cap keeps the
        // product far from overflowing.
        uint64_t gap = std::min<uint64_t>(now - s.last_ns, 10 * kBillion);
        s.tokens_x1e9 = std::min<uint64_t>(uint64_t(burst) * kBillion, s.tokens_x1e9 + gap * rate_per_s);
        s.last_ns = now;
    }
    if (s.tokens_x1e9 < kBillion) return false;
    s.tokens_x1e9 -= kBillion;
    return true;
}

}  // namespace onebox::proto
