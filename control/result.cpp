// result.cpp — Status text.
#include "result.h"

#include <cstring>

namespace onebox {

std::string Status::message() const {
    // strerror is thread-safe in glibc for valid errnos (it returns static strings).
    return "Failed to " + what + ": " + (reason.empty() ? std::strerror(err) : reason);
}

}  // namespace onebox
