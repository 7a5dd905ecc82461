// send_batch.h — UDP GSO (UDP_SEGMENT): datagrams in a row for one socket
// and destination, of one size (the last may be shorter), leave in one
// sendmsg, and the kernel cuts them apart as late as it can: at the device,
// or in the NIC. One pass through UDP, IP, routing, netfilter and the
// qdisc for up to kMaxSegments datagrams instead of one each.
//
// Nothing is copied: each datagram stays in its pool buffer and is one
// iovec of the batch's msghdr. The batcher only groups; the worker submits
// a batch (flush) and, when its send completes, handles every datagram in
// it as it would a single send. A send that comes back EIO or EINVAL (the
// path cannot do GSO: no checksum offload, e.g. a PPP link) is sent again
// datagram by datagram and that socket gives up GSO.
#pragma once

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>

namespace onebox::dataplane {

inline constexpr unsigned kMaxSegments = 64;     // UDP_MAX_SEGMENTS of older kernels
inline constexpr size_t kMaxGsoPayload = 65000;  // the batch is one UDP datagram to the kernel
inline constexpr unsigned kNoBatch = UINT32_MAX;

struct SendBatch {
    int fd = -1;
    sockaddr_in addr{};  // the destination (server); unused on a connected socket
    bool has_addr = false;
    uint8_t link = 0;
    uint16_t seg_len = 0;
    uint16_t count = 0;
    bool closed = false;  // a shorter segment ended it
    uint32_t idx[kMaxSegments]{};
    iovec iov[kMaxSegments]{};
    msghdr msg{};
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(uint16_t))]{};

    bool same_destination(int f, const sockaddr_in* a) const {
        if (fd != f || has_addr != (a != nullptr)) return false;
        return !a || (addr.sin_addr.s_addr == a->sin_addr.s_addr && addr.sin_port == a->sin_port);
    }
    // Would datagram `len` join this batch (as a segment, or as its shorter last one)?
    bool takes(uint32_t len) const {
        if (closed || count >= kMaxSegments || len > seg_len) return false;
        return size_t(count + 1) * seg_len <= kMaxGsoPayload;
    }
    // The msghdr for sendmsg: every datagram one iovec, UDP_SEGMENT = seg_len.
    void prepare() {
        msg = {};
        msg.msg_name = has_addr ? &addr : nullptr;
        msg.msg_namelen = has_addr ? sizeof addr : 0;
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        if (count < 2) return;  // a single datagram needs no segmenting
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = IPPROTO_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        std::memcpy(CMSG_DATA(c), &seg_len, sizeof seg_len);
    }
};

// A fixed pool of batches, a few open (collecting) at a time. Single-threaded
// (the worker's). No allocation after construction.
struct SendBatcher {
    static constexpr unsigned kBatches = 256;  // in flight and open together
    static constexpr unsigned kOpen = 8;       // destinations collected at once

    SendBatch batches[kBatches];
    uint32_t free_stack[kBatches];
    unsigned free_n = kBatches;
    uint32_t open[kOpen];
    unsigned open_n = 0;

    SendBatcher() {
        for (unsigned i = 0; i < kBatches; ++i) free_stack[i] = kBatches - 1 - i;
    }

    // Adds datagram `idx` (`len` bytes at `data`) for `fd` (and `addr`, when
    // the socket is not connected). A batch that cannot take it goes out
    // first through flush(batch index). Returns false when no batch is free:
    // the caller sends the datagram on its own.
    template <typename Flush>
    bool add(int fd, const sockaddr_in* addr, uint8_t link, uint32_t idx, uint8_t* data, uint32_t len, Flush&& flush) {
        for (unsigned k = 0; k < open_n; ++k) {
            SendBatch& b = batches[open[k]];
            if (!b.same_destination(fd, addr)) continue;
            if (b.takes(len)) {
                append(b, idx, data, len);
                if (b.closed || b.count == kMaxSegments) flush_open(k, flush);
                return true;
            }
            flush_open(k, flush);  // a bigger datagram, or full: what it holds goes first
            break;
        }
        if (free_n == 0) return false;
        if (open_n == kOpen) flush_open(0, flush);  // the oldest destination goes out
        uint32_t bi = free_stack[--free_n];
        SendBatch& b = batches[bi];
        b.fd = fd;
        b.has_addr = addr != nullptr;
        if (addr) b.addr = *addr;
        b.link = link;
        b.seg_len = uint16_t(len);
        b.count = 0;
        b.closed = false;
        append(b, idx, data, len);
        open[open_n++] = bi;
        return true;
    }

    // Every open batch goes out (once per loop, before the submit).
    template <typename Flush>
    void flush_all(Flush&& flush) {
        while (open_n) flush_open(0, flush);
    }

    // The batch's send completed and its datagrams were handled.
    void release(uint32_t bi) { free_stack[free_n++] = bi; }

  private:
    static void append(SendBatch& b, uint32_t idx, uint8_t* data, uint32_t len) {
        b.idx[b.count] = idx;
        b.iov[b.count] = {data, len};
        ++b.count;
        if (len < b.seg_len) b.closed = true;
    }
    template <typename Flush>
    void flush_open(unsigned k, Flush& flush) {
        uint32_t bi = open[k];
        for (unsigned j = k + 1; j < open_n; ++j) open[j - 1] = open[j];
        --open_n;
        batches[bi].prepare();
        flush(bi);
    }
};

}  // namespace onebox::dataplane
