// cookie.cpp — cookies for a busy server (cookie.h).
#include "cookie.h"

#include <sodium.h>

#include <cstring>

#include "handshake.h"

namespace onebox::proto {

namespace {
constexpr uint64_t kSecond = 1'000'000'000;
}

CookieJar::~CookieJar() { sodium_memzero(secret, sizeof secret); }

void CookieJar::set_secret(const uint8_t random32[32], uint64_t now) {
    std::memcpy(secret, random32, sizeof secret);
    born_ns = now;
    has_secret = true;
}

void CookieJar::cookie_for(uint32_t ip, uint16_t port, uint8_t out[kCookieSize]) const {
    uint8_t who[6];
    std::memcpy(who, &ip, 4);
    std::memcpy(who + 4, &port, 2);
    crypto_generichash(out, kCookieSize, who, sizeof who, secret, sizeof secret);
}

bool CookieJar::vouches_for(const uint8_t* init, size_t len, uint32_t ip, uint16_t port, uint64_t now) const {
    if (needs_secret(now)) return false;  // none yet, or expired: the sender gets a cookie made with a new one
    uint8_t cookie[kCookieSize];
    cookie_for(ip, port, cookie);
    bool ok = init_mac2_ok(cookie, init, len);
    sodium_memzero(cookie, sizeof cookie);
    return ok;
}

void LoadMeter::roll(uint64_t now) {
    if (now - window_start < kSecond) return;
    previous = now - window_start < 2 * kSecond ? current : 0;
    current = 0;
    window_start = now - (now - window_start) % kSecond;
}

void LoadMeter::record(uint64_t now) {
    roll(now);
    ++current;
}

unsigned LoadMeter::rate(uint64_t now) const {
    LoadMeter m = *this;
    m.roll(now);
    // The previous second weighs by how much of it the last second still covers.
    const uint64_t into = now - m.window_start;
    return m.current + unsigned(uint64_t(m.previous) * (kSecond - into) / kSecond);
}

}  // namespace onebox::proto
