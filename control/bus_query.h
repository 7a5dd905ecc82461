// bus_query.h — the CLI's side of D-Bus: read every object of a running
// onebox-client/onebox-server (GetManagedObjects) and call its methods.
// Errors are values: ESRCH, the daemon is not on the bus (not running);
// EACCES, the bus's policy refused the call (not root); a Status with a
// reason, the daemon answered with that error; any other errno without a
// reason, the bus itself could not be reached.
#pragma once

#include <cstdint>
#include <string>

#include "bus_value.h"
#include "proto/config.h"
#include "result.h"

namespace onebox::bus {

// Every object, interface and property under the role's root path.
Status fetch_objects(proto::Role role, ObjectMap& out);

// Calls a method without a reply body. `arg_sig` is "", "s" or "b" with
// the matching argument. A D-Bus error comes back in the Status's reason.
Status call_method(proto::Role role, const std::string& path, const std::string& interface, const std::string& method,
                   const std::string& arg_sig = "", const std::string& s_arg = "", bool b_arg = false);

// Waits until the role's name has no owner (the daemon has exited after
// restoring routes). False if it still has one after timeout_ms.
bool wait_until_gone(proto::Role role, unsigned timeout_ms);

}  // namespace onebox::bus
