// read_file.h — read a whole (small) file from an open fd, retrying EINTR.
#pragma once

#include <cstddef>
#include <string>

namespace onebox {

// Appends the fd's contents to out, stopping with EFBIG once more than
// max_bytes were read. Returns 0 or a positive errno. Does not close fd.
int read_all(int fd, std::string& out, size_t max_bytes);

}  // namespace onebox
