// bus_objects.h — what onebox shows on D-Bus: every object's path,
// interface and properties, built from the daemon's state (control thread).
// The property lists here are the one source of truth: bus.cpp builds its
// vtables from them, and control/org.onebox.*.xml is checked against the
// live introspection by a lab test.
//
//   client  org.onebox.Client1        /org/onebox/Client1
//           org.onebox.Client1.Link   /org/onebox/Client1/link/<interface>
//   server  org.onebox.Server1        /org/onebox/Server1
//           org.onebox.Server1.Client /org/onebox/Server1/client/<session id, 8 hex digits>
//
// Reading never takes a lock on the packet path: counters and gauges are
// the workers' relaxed atomics (dataplane/counters.h, SessionStats).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bus_value.h"
#include "proto/config.h"

namespace onebox {
struct Daemon;
}

namespace onebox::bus {

inline constexpr const char* kClientName = "org.onebox.Client1";
inline constexpr const char* kServerName = "org.onebox.Server1";
inline constexpr const char* kClientPath = "/org/onebox/Client1";
inline constexpr const char* kServerPath = "/org/onebox/Server1";
inline constexpr const char* kLinkInterface = "org.onebox.Client1.Link";
inline constexpr const char* kPeerInterface = "org.onebox.Server1.Client";
inline constexpr const char* kLinkPrefix = "/org/onebox/Client1/link";
inline constexpr const char* kPeerPrefix = "/org/onebox/Server1/client";
// The ObjectManager: GetManagedObjects lists what is below it, so it sits
// above the daemon object.
inline constexpr const char* kManagerPath = "/org/onebox";

inline const char* bus_name(proto::Role r) { return r == proto::Role::Client ? kClientName : kServerName; }
inline const char* root_path(proto::Role r) { return r == proto::Role::Client ? kClientPath : kServerPath; }

// Bit rates per object, from byte counters sampled by the control thread
// (at most every 500 ms): what moved since the previous sample.
struct Rate {
    uint64_t tx_bytes = 0, rx_bytes = 0, at_ns = 0;
    uint64_t tx_bps = 0, rx_bps = 0;
    void sample(uint64_t now_ns, uint64_t tx, uint64_t rx);
};

struct BusView {
    uint64_t started_ns = 0;       // monotonic, for Uptime
    uint64_t started_wall_us = 0;  // CLOCK_REALTIME, for StartedAt
    std::map<std::string, Rate> rates;  // by object path
};

struct Object {
    std::string path;
    std::string interface;
    Props props;
};

// Every object the daemon has now: the daemon object first, then its links
// (client) or clients (server).
std::vector<Object> build_objects(const Daemon& d, const BusView& view, uint64_t now_ns);
// Samples every object's byte counters into view.rates (and forgets objects gone).
void sample_rates(const Daemon& d, BusView& view, uint64_t now_ns);

// An object of each kind with placeholder values, so bus.cpp knows the
// names and signatures of every property before any link or client exists.
Props prototype(const std::string& interface);

// "/org/onebox/Client1/link/wan0" for interface "wan0" (sd-bus's escaping:
// anything but [A-Za-z0-9] as _XX), and back ("" if not a link path).
std::string link_path(const std::string& ifname);
std::string link_name_from_path(const std::string& path);
std::string peer_path(uint32_t session_id);
bool peer_id_from_path(const std::string& path, uint32_t* id);

}  // namespace onebox::bus
