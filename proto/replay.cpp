// replay.cpp — RFC 6479-style anti-replay window.
//
// bits[] is a ring of kWords 64-bit words; sequence number s lives in word
// (s / 64) % kWords, bit s % 64. The ring has one word more than the window
// needs, so when `top` moves into a new word only whole words have to be
// cleared: every word between the old top word (exclusive) and the new one
// (inclusive). Those words only held sequence numbers that are now more than
// kReplayWindow behind `top`, which check() rejects as TooOld before it ever
// looks at a bit.
//
// No arithmetic here can overflow: sequence numbers never wrap (a sender
// rekeys long before 2^64), we only ever compute `top - seq` with seq <= top,
// and word indices are seq / 64.
#include "replay.h"

namespace onebox::proto {

namespace {

static_assert(kReplayWindow % 64 == 0, "window is a whole number of words");

constexpr uint64_t word_of(uint64_t seq) { return seq / 64; }
constexpr unsigned ring_index(uint64_t word) {
    return unsigned(word % ReplayWindow::kWords);
}
constexpr uint64_t bit_of(uint64_t seq) { return uint64_t(1) << (seq % 64); }

}  // namespace

ReplayVerdict ReplayWindow::check(uint64_t seq) const {
    if (!any || seq > top) return ReplayVerdict::Fresh;
    if (top - seq >= kReplayWindow) return ReplayVerdict::TooOld;
    const bool seen = bits[ring_index(word_of(seq))] & bit_of(seq);
    return seen ? ReplayVerdict::Duplicate : ReplayVerdict::Fresh;
}

void ReplayWindow::commit(uint64_t seq) {
    if (!any) {
        for (auto& w : bits) w = 0;
        any = true;
        top = seq;
    } else if (seq > top) {
        const uint64_t old_word = word_of(top);
        const uint64_t new_word = word_of(seq);
        const uint64_t advance = new_word - old_word;
        if (advance >= kWords) {
            for (auto& w : bits) w = 0;
        } else {
            for (uint64_t w = old_word + 1; w <= new_word; ++w) bits[ring_index(w)] = 0;
        }
        top = seq;
    } else if (top - seq >= kReplayWindow) {
        return;  // too old: nothing to record (check() would have refused it)
    }
    bits[ring_index(word_of(seq))] |= bit_of(seq);
}

bool ReplayWindow::missing(uint64_t* first, uint64_t* out, unsigned words) const {
    if (!any || words == 0 || words > kWords - 1) return false;
    const uint64_t top_word = word_of(top);
    const uint64_t first_word = top_word + 1 >= words ? top_word + 1 - words : 0;
    bool some = false;
    for (unsigned w = 0; w < words; ++w) {
        const uint64_t word = first_word + w;
        uint64_t m = 0;
        if (word < top_word) {
            m = ~bits[ring_index(word)];
        } else if (word == top_word) {
            // Only up to top: what is above it was not sent yet, as far as we know.
            const uint64_t upto = top % 64 == 63 ? ~uint64_t(0) : (uint64_t(1) << (top % 64 + 1)) - 1;
            m = ~bits[ring_index(word)] & upto;
        }
        out[w] = m;
        some |= m != 0;
    }
    *first = first_word * 64;
    return some;
}

}  // namespace onebox::proto
