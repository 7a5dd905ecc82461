// client_handshake.cpp — the client's side of the handshake: send an Init,
// retry with backoff while the server does not answer, install the session
// keys when it does, and start over when the server falls silent (it
// restarted, or the path died).
#include <sys/socket.h>

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "client_handshake.h"
#include "client_links.h"
#include "daemon.h"
#include "dataplane/worker.h"
#include "log.h"

namespace onebox {



static void new_session_id(Daemon& d) {
    ClientState& c = *d.client;
    uint32_t old = c.session_id;
    do fill_random(&c.session_id, sizeof c.session_id);
    while (c.session_id == proto::kInvalidSessionId || c.session_id == old);
    // Inits made for the old id are forgotten: a late answer to one must not
    // install its keys under the new id.
    c.sent.session_id = proto::kInvalidSessionId;
    c.has_prev = false;
    c.eph = proto::EphemeralKey{};
    c.prev_eph = proto::EphemeralKey{};
}

void client_init(Daemon& d) {
    d.client = std::make_unique<ClientState>();
    new_session_id(d);
}

// `link`: the WAN link to send on (a cookie's answer goes where the cookie
// came from); -1 takes the next one in turn.
static void send_init(Daemon& d, uint64_t now, int link = -1) {
    ClientState& c = *d.client;
    // Holding a session, we ask to go on with it: if the server holds it
    // too, both ends keep their sequence numbers and nothing in flight is lost.
    if (c.sent.session_id != proto::kInvalidSessionId) {
        c.prev_sent = c.sent;
        c.prev_eph = c.eph;
        c.has_prev = true;
    }
    uint8_t random[32];
    fill_random(random, sizeof random);
    c.eph = proto::ephemeral_from_random(random);
    sodium_memzero(random, sizeof random);

    c.sent = proto::InitMsg{};
    c.sent.session_id = c.session_id;
    std::memcpy(c.sent.eph_pub, c.eph.pub, sizeof c.eph.pub);
    c.last_timestamp = std::max(c.last_timestamp + 1, wall_clock_ns());
    c.sent.timestamp = c.last_timestamp;
    c.sent.tunnel_ip = d.cfg.tun.ip;
    c.sent.flags = c.live ? proto::kInitFlagContinue : 0;
    if (link < 0) link = links_handshake_slot(d, c.attempts);
    const ClientState::Cookie* cookie = link >= 0 ? &c.cookies[link] : nullptr;
    bool fresh = cookie && cookie->has && dataplane::elapsed(now, cookie->received_at) < proto::kCookieSecretLifetimeNs;
    uint8_t pkt[proto::kInitSize];
    proto::write_init(d.psk, c.sent, pkt, fresh ? cookie->bytes : nullptr);
    c.sent_link = link;
    c.cookie_retried = false;

    // The worker owns receiving on this socket; sending from the control
    // thread is safe and keeps the slow path off the worker.
    int fd = link >= 0 ? d.links->slots[link].fd : -1;
    if (::send(fd, pkt, sizeof pkt, 0) < 0 && c.attempts % 10 == 0)
        log::warn("Failed to send handshake to %s: %s", format_addr(d.server_addr).c_str(),
                  std::strerror(errno));
    ++c.attempts;
    c.waiting = true;
    c.sent_at = now;
    log::debug("handshake init sent to %s (attempt %u)", format_addr(d.server_addr).c_str(),
               c.attempts);
}

static bool server_silent(const Daemon& d, uint64_t now);

bool client_connected(const Daemon& d, uint64_t now) {
    const ClientState& c = *d.client;
    return c.live && !c.server_closed && !server_silent(d, now);
}

static bool server_silent(const Daemon& d, uint64_t now) {
    const ClientState& c = *d.client;
    if (!c.live) return true;
    uint64_t last = std::max(c.live->last_rx_ns.load(std::memory_order_relaxed), c.established_at);
    return dataplane::elapsed(now, last) > kServerSilence;
}

// New keys are due: by age, or by the packets sealed and opened under them.
// The worker publishes its count each tick; for a second after a rekey that
// count may still be the old key's, so it is not looked at then.
static bool rekey_due(const Daemon& d, uint64_t now) {
    const ClientState& c = *d.client;
    uint64_t age = dataplane::elapsed(now, c.established_at);
    if (age >= d.cfg.rekey_interval_ns) return true;
    return age >= kRekeyCountSettle && c.live->key_uses.load(std::memory_order_relaxed) >= d.cfg.rekey_packets;
}

void client_tick(Daemon& d, uint64_t now) {
    ClientState& c = *d.client;
    if (c.waiting && dataplane::elapsed(now, c.sent_at) >= c.retry_delay) {
        c.waiting = false;  // unanswered: try again, a little later each time
        c.next_attempt = now;
        c.retry_delay = std::min(c.retry_delay * 2, kMaxRetry);
        if (c.attempts == 3)
            log::warn("no answer from server %s yet; still trying",
                      format_addr(d.server_addr).c_str());
    }
    if (c.waiting || now < c.next_attempt) return;
    bool connected = client_connected(d, now);
    if (connected && !rekey_due(d, now)) return;
    if (connected) {
        if (c.attempts == 0) log::debug("session %s: rekeying", session_hex(c.session_id).c_str());
    } else if (c.live && c.attempts == 0 && !c.server_closed) {
        std::string addr = format_addr(d.server_addr);
        log::event(proto::LogLevel::Warn, log::Event::Disconnected, {nullptr, nullptr, addr.c_str()},
                   "server %s silent for %.1f s: handshaking again", addr.c_str(), double(kServerSilence) / 1e9);
    }
    send_init(d, now);
}

// `continued`: the server said the session goes on, so the worker gives
// the live session the new keys and keeps everything else; otherwise a
// fresh session replaces it.
static void install(Daemon& d, const proto::SessionKeys& keys, bool continued, uint64_t now) {
    ClientState& c = *d.client;
    dataplane::Session* s = new_session(d);
    s->id = c.session_id;
    s->tunnel_ip = d.cfg.tun.ip;
    s->peer = d.server_addr;
    s->keys.start(keys);
    s->rekey = continued;
    s->confirmed.store(true);
    send_command(d, {dataplane::Command::Kind::InstallSession, s, s->id});
    if (!continued) c.live = s;  // a carrier of keys is handed back, the live one stays
    c.established_at = now;
    c.server_closed = false;
}

void client_on_closed(Daemon& d, const dataplane::Event& ev) {
    ClientState& c = *d.client;
    if (ev.session != c.live || c.server_closed) return;
    c.server_closed = true;
    c.next_attempt = 0;  // handshake again at once; retries back off as usual
    std::string addr = format_addr(d.server_addr);
    log::event(proto::LogLevel::Warn, log::Event::Disconnected, {nullptr, nullptr, addr.c_str()},
               "server %s closed the session (stopping or restarting): handshaking again", addr.c_str());
}

// A busy server sent the cookie for the address our Init came from: keep it
// for that link and ask again at once, this time with mac2. Once per Init,
// so a server that keeps answering with cookies waits for the next retry.
static void client_on_cookie(Daemon& d, const dataplane::HandshakeDatagram& hs, uint64_t now) {
    ClientState& c = *d.client;
    uint8_t cookie[proto::kCookieSize];
    bool ok = proto::read_cookie_reply(d.psk, hs.bytes, hs.len, c.sent, cookie) == proto::HsError::Ok;
    if (!ok && c.has_prev)
        ok = proto::read_cookie_reply(d.psk, hs.bytes, hs.len, c.prev_sent, cookie) == proto::HsError::Ok;
    if (!ok || hs.link >= proto::kMaxLinks) {
        ++d.stats.handshake_malformed;
        return;
    }
    ++d.stats.handshake_cookie;
    ClientState::Cookie& slot = c.cookies[hs.link];
    std::memcpy(slot.bytes, cookie, sizeof cookie);
    sodium_memzero(cookie, sizeof cookie);
    slot.received_at = now;
    slot.has = true;
    log::debug("server %s is busy and sent a cookie: asking again", format_addr(d.server_addr).c_str());
    if (c.cookie_retried || !d.links->slots[hs.link].used || d.links->slots[hs.link].removing) return;
    send_init(d, now, hs.link);
    c.cookie_retried = true;
}

void client_on_handshake(Daemon& d, const dataplane::HandshakeDatagram& hs, uint64_t now) {
    ClientState& c = *d.client;
    if (!c.waiting) return;  // a late or duplicated answer
    if (hs.len >= 1 && hs.bytes[0] == uint8_t(proto::PacketType::CookieReply)) return client_on_cookie(d, hs, now);
    proto::RespMsg resp;
    const proto::InitMsg* answered = &c.sent;
    const proto::EphemeralKey* eph = &c.eph;
    proto::HsError err = proto::read_resp(d.psk, hs.bytes, hs.len, c.sent, resp);
    // The answer to the Init before: good on a path slower than our retry
    // (the server keeps the keys of its two newest Inits, keyring.h).
    const bool rekeying = client_connected(d, now);
    if (err != proto::HsError::Ok && c.has_prev &&
        proto::read_resp(d.psk, hs.bytes, hs.len, c.prev_sent, resp) == proto::HsError::Ok) {
        answered = &c.prev_sent;
        eph = &c.prev_eph;
        err = proto::HsError::Ok;
    }
    if (err != proto::HsError::Ok) {
        ++d.stats.handshake_malformed;
        log::debug("handshake response ignored: %s", proto::hs_error_name(err));
        return;
    }
    c.waiting = false;
    if (resp.status != proto::RespStatus::Ok) {
        ++d.stats.handshake_refused;
        if (rekeying) {  // the session goes on under its keys; ask again later
            log::warn("server %s refused a rekey (status %u); the session goes on under its keys",
                      format_addr(d.server_addr).c_str(), unsigned(resp.status));
            c.next_attempt = now + kMaxRetry;
            return;
        }
        // Our session id is ours to choose: one the server holds for
        // somebody else (another key, or a session not yet gone) is
        // dropped for a new one, so nothing can keep us out by squatting it.
        if (resp.status == proto::RespStatus::AddressInUse) new_session_id(d);
        const char* why = resp.status == proto::RespStatus::AddressInUse ? "address in use by another client"
                        : resp.status == proto::RespStatus::AddressRefused ? "address outside the server's tunnel subnet"
                        : "server full";
        std::string addr = format_addr(d.server_addr);
        log::event(proto::LogLevel::Error, log::Event::AuthFailed, {nullptr, nullptr, addr.c_str()},
                   "server %s refused tunnel address %s: %s", addr.c_str(),
                   proto::format_ipv4(d.cfg.tun.ip).c_str(), why);
        c.next_attempt = now + kMaxRetry;
        return;
    }
    proto::SessionKeys keys;
    err = proto::derive_session_keys(d.psk, *eph, answered->eph_pub, resp.eph_pub, true, keys);
    // Forward secrecy: the private halves are gone once the keys are made.
    c.eph = proto::EphemeralKey{};
    c.prev_eph = proto::EphemeralKey{};
    c.has_prev = false;
    c.sent.session_id = proto::kInvalidSessionId;
    if (err != proto::HsError::Ok) {
        ++d.stats.handshake_malformed;
        std::string addr = format_addr(d.server_addr);
        log::event(proto::LogLevel::Warn, log::Event::AuthFailed, {nullptr, nullptr, addr.c_str()},
                   "handshake with %s failed: %s", addr.c_str(), proto::hs_error_name(err));
        return;
    }
    ++d.stats.handshake_ok;
    // The flag is only good in an answer to an Init that asked (read_resp),
    // and we ask only while holding a session.
    const bool continued = (resp.flags & proto::kRespFlagContinued) && c.live;
    install(d, keys, continued, now);
    c.retry_delay = kFirstRetry;
    c.attempts = 0;
    if (continued) {
        log::debug("session %s rekeyed", session_hex(c.session_id).c_str());
        return;
    }
    notify::ready(status_line(d));
    std::string addr = format_addr(d.server_addr);
    std::string id = session_hex(c.session_id);
    log::event(proto::LogLevel::Info, log::Event::Connected, {nullptr, id.c_str(), addr.c_str()},
               "session established with %s (session %s, tunnel %s)", addr.c_str(), id.c_str(),
               proto::format_ipv4(d.cfg.tun.ip).c_str());
}

}  // namespace onebox
