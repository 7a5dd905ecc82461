// steering.h — the kernel programs that hand each packet of a session to the
// worker that owns it, so a session's state lives on one core and is never
// shared or locked.
//
// A session is owned by worker `session_id % workers` (owner_of). Upstream,
// a classic BPF program on the server's SO_REUSEPORT group reads the session
// id from our header (bytes 4..7 of the UDP payload) and returns that index,
// so every link of a client lands on the same socket. Downstream, an eBPF
// program on the multi-queue TUN looks the packet's destination (the
// client's tunnel address) up in a hash map the control thread fills when it
// installs a session, and returns the owner's queue. Loading the eBPF needs
// CAP_BPF (or CAP_SYS_ADMIN); without it the server runs one worker.
#pragma once

#include <cstdint>

#include "fd.h"

namespace onebox::dataplane {

inline unsigned owner_of(uint32_t session_id, unsigned workers) {
    return workers > 1 ? session_id % workers : 0;
}

// Attaches the session-id program to the reuseport group `fd` belongs to
// (its sockets in worker order). 0 or -errno.
int attach_reuseport_steering(int fd, unsigned workers);

struct TunSteering {
    Fd map;   // BPF hash map: tunnel address (host order) -> TUN queue
    Fd prog;  // the socket-filter program TUNSETSTEERINGEBPF runs
};

// Makes the map (room for `max_entries` addresses) and the program, and
// attaches it to the multi-queue TUN `tun_fd` belongs to. 0 or -errno.
int open_tun_steering(int tun_fd, unsigned max_entries, TunSteering& out);

// Takes the program off the TUN again (a fallback to one worker). 0 or -errno.
int detach_tun_steering(int tun_fd);

// Points tunnel address `ip` (host order) at TUN queue `queue`, or forgets it.
// 0 or -errno.
int steer_address(const TunSteering& s, uint32_t ip, uint32_t queue);
int unsteer_address(const TunSteering& s, uint32_t ip);

}  // namespace onebox::dataplane
