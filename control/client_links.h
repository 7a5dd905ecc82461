// client_links.h — the client's WAN links as the control thread manages
// them: found by rtnetlink, each with its own socket (bound to its interface)
// and policy route, handed to the worker, and followed as they come and go.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "proto/wire.h"
#include "wan_links.h"

namespace onebox {

struct Daemon;

struct LinkSlot {
    bool used = false;       // the worker has (or is giving back) this link
    bool removing = false;   // RemoveLink sent, waiting for LinkRemoved
    wan::WanLink link;
    int fd = -1;
    bool fallback = false;   // no WAN found: one unbound socket on the main table
};

// The name the fallback link (no WAN found, the main table routes) goes by.
inline constexpr const char* kFallbackLinkName = "default-route";

struct ClientLinks {
    LinkSlot slots[proto::kMaxLinks];
    wan::Monitor monitor;
    bool rescan = false;     // a change was seen: discover again on the next tick
    // Interfaces switched off at run time (D-Bus SetEnabled(false)): not used
    // until switched on again or the daemon restarts, with what discovery
    // last saw of them (ifindex 0 if it never saw them).
    std::map<std::string, wan::WanLink> disabled;
    unsigned tun_mtu = 0;    // the TUN's MTU as last set (links_follow_mtu)
};

// Finds the links, opens their sockets and routes, and queues AddLink
// commands. Fails only if not even a fallback socket could be opened.
Status links_start(Daemon& d);
// Called when the monitor fd is readable, and on every tick.
void links_on_netlink(Daemon& d);
void links_tick(Daemon& d);
// The worker gave back link i's fd.
void links_on_removed(Daemon& d, unsigned i);
// A socket to send handshakes on, or -1: attempt n uses the n-th usable link
// (round the list), so a dead link cannot hold the handshake up.
int links_handshake_fd(const Daemon& d, unsigned attempt = 0);
// The link (slot) that handshake attempt `attempt` goes out on, -1 if none.
int links_handshake_slot(const Daemon& d, unsigned attempt);
// Switches WAN interface `ifname` off (its traffic moves to the other links
// at once) or back on (used again once discovery finds it). Refuses to
// switch off the last link in use, and names it.
Status links_set_enabled(Daemon& d, const std::string& ifname, bool enabled);
// The TUN's MTU follows the smallest path MTU of the links in use (what the
// worker's searches found, less our overhead), at most the configured MTU
// and at least 1220, so every packet fits every link whole.
void links_follow_mtu(Daemon& d);
// Closes every fd (after the worker has stopped).
void links_close_all(Daemon& d);

}  // namespace onebox
