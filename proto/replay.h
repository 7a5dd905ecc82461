// replay.h — sliding anti-replay window over 64-bit sequence numbers.
//
// Tracks kReplayWindow sequence numbers behind the highest one seen (a bitmap
// of 64-bit words used as a ring, like RFC 6479). check() is called before the
// AEAD is opened (cheap reject), commit() only after the tag verified, so a
// forged packet can never move the window.
#pragma once

#include <cstdint>

#include "wire.h"

namespace onebox::proto {

enum class ReplayVerdict : uint8_t { Fresh, Duplicate, TooOld };

struct ReplayWindow {
    static constexpr unsigned kWords = kReplayWindow / 64 + 1;
    uint64_t top = 0;          // highest committed sequence number
    bool any = false;          // false until the first commit
    uint64_t bits[kWords]{};

    ReplayVerdict check(uint64_t seq) const;
    void commit(uint64_t seq);  // seq must have passed check()

    // The sequence numbers not seen among the `words` x 64 that end with
    // top's word (Feedback's missing block): bit b of out[w] set = seq
    // *first + 64w + b not seen; none above top. Numbers below 0 do not
    // exist: while top is in one of the first words the block starts at 0.
    // False (out unspecified) if nothing was ever committed or none is
    // missing. words <= kWords - 1.
    bool missing(uint64_t* first, uint64_t* out, unsigned words) const;
};

}  // namespace onebox::proto
