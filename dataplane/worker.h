// worker.h — one data-plane worker: a thread that owns an io_uring, a buffer
// pool, the TUN fd and the UDP socket, and moves packets between them.
//
// Steady state per loop iteration: one io_uring_enter that submits every
// queued read/write/send and waits for completions (or the next timer), then
// a pass over the batch of completions. No allocation, no lock, no other
// syscall per packet.
#pragma once

#include <cstdint>
#include <string>

#include "channel.h"
#include "proto/config.h"
#include "proto/scheduler.h"

namespace onebox::dataplane {

struct WorkerConfig {
    proto::Role role = proto::Role::Client;
    int tun_fd = -1;
    int udp_fd = -1;               // client: connected; server: bound
    uint32_t buffers = 8192;       // packet buffers in the pool (a quarter may be held for resending)
    unsigned tun_read_depth = 64;  // TUN reads kept in flight
    unsigned udp_recv_depth = 64;  // UDP receives kept in flight
    // Core to pin to; -1 = none, the kernel places the thread. Pinned to the
    // core it started on, the one worker shared that core with the other
    // daemon's in half the runs of the one-machine lab (1.3 instead of
    // 2.0 Gbit/s up); unpinned it gave 1.8 every time.
    int cpu = -1;
    uint64_t keepalive_ns = 1'000'000'000;      // send one after this much silence
    uint64_t reorder_gap_ns = 50'000'000;       // gap timeout until the links' delays are known
    proto::SchedMode mode = proto::SchedMode::Bond;  // client: [client] mode (told to the server)
    uint64_t probe_interval_ns = 500'000'000;   // idle probe interval per link
    uint64_t link_hold_ns = 2'000'000'000;      // a failed link's clean time before reuse
    uint32_t loss_limit_pm = 0;                 // a lossy link's share lost, thousandths (0 = off)
    uint64_t repair_window_ns = 500'000'000;    // lost datagrams younger than this are sent again (0 = off)
    bool light_copies = true;                   // pings and TCP acks also on the other links (proto/bond.h)
    uint64_t queue_budget_ns = 10'000'000;      // the scheduler's admission budget (proto/scheduler.h)
    uint64_t queue_hold_ns = 0;                 // how long a refused packet may wait (worker.cpp, hold)
    bool offloads = true;                       // UDP GSO and GRO when the kernel has them
    bool tun_vnet = false;                      // the TUN has IFF_VNET_HDR and TSO (tun.h, proto/tso.h)
    uint32_t slabs = 80;                        // GRO and TSO slabs of 64 KiB (buffers.h)
    unsigned tun_slab_reads = 8;                // TUN reads in flight into slabs, with tun_vnet
    unsigned slab_recv_depth = 8;               // slab receives in flight per client link (server: 4x)
    // Multishot receives from a provided buffer ring of slabs (buf_ring.h)
    // where the kernel has them; false: one receive per slab (the fallback,
    // kept testable with ONEBOX_MULTISHOT=0 in the environment).
    bool multishot = true;
    // Registered files (the TUN and the sockets in the ring's file table)
    // and the ring's own fd; false: plain fds (ONEBOX_FIXED_FILES=0).
    bool fixed_files = true;
};

// Runs the worker loop on the calling thread until channel.stop is set.
// Returns 0, or -errno if the ring could not be set up (logged by the caller).
int run_worker(const WorkerConfig& cfg, Channel& channel);

// Monotonic clock in nanoseconds (the time value passed into proto/).
uint64_t now_ns();

// Time from `then` to `now`, zero if `then` is later. The worker stamps
// last_rx_ns with its own, later clock reading than the control thread's
// `now`, so a plain subtraction would wrap to ~2^64 and declare a live
// session dead.
inline uint64_t elapsed(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }

}  // namespace onebox::dataplane
