// hex.h — helpers shared by the unit tests.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace onebox::test {

// libsodium is initialised once, before any test case runs.
inline const bool sodium_ready = sodium_init() >= 0;

inline std::string to_hex(const uint8_t* p, size_t n) {
    std::string s(2 * n + 1, '\0');
    sodium_bin2hex(s.data(), s.size(), p, n);
    s.pop_back();
    return s;
}

// "0b 01 02 ..." (lower-case hex digit pairs, spaces ignored) -> bytes.
inline std::vector<uint8_t> unhex(const char* s) {
    std::vector<uint8_t> out;
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (; *s; ++s) {
        if (*s == ' ') continue;
        out.push_back(uint8_t(nib(s[0]) << 4 | nib(s[1])));
        ++s;
    }
    return out;
}

}  // namespace onebox::test
