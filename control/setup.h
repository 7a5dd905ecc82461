// setup.h — the system changes onebox makes at start (addresses, policy
// routing, sysctls, nftables) and their undo, with crash recovery.
//
// apply() journals every change to a small state file *before* making it, so
// whatever happens afterwards (clean exit, error, kill -9) the file names
// everything that may need reverting:
//
//   daemon start:  cleanup_stale(path); create TUN; apply(cfg, path) (on error: undo(path))
//   daemon exit:   undo(path); close TUN
//
// State file (key=value lines, rewritten atomically with tmp + fsync + rename):
//   version=1
//   role=client|server
//   pid=<pid of the instance that wrote it>
//   link=<tun name> <ifindex>
//   sysctl=<key> <original value> <value we set>
//   rule=<priority> <table> <fwmark> <invert 0|1> <suppress_prefixlen or -1>
//   route=<dst>/<prefix> <table> <ifname or -> <gateway> <metric>
//   nft=client|server
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../proto/config.h"
#include "netlink.h"
#include "result.h"

namespace onebox::setup {

// Client policy routing, wg-quick style: the suppress rule runs first so
// routes more specific than a default route (LAN, the server's own host
// route...) still come from main; everything else not carrying our fwmark
// goes to the tunnel table.
inline constexpr uint32_t kSuppressRulePriority = 0x6f6e - 1;  // 28525: lookup main suppress_prefixlength 0
inline constexpr uint32_t kFwmarkRulePriority = 0x6f6e;        // 28526: not fwmark FWMARK lookup TABLE

struct SysctlChange {
    std::string key;       // e.g. "net/ipv4/ip_forward"
    std::string original;  // value before apply(); restored by undo()
    std::string value;     // value apply() wrote
};

// Everything apply() changed or was about to change: the state file's content.
struct Applied {
    proto::Role role = proto::Role::Client;
    long pid = 0;
    std::string tun;           // TUN device name (created by the data plane)
    unsigned tun_ifindex = 0;  // tells our TUN from a later one with the same name
    std::vector<SysctlChange> sysctls;
    std::vector<netlink::Rule> rules;
    std::vector<netlink::Route> routes;
    bool nft = false;          // the role's nftables table
};

std::string format_state(const Applied& state);
// Best effort: fills in every line it understands; false if some line was not.
bool parse_state(std::string_view text, Applied& out);

// Client: sysctls src_valid_mark=1 and ip_forward=1; tun_ip/prefix on the TUN,
// link up with the MTU; the two rules above; "0.0.0.0/0 dev TUN table TABLE";
// the client nftables table.
// Server: ip_forward=1; address, link up, MTU; the server nftables table.
// The TUN must already exist. Fails with EEXIST if state_path exists (an earlier
// run was not cleaned up: call cleanup_stale() first). On failure the caller
// calls undo(state_path).
Status apply(const proto::Config& cfg, const std::string& state_path);

// Reverses everything named in state_path, best effort: each failure is logged
// with log::warn and the rest still runs. Then deletes state_path. Does nothing
// if state_path does not exist, so calling it twice is safe. A sysctl is only
// restored if it still holds the value we set (someone may have changed it
// since); the TUN link is only deleted if it is still the tun device we
// configured and its owner is gone (our own TUN disappears when the data plane
// closes it).
void undo(const std::string& state_path);

// At start: if state_path exists, an earlier instance died without undo()
// (kill -9, a crash): log it and undo() its changes.
// Leaves the file alone if the process that wrote it is still running.
void cleanup_stale(const std::string& state_path);

}  // namespace onebox::setup
