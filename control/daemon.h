// daemon.h — the control thread of onebox-client / onebox-server: start-up,
// the event loop (signals, worker events, timers), and clean shutdown.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "bus.h"
#include "dataplane/channel.h"
#include "dataplane/fd.h"
#include "dataplane/steering.h"
#include "notify.h"
#include "proto/config.h"
#include "proto/handshake.h"
#include "proto/link_health.h"

namespace onebox {

struct DaemonPaths {
    std::string config;
    std::string pid_file;
    std::string state_file() const { return pid_file + ".state"; }
};

// Handshake and session counters kept by the control thread.
struct ControlCounters {
    uint64_t handshake_ok = 0;
    uint64_t handshake_bad_mac = 0;
    uint64_t handshake_replayed = 0;
    uint64_t handshake_malformed = 0;
    uint64_t handshake_refused = 0;
    uint64_t handshake_ratelimited = 0;  // valid Inits over their source's rate (proto/ratelimit.h)
    uint64_t handshake_full = 0;         // ... refused: max_clients sessions held (also in handshake_refused)
    uint64_t handshake_cookie = 0;       // server: busy, answered with a cookie; client: cookies received
};

struct ClientState;
struct ServerState;
struct ClientLinks;

// One data-plane worker as the control thread sees it. The client runs one;
// the server one per core ([server] workers), each owning the sessions
// dataplane::owner_of() gives it (steering.h).
struct WorkerSlot {
    std::unique_ptr<dataplane::Channel> channel;
    dataplane::Fd wake;  // eventfd the worker's ring reads
    dataplane::Fd tun;   // workers 1..n-1: their TUN queue (worker 0 uses Daemon::tun)
    dataplane::Fd udp;   // server workers 1..n-1: their reuseport socket (worker 0: Daemon::udp)
    std::thread thread;
    std::atomic<int> result{0};  // run_worker's, set by the worker thread
    uint64_t beat_seen = 0;  // its heartbeat when every worker last made progress
};

struct Daemon {
    proto::Role role = proto::Role::Client;
    proto::Config cfg;
    DaemonPaths paths;
    proto::PskKey psk;
    sockaddr_in server_addr{};  // client: where the server is

    dataplane::Fd tun;
    bool tun_offloads = false;  // the TUN has IFF_VNET_HDR and TSO (proto/tso.h)
    dataplane::Fd udp;
    dataplane::Fd control_wake;  // every worker's events wake the control loop here
    dataplane::Fd signals;
    std::vector<std::unique_ptr<WorkerSlot>> workers;  // at least one, from open_event_fds on
    dataplane::Channel* channel = nullptr;  // worker 0's (the client's only one)
    dataplane::TunSteering steering;        // server with several workers
    bool steered = false;                   // ... and it is in place
    uint64_t progress = 0;                  // bumped when every worker's heartbeat moved

    // Every Session the control thread allocated and the worker has not handed
    // back yet; whatever is left is freed after the worker stops.
    std::unordered_set<dataplane::Session*> sessions;
    ControlCounters stats;
    std::unique_ptr<ClientState> client;
    std::unique_ptr<ClientLinks> links;  // client: its WAN links
    std::unique_ptr<ServerState> server;
    bool stopping = false;
    int exit_code = 0;  // non-zero when the daemon stops because something broke
    notify::Watchdog watchdog;
    uint64_t next_status_ns = 0;
    std::unique_ptr<bus::Service, bus::ServiceDeleter> bus;  // D-Bus (bus.h)
    proto::LinkState link_state_seen[proto::kMaxLinks]{};  // client: last logged health per link

    Daemon();
    ~Daemon();
};

// Runs the daemon in the foreground until SIGTERM/SIGINT. Returns the exit
// code. Wipes cfg.preshared_key once the key is derived from it.
int run_daemon(proto::Role role, proto::Config& cfg, const DaemonPaths& paths);

// Shared helpers for the role engines.
// A session's commands go to the worker that owns it, the others to all.
void send_command(Daemon& d, const dataplane::Command& cmd);
// A counter summed over the workers.
uint64_t counter_total(const Daemon& d, dataplane::Counter c);
// Link `i`'s counters over the workers: counts and rates summed; state,
// RTT, loss and jitter the worst, the path MTU the smallest (the server's
// rule for its clients, per worker, in counters.h).
struct LinkTotals {
    uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0, rate_bps = 0, pace_bps = 0;
    uint64_t srtt_us = 0, state = 0, used = 0, loss_pm = 0, jitter_us = 0, downs = 0, stalls = 0, stalls_undone = 0, lossy = 0, restarts = 0, pmtu = 0;
};
LinkTotals link_totals(const Daemon& d, unsigned i);
// Server: route tunnel address `ip` to session `id`'s worker, or stop.
void steer_tunnel_address(Daemon& d, uint32_t ip, uint32_t id);
void unsteer_tunnel_address(Daemon& d, uint32_t ip);
// The one-line STATUS= for systemd: the session and its links (client), the
// sessions served (server).
std::string status_line(const Daemon& d);
dataplane::Session* new_session(Daemon& d);
std::string format_addr(const sockaddr_in& a);
void fill_random(void* buf, size_t len);
uint64_t wall_clock_ns();

// Client engine (client_handshake.cpp).
void client_init(Daemon& d);
// The session is up: keys in use, the server has not closed it and is not silent.
bool client_connected(const Daemon& d, uint64_t now);
// "0badc0de": how session ids are written in logs and on D-Bus.
std::string session_hex(uint32_t id);
void client_tick(Daemon& d, uint64_t now);
void client_on_handshake(Daemon& d, const dataplane::HandshakeDatagram& hs, uint64_t now);
void client_on_closed(Daemon& d, const dataplane::Event& ev);

// Server engine (server_sessions.cpp).
void server_init(Daemon& d);
void server_tick(Daemon& d, uint64_t now);
void server_on_handshake(Daemon& d, const dataplane::HandshakeDatagram& hs, uint64_t now);
void server_on_confirmed(Daemon& d, const dataplane::Event& ev);
void server_on_closed(Daemon& d, const dataplane::Event& ev);
// Ends a connected client's session and tells the client (D-Bus
// Disconnect). False if there is no such connected session.
bool server_disconnect(Daemon& d, uint32_t id);
struct ClientKeys;
// The watchdog ping (while the workers' loops turn) and STATUS=, as each
// control tick does: for slow work on the control thread (a reload's keys).
void supervise_now(Daemon& d);
// A reload's client list: sessions whose key is gone or changed are closed.
void server_apply_client_keys(Daemon& d, ClientKeys&& fresh);

}  // namespace onebox
