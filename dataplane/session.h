// session.h — one authenticated session as the data plane sees it.
//
// Created by the control thread after a handshake and handed to the owning
// worker by a command; from then on only that worker touches it, except the
// atomics that the control thread reads (last_rx_ns, confirmed). The control
// thread deletes it only after the worker has handed it back.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>

#include "proto/aead.h"
#include "proto/bond.h"
#include "proto/keyring.h"
#include "proto/wire.h"
#include "proto/reorder.h"
#include "proto/replay.h"

namespace onebox::dataplane {

// An address packed into one word so the control thread can read it atomically.
inline uint64_t pack_addr(const sockaddr_in& a) {
    return uint64_t(a.sin_addr.s_addr) << 16 | a.sin_port;
}

// Server side: one of the client's WAN links, learned from authenticated
// packets carrying that link id, and followed when its address changes.
struct PeerLink {
    sockaddr_in addr{};
    std::atomic<uint64_t> key{0};   // pack_addr(addr), 0 = never heard (control reads it)
    uint64_t last_rx_ns = 0;
    uint64_t last_tx_ns = 0;
    bool retired = false;           // the client said this link is gone
};

// What the control thread shows of one session (the server's per-client
// D-Bus object): written by the owning worker alone with relaxed stores,
// read by the control thread at any time, like counters.h.
struct SessionStats {
    std::atomic<uint64_t> tx_packets{0}, tx_bytes{0};   // inner packets sent to the peer
    std::atomic<uint64_t> rx_packets{0}, rx_bytes{0};   // inner packets delivered to the TUN
    struct Link {
        std::atomic<uint64_t> tx_bytes{0}, rx_bytes{0};  // inner bytes per link (resends and copies included)
        // Gauges, every timer tick: proto::LinkState, smoothed RTT, probe loss.
        std::atomic<uint64_t> state{0}, srtt_us{0}, loss_pm{0};
    } links[proto::kMaxLinks];
    std::atomic<uint8_t> mode{0};  // proto::SchedMode the session schedules by (the client's)
};

struct Session {
    uint32_t id = 0;
    uint32_t tunnel_ip = 0;          // host order; the only inner source allowed (server)
    uint32_t reorder_marks = 0;      // pass_gap's marks in the reorder buffer (counted in its `held`, not packets)
    sockaddr_in peer{};              // server: the handshake's source, until links are heard

    // Keys in use, keys from a newer handshake that the peer has not yet
    // confirmed, and the receive key before the last rekey (keyring.h). The
    // server switches when a packet opens under `pending`, so a replayed
    // handshake can never displace a working session.
    proto::KeyRing keys;
    // Client: this object only carries the keys of a rekey for the live
    // session with the same id (the worker takes them and hands it back).
    bool rekey = false;
    std::atomic<uint64_t> key_uses{0};     // keys.uses, published each tick (control reads)

    // Two nonce channels (wire.h), each with its own counter and replay window:
    // data (Data, Keepalive, Close; through the reorder buffer) and control
    // (Feedback, Probe; acted on at once).
    uint32_t key_gen = 0;            // bumped when a fresh start restarts the sequence spaces
    uint64_t tx_seq = 0;             // next data-channel sequence number (goes on across a rekey)
    uint64_t tx_ctl_seq = 0;         // next control-channel sequence number
    proto::ReplayWindow replay;
    proto::ReplayWindow replay_ctl;
    proto::ReorderBuffer reorder;
    proto::Bond bond;                // scheduler, link estimators, feedback and probes

    std::atomic<uint64_t> last_rx_ns{0};   // last authenticated packet (control reads)
    std::atomic<bool> confirmed{false};    // the peer has used the current keys
    PeerLink links[proto::kMaxLinks];      // server: the client's links by link id
    SessionStats stats;

    // The worker's hold list (hold.h): how many of this session's packets
    // wait there, the pass in which the links last had no room for the
    // oldest of them, the last pass that looked at its oldest packet (to
    // drop it early?), and when one was last dropped early (0: never;
    // HoldList::signal_due).
    uint32_t held = 0;
    uint64_t hold_blocked_pass = 0;
    uint64_t hold_signal_pass = 0;
    uint64_t hold_signal_ns = 0;
};

}  // namespace onebox::dataplane
