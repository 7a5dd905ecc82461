// reorder.h — bounded reorder (jitter) buffer keyed by sequence number.
//
// Holds opaque 32-bit handles (the data plane stores a buffer index) for
// packets that arrived ahead of a gap. Fixed capacity, no allocation. A packet
// is released when every earlier sequence number has been released or given
// up on; a missing sequence number is given up on when the oldest held packet
// has waited gap_timeout, or when holding a new packet would exceed capacity.
// Time is a value passed in (nanoseconds on any monotonic clock); `now` must
// never go backwards between calls.
//
// Senders start every session at sequence number 0, so the buffer starts with
// next = 0 and has no "first packet" special case. A sender rekeys long before
// its counter reaches UINT64_MAX; insert() treats UINT64_MAX as Late so `next`
// can never wrap around.
//
// Cost: O(1) amortised per packet, no allocation. Finding the first held
// packet after a gap scans a bitmap of kReorderCapacity / 64 words; the oldest
// held packet is tracked with a queue of candidates (see reorder.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace onebox::proto {

struct ReorderEntry {
    uint32_t handle;
    uint64_t seq;
};

// Callback-free interface: functions write released entries into `out`
// (capacity out_cap) in sequence order and return how many were written. The
// caller passes an out array of at least kReorderCapacity + 1 entries so a
// release never has to be split.
struct ReorderBuffer {
    uint64_t gap_timeout_ns = 50'000'000;  // 50 ms default
    uint64_t next = 0;        // next sequence number to release
    unsigned held = 0;        // packets currently held
    uint64_t oldest_arrival = 0;  // arrival time of the earliest-arrived held packet (0 if none)
    // stats (kept across drain())
    uint64_t timeouts = 0;    // gaps given up on by timeout
    uint64_t overflows = 0;   // gaps given up on because the buffer was full
    uint64_t late = 0;        // packets older than `next` (dropped by caller)
    uint64_t duplicates = 0;  // packets whose seq is already held (dropped by caller)

    // Internal state; read-only for everyone else.
    struct Slot { uint32_t handle; uint64_t seq; uint64_t arrival; bool used; };
    Slot slots[kReorderCapacity]{};  // seq lives in slots[seq % kReorderCapacity]
    static constexpr unsigned kBitmapWords = kReorderCapacity / 64;
    uint64_t occupied[kBitmapWords]{};  // bit i set <=> slots[i].used
    // Held packets that may become the oldest one: increasing seq AND
    // increasing arrival, so the front is the oldest held packet. Slot indices.
    uint16_t oldest_queue[kReorderCapacity]{};
    unsigned oq_head = 0;
    unsigned oq_count = 0;

    enum class Insert : uint8_t { Released, Held, Late };

    // Offers packet `seq` that arrived at `now`. Returns Late if seq < next,
    // seq == UINT64_MAX or seq is already held (nothing is written to out;
    // the handle stays the caller's: the data plane, having ruled out
    // duplicates with its replay window, delivers such a packet out of order). Otherwise writes every packet that became releasable to
    // out and returns Released if this packet was among them, Held if it was
    // kept (out may still hold packets released because the buffer overflowed).
    Insert insert(uint64_t seq, uint32_t handle, uint64_t now, ReorderEntry* out,
                  size_t* n_out);

    // Gives up on gaps whose oldest waiting packet is older than gap_timeout
    // and releases what follows. Call on every loop tick.
    size_t expire(uint64_t now, ReorderEntry* out);

    // Time at which expire() would next release something, or UINT64_MAX.
    uint64_t next_deadline() const;

    // Releases everything held, in order (session teardown), and resets the
    // buffer to next = 0 for a new session (stats and gap_timeout_ns are kept).
    // Returns count.
    size_t drain(ReorderEntry* out);
};

}  // namespace onebox::proto
