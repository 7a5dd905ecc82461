// bus.h — onebox on the system bus (sd-bus, control thread only): the
// objects of bus_objects.h with their methods, an ObjectManager at the
// root, PropertiesChanged coalesced to one look every 500 ms, and links
// (client) or clients (server) announced with InterfacesAdded/Removed.
//
// The daemon works without a bus: a connection that fails (no dbus-daemon,
// refused by policy) is logged once and tried again every 5 s.
#pragma once

#include <cstdint>

namespace onebox {
struct Daemon;
}

namespace onebox::bus {

struct Service;

// Connects ($DBUS_SYSTEM_BUS_ADDRESS when set) and takes the role's name.
void start(Daemon& d, uint64_t now_ns);
// For the control loop's poll(): the connection's fd (-1 when there is
// none) and the events it waits for.
int poll_fd(const Daemon& d);
short poll_events(const Daemon& d);
// After poll(): handles every pending message (method calls above all).
void process(Daemon& d);
// Every control tick: announces what changed (at most every 500 ms),
// reconnects when the bus went away.
void tick(Daemon& d, uint64_t now_ns);
// Announces the current state at once (State = "stopping").
void announce_now(Daemon& d, uint64_t now_ns);
// Gives the name back and disconnects: the last thing before exit, so a
// `stop` that waits for the name to vanish knows routes are restored.
void stop(Daemon& d);

// Deleter for Daemon's unique_ptr<Service>.
struct ServiceDeleter {
    void operator()(Service* s) const;
};

}  // namespace onebox::bus
