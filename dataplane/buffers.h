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
    sockaddr_in addr{};       // peer address for recvmsg/sendmsg
    iovec iov{};
    msghdr msg{};
};

struct BufferPool {
    uint32_t count = 0;
    std::unique_ptr<uint8_t[]> memory;    // count * kBufferSize, allocated once
    std::unique_ptr<BufferMeta[]> meta;
    std::unique_ptr<uint32_t[]> free_stack;
    uint32_t free_top = 0;                // number of free buffers

    explicit BufferPool(uint32_t n)
        : count(n), memory(new uint8_t[size_t(n) * kBufferSize]), meta(new BufferMeta[n]),
          free_stack(new uint32_t[n]), free_top(n) {
        for (uint32_t i = 0; i < n; ++i) free_stack[i] = n - 1 - i;
    }
    uint8_t* data(uint32_t idx) { return memory.get() + size_t(idx) * kBufferSize; }
    uint32_t get() { return free_top ? free_stack[--free_top] : kNoBuffer; }
    void put(uint32_t idx) { free_stack[free_top++] = idx; }
    uint32_t available() const { return free_top; }
};

}  // namespace onebox::dataplane
