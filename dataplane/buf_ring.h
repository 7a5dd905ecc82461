// buf_ring.h — a provided buffer ring (io_uring's IORING_REGISTER_PBUF_RING):
// buffers handed to the kernel up front, from which a multishot receive picks
// one per datagram (or per GRO batch) itself, so a socket needs one
// submission for as long as buffers last instead of one per receive.
//
// The ring is only the kernel's view; which buffer an id stands for is the
// caller's (the worker gives GRO slabs, id = slab index). Buffers go back in
// batches: add() any number, then publish() once per loop pass. RAII: the
// registration and the ring's memory go with the object.
#pragma once

#include <liburing.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>

namespace onebox::dataplane {

struct ProvidedRing {
    io_uring* owner = nullptr;
    io_uring_buf_ring* br = nullptr;
    unsigned entries = 0;  // a power of two
    uint16_t group = 0;    // the buffer group id receives name (sqe->buf_group)
    unsigned pending = 0;  // added since the last publish()

    ProvidedRing() = default;
    ProvidedRing(const ProvidedRing&) = delete;
    ProvidedRing& operator=(const ProvidedRing&) = delete;
    ~ProvidedRing() { reset(); }

    bool active() const { return br != nullptr; }

    // Registers a ring of `n` entries (a power of two, at most 32768) as
    // group `bgid` on `ring`. Returns 0 or -errno (-EINVAL: a kernel before
    // 5.19, which has no buffer rings).
    int setup(io_uring* ring, unsigned n, uint16_t bgid) {
        if (n == 0 || (n & (n - 1)) || n > 32768) return -EINVAL;
        size_t bytes = n * sizeof(io_uring_buf);
        void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mem == MAP_FAILED) return -errno;
        io_uring_buf_reg reg{};
        reg.ring_addr = uint64_t(uintptr_t(mem));
        reg.ring_entries = n;
        reg.bgid = bgid;
        int r = io_uring_register_buf_ring(ring, &reg, 0);
        if (r < 0) {
            munmap(mem, bytes);
            return r;
        }
        owner = ring;
        br = static_cast<io_uring_buf_ring*>(mem);
        entries = n;
        group = bgid;
        io_uring_buf_ring_init(br);
        return 0;
    }

    // Buffer `bid` (len bytes at addr) is the kernel's again once published.
    void add(uint16_t bid, void* addr, unsigned len) {
        io_uring_buf_ring_add(br, addr, len, bid, io_uring_buf_ring_mask(entries), int(pending));
        ++pending;
    }

    void publish() {
        if (pending == 0) return;
        io_uring_buf_ring_advance(br, int(pending));
        pending = 0;
    }

    // The ring's registration ends with its io_uring too; unregister only
    // while that still exists (the owner calls reset() before queue_exit).
    void reset() {
        if (!br) return;
        if (owner) io_uring_unregister_buf_ring(owner, group);
        munmap(br, entries * sizeof(io_uring_buf));
        br = nullptr;
        owner = nullptr;
        entries = pending = 0;
    }
};

}  // namespace onebox::dataplane
