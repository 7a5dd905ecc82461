// resend.h — recently sent data datagrams, kept after their send completed
// so that those on a link that stalls can go out again on a live one.
//
// A sealed datagram is sent again byte for byte (same session, same sequence
// number, same ciphertext: no nonce is ever reused), so the receiver's replay
// window and reorder buffer take whichever copy arrives first and count the
// other as a replay. The ring holds buffer indices, not copies: a buffer goes
// back to the pool when a newer record evicts it or it is sent again. One
// ring per worker, shared by its sessions and links; O(1) to keep, a scan of
// the ring (oldest first) only when a link stalls, and of its newest part
// when the peer reports datagrams lost (loss repair, Bond::take_lost).
#pragma once

#include <cstdint>
#include <memory>

#include "buffers.h"

namespace onebox::dataplane {

struct SentRecord {
    uint32_t idx = kNoBuffer;  // the buffer; kNoBuffer = taken out already
    uint32_t session_id = 0;
    uint32_t key_gen = 0;      // the session's keys it was sealed under (Session::key_gen)
    uint32_t len = 0;          // datagram bytes
    uint8_t link = 0;
    bool light = false;        // BufferMeta::light
    uint64_t seq = 0;          // its data-channel sequence number
    uint64_t sent_ns = 0;      // when it was sent (the worker's clock)
};

struct SentRing {
    explicit SentRing(uint32_t capacity)
        : cap(capacity ? capacity : 1), rec(new SentRecord[cap]) {}

    // Keeps a record; returns the buffer of the oldest one it pushed out
    // (the caller returns it to the pool), or kNoBuffer.
    uint32_t keep(const SentRecord& r) {
        uint32_t evicted = kNoBuffer;
        if (n == cap) {
            evicted = rec[head].idx;
            head = (head + 1) % cap;
            --n;
        }
        rec[(head + n) % cap] = r;
        ++n;
        return evicted;
    }

    // Takes out, oldest first, every record of `session_id` under keys
    // `key_gen` on `link` that `undelivered(record)` says may not have
    // arrived, handing each to f.
    template <class P, class F>
    unsigned take(uint32_t session_id, uint32_t key_gen, uint8_t link, P&& undelivered, F&& f) {
        unsigned taken = 0;
        for (uint32_t k = 0; k < n; ++k) {
            SentRecord& r = rec[(head + k) % cap];
            if (r.idx == kNoBuffer || r.session_id != session_id || r.key_gen != key_gen ||
                r.link != link || !undelivered(r))
                continue;
            SentRecord copy = r;
            r.idx = kNoBuffer;
            ++taken;
            f(copy);
        }
        return taken;
    }

    // The same, newest first, over the records `recent(record)` accepts,
    // stopping at the first it does not (records are kept in the order their
    // sends completed, so about that of their send times) or once `limit`
    // are taken: a repair looks at the last few hundred ms only, not the
    // whole ring.
    template <class R, class P, class F>
    unsigned take_recent(uint32_t session_id, uint32_t key_gen, unsigned limit, R&& recent, P&& wanted, F&& f) {
        unsigned taken = 0;
        for (uint32_t k = n; k-- > 0 && taken < limit;) {
            SentRecord& r = rec[(head + k) % cap];
            if (!recent(r)) break;
            if (r.idx == kNoBuffer || r.session_id != session_id || r.key_gen != key_gen || !wanted(r)) continue;
            SentRecord copy = r;
            r.idx = kNoBuffer;
            ++taken;
            f(copy);
        }
        return taken;
    }

    // Hands every buffer still held to f (teardown, or a session going away).
    template <class F>
    void release_all(F&& f, uint32_t session_id = 0, bool only_session = false) {
        for (uint32_t k = 0; k < n; ++k) {
            SentRecord& r = rec[(head + k) % cap];
            if (r.idx == kNoBuffer || (only_session && r.session_id != session_id)) continue;
            f(r.idx);
            r.idx = kNoBuffer;
        }
    }

    uint32_t size() const { return n; }
    uint32_t capacity() const { return cap; }

  private:
    uint32_t cap;
    std::unique_ptr<SentRecord[]> rec;
    uint32_t head = 0;  // oldest
    uint32_t n = 0;
};

}  // namespace onebox::dataplane
