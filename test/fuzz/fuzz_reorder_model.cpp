// fuzz_reorder_model.cpp — ReplayWindow and ReorderBuffer against simple
// reference models (std::set / std::map, linear scans, no cleverness). Any
// disagreement traps.
//
// Input: byte 0 picks the starting sequence number (0, just below 2^63, or
// close to UINT64_MAX), byte 1 the gap timeout; then 3-byte operations
//   op (1) | value (2, BE)
// op % 8: 0..4 insert a sequence number chosen relative to `next` (in the
// window, behind it, overflowing it, jumping far); 5 advance the clock;
// 6 expire; 7 drain. Every sequence number is also offered to the replay
// window (committed when Fresh).
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "proto/reorder.h"
#include "proto/replay.h"

using namespace onebox::proto;

namespace {

constexpr uint64_t kCap = kReorderCapacity;
constexpr uint64_t kMaxSeq = UINT64_MAX;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// ---- replay ----------------------------------------------------------------

struct ReplayModel {
    std::set<uint64_t> seen;
    uint64_t top = 0;

    ReplayVerdict check_seq(uint64_t seq) const {
        if (seen.empty() || seq > top) return ReplayVerdict::Fresh;
        if (top - seq >= kReplayWindow) return ReplayVerdict::TooOld;
        return seen.count(seq) ? ReplayVerdict::Duplicate : ReplayVerdict::Fresh;
    }
    void commit(uint64_t seq) {
        top = seen.empty() ? seq : std::max(top, seq);
        seen.insert(seq);
    }
};

// ---- reorder ---------------------------------------------------------------

struct ReorderModel {
    uint64_t gap_timeout = 0;
    uint64_t next = 0;
    struct Held { uint32_t handle; uint64_t arrival; };
    std::map<uint64_t, Held> held;
    uint64_t timeouts = 0, overflows = 0, late = 0, duplicates = 0;
    std::vector<ReorderEntry> out;

    void emit(uint64_t seq, uint32_t handle) { out.push_back({handle, seq}); }

    void release_run() {
        while (!held.empty() && held.begin()->first == next) {
            emit(next, held.begin()->second.handle);
            held.erase(held.begin());
            ++next;
        }
    }

    ReorderBuffer::Insert insert(uint64_t seq, uint32_t handle, uint64_t now) {
        out.clear();
        if (seq < next || seq == UINT64_MAX) {
            ++late;
            return ReorderBuffer::Insert::Late;
        }
        if (seq - next >= kCap) {
            ++overflows;
            const uint64_t target = seq - kCap + 1;
            while (!held.empty() && held.begin()->first < target) {
                emit(held.begin()->first, held.begin()->second.handle);
                held.erase(held.begin());
            }
            next = target;
            release_run();
        } else if (held.count(seq)) {
            ++duplicates;
            return ReorderBuffer::Insert::Late;
        }
        if (seq == next) {
            emit(seq, handle);
            ++next;
            release_run();
            return ReorderBuffer::Insert::Released;
        }
        held[seq] = {handle, now};
        return ReorderBuffer::Insert::Held;
    }

    uint64_t oldest_arrival() const {
        uint64_t oldest = UINT64_MAX;
        for (const auto& [seq, h] : held) oldest = std::min(oldest, h.arrival);
        return held.empty() ? 0 : oldest;
    }

    void expire(uint64_t now) {
        out.clear();
        while (!held.empty()) {
            const uint64_t oldest = oldest_arrival();
            if (now < oldest || now - oldest < gap_timeout) break;
            ++timeouts;
            next = held.begin()->first;
            release_run();
        }
    }

    uint64_t next_deadline() const {
        if (held.empty()) return UINT64_MAX;
        const uint64_t oldest = oldest_arrival();
        return oldest > UINT64_MAX - gap_timeout ? UINT64_MAX : oldest + gap_timeout;
    }

    void drain() {
        out.clear();
        for (const auto& [seq, h] : held) emit(seq, h.handle);
        held.clear();
        next = 0;
    }
};

struct Harness {
    ReplayWindow replay;
    ReplayModel replay_model;
    std::unique_ptr<ReorderBuffer> rb = std::make_unique<ReorderBuffer>();
    ReorderModel model;
    std::vector<ReorderEntry> out = std::vector<ReorderEntry>(kCap + 1);
    uint64_t now = 0;
    uint32_t handles = 0;

    void same_output(size_t n) {
        check(n == model.out.size());
        for (size_t i = 0; i < n; ++i) {
            check(out[i].seq == model.out[i].seq);
            check(out[i].handle == model.out[i].handle);
        }
    }

    void same_state() {
        check(rb->next == model.next);
        check(rb->held == model.held.size());
        check(rb->oldest_arrival == model.oldest_arrival());
        check(rb->next_deadline() == model.next_deadline());
        check(rb->timeouts == model.timeouts);
        check(rb->overflows == model.overflows);
        check(rb->late == model.late);
        check(rb->duplicates == model.duplicates);
    }

    void offer(uint64_t seq) {
        const ReplayVerdict v = replay.check(seq);
        check(v == replay_model.check_seq(seq));
        if (v == ReplayVerdict::Fresh) {
            replay.commit(seq);
            replay_model.commit(seq);
        }

        const uint32_t handle = ++handles;
        size_t n = 0;
        const auto got = rb->insert(seq, handle, now, out.data(), &n);
        check(got == model.insert(seq, handle, now));
        same_output(n);
    }
};

// A sequence number relative to `next`, or false if it would leave the
// representable range.
bool pick_seq(uint8_t op, uint16_t v, uint64_t next, uint64_t& seq) {
    uint64_t delta;
    switch (op) {
        case 0:
        case 1: delta = v % (kCap + 16); break;          // mostly in the window
        case 2: seq = next - std::min<uint64_t>(next, v % 80); return true;  // behind
        case 3: delta = uint64_t(v) * 37; break;          // overflow by a lot
        default: delta = uint64_t(v) << 44; break;        // jump far ahead
    }
    if (delta > kMaxSeq - next) return false;
    seq = next + delta;
    return true;
}

uint64_t start_seq(uint8_t b) {
    switch (b % 3) {
        case 0: return 0;
        case 1: return (uint64_t(1) << 63) - 3 * kCap;
        default: return kMaxSeq - 100000;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    Harness h;
    h.rb->next = h.model.next = start_seq(data[0]);
    // 0 (release at the first expire), 1..255 ms.
    h.rb->gap_timeout_ns = h.model.gap_timeout = uint64_t(data[1]) * 1'000'000;
    data += 2;
    size -= 2;

    for (; size >= 3; data += 3, size -= 3) {
        const uint8_t op = data[0] % 8;
        const uint16_t v = uint16_t(data[1] << 8 | data[2]);
        if (op <= 4) {
            uint64_t seq;
            if (pick_seq(op, v, h.model.next, seq)) h.offer(seq);
        } else if (op == 5) {
            h.now += uint64_t(v) * 10'000;  // up to ~655 ms per step
        } else if (op == 6) {
            const size_t n = h.rb->expire(h.now, h.out.data());
            h.model.expire(h.now);
            h.same_output(n);
        } else {
            const size_t n = h.rb->drain(h.out.data());
            h.model.drain();
            h.same_output(n);
        }
        h.same_state();
    }
    return 0;
}
