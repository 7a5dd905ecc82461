// client_handshake.h — the client's handshake state (control thread only).
#pragma once

#include <cstdint>

#include "dataplane/session.h"
#include "proto/cookie.h"
#include "proto/handshake.h"

namespace onebox {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kFirstRetry = 1000 * kMs;   // an Init unanswered this long is retried
constexpr uint64_t kMaxRetry = 2000 * kMs;     // cap: back within ~2 s of the server returning
// The server sends a keepalive after 1 s of silence, so 3.5 s without
// anything means it lost our session (restart) or the path is gone.
constexpr uint64_t kServerSilence = 3500 * kMs;
// After a rekey the worker's published packet count is the old key's until
// its next tick; a rekey by count waits this long before reading it.
constexpr uint64_t kRekeyCountSettle = 1000 * kMs;

struct ClientState {
    uint32_t session_id = 0;        // random, kept for the life of the process
    uint64_t last_timestamp = 0;    // Init timestamps strictly increase
    bool waiting = false;           // an Init is out, no Resp yet
    proto::InitMsg sent;
    proto::EphemeralKey eph;
    // The Init before `sent`: on a path slower than the retry interval its
    // answer arrives after we retried, and is still good.
    proto::InitMsg prev_sent;
    proto::EphemeralKey prev_eph;
    bool has_prev = false;
    uint64_t sent_at = 0;
    uint64_t retry_delay = kFirstRetry;
    uint64_t next_attempt = 0;
    dataplane::Session* live = nullptr;  // the session the worker is using
    uint64_t established_at = 0;
    bool server_closed = false;          // the server said it is stopping
    unsigned attempts = 0;
    // A busy server's cookie per WAN link (it is for the address the Init
    // came from): the next Inits on that link carry mac2 made with it.
    struct Cookie {
        uint8_t bytes[proto::kCookieSize]{};
        uint64_t received_at = 0;
        bool has = false;
    } cookies[proto::kMaxLinks];
    int sent_link = -1;                  // the link `sent` went out on
    bool cookie_retried = false;         // `sent` is already the answer to a cookie
};

}  // namespace onebox
