// cookie.h — a busy server asks handshakers to prove their address first.
//
// mac1 already keeps out everyone without a key. A key holder could still
// make the server do a key exchange per Init from any number of spoofed
// addresses (the per-source limit, ratelimit.h, counts per address). So when
// the server has done more than kBusyHandshakes key exchanges in the last
// second, an Init whose mac2 was not made with the cookie for its source
// address gets a CookieReply (handshake.h) instead: a spoofer never sees it,
// a real client answers with a new Init carrying mac2 (PROTOCOL.md, "Cookies").
//
//   cookie = BLAKE2b-128(key = secret, source IPv4 || port)
//
// The secret is 32 random bytes, replaced every kCookieSecretLifetimeNs.
// Pure: time and randomness are arguments.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace onebox::proto {

inline constexpr uint64_t kCookieSecretLifetimeNs = 120'000'000'000;  // the client keeps a cookie as long
inline constexpr unsigned kBusyHandshakes = 200;  // key exchanges per second that make a server busy

struct CookieJar {
    uint8_t secret[32]{};
    uint64_t born_ns = 0;
    bool has_secret = false;

    CookieJar() = default;
    CookieJar(const CookieJar&) = delete;
    CookieJar& operator=(const CookieJar&) = delete;
    ~CookieJar();

    bool needs_secret(uint64_t now) const { return !has_secret || now - born_ns >= kCookieSecretLifetimeNs; }
    void set_secret(const uint8_t random32[32], uint64_t now);
    // `ip` and `port` in network byte order, as in a sockaddr_in.
    void cookie_for(uint32_t ip, uint16_t port, uint8_t out[kCookieSize]) const;
    // The Init's mac2 was made with the cookie for this source, under a
    // secret that has not expired.
    bool vouches_for(const uint8_t* init, size_t len, uint32_t ip, uint16_t port, uint64_t now) const;
};

// Events (key exchanges) in about the last second: this second's count plus
// the share of the previous second's still inside the window.
struct LoadMeter {
    uint64_t window_start = 0;
    unsigned current = 0, previous = 0;
    void record(uint64_t now);
    unsigned rate(uint64_t now) const;

private:
    void roll(uint64_t now);
};

}  // namespace onebox::proto
