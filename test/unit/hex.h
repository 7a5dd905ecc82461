// hex.h — helpers shared by the unit tests.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace onebox::test {

// libsodium is initialised once, before any test case runs.
inline const bool sodium_ready = sodium_init() >= 0;

inline std::string to_hex(const uint8_t* p, size_t n) {
    std::string s(2 * n + 1, '\0');
    sodium_bin2hex(s.data(), s.size(), p, n);
    s.pop_back();
    return s;
}

}  // namespace onebox::test
