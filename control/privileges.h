// privileges.h — give up, once set-up is done, every capability the running
// daemon does not use.
//
// What stays: CAP_NET_ADMIN (routes, rules and nftables for links that come
// and go and for the undo at exit, SO_MARK on new link sockets), and on a
// server that steers its workers CAP_BPF (the steering map is updated per
// session, and bpf() wants it even on an fd it holds). Everything else goes
// from the effective, permitted, inheritable, ambient and (when we may change
// it) bounding sets, and no_new_privs is set. Capabilities belong to each
// thread, so this runs before the workers start: they inherit the reduced
// sets.
#pragma once

#include "result.h"

namespace onebox::privileges {

// Drops to CAP_NET_ADMIN (plus CAP_BPF with keep_bpf). A capability the
// process does not hold is not asked for: this never adds one.
Status drop(bool keep_bpf);

}  // namespace onebox::privileges
