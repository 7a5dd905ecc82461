// reorder.cpp — bounded reorder buffer.
//
// Invariants (checked by test/fuzz/fuzz_reorder_model.cpp against a simple
// std::map model):
//   * every held packet has next < seq < next + kReorderCapacity, so the slot
//     seq % kReorderCapacity is unique to it, and slot `next` is always empty
//     (a packet at `next` is released at once);
//   * occupied[] mirrors slots[].used, so the first held packet after a gap is
//     found by scanning at most kBitmapWords + 1 words instead of 1024 slots;
//   * oldest_queue holds, in increasing seq order, the held packets that have
//     no held packet with a higher seq that arrived earlier. Because `now`
//     never decreases, a new packet joins the queue only if it has the highest
//     held seq (then it goes to the back); one inserted below the highest is
//     never the oldest of any set we will look at, since packets leave in seq
//     order and the higher, earlier one outlives it. Packets leave the front
//     when released. So the front is always the earliest-arrived held packet
//     and oldest_arrival is O(1) to maintain.
//
// Why the earliest-arrived packet and not the lowest-seq one: it bounds how
// long any packet is held to gap_timeout_ns. Timing on the lowest-seq packet
// would let a stream of late fillers re-arm the timer while a packet behind
// them waits for up to kReorderCapacity timeouts.
#include "reorder.h"

namespace onebox::proto {

namespace {

using Rb = ReorderBuffer;

constexpr unsigned kCap = kReorderCapacity;
static_assert(kCap % 64 == 0, "occupied[] covers the slots with whole words");
static_assert(kCap <= 65536, "oldest_queue stores slot indices as uint16_t");

unsigned slot_of(uint64_t seq) { return unsigned(seq % kCap); }

// ---- oldest_queue: a ring of slot indices --------------------------------

unsigned oq_back(const Rb& rb) { return rb.oldest_queue[(rb.oq_head + rb.oq_count - 1) % kCap]; }

void oq_push_back(Rb& rb, unsigned slot) {
    rb.oldest_queue[(rb.oq_head + rb.oq_count) % kCap] = uint16_t(slot);
    ++rb.oq_count;
}

void refresh_oldest_arrival(Rb& rb) {
    rb.oldest_arrival = rb.oq_count ? rb.slots[rb.oldest_queue[rb.oq_head]].arrival : 0;
}

// Called as the packet in `slot` is released; it can only be the front (the
// queue is seq-ordered and everything held is above the released packet).
void oq_forget(Rb& rb, unsigned slot) {
    if (rb.oq_count && rb.oldest_queue[rb.oq_head] == slot) {
        rb.oq_head = (rb.oq_head + 1) % kCap;
        --rb.oq_count;
    }
}

// ---- slots ---------------------------------------------------------------

void hold(Rb& rb, uint64_t seq, uint32_t handle, uint64_t now) {
    const unsigned i = slot_of(seq);
    // The highest held packet is always the back of the queue (nothing is
    // above it), so "seq is the new highest" is one comparison.
    if (rb.oq_count == 0 || seq > rb.slots[oq_back(rb)].seq) oq_push_back(rb, i);
    rb.slots[i] = {handle, seq, now, true};
    rb.occupied[i / 64] |= uint64_t(1) << (i % 64);
    ++rb.held;
}

void release_slot(Rb& rb, unsigned i, ReorderEntry* out, size_t& n) {
    out[n++] = {rb.slots[i].handle, rb.slots[i].seq};
    rb.slots[i].used = false;
    rb.occupied[i / 64] &= ~(uint64_t(1) << (i % 64));
    --rb.held;
    oq_forget(rb, i);
}

// Releases the held packets at next, next+1, ... until the first hole.
void release_run(Rb& rb, ReorderEntry* out, size_t& n) {
    while (rb.held && rb.slots[slot_of(rb.next)].used) {
        release_slot(rb, slot_of(rb.next), out, n);
        ++rb.next;
    }
}

// Sequence number of the lowest held packet. Requires held > 0. Scans the
// bitmap from slot `next` round the ring (at most kBitmapWords + 1 words).
uint64_t lowest_held_seq(const Rb& rb) {
    const unsigned start = slot_of(rb.next);
    unsigned word = start / 64;
    uint64_t bits = rb.occupied[word] & (~uint64_t(0) << (start % 64));
    for (unsigned step = 0; step <= Rb::kBitmapWords; ++step) {
        if (bits) {
            const unsigned i = word * 64 + unsigned(__builtin_ctzll(bits));
            return rb.next + (i + kCap - start) % kCap;
        }
        word = (word + 1) % Rb::kBitmapWords;
        bits = rb.occupied[word];
        // Back at the start word: only the bits below `start` are left.
        if (step + 1 == Rb::kBitmapWords) bits &= ~(~uint64_t(0) << (start % 64));
    }
    return rb.next;  // unreachable while held > 0
}

// Gives up on every missing packet below `target` (> next): releases, in
// order, the held packets below it, then moves next to target.
void give_up_below(Rb& rb, uint64_t target, ReorderEntry* out, size_t& n) {
    while (rb.held) {
        const uint64_t s = lowest_held_seq(rb);
        if (s >= target) break;
        release_slot(rb, slot_of(s), out, n);
        rb.next = s + 1;
    }
    rb.next = target;
}

bool oldest_expired(const Rb& rb, uint64_t now) {
    return rb.held && now >= rb.oldest_arrival && now - rb.oldest_arrival >= rb.gap_timeout_ns;
}

}  // namespace

ReorderBuffer::Insert ReorderBuffer::insert(uint64_t seq, uint32_t handle, uint64_t now,
                                            ReorderEntry* out, size_t* n_out) {
    size_t n = 0;
    *n_out = 0;
    // UINT64_MAX is never sent (senders rekey long before); refusing it keeps
    // `next` from wrapping to 0 whatever an authenticated peer sends.
    if (seq < next || seq == UINT64_MAX) {
        ++late;
        return Insert::Late;
    }
    if (seq - next >= kCap) {
        // No room: give up on the oldest gaps, just enough for seq to fit as
        // the last slot of the window.
        ++overflows;
        give_up_below(*this, seq - kCap + 1, out, n);
        release_run(*this, out, n);
    } else if (slots[slot_of(seq)].used) {
        ++duplicates;
        return Insert::Late;
    }
    Insert result;
    if (seq == next) {
        out[n++] = {handle, seq};
        ++next;
        release_run(*this, out, n);
        result = Insert::Released;
    } else {
        hold(*this, seq, handle, now);
        result = Insert::Held;
    }
    refresh_oldest_arrival(*this);
    *n_out = n;
    return result;
}

size_t ReorderBuffer::expire(uint64_t now, ReorderEntry* out) {
    size_t n = 0;
    while (oldest_expired(*this, now)) {
        ++timeouts;
        next = lowest_held_seq(*this);  // skip the gap up to the first held packet
        release_run(*this, out, n);
        refresh_oldest_arrival(*this);
    }
    return n;
}

uint64_t ReorderBuffer::next_deadline() const {
    if (!held) return UINT64_MAX;
    if (oldest_arrival > UINT64_MAX - gap_timeout_ns) return UINT64_MAX;
    return oldest_arrival + gap_timeout_ns;
}

size_t ReorderBuffer::drain(ReorderEntry* out) {
    size_t n = 0;
    while (held) {
        next = lowest_held_seq(*this);
        release_run(*this, out, n);
    }
    next = 0;
    oq_head = 0;
    oq_count = 0;
    refresh_oldest_arrival(*this);
    return n;
}

}  // namespace onebox::proto
