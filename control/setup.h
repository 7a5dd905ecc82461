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
//   rule=<priority> <table> <fwmark> <invert 0|1> <suppress_prefixlen or -1> [<fwmask>]
//        (fwmask only when it is not 0xffffffff; files without it read as 0xffffffff)
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
#include "wan_links.h"

namespace onebox::setup {

// Client policy routing, wg-quick style: the suppress rule runs first so
// routes more specific than a default route (LAN, the server's own host
// route...) still come from main; everything else not carrying our fwmark
// goes to the tunnel table.
inline constexpr uint32_t kSuppressRulePriority = 0x6f6e - 1;  // 28525: lookup main suppress_prefixlength 0
inline constexpr uint32_t kFwmarkRulePriority = 0x6f6e;        // 28526: not fwmark FWMARK/0xffff lookup TABLE
// The 28526 rule compares only the low 16 bits of the mark: the high 16 bits
// say which WAN link a packet of ours leaves by (link_fwmark below), and all
// of those must bypass the tunnel too.
inline constexpr uint32_t kFwmarkRuleMask = 0xffff;
// Per-WAN-link rules "fwmark link_fwmark(i) lookup link_table(i)" at 28500 + i,
// ahead of the suppress rule, so link i's packets leave by link i whatever
// main's (or a more specific main route's) choice would be.
inline constexpr uint32_t kLinkRulePriority = 28500;

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
// link up with the MTU; the two rules above (28526 with mask kFwmarkRuleMask); "0.0.0.0/0 dev TUN table TABLE";
// the client nftables table.
// Server: ip_forward=1; address, link up, MTU; the server nftables table.
// The TUN must already exist. Fails with EEXIST if state_path exists (an earlier
// run was not cleaned up: call cleanup_stale() first). On failure the caller
// calls undo(state_path).
Status apply(const proto::Config& cfg, const std::string& state_path);

// ---- per-WAN-link policy routing (bonding) ---------------------------------------------
//
// Link i (0 <= i < wan::kMaxLinks) sends from a socket marked link_fwmark(cfg, i);
// a rule (priority kLinkRulePriority + i) sends that mark to table
// link_table(cfg, i), which holds "default via GATEWAY dev IFNAME" (or
// "default dev IFNAME" without gateway), so link i's packets leave by its own
// gateway whatever the main table says.
uint32_t link_fwmark(const proto::Config& cfg, unsigned i);  // cfg.fwmark | ((i + 1) << 16)
uint32_t link_table(const proto::Config& cfg, unsigned i);   // cfg.route_table + 1 + i

// Journals, then adds, link i's route and rule. Called again for the same i
// (the link's gateway or interface changed), it replaces the route (and keeps
// the rule), and drops the old route from the state file. Normally called after
// apply(); if state_path does not exist it starts a new state file (role
// client) so that undo() can still revert it. EINVAL for i >= wan::kMaxLinks, an
// empty interface name, or a state file with lines it does not understand (it
// would have to rewrite them). EEXIST if an identical rule that is not ours exists.
Status add_link_route(const proto::Config& cfg, const std::string& state_path, unsigned i, const wan::WanLink& link);
// Removes link i's route and rule (those in the state file; "already gone" is
// fine) and their lines from the state file. Nothing to do (no state file, or
// no entries for i) is success.
Status remove_link_route(const proto::Config& cfg, const std::string& state_path, unsigned i);

// Reverses everything named in state_path, best effort: each failure is logged
// with log::warn and the rest still runs. Then deletes state_path. Does nothing
// if state_path does not exist, so calling it twice is safe. A sysctl is only
// restored if it still holds the value we set (someone may have changed it
// since); the TUN link is only deleted if it is still the tun device we
// configured and its owner is gone (our own TUN disappears when the data plane
// closes it).
// keep_firewall: leave the nftables table in place (a server's keep_nat).
void undo(const std::string& state_path, bool keep_firewall = false);

// At start: if state_path exists, an earlier instance died without undo()
// (kill -9, a crash): log it and undo() its changes.
// Leaves the file alone if the process that wrote it is still running.
void cleanup_stale(const std::string& state_path);

}  // namespace onebox::setup
