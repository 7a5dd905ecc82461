#include "daemon.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "client_handshake.h"
#include "client_links.h"
#include "dataplane/tun.h"
#include "dataplane/udp.h"
#include "dataplane/worker.h"
#include "log.h"
#include "pidfile.h"
#include "proto/link_health.h"
#include "reload.h"
#include "server_sessions.h"
#include "setup.h"

namespace onebox {

Daemon::Daemon() = default;
Daemon::~Daemon() = default;

std::string session_hex(uint32_t id) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", id);
    return buf;
}

std::string format_addr(const sockaddr_in& a) {
    char buf[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
}

void fill_random(void* buf, size_t len) { randombytes_buf(buf, len); }

uint64_t wall_clock_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

dataplane::Session* new_session(Daemon& d) {
    auto* s = new dataplane::Session;
    d.sessions.insert(s);
    return s;
}

void send_command(Daemon& d, const dataplane::Command& cmd) {
    // The ring holds 256 commands and the worker drains it on every wake. A
    // lost command would leave the two threads disagreeing about a session,
    // so wait (a worker that stays stuck is the watchdog's business).
    for (int tries = 0; !d.channel->commands.push(cmd); ++tries) {
        if (tries == 1000) log::error("worker has not taken a command for 1 s; still waiting");
        uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(d.worker_wake.get(), &one, sizeof one);
        usleep(1000);
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(d.worker_wake.get(), &one, sizeof one);
}

namespace {

int fail(const Status& st) {
    log::error("%s", st.message().c_str());
    return 1;
}

Status resolve_server(Daemon& d) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(d.cfg.server_port);
    int r = getaddrinfo(d.cfg.server_address.c_str(), port.c_str(), &hints, &res);
    if (r != 0 || !res)
        return Status::fail_because(EHOSTUNREACH, "resolve server_address \"" + d.cfg.server_address + "\"",
                                    r == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(r));
    std::memcpy(&d.server_addr, res->ai_addr, sizeof d.server_addr);
    freeaddrinfo(res);
    return Status::success();
}

Status open_event_fds(Daemon& d) {
    d.worker_wake = dataplane::Fd(eventfd(0, EFD_CLOEXEC));
    d.control_wake = dataplane::Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!d.worker_wake.valid() || !d.control_wake.valid()) return Status::fail(errno, "create eventfd");
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
    // Blocked before the worker starts, so only the signalfd ever sees them.
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    d.signals = dataplane::Fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!d.signals.valid()) return Status::fail(errno, "create signalfd");
    // The rings exist before the worker runs, so set-up can queue commands.
    d.channel = std::make_unique<dataplane::Channel>();
    d.channel->worker_wake_fd = d.worker_wake.get();
    d.channel->control_wake_fd = d.control_wake.get();
    return Status::success();
}

Status open_server_socket(Daemon& d) {
    int fd = dataplane::open_server_socket(d.cfg.listen_address, d.cfg.listen_port);
    if (fd < 0)
        return Status::fail(-fd, "bind UDP " + proto::format_ipv4(d.cfg.listen_address) + ":" +
                                     std::to_string(d.cfg.listen_port));
    d.udp = dataplane::Fd(fd);
    return Status::success();
}

void start_worker(Daemon& d) {
    dataplane::WorkerConfig wc;
    wc.role = d.role;
    wc.tun_fd = d.tun.get();
    wc.udp_fd = d.udp.get();
    wc.mode = sched_mode(d.cfg.mode);
    wc.probe_interval_ns = d.cfg.probe_interval_ns;
    wc.link_hold_ns = d.cfg.link_hold_ns;
    wc.offloads = d.cfg.offloads;
    wc.tun_vnet = d.tun_offloads;
    // Test knobs, not config: the paths of kernels without buffer rings
    // (one receive per slab) or without a file table (plain fds), on this one.
    const char* ms = std::getenv("ONEBOX_MULTISHOT");
    wc.multishot = !(ms && std::strcmp(ms, "0") == 0);
    const char* ff = std::getenv("ONEBOX_FIXED_FILES");
    wc.fixed_files = !(ff && std::strcmp(ff, "0") == 0);
    d.worker = std::thread([&d, wc] {
        d.worker_result = dataplane::run_worker(wc, *d.channel);
        if (d.worker_result < 0) {
            log::error("Failed to start the data plane: %s", std::strerror(-d.worker_result));
            ::kill(::getpid(), SIGTERM);  // nothing works without it: shut down cleanly
        }
    });
}

void stop_worker(Daemon& d) {
    if (!d.worker.joinable()) return;
    // Say goodbye first; the sends are on their way well within this pause.
    send_command(d, {dataplane::Command::Kind::CloseAll, nullptr, 0});
    usleep(50'000);
    d.channel->stop.store(true);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(d.worker_wake.get(), &one, sizeof one);
    d.worker.join();
}

void log_stats(const Daemon& d) {
    std::string line = "stats:";
    for (unsigned i = 0; i < unsigned(dataplane::Counter::count); ++i) {
        line += ' ';
        line += dataplane::kCounterNames[i];
        line += '=';
        line += std::to_string(d.channel->counters.get(dataplane::Counter(i)));
    }
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        const dataplane::LinkCounters& l = d.channel->counters.links[i];
        uint64_t tx = l.tx_packets.load(std::memory_order_relaxed);
        uint64_t rx = l.rx_packets.load(std::memory_order_relaxed);
        if (tx == 0 && rx == 0) continue;
        std::string p = " link" + std::to_string(i) + "_";
        line += p + "tx_packets=" + std::to_string(tx);
        line += p + "tx_bytes=" + std::to_string(l.tx_bytes.load(std::memory_order_relaxed));
        line += p + "rx_packets=" + std::to_string(rx);
        line += p + "rx_bytes=" + std::to_string(l.rx_bytes.load(std::memory_order_relaxed));
        {
            line += p + "rate_bps=" + std::to_string(l.rate_bps.load(std::memory_order_relaxed));
            line += p + "pace_bps=" + std::to_string(l.pace_bps.load(std::memory_order_relaxed));
            line += p + "srtt_us=" + std::to_string(l.srtt_us.load(std::memory_order_relaxed));
            auto state = proto::LinkState(l.state.load(std::memory_order_relaxed));
            line += p + "state=" + proto::link_state_name(state);
            line += p + "used=" + std::to_string(l.used.load(std::memory_order_relaxed));
            line += p + "loss_pm=" + std::to_string(l.loss_pm.load(std::memory_order_relaxed));
            line += p + "jitter_us=" + std::to_string(l.jitter_us.load(std::memory_order_relaxed));
            line += p + "downs=" + std::to_string(l.downs.load(std::memory_order_relaxed));
            line += p + "stalls=" + std::to_string(l.stalls.load(std::memory_order_relaxed));
            line += p + "pmtu=" + std::to_string(l.pmtu.load(std::memory_order_relaxed));
        }
    }
    const ControlCounters& c = d.stats;
    line += " handshake_ok=" + std::to_string(c.handshake_ok);
    line += " handshake_bad_mac=" + std::to_string(c.handshake_bad_mac);
    line += " handshake_replayed=" + std::to_string(c.handshake_replayed);
    line += " handshake_malformed=" + std::to_string(c.handshake_malformed);
    line += " handshake_refused=" + std::to_string(c.handshake_refused);
    log::info("%s", line.c_str());
}

void on_signal(Daemon& d) {
    signalfd_siginfo si;
    while (::read(d.signals.get(), &si, sizeof si) == sizeof si) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            if (!d.stopping) log::info("signal %u: shutting down", si.ssi_signo);
            d.stopping = true;
            break;
        case SIGUSR1: log_stats(d); break;
        case SIGHUP:
            notify::reloading();
            (void)reload_config(d);  // a refused config leaves the running one: ready either way
            notify::ready(status_line(d));
            break;
        default: break;
        }
    }
}

// The name a link goes by in logs: the interface (client), the client's
// link number (server).
std::string link_label(const Daemon& d, unsigned i) {
    if (d.role == proto::Role::Client && d.links && i < proto::kMaxLinks) {
        const LinkSlot& s = d.links->slots[i];
        if (s.used) return s.fallback ? kFallbackLinkName : s.link.ifname;
    }
    return std::to_string(i);
}

// Once per failure, not per packet (and rate-limited per kind in log.cpp).
void log_link_failed(const Daemon& d, const dataplane::Event& ev) {
    std::string link = link_label(d, ev.link);
    std::string id = session_hex(ev.session_id);
    log::event(proto::LogLevel::Warn, log::Event::LinkStalled, {link.c_str(), id.c_str()},
               "session %s link %s stopped delivering: %d datagram(s) of the last %u ms sent again on other links",
               id.c_str(), link.c_str(), ev.err, ev.since_ms);
}

void on_worker_events(Daemon& d, uint64_t now) {
    uint64_t count;
    [[maybe_unused]] ssize_t r = ::read(d.control_wake.get(), &count, sizeof count);
    dataplane::Event ev;
    while (d.channel->events.pop(ev)) {
        switch (ev.kind) {
        case dataplane::Event::Kind::SessionConfirmed:
            if (d.role == proto::Role::Server) server_on_confirmed(d, ev);
            break;
        case dataplane::Event::Kind::TunFailed:
            log::error("TUN device %s failed: %s; shutting down", d.cfg.tun.name.c_str(),
                       std::strerror(ev.err));
            d.stopping = true;
            d.exit_code = 1;
            break;
        case dataplane::Event::Kind::PeerClosed:
            if (d.role == proto::Role::Client) client_on_closed(d, ev);
            else server_on_closed(d, ev);
            break;
        case dataplane::Event::Kind::LinkRemoved:
            if (d.links) links_on_removed(d, ev.link);
            break;
        case dataplane::Event::Kind::LinkFailed: log_link_failed(d, ev); break;
        case dataplane::Event::Kind::SessionFree:
            d.sessions.erase(ev.session);
            delete ev.session;  // SessionKeys wipe themselves
            break;
        }
    }
    // Handshakes after control events: a flood of them must not delay a
    // session's confirmation or release.
    dataplane::HandshakeDatagram hs;
    for (unsigned n = 0; n < 1024 && d.channel->handshakes.pop(hs); ++n) {
        if (d.role == proto::Role::Client) client_on_handshake(d, hs, now);
        else server_on_handshake(d, hs, now);
    }
}

const char* link_state_word(const dataplane::LinkCounters& lc) {
    switch (lc.state.load(std::memory_order_relaxed)) {
    case 1: return lc.used.load(std::memory_order_relaxed) ? "up" : "up, unused";
    case 2: return "down";
    default: return "unknown";
    }
}

// systemd's side of things, once per control tick: the watchdog ping (only
// while the worker's loop turns) and, once a second, STATUS= if it changed.
void supervise(Daemon& d, uint64_t now) {
    bool was_withholding = d.watchdog.withholding;
    uint64_t beat = d.channel->heartbeat.load(std::memory_order_relaxed);
    switch (notify::watchdog_check(d.watchdog, now, beat)) {
    case notify::WatchdogAction::Ping:
        notify::watchdog_ping();
        if (was_withholding) log::info("the data-plane worker is making progress again; watchdog pings resumed");
        break;
    case notify::WatchdogAction::Withhold:
        if (!was_withholding)
            log::event(proto::LogLevel::Error, log::Event::Watchdog, {},
                       "the data-plane worker made no progress for %llu ms: watchdog ping withheld, "
                       "systemd will restart the service",
                       (unsigned long long)(d.watchdog.interval_ns / 2'000'000));
        break;
    case notify::WatchdogAction::None: break;
    }
    if (now < d.next_status_ns) return;
    d.next_status_ns = now + 1'000'000'000;
    notify::status(status_line(d));
}

// Client: its links' health as the worker publishes it, logged when it
// changes (the server logs its clients' links in server_tick).
void log_link_health(Daemon& d) {
    if (d.role != proto::Role::Client || !d.links) return;
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        const dataplane::LinkCounters& lc = d.channel->counters.links[i];
        auto state = proto::LinkState(lc.state.load(std::memory_order_relaxed));
        const LinkSlot& slot = d.links->slots[i];
        proto::LinkState& seen = d.link_state_seen[i];
        if (!slot.used || state == seen) {
            if (!slot.used) seen = proto::LinkState::Unknown;
            continue;
        }
        seen = state;
        std::string name = link_label(d, i);
        if (state == proto::LinkState::Up)
            log::event(proto::LogLevel::Info, log::Event::LinkUp, {name.c_str()}, "link %s is up", name.c_str());
        else if (state == proto::LinkState::Down)
            log::event(proto::LogLevel::Warn, log::Event::LinkDown, {name.c_str()},
                       "link %s is down: its probes go unanswered", name.c_str());
    }
}

void control_loop(Daemon& d) {
    constexpr int kTickMs = 50;
    pollfd fds[4] = {{d.signals.get(), POLLIN, 0}, {d.control_wake.get(), POLLIN, 0},
                     {d.links ? d.links->monitor.fd : -1, POLLIN, 0}, {-1, 0, 0}};
    while (!d.stopping) {
        fds[3] = {bus::poll_fd(d), bus::poll_events(d), 0};
        ::poll(fds, 4, kTickMs);
        uint64_t now = dataplane::now_ns();
        if (fds[0].revents) on_signal(d);
        on_worker_events(d, now);  // every tick: a handshake backlog may remain
        bus::process(d);  // every turn: sd-bus may hold messages it read during a call
        if (d.stopping) break;
        if (fds[2].revents) links_on_netlink(d);
        if (d.role == proto::Role::Client) {
            links_tick(d);
            links_follow_mtu(d);
            client_tick(d, now);
        } else {
            server_tick(d, now);
        }
        log_link_health(d);
        bus::tick(d, now);
        supervise(d, now);
    }
}

}  // namespace

std::string status_line(const Daemon& d) {
    if (d.role == proto::Role::Server) {
        size_t n = d.server ? d.server->by_id.size() : 0;
        return "listening on " + proto::format_ipv4(d.cfg.listen_address) + ":" + std::to_string(d.cfg.listen_port) +
               "; " + std::to_string(n) + (n == 1 ? " session" : " sessions");
    }
    bool up = d.client && d.client->live;
    std::string s = (up ? "connected to " : "connecting to ") + format_addr(d.server_addr);
    std::string links;
    if (d.links) {
        for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
            const LinkSlot& slot = d.links->slots[i];
            if (!slot.used || slot.removing) continue;
            links += links.empty() ? "; links: " : ", ";
            links += (slot.fallback ? std::string("default route") : slot.link.ifname) + " " +
                     link_state_word(d.channel->counters.links[i]);
        }
    }
    return s + (links.empty() ? "; no WAN link" : links);
}

namespace {

void free_sessions(Daemon& d) {
    for (dataplane::Session* s : d.sessions) delete s;
    d.sessions.clear();
}

Status bring_up(Daemon& d) {
    if (d.role == proto::Role::Client) {
        Status st = resolve_server(d);
        if (!st.ok()) return st;
    }
    int fd = dataplane::open_tun(d.cfg.tun.name, d.cfg.offloads, &d.tun_offloads);
    if (fd < 0) return Status::fail(-fd, "create TUN device " + d.cfg.tun.name);
    d.tun = dataplane::Fd(fd);
    Status st = setup::apply(d.cfg, d.paths.state_file());
    if (!st.ok()) return st;
    return d.role == proto::Role::Client ? links_start(d) : open_server_socket(d);
}

}  // namespace

static void wipe_string(std::string& s) {
    sodium_memzero(s.data(), s.size());
    s.clear();
}

int run_daemon(proto::Role role, proto::Config& cfg, const DaemonPaths& paths) {
    Daemon d;
    d.role = role;
    d.paths = paths;
    if (sodium_init() < 0) {
        log::error("Failed to initialise libsodium");
        return 1;
    }
    bool derived = proto::derive_psk_key(cfg.preshared_key, d.psk);
    // Only the derived key is needed from here on; the passphrase goes.
    wipe_string(cfg.preshared_key);
    d.cfg = cfg;
    if (!derived) {
        log::error("Failed to derive the key from preshared_key: out of memory");
        return 1;
    }
    // Signals are blocked and read from a signalfd from here on, so a SIGTERM
    // during set-up still ends in a clean shutdown.
    Status st = open_event_fds(d);
    if (!st.ok()) return fail(st);
    st = pidfile::claim(paths.pid_file);
    if (!st.ok()) return fail(st);
    setup::cleanup_stale(paths.state_file());

    st = bring_up(d);
    if (!st.ok()) {
        log::error("%s", st.message().c_str());
        d.tun.reset();
        setup::undo(paths.state_file());
        pidfile::release(paths.pid_file);
        return 1;
    }
    if (role == proto::Role::Client) client_init(d);
    else server_init(d);
    start_worker(d);
    d.watchdog.interval_ns = notify::watchdog_interval_ns();
    bus::start(d, dataplane::now_ns());
    if (role == proto::Role::Server) {
        notify::ready(status_line(d));  // the client says READY once its session is up
        log::event(proto::LogLevel::Info, log::Event::Started, {}, "listening on %s:%u, tunnel %s on %s",
                   proto::format_ipv4(cfg.listen_address).c_str(), cfg.listen_port,
                   proto::format_ipv4(cfg.tun.ip).c_str(), cfg.tun.name.c_str());
    } else {
        log::event(proto::LogLevel::Info, log::Event::Started, {}, "tunnel %s on %s, server %s",
                   proto::format_ipv4(cfg.tun.ip).c_str(), cfg.tun.name.c_str(), format_addr(d.server_addr).c_str());
    }

    control_loop(d);
    notify::stopping();
    bus::announce_now(d, dataplane::now_ns());  // State "stopping"

    stop_worker(d);
    log_stats(d);
    free_sessions(d);
    links_close_all(d);
    d.udp.reset();
    d.tun.reset();  // the TUN device goes away with its last fd
    setup::undo(paths.state_file());
    pidfile::release(paths.pid_file);
    log::event(proto::LogLevel::Info, log::Event::Stopped, {}, "stopped; routes and firewall restored");
    bus::stop(d);  // last: `stop` waits for the name to go
    return d.worker_result < 0 ? 1 : d.exit_code;
}

}  // namespace onebox
