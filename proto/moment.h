// moment.h — when something last happened, on the caller's clock, or never.
//
// Time in proto/ is a nanosecond value passed in, and 0 is a valid time (the
// tests start their fake clocks there), so "never" needs its own flag.
#pragma once

#include <cstdint>

namespace onebox::proto {

struct Moment {
    bool ever = false;
    uint64_t at = 0;

    void mark(uint64_t now) {
        ever = true;
        at = now;
    }
    // Happened, and no more than `window` ago (the caller's clock never goes back).
    bool within(uint64_t now, uint64_t window) const { return ever && now - at <= window; }
    // Happened, and less than `window` ago.
    bool less_than(uint64_t now, uint64_t window) const { return ever && now - at < window; }
};

}  // namespace onebox::proto
