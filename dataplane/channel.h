// channel.h — what the control thread and a worker say to each other.
//
// Commands flow control -> worker, events worker -> control, each through an
// SPSC ring plus an eventfd to wake the other side. Nothing here is touched
// per packet except the counters.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>

#include "counters.h"
#include "proto/scheduler.h"
#include "proto/wire.h"
#include "session.h"
#include "spsc.h"

namespace onebox::dataplane {

struct Command {
    enum class Kind : uint8_t {
        InstallSession,  // session: a new session, or new pending keys for an existing id
        RemoveSession,   // session_id: forget it (the worker hands the object back)
        CloseSession,    // server, session_id: tell the client (Close), then RemoveSession
        CloseAll,        // tell every peer we are stopping (sealed Close packets)
        AddLink,         // client: start using `fd` as WAN link `link`
        RemoveLink,      // client: stop using WAN link `link` (LinkRemoved follows)
        SetPolicy,       // reload: `mode` (client), probe_interval_ns, link_hold_ns, loss_limit_pm, repair_window_ns, light_copies,
                         // queue_budget_ns, queue_hold_ns
        SetLinkOverrides,  // client reload: link `link`'s weight, max rates, priority
    };
    Kind kind = Kind::InstallSession;
    Session* session = nullptr;
    uint32_t session_id = 0;
    uint8_t link = 0;
    int fd = -1;
    // AddLink: the user's overrides for this link (0 = learn it).
    double weight = 0;
    uint64_t max_rate_up_bps = 0;      // cap on what the client sends on it
    uint64_t max_rate_down_bps = 0;    // cap on what the server sends on it (told in keepalives)
    uint8_t priority = 1;              // mode backup: 1 first
    uint16_t mtu = 0;                  // AddLink: the interface's MTU (0 = unknown: 1500)
    // SetPolicy.
    proto::SchedMode mode = proto::SchedMode::Bond;
    uint64_t probe_interval_ns = 0;
    uint64_t link_hold_ns = 0;
    uint32_t loss_limit_pm = 0;
    uint64_t repair_window_ns = 0;
    bool light_copies = true;
    uint64_t queue_budget_ns = 10'000'000;
    uint64_t queue_hold_ns = 0;
};

// Control events: few, and every one matters, so they never share a ring with
// handshake datagrams (which anyone on the internet can send).
struct Event {
    enum class Kind : uint8_t {
        SessionFree,       // the worker no longer references `session`: delete it
        SessionConfirmed,  // the peer sent its first packet under new keys
        TunFailed,         // the TUN fd returned a permanent error (err)
        PeerClosed,        // the peer said it is stopping (an authenticated Close)
        LinkRemoved,       // client: the worker is done with link `link`'s fd
        LinkFailed,        // link `link` of `session_id` stalled, went Down or (`lossy`)
                           // was taken out for loss (`loss_pm`, for `hold_ms` at least);
                           // `err` = datagrams sent again elsewhere, `since_ms` = how far back
    };
    Kind kind = Kind::SessionFree;
    Session* session = nullptr;
    uint32_t session_id = 0;
    int err = 0;
    uint8_t link = 0;
    uint32_t since_ms = 0;
    bool lossy = false;
    uint32_t loss_pm = 0;
    uint32_t hold_ms = 0;
};

// A handshake datagram for the control thread. When this ring is full the
// worker drops the datagram and counts it: a flood costs handshakes, not state.
struct HandshakeDatagram {
    sockaddr_in from{};
    uint16_t len = 0;
    uint8_t link = 0;  // client: the WAN link (socket) it arrived on
    uint8_t bytes[proto::kInitSize]{};
};

struct Channel {
    SpscRing<Command, 256> commands;
    SpscRing<Event, 1024> events;
    SpscRing<HandshakeDatagram, 1024> handshakes;
    Counters counters;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> heartbeat{0};  // loop iterations; the watchdog reads it
    int worker_wake_fd = -1;   // eventfd the worker's ring reads
    int control_wake_fd = -1;  // eventfd the control loop polls
};

}  // namespace onebox::dataplane
