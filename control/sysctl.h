// sysctl.h — set /proc/sys values and remember the originals so exit (or the
// next start after a crash) can put them back.
#pragma once

#include <string>
#include <vector>

#include "result.h"

namespace onebox::sysctl {

Status read(const std::string& key, std::string& value);   // key like "net/ipv4/ip_forward"
Status write(const std::string& key, const std::string& value);

}  // namespace onebox::sysctl
