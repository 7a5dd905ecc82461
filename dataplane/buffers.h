// buffers.h — the preallocated packet buffer pool.
//
// Every buffer is kBufferSize bytes. An inner packet read from the TUN lands
// at offset kHeaderSize, so our header is written in front of it and the tag
// after it without moving a byte; a datagram received from the network lands
// at offset 0 and its plaintext, once opened in place, is at kHeaderSize —
// exactly what the TUN write takes. Allocation is a pop from a free stack.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <ctime>
#include <memory>

#include "proto/wire.h"

namespace onebox::dataplane {

inline constexpr size_t kBufferSize = 2048;
static_assert(proto::kMaxDatagram <= kBufferSize, "a datagram fits in one buffer");

inline constexpr uint32_t kNoBuffer = UINT32_MAX;

// Per-buffer metadata that must outlive an io_uring submission.
struct BufferMeta {
    uint32_t len = 0;         // bytes of payload (meaning depends on the stage)
    // A sealed data datagram being sent: kept in the worker's SentRing once
    // the send completes (resend.h), under this session, link and send time.
    bool keep = false;
    uint8_t link = 0;
    uint32_t session_id = 0;
    uint32_t key_gen = 0;
    uint64_t seq = 0;         // its sequence number
    uint64_t sent_ns = 0;
    // A light packet (a ping, a TCP acknowledgement without data): sent
    // again after a stall or a loss like the first time, past the budget.
    bool light = false;
    sockaddr_in addr{};       // peer address for recvmsg/sendmsg
    iovec iov{};
    msghdr msg{};
};

// GRO slabs. A UDP socket with UDP_GRO may hand over many datagrams of one
// flow in one receive, back to back; such receives land in a slab of
// kSlabSize bytes. Each datagram in it then becomes a handle of its own
// (above the ordinary buffers: handle = count + slab * kSlabSegments + j)
// that points into the slab, is opened in place and written to the TUN from
// there, like any buffer. The slab is free again once every one of its
// datagrams is put back. (The worker copies a datagram out only when the
// reorder buffer would hold it, so slabs never wait on a gap.)
inline constexpr size_t kSlabSize = 65536;       // the largest GRO receive
inline constexpr unsigned kSlabSegments = 64;    // UDP_GRO_CNT_MAX
// A multishot receive writes io_uring_recvmsg_out, the peer's address and
// the GRO control message in front of the datagrams (at most 56 bytes), so
// a slab is this much longer than the largest receive.
inline constexpr size_t kSlabHeadroom = 256;
inline constexpr size_t kSlabStride = kSlabSize + kSlabHeadroom;
// The control messages a slab receive asks for: UDP_GRO's segment size and
// the kernel's receive time (SO_TIMESTAMPNS), which probe echoes need.
inline constexpr size_t kSlabControl = CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(timespec));

struct SlabMeta {
    sockaddr_in addr{};  // where the datagrams came from (server)
    iovec iov{};
    msghdr msg{};
    alignas(cmsghdr) uint8_t control[kSlabControl]{};  // UDP_GRO's segment size, the receive time
    uint32_t refs = 0;   // its datagrams not yet put back
};

struct BufferPool {
    uint32_t count = 0;                   // ordinary buffers
    uint32_t slabs = 0;                   // GRO slabs
    std::unique_ptr<uint8_t[]> memory;    // count * kBufferSize, allocated once
    std::unique_ptr<BufferMeta[]> meta;   // count + slabs * kSlabSegments (ordinary, then slab datagrams)
    std::unique_ptr<uint32_t[]> free_stack;
    uint32_t free_top = 0;                // number of free buffers
    std::unique_ptr<uint8_t[]> slab_memory;
    std::unique_ptr<SlabMeta[]> slab_meta;
    std::unique_ptr<uint32_t[]> sub_offset;  // per slab datagram: its offset in the slab
    std::unique_ptr<uint32_t[]> slab_stack;
    uint32_t slab_top = 0;
    // Slabs from ring_base on belong to a provided buffer ring (buf_ring.h):
    // put back, they wait in ring_returns until the worker hands them to the
    // kernel again; get_slab() never gives them out.
    uint32_t ring_base = UINT32_MAX;
    std::unique_ptr<uint32_t[]> ring_returns;
    uint32_t ring_returns_n = 0;

    explicit BufferPool(uint32_t n, uint32_t n_slabs = 0)
        : count(n), slabs(n_slabs), memory(new uint8_t[size_t(n) * kBufferSize]),
          meta(new BufferMeta[size_t(n) + size_t(n_slabs) * kSlabSegments]), free_stack(new uint32_t[n]),
          free_top(n), slab_memory(new uint8_t[size_t(n_slabs) * kSlabStride]), slab_meta(new SlabMeta[n_slabs]),
          sub_offset(new uint32_t[size_t(n_slabs) * kSlabSegments]()), slab_stack(new uint32_t[n_slabs]),
          slab_top(n_slabs), ring_returns(new uint32_t[n_slabs]) {
        for (uint32_t i = 0; i < n; ++i) free_stack[i] = n - 1 - i;
        for (uint32_t i = 0; i < n_slabs; ++i) slab_stack[i] = n_slabs - 1 - i;
    }
    bool is_sub(uint32_t h) const { return h >= count; }
    uint8_t* data(uint32_t h) {
        if (h < count) return memory.get() + size_t(h) * kBufferSize;
        uint32_t k = h - count;
        return slab_data(k / kSlabSegments) + sub_offset[k];
    }
    uint32_t get() { return free_top ? free_stack[--free_top] : kNoBuffer; }
    void put(uint32_t h) {
        if (h < count) {
            free_stack[free_top++] = h;
            return;
        }
        uint32_t slab = (h - count) / kSlabSegments;
        if (--slab_meta[slab].refs == 0) put_slab(slab);
    }
    uint32_t available() const { return free_top; }

    uint8_t* slab_data(uint32_t slab) { return slab_memory.get() + size_t(slab) * kSlabStride; }
    uint32_t get_slab() { return slab_top ? slab_stack[--slab_top] : kNoBuffer; }
    void put_slab(uint32_t slab) {
        if (slab >= ring_base) ring_returns[ring_returns_n++] = slab;
        else slab_stack[slab_top++] = slab;
    }
    // The last `n` slabs become the ring's, all of them waiting in
    // ring_returns for their first hand-over. Before any get_slab().
    void reserve_ring_slabs(uint32_t n) {
        if (n > slabs) n = slabs;
        ring_base = slabs - n;
        slab_top = 0;
        for (uint32_t i = 0; i < ring_base; ++i) slab_stack[slab_top++] = ring_base - 1 - i;
        ring_returns_n = 0;
        for (uint32_t i = ring_base; i < slabs; ++i) ring_returns[ring_returns_n++] = i;
    }
    // Datagram j of a received slab, at `offset`: its handle. The caller sets
    // slab_meta[slab].refs to the number of datagrams first.
    uint32_t sub(uint32_t slab, unsigned j, uint32_t offset) {
        uint32_t k = slab * kSlabSegments + j;
        sub_offset[k] = offset;
        return count + k;
    }
};

}  // namespace onebox::dataplane
