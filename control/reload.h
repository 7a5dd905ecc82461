// reload.h — SIGHUP: read the config file again and apply what can change
// while running.
#pragma once

#include "daemon.h"
#include "result.h"
#include "proto/config.h"
#include "proto/scheduler.h"

namespace onebox {

// The scheduler mode for a configured mode.
proto::SchedMode sched_mode(proto::Mode m);
const char* mode_name(proto::Mode m);

// Re-reads d.paths.config. A config that does not parse is refused with one
// error line and the running one stays. Otherwise applies, at once: the
// client's mode, every link's [client.link.NAME] overrides, probe_interval,
// link_hold and log_level; and names, in one line, each other setting that
// changed and needs a restart (addresses, ports, key, TUN, routing, NAT).
// Returns the refusal (the config's error) or success.
Status reload_config(Daemon& d);
// Tells the worker the running policy: mode, probe_interval, link_hold (after
// a reload, or SetMode over D-Bus).
void send_policy(Daemon& d);

}  // namespace onebox
