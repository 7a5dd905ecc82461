// server_sessions.cpp — the server's side of the handshake and its table of
// client sessions: who holds which tunnel address, when a session counts as
// gone, and the log lines a person reads to see clients come and go.
#include <sys/socket.h>

#include <sodium.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "daemon.h"
#include "server_sessions.h"
#include "dataplane/worker.h"
#include "log.h"

namespace onebox {

void server_init(Daemon& d) { d.server = std::make_unique<ServerState>(); }

static uint64_t last_heard(const ServerEntry& e) {
    uint64_t rx = e.session->last_rx_ns.load(std::memory_order_relaxed);
    return rx > e.created ? rx : e.created;
}

static void forget(Daemon& d, uint32_t id, const char* why, bool tell_client = false) {
    ServerState& st = *d.server;
    auto it = st.by_id.find(id);
    if (it == st.by_id.end()) return;
    const ServerEntry& e = it->second;
    if (!e.confirmed && st.half_open > 0) --st.half_open;
    if (e.confirmed) {
        std::string hex = session_hex(id), addr = format_addr(e.addr);
        log::event(proto::LogLevel::Info, log::Event::Disconnected, {nullptr, hex.c_str(), addr.c_str()},
                   "client session %s (tunnel %s) removed: %s", hex.c_str(), proto::format_ipv4(e.tunnel_ip).c_str(),
                   why);
    }
    auto owner = st.owner_of_ip.find(e.tunnel_ip);
    if (owner != st.owner_of_ip.end() && owner->second == id) {
        st.owner_of_ip.erase(owner);
        unsteer_tunnel_address(d, e.tunnel_ip);
    }
    st.by_id.erase(it);
    auto kind = tell_client ? dataplane::Command::Kind::CloseSession : dataplane::Command::Kind::RemoveSession;
    send_command(d, {kind, nullptr, id});
}

bool server_disconnect(Daemon& d, uint32_t id) {
    auto it = d.server->by_id.find(id);
    if (it == d.server->by_id.end() || !it->second.confirmed) return false;
    forget(d, id, "disconnected over D-Bus", true);
    return true;
}

static bool address_in_subnet(const proto::Config& cfg, uint32_t ip) {
    uint32_t mask = cfg.tun.netmask;
    uint32_t net = cfg.tun.ip & mask;
    if ((ip & mask) != net) return false;
    if (ip == cfg.tun.ip || ip == net || ip == (net | ~mask)) return false;
    return true;
}

// True if `from` is an address the session's client uses: one of its links,
// or the address it handshook from.
static bool speaks_from(const ServerEntry& e, const sockaddr_in& from) {
    uint64_t key = dataplane::pack_addr(from);
    if (key == dataplane::pack_addr(e.addr)) return true;
    for (const dataplane::PeerLink& link : e.session->links)
        if (link.key.load(std::memory_order_relaxed) == key) return true;
    return false;
}

static void log_rejection(RateLimitedLog& rl, uint64_t now, const sockaddr_in& from, const char* why);

// Decides whether session `id` may have tunnel address `ip`, freeing the
// address from a dead session if that is what holds it.
static proto::RespStatus claim_address(Daemon& d, uint32_t id, uint32_t ip, uint64_t now,
                                       const sockaddr_in& from) {
    ServerState& st = *d.server;
    if (!address_in_subnet(d.cfg, ip)) return proto::RespStatus::AddressRefused;
    auto owner = st.owner_of_ip.find(ip);
    if (owner != st.owner_of_ip.end() && owner->second != id) {
        const ServerEntry& holder = st.by_id.at(owner->second);
        if (dataplane::elapsed(now, last_heard(holder)) < kClaimableAfter) {
            log::warn("client %s (session %08x) asked for tunnel address %s, in use by session %08x "
                      "from %s: refused",
                      format_addr(from).c_str(), id, proto::format_ipv4(ip).c_str(), owner->second,
                      format_addr(holder.addr).c_str());
            return proto::RespStatus::AddressInUse;
        }
        forget(d, owner->second, "its address was claimed by a new session");
    }
    // A session id is visible in every packet header, so a handshake naming a
    // live session is believed only from the address that session speaks
    // from. Anyone else who knows the key could otherwise take it over; a
    // blind sender spoofing that address never sees the response, so it can
    // never confirm the new keys.
    auto same = st.by_id.find(id);
    if (same != st.by_id.end()) {
        const ServerEntry& e = same->second;
        bool live = dataplane::elapsed(now, last_heard(e)) < kClaimableAfter;
        if (live && (!speaks_from(e, from) || e.tunnel_ip != ip)) {
            log::warn("handshake from %s for live session %08x (at %s, tunnel %s): refused",
                      format_addr(from).c_str(), id, format_addr(e.addr).c_str(),
                      proto::format_ipv4(e.tunnel_ip).c_str());
            return proto::RespStatus::AddressInUse;
        }
        if (e.tunnel_ip != ip) forget(d, id, "the client asked for another address");
    }
    if (st.by_id.find(id) == st.by_id.end() && st.by_id.size() >= d.cfg.max_clients) {
        // The table's bound, half-open handshakes included: counted, and said
        // at most once a second.
        ++d.stats.handshake_full;
        std::string why = "the server holds max_clients (" + std::to_string(d.cfg.max_clients) + ") sessions";
        log_rejection(st.full_log, now, from, why.c_str());
        return proto::RespStatus::ServerFull;
    }
    return proto::RespStatus::Ok;
}

static void send_resp(Daemon& d, const proto::PskKey& psk, const proto::RespMsg& resp,
                      const proto::InitMsg& init, const sockaddr_in& to) {
    uint8_t pkt[proto::kRespSize];
    proto::write_resp(psk, resp, init.mac, pkt);
    if (::sendto(d.udp.get(), pkt, sizeof pkt, 0, reinterpret_cast<const sockaddr*>(&to),
                 sizeof to) < 0)
        log::warn("Failed to send handshake response to %s: %s", format_addr(to).c_str(),
                  std::strerror(errno));
}

// A busy server's answer: the cookie for `to`, which only someone at that
// address receives (cookie.h). The secret changes every 2 minutes.
static void send_cookie_reply(Daemon& d, const proto::PskKey& psk, const proto::InitMsg& init,
                              const sockaddr_in& to, uint64_t now) {
    ServerState& st = *d.server;
    if (st.cookies.needs_secret(now)) {
        uint8_t random[32];
        fill_random(random, sizeof random);
        st.cookies.set_secret(random, now);
        sodium_memzero(random, sizeof random);
    }
    uint8_t cookie[proto::kCookieSize], nonce[proto::kCookieNonceSize], pkt[proto::kCookieReplySize];
    st.cookies.cookie_for(to.sin_addr.s_addr, to.sin_port, cookie);
    fill_random(nonce, sizeof nonce);
    proto::write_cookie_reply(psk, init.session_id, init.mac, cookie, nonce, pkt);
    sodium_memzero(cookie, sizeof cookie);
    if (::sendto(d.udp.get(), pkt, sizeof pkt, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0)
        log::debug("Failed to send a cookie to %s: %s", format_addr(to).c_str(), std::strerror(errno));
}

static void log_rejection(RateLimitedLog& rl, uint64_t now, const sockaddr_in& from,
                          const char* why) {
    if (!rl.allow(now)) return;
    std::string addr = format_addr(from);
    log::Tags tags{nullptr, nullptr, addr.c_str()};
    if (rl.suppressed)
        log::event(proto::LogLevel::Warn, log::Event::AuthFailed, tags, "handshake from %s rejected: %s (%llu more not logged)",
                   addr.c_str(), why, static_cast<unsigned long long>(rl.suppressed));
    else
        log::event(proto::LogLevel::Warn, log::Event::AuthFailed, tags, "handshake from %s rejected: %s", addr.c_str(), why);
    rl.suppressed = 0;
}

void server_on_handshake(Daemon& d, const dataplane::HandshakeDatagram& hs, uint64_t now) {
    ServerState& st = *d.server;
    // The address the Init asks for picks the one key it must be MACed with
    // (client_keys.h). Read before the MAC is checked, but only to choose
    // the key: the MAC covers it.
    uint32_t wanted_ip = 0;
    KeyChoice kc = key_for_address(st.keys, proto::peek_init_tunnel_ip(hs.bytes, hs.len, &wanted_ip) ? wanted_ip : 0);
    if (!kc.key) {
        ++d.stats.handshake_bad_mac;
        std::string why = "no client listed for tunnel address " + proto::format_ipv4(wanted_ip) +
                          " and no shared preshared_key";
        return log_rejection(st.bad_mac_log, now, hs.from, why.c_str());
    }
    const proto::PskKey& psk = *kc.key;
    proto::InitMsg init;
    // MAC first: nothing else, above all no Diffie-Hellman, for a sender
    // that does not know the key.
    proto::HsError err = proto::read_init(psk, hs.bytes, hs.len, init);
    if (err == proto::HsError::BadMac) {
        ++d.stats.handshake_bad_mac;
        std::string why = kc.client ? "bad mac (not client " + kc.client->name + "'s key, whose address " +
                                          proto::format_ipv4(wanted_ip) + " it asks for)"
                                    : std::string("bad mac (wrong preshared key?)");
        return log_rejection(st.bad_mac_log, now, hs.from, why.c_str());
    }
    if (err != proto::HsError::Ok) {
        ++d.stats.handshake_malformed;
        return log_rejection(st.malformed_log, now, hs.from, proto::hs_error_name(err));
    }
    // Replays first (cheap, and a captured Init replayed from its client's
    // address must not use up that address's tokens), then, before any
    // Diffie-Hellman, the per-source rate: a key holder flooding from one
    // address gets 20 a second (a real client sends one a second at most).
    if (st.guard->accept(init, kc.id()) != proto::HsError::Ok) {
        ++d.stats.handshake_replayed;
        return log_rejection(st.replay_log, now, hs.from, "replayed");
    }
    // Busy: only an Init that proves its source address (mac2, made with the
    // cookie we sent there) may cost a key exchange; the rest get a cookie.
    // Half-open handshakes are busy when there are many, or when they hold
    // as much of the table as is left free (a small or nearly full server).
    const size_t room = d.cfg.max_clients > st.by_id.size() ? d.cfg.max_clients - st.by_id.size() : 0;
    const bool busy = st.key_exchanges.rate(now) >= proto::kBusyHandshakes || st.half_open >= kBusyHalfOpen ||
                      (st.half_open > 0 && st.half_open >= room);
    const bool proven = st.cookies.vouches_for(hs.bytes, hs.len, hs.from.sin_addr.s_addr, hs.from.sin_port, now);
    if (busy && !proven) {
        ++d.stats.handshake_cookie;
        send_cookie_reply(d, psk, init, hs.from, now);
        return log_rejection(st.cookie_log, now, hs.from, "server busy: answered with a cookie (the address must prove itself)");
    }
    // Inits that proved their address have buckets of their own: a key
    // holder spoofing a client's address (or the NAT it sits behind) can
    // spend the unproven bucket, never the one its real clients use. An
    // unproven Init over its limit is told how to prove itself.
    proto::SourceRateLimit& bucket = proven ? st.per_proven_source : st.per_source;
    if (!bucket.allow(ntohl(hs.from.sin_addr.s_addr), now)) {
        ++d.stats.handshake_ratelimited;
        if (!proven) {
            ++d.stats.handshake_cookie;
            send_cookie_reply(d, psk, init, hs.from, now);
        }
        return log_rejection(st.rate_log, now, hs.from, "too many handshakes from this address");
    }

    proto::RespMsg resp;
    resp.session_id = init.session_id;
    // A session id is visible on the wire: one made with another key than
    // ours is not ours to re-handshake, take over or forget.
    auto same_id = st.by_id.find(init.session_id);
    const bool foreign = same_id != st.by_id.end() && same_id->second.key_id != kc.id();
    if (foreign && st.foreign_log.allow(now))
        log::warn("handshake from %s for session %08x made with another key (%s): refused", format_addr(hs.from).c_str(),
                  init.session_id, kc.client ? ("client " + kc.client->name + "'s").c_str() : "the shared key");
    resp.status = foreign ? proto::RespStatus::AddressInUse
                          : claim_address(d, init.session_id, init.tunnel_ip, now, hs.from);
    st.key_exchanges.record(now);  // from here on the Init costs an X25519
    // A rekey: the client still holds the session and so do we (confirmed,
    // so the worker has keys and sequence numbers for it). Both go on.
    auto held = st.by_id.find(init.session_id);
    const bool continues = resp.status == proto::RespStatus::Ok && (init.flags & proto::kInitFlagContinue) &&
                           held != st.by_id.end() && held->second.session->confirmed.load(std::memory_order_acquire);
    if (continues) resp.flags = proto::kRespFlagContinued;
    uint8_t random[32];
    fill_random(random, sizeof random);
    proto::EphemeralKey eph = proto::ephemeral_from_random(random);
    sodium_memzero(random, sizeof random);
    std::memcpy(resp.eph_pub, eph.pub, sizeof eph.pub);
    if (resp.status != proto::RespStatus::Ok) {
        ++d.stats.handshake_refused;
        return send_resp(d, psk, resp, init, hs.from);
    }

    proto::SessionKeys keys;
    if (proto::derive_session_keys(psk, eph, init.eph_pub, eph.pub, false, keys) !=
        proto::HsError::Ok) {
        ++d.stats.handshake_malformed;
        return log_rejection(st.malformed_log, now, hs.from, "weak key");
    }
    ++d.stats.handshake_ok;

    // The worker holds the keys as pending until the client's first sealed
    // packet proves it has them too. Installed before the response goes out,
    // so the client's first keepalive cannot arrive ahead of its keys.
    dataplane::Session* s = new_session(d);
    s->id = init.session_id;
    s->tunnel_ip = init.tunnel_ip;
    s->peer = hs.from;
    s->keys.set_pending(keys, continues);
    send_command(d, {dataplane::Command::Kind::InstallSession, s, s->id});
    send_resp(d, psk, resp, init, hs.from);

    auto it = st.by_id.find(init.session_id);
    if (it == st.by_id.end()) {
        ServerEntry e;
        e.session = s;
        e.tunnel_ip = init.tunnel_ip;
        e.addr = hs.from;
        e.created = now;
        e.key_id = kc.id();
        if (kc.client) e.client = kc.client->name;
        st.by_id[init.session_id] = std::move(e);
        ++st.half_open;
        st.owner_of_ip[init.tunnel_ip] = init.session_id;
        steer_tunnel_address(d, init.tunnel_ip, init.session_id);  // its downstream to its worker's TUN queue
    } else {
        it->second.addr = hs.from;  // rekey of a live session: the worker keeps its object
    }
    log::debug("handshake from %s accepted (session %08x)", format_addr(hs.from).c_str(),
               init.session_id);
}

void server_on_confirmed(Daemon& d, const dataplane::Event& ev) {
    auto it = d.server->by_id.find(ev.session_id);
    // A late event for an object already forgotten must not vouch for a newer one.
    if (it == d.server->by_id.end() || it->second.session != ev.session) return;
    ServerEntry& e = it->second;
    bool first = !e.confirmed;
    e.confirmed = true;
    if (first && d.server->half_open > 0) --d.server->half_open;
    std::string hex = session_hex(ev.session_id), addr = format_addr(e.addr);
    if (first)
        log::event(proto::LogLevel::Info, log::Event::Connected, {nullptr, hex.c_str(), addr.c_str()},
                   "client %s session %s connected (tunnel %s%s%s)", addr.c_str(), hex.c_str(),
                   proto::format_ipv4(e.tunnel_ip).c_str(), e.client.empty() ? "" : ", client ",
                   e.client.c_str());
    else  // every rekey_interval (2 minutes by default) per client: not for the journal
        log::debug("client %s session %s rekeyed (tunnel %s)", addr.c_str(), hex.c_str(),
                   proto::format_ipv4(e.tunnel_ip).c_str());
}

void server_on_closed(Daemon& d, const dataplane::Event& ev) {
    auto it = d.server->by_id.find(ev.session_id);
    if (it == d.server->by_id.end() || it->second.session != ev.session) return;
    forget(d, ev.session_id, "the client disconnected");
}

// A client link's health as the worker publishes it, logged when it changes.
static void log_link_health(uint32_t id, ServerEntry& e) {
    if (!e.confirmed) return;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        auto state = proto::LinkState(e.session->stats.links[i].state.load(std::memory_order_relaxed));
        if (state == e.link_state_seen[i]) continue;
        e.link_state_seen[i] = state;
        std::string hex = session_hex(id), link = std::to_string(i);
        if (state == proto::LinkState::Up)
            log::event(proto::LogLevel::Info, log::Event::LinkUp, {link.c_str(), hex.c_str()}, "client %s link %u is up",
                       hex.c_str(), i);
        else if (state == proto::LinkState::Down)
            log::event(proto::LogLevel::Warn, log::Event::LinkDown, {link.c_str(), hex.c_str()},
                       "client %s link %u is down: its probes go unanswered", hex.c_str(), i);
    }
}

void server_apply_client_keys(Daemon& d, ClientKeys&& fresh) {
    ServerState& st = *d.server;
    fresh.shared = st.keys.shared;
    // A session stays only if the key its address needs now is the key it
    // was made with: removing a client, or changing its key or address,
    // shuts it out at once, not at its next rekey.
    std::vector<uint32_t> stale;
    for (const auto& [id, e] : st.by_id) {
        KeyChoice now_needed = key_for_address(fresh, e.tunnel_ip);
        if (!now_needed.key || now_needed.id() != e.key_id) stale.push_back(id);
    }
    st.keys = std::move(fresh);
    for (uint32_t id : stale) forget(d, id, "its key is no longer in the config", true);
    if (!stale.empty()) log::info("client keys: %zu listed; %zu sessions closed", st.keys.list.size(), stale.size());
}

void server_tick(Daemon& d, uint64_t now) {
    ServerState& st = *d.server;
    for (auto& [id, e] : st.by_id) log_link_health(id, e);
    uint32_t expired[16];
    unsigned n = 0;
    size_t half_open = 0;
    for (auto& [id, e] : st.by_id) {
        // The worker's flag, not the event: an event can arrive late (or be
        // lost with the event ring full), so the half-open count is made
        // good here each tick.
        bool confirmed = e.session->confirmed.load(std::memory_order_acquire);
        half_open += !confirmed;
        uint64_t silent = dataplane::elapsed(now, last_heard(e));
        bool dead = confirmed ? silent > kIdleExpiry : dataplane::elapsed(now, e.created) > kUnconfirmedExpiry;
        if (dead && n < 16) expired[n++] = id;
    }
    st.half_open = half_open;
    for (unsigned i = 0; i < n; ++i) forget(d, expired[i], "silent too long");
}

}  // namespace onebox
