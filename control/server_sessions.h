// server_sessions.h — the server's table of client sessions (control thread only).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "client_keys.h"
#include "dataplane/session.h"
#include "proto/cookie.h"
#include "proto/handshake.h"
#include "proto/ratelimit.h"
#include "proto/link_health.h"

namespace onebox {

constexpr uint64_t kSec = 1'000'000'000;
// A client sends a keepalive after 1 s of silence, so a session silent this
// long belongs to a client that is gone (or restarted with a new session id):
// its tunnel address may be claimed again.
constexpr uint64_t kClaimableAfter = 3 * kSec;
constexpr uint64_t kIdleExpiry = 180 * kSec;       // forget a silent session
constexpr uint64_t kUnconfirmedExpiry = 10 * kSec; // a handshake nobody completed
// Half-open handshakes that make a server busy (cookies required): a flood
// of real Inits from spoofed addresses must not fill the session table.
constexpr size_t kBusyHalfOpen = 32;

// At most one line per second per kind of rejection, with a count of what
// was not logged: a flood must not flood the journal.
struct RateLimitedLog {
    uint64_t last = 0;
    uint64_t suppressed = 0;
    bool allow(uint64_t now) {
        if (last != 0 && now - last < kSec) { ++suppressed; return false; }
        last = now;
        return true;
    }
};

struct ServerEntry {
    dataplane::Session* session = nullptr;  // the object the worker holds
    uint32_t tunnel_ip = 0;
    sockaddr_in addr{};
    uint64_t created = 0;
    bool confirmed = false;
    uint64_t key_id = 0;        // the key its handshake was MACed with (ClientKey::id, 0 = shared)
    std::string client;         // the listed client's name, or empty (the shared key)
    proto::LinkState link_state_seen[proto::kMaxLinks]{};  // last logged health per client link
};

struct ServerState {
    std::unique_ptr<proto::InitGuard> guard = std::make_unique<proto::InitGuard>();
    std::unordered_map<uint32_t, ServerEntry> by_id;
    std::unordered_map<uint32_t, uint32_t> owner_of_ip;  // tunnel ip -> session id
    RateLimitedLog bad_mac_log, replay_log, malformed_log, rate_log, full_log, cookie_log, foreign_log;
    proto::SourceRateLimit per_source;  // handshakes a source may start per second
    proto::SourceRateLimit per_proven_source;  // ... with a cookie that proves the address
    ClientKeys keys;                    // per-client keys and the shared one
    proto::CookieJar cookies;           // busy: Inits must prove their address (cookie.h)
    proto::LoadMeter key_exchanges;     // ... busy means more than kBusyHandshakes a second
    size_t half_open = 0;               // ... or this many entries no client has confirmed yet
};

}  // namespace onebox
