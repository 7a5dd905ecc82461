// tun.h — open the TUN device the data plane reads and writes.
#pragma once

#include <string>

#include "fd.h"

namespace onebox::dataplane {

// Creates (or attaches to) TUN device `name` without packet information
// headers, non-blocking. Returns the fd or -errno.
int open_tun(const std::string& name);

}  // namespace onebox::dataplane
