#include "daemon.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
#include "privileges.h"
#include "proto/link_health.h"
#include "reload.h"
#include "server_sessions.h"
#include "setup.h"
#include "systemd_job.h"

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

static void push_command(WorkerSlot& w, const dataplane::Command& cmd) {
    // The ring holds 256 commands and the worker drains it on every wake. A
    // lost command would leave the two threads disagreeing about a session,
    // so wait (a worker that stays stuck is the watchdog's business).
    uint64_t one = 1;
    for (int tries = 0; !w.channel->commands.push(cmd); ++tries) {
        if (w.result.load() < 0) return;  // it failed and is gone; the daemon is shutting down
        if (tries == 1000) log::error("worker has not taken a command for 1 s; still waiting");
        [[maybe_unused]] ssize_t r = ::write(w.wake.get(), &one, sizeof one);
        usleep(1000);
    }
    [[maybe_unused]] ssize_t r = ::write(w.wake.get(), &one, sizeof one);
}

void send_command(Daemon& d, const dataplane::Command& cmd) {
    using K = dataplane::Command::Kind;
    if (cmd.kind == K::InstallSession || cmd.kind == K::RemoveSession || cmd.kind == K::CloseSession) {
        push_command(*d.workers[dataplane::owner_of(cmd.session_id, unsigned(d.workers.size()))], cmd);
        return;
    }
    for (auto& w : d.workers) push_command(*w, cmd);
}

uint64_t counter_total(const Daemon& d, dataplane::Counter c) {
    uint64_t n = 0;
    for (const auto& w : d.workers) n += w->channel->counters.get(c);
    return n;
}

LinkTotals link_totals(const Daemon& d, unsigned i) {
    LinkTotals t;
    auto worst = [](uint64_t& into, const std::atomic<uint64_t>& v) {
        into = std::max(into, v.load(std::memory_order_relaxed));
    };
    auto sum = [](uint64_t& into, const std::atomic<uint64_t>& v) { into += v.load(std::memory_order_relaxed); };
    for (const auto& w : d.workers) {
        const dataplane::LinkCounters& l = w->channel->counters.links[i];
        sum(t.tx_packets, l.tx_packets), sum(t.tx_bytes, l.tx_bytes), sum(t.rx_packets, l.rx_packets);
        sum(t.rx_bytes, l.rx_bytes), sum(t.rate_bps, l.rate_bps), sum(t.pace_bps, l.pace_bps);
        sum(t.downs, l.downs), sum(t.stalls, l.stalls), sum(t.stalls_undone, l.stalls_undone), sum(t.lossy, l.lossy), sum(t.restarts, l.restarts);
        worst(t.srtt_us, l.srtt_us), worst(t.state, l.state), worst(t.used, l.used);
        worst(t.loss_pm, l.loss_pm), worst(t.jitter_us, l.jitter_us);
        // Each worker's pmtu is the smallest over its sessions (0 = none): so is the total.
        uint64_t pmtu = l.pmtu.load(std::memory_order_relaxed);
        if (pmtu && (t.pmtu == 0 || pmtu < t.pmtu)) t.pmtu = pmtu;
    }
    return t;
}

void steer_tunnel_address(Daemon& d, uint32_t ip, uint32_t id) {
    if (!d.steered) return;
    unsigned queue = dataplane::owner_of(id, unsigned(d.workers.size()));
    int r = dataplane::steer_address(d.steering, ip, queue);
    if (r < 0)
        log::warn("Failed to steer tunnel address %s to worker %u: %s", proto::format_ipv4(ip).c_str(), queue,
                  std::strerror(-r));
}

void unsteer_tunnel_address(Daemon& d, uint32_t ip) {
    if (d.steered) dataplane::unsteer_address(d.steering, ip);
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

// A worker's slot: its rings and the eventfd that wakes it.
Status add_worker_slot(Daemon& d) {
    auto w = std::make_unique<WorkerSlot>();
    w->wake = dataplane::Fd(eventfd(0, EFD_CLOEXEC));
    if (!w->wake.valid()) return Status::fail(errno, "create eventfd");
    w->channel = std::make_unique<dataplane::Channel>();
    w->channel->worker_wake_fd = w->wake.get();
    w->channel->control_wake_fd = d.control_wake.get();
    d.workers.push_back(std::move(w));
    d.channel = d.workers.front()->channel.get();
    return Status::success();
}

Status open_event_fds(Daemon& d) {
    d.control_wake = dataplane::Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!d.control_wake.valid()) return Status::fail(errno, "create eventfd");
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
    // Blocked before the worker starts, so only the signalfd ever sees them.
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    d.signals = dataplane::Fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!d.signals.valid()) return Status::fail(errno, "create signalfd");
    // Worker 0's rings exist before it runs, so set-up can queue commands.
    return add_worker_slot(d);
}

// How many workers the server runs: [server] workers, or one per core this
// process may run on.
unsigned server_worker_count(const proto::Config& cfg) {
    if (cfg.workers) return cfg.workers;
    cpu_set_t set;
    CPU_ZERO(&set);
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    return unsigned(std::clamp(n, 1, int(proto::kMaxWorkers)));
}

Status open_server_socket(Daemon& d, bool reuseport, dataplane::Fd& out) {
    int fd = dataplane::open_server_socket(d.cfg.listen_address, d.cfg.listen_port, reuseport);
    if (fd < 0)
        return Status::fail(-fd, "bind UDP " + proto::format_ipv4(d.cfg.listen_address) + ":" +
                                     std::to_string(d.cfg.listen_port));
    out = dataplane::Fd(fd);
    return Status::success();
}

// Workers 1..n-1 of the server: a TUN queue and a socket of the reuseport
// group each, and the two steering programs that keep every session on its
// owner. Anything missing (no CAP_BPF above all) leaves one worker: slower,
// never wrong.
Status add_server_workers(Daemon& d, unsigned n) {
    for (unsigned i = 1; i < n; ++i) {
        Status st = add_worker_slot(d);
        if (!st.ok()) return st;
        WorkerSlot& w = *d.workers.back();
        int fd = dataplane::open_tun_queue(d.cfg.tun.name, d.tun_offloads);
        if (fd < 0) return Status::fail(-fd, "attach TUN queue " + std::to_string(i) + " of " + d.cfg.tun.name);
        w.tun = dataplane::Fd(fd);
        st = open_server_socket(d, true, w.udp);
        if (!st.ok()) return st;
    }
    int r = dataplane::open_tun_steering(d.tun.get(), d.cfg.max_clients, d.steering);
    if (r < 0) return Status::fail(-r, "load the TUN steering program (it needs CAP_BPF)");
    r = dataplane::attach_reuseport_steering(d.udp.get(), n);
    if (r < 0) return Status::fail(-r, "attach the socket steering program");
    return Status::success();
}

Status open_server_sockets(Daemon& d, unsigned n) {
    Status st = open_server_socket(d, n > 1, d.udp);
    if (!st.ok() || n == 1) return st;
    st = add_server_workers(d, n);
    if (st.ok()) {
        d.steered = true;
        return st;
    }
    log::warn("%s: running one data-plane worker instead of %u", st.message().c_str(), n);
    // Undo what was set up: the other queues and sockets, the TUN program,
    // and socket 0's place in a reuseport group no other socket should join.
    d.workers.resize(1);
    if (d.steering.prog.valid()) dataplane::detach_tun_steering(d.tun.get());
    d.steering = {};
    d.udp.reset();
    return open_server_socket(d, false, d.udp);
}

// The i-th CPU this process may run on (worker i is pinned there), or -1.
int nth_cpu(unsigned i) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set) && unsigned(seen++) == i % unsigned(CPU_COUNT(&set))) return cpu;
    return -1;
}

void start_workers(Daemon& d) {
    dataplane::WorkerConfig wc;
    wc.role = d.role;
    wc.mode = sched_mode(d.cfg.mode);
    wc.probe_interval_ns = d.cfg.probe_interval_ns;
    wc.link_hold_ns = d.cfg.link_hold_ns;
    wc.loss_limit_pm = d.cfg.loss_limit_pm;
    wc.repair_window_ns = d.cfg.repair_window_ns;
    wc.light_copies = d.cfg.light_copies;
    wc.queue_budget_ns = d.cfg.queue_budget_ns;
    wc.queue_hold_ns = d.cfg.queue_hold_ns;
    wc.offloads = d.cfg.offloads;
    wc.tun_vnet = d.tun_offloads;
    // Test knobs, not config: the paths of kernels without buffer rings
    // (one receive per slab) or without a file table (plain fds), on this one.
    const char* ms = std::getenv("ONEBOX_MULTISHOT");
    wc.multishot = !(ms && std::strcmp(ms, "0") == 0);
    const char* ff = std::getenv("ONEBOX_FIXED_FILES");
    wc.fixed_files = !(ff && std::strcmp(ff, "0") == 0);
    for (unsigned i = 0; i < d.workers.size(); ++i) {
        WorkerSlot& w = *d.workers[i];
        wc.tun_fd = i == 0 ? d.tun.get() : w.tun.get();
        wc.udp_fd = i == 0 ? d.udp.get() : w.udp.get();
        // One worker is left to the kernel (see WorkerConfig::cpu); several
        // get a core each.
        wc.cpu = d.workers.size() > 1 ? nth_cpu(i) : -1;
        w.thread = std::thread([&w, wc] {
            int r = dataplane::run_worker(wc, *w.channel);
            w.result.store(r);
            if (r < 0) {
                log::error("Failed to start the data plane: %s", std::strerror(-r));
                ::kill(::getpid(), SIGTERM);  // nothing works without it: shut down cleanly
            }
        });
    }
    if (d.workers.size() > 1) log::info("%zu data-plane workers, one per core", d.workers.size());
}

void stop_workers(Daemon& d) {
    if (d.workers.empty() || !d.workers.front()->thread.joinable()) return;
    // Say goodbye first; the sends are on their way well within this pause.
    send_command(d, {dataplane::Command::Kind::CloseAll, nullptr, 0});
    usleep(50'000);
    uint64_t one = 1;
    for (auto& w : d.workers) {
        w->channel->stop.store(true);
        [[maybe_unused]] ssize_t r = ::write(w->wake.get(), &one, sizeof one);
    }
    for (auto& w : d.workers)
        if (w->thread.joinable()) w->thread.join();
}

bool worker_failed(const Daemon& d) {
    for (const auto& w : d.workers)
        if (w->result.load() < 0) return true;
    return false;
}

// Several workers: what each carried, before the summed stats line (which
// stays the last, as scripts read it).
void log_worker_stats(const Daemon& d) {
    unsigned n = unsigned(d.workers.size());
    if (n < 2) return;
    for (unsigned i = 0; i < n; ++i) {
        const dataplane::Counters& c = d.workers[i]->channel->counters;
        unsigned sessions = 0;
        if (d.server)
            for (const auto& [id, e] : d.server->by_id) sessions += dataplane::owner_of(id, n) == i;
        std::string line = "worker " + std::to_string(i) + " of " + std::to_string(n) + ":";
        line += " sessions=" + std::to_string(sessions);
        for (auto k : {dataplane::Counter::tx_packets, dataplane::Counter::rx_packets, dataplane::Counter::drop_unknown_session,
                       dataplane::Counter::drop_no_session, dataplane::Counter::handshake_rx})
            line += std::string(" ") + dataplane::kCounterNames[unsigned(k)] + "=" + std::to_string(c.get(k));
        log::info("%s", line.c_str());
    }
}

void log_stats(const Daemon& d) {
    log_worker_stats(d);
    std::string line = "stats:";
    for (unsigned i = 0; i < unsigned(dataplane::Counter::count); ++i) {
        line += ' ';
        line += dataplane::kCounterNames[i];
        line += '=';
        line += std::to_string(counter_total(d, dataplane::Counter(i)));
    }
    for (unsigned i = 0; i < proto::kMaxLinks; ++i) {
        LinkTotals l = link_totals(d, i);
        if (l.tx_packets == 0 && l.rx_packets == 0) continue;
        std::string p = " link" + std::to_string(i) + "_";
        line += p + "tx_packets=" + std::to_string(l.tx_packets);
        line += p + "tx_bytes=" + std::to_string(l.tx_bytes);
        line += p + "rx_packets=" + std::to_string(l.rx_packets);
        line += p + "rx_bytes=" + std::to_string(l.rx_bytes);
        line += p + "rate_bps=" + std::to_string(l.rate_bps);
        line += p + "pace_bps=" + std::to_string(l.pace_bps);
        line += p + "srtt_us=" + std::to_string(l.srtt_us);
        line += p + "state=" + proto::link_state_name(proto::LinkState(l.state));
        line += p + "used=" + std::to_string(l.used);
        line += p + "loss_pm=" + std::to_string(l.loss_pm);
        line += p + "jitter_us=" + std::to_string(l.jitter_us);
        line += p + "downs=" + std::to_string(l.downs);
        line += p + "stalls=" + std::to_string(l.stalls);
        line += p + "stalls_undone=" + std::to_string(l.stalls_undone);
        line += p + "lossy=" + std::to_string(l.lossy);
        line += p + "restarts=" + std::to_string(l.restarts);
        line += p + "pmtu=" + std::to_string(l.pmtu);
    }
    const ControlCounters& c = d.stats;
    line += " handshake_ok=" + std::to_string(c.handshake_ok);
    line += " handshake_bad_mac=" + std::to_string(c.handshake_bad_mac);
    line += " handshake_replayed=" + std::to_string(c.handshake_replayed);
    line += " handshake_malformed=" + std::to_string(c.handshake_malformed);
    line += " handshake_refused=" + std::to_string(c.handshake_refused);
    line += " handshake_ratelimited=" + std::to_string(c.handshake_ratelimited);
    line += " handshake_full=" + std::to_string(c.handshake_full);
    line += " handshake_cookie=" + std::to_string(c.handshake_cookie);
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

// Does the server's NAT table stay when it stops (keep_nat)? With
// "restart", when systemd stops us to start us again: the NAT mappings of
// the connections through the tunnel then outlive the gap, and a final stop
// still removes everything.
bool nat_outlives_stop(proto::Config::KeepNat keep) {
    using K = proto::Config::KeepNat;
    if (keep != K::OnRestart) return keep == K::Always;
    bool restarting = false;
    if (Status s = systemd_job::restart_pending(restarting); !s.ok()) {
        log::warn("%s; removing the NAT table as on a final stop", s.message().c_str());
        return false;
    }
    if (restarting) log::info("systemd is restarting the unit: keeping the NAT table for the next start");
    return restarting;
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
    if (ev.lossy) {
        log::event(proto::LogLevel::Warn, log::Event::LinkLossy, {link.c_str(), id.c_str()},
                   "session %s link %s lost %u.%u%% of its packets over the last 500 ms: out of use until "
                   "its probes are clean for %u ms; %d datagram(s) sent again on other links",
                   id.c_str(), link.c_str(), ev.loss_pm / 10, ev.loss_pm % 10, ev.hold_ms, ev.err);
        return;
    }
    log::event(proto::LogLevel::Warn, log::Event::LinkStalled, {link.c_str(), id.c_str()},
               "session %s link %s stopped delivering: %d datagram(s) of the last %u ms sent again on other links",
               id.c_str(), link.c_str(), ev.err, ev.since_ms);
}

void on_events_of(Daemon& d, dataplane::Channel& ch);

void on_worker_events(Daemon& d, uint64_t now) {
    uint64_t count;
    [[maybe_unused]] ssize_t r = ::read(d.control_wake.get(), &count, sizeof count);
    for (auto& w : d.workers) on_events_of(d, *w->channel);
    // Handshakes after control events: a flood of them must not delay a
    // session's confirmation or release.
    dataplane::HandshakeDatagram hs;
    for (auto& w : d.workers) {
        for (unsigned n = 0; n < 1024 && w->channel->handshakes.pop(hs); ++n) {
            if (d.role == proto::Role::Client) client_on_handshake(d, hs, now);
            else server_on_handshake(d, hs, now);
        }
    }
}

void on_events_of(Daemon& d, dataplane::Channel& ch) {
    dataplane::Event ev;
    while (ch.events.pop(ev)) {
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
}

const char* link_state_word(const dataplane::LinkCounters& lc) {
    switch (lc.state.load(std::memory_order_relaxed)) {
    case 1: return lc.used.load(std::memory_order_relaxed) ? "up" : "up, unused";
    case 2: return "down";
    default: return "unknown";
    }
}

// Moves on only when every worker's loop has turned since it last moved, so
// one stuck worker among several still stops the watchdog pings.
uint64_t workers_progress(Daemon& d) {
    for (const auto& w : d.workers)
        if (w->channel->heartbeat.load(std::memory_order_relaxed) == w->beat_seen) return d.progress;
    for (auto& w : d.workers) w->beat_seen = w->channel->heartbeat.load(std::memory_order_relaxed);
    return ++d.progress;
}

// systemd's side of things, once per control tick: the watchdog ping (only
// while the worker's loop turns) and, once a second, STATUS= if it changed.
void supervise(Daemon& d, uint64_t now) {
    bool was_withholding = d.watchdog.withholding;
    switch (notify::watchdog_check(d.watchdog, now, workers_progress(d))) {
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
    unsigned n = d.role == proto::Role::Server ? server_worker_count(d.cfg) : 1;
    int fd = dataplane::open_tun(d.cfg.tun.name, d.cfg.offloads, &d.tun_offloads, n > 1);
    if (fd < 0) return Status::fail(-fd, "create TUN device " + d.cfg.tun.name);
    d.tun = dataplane::Fd(fd);
    Status st = setup::apply(d.cfg, d.paths.state_file());
    if (!st.ok()) return st;
    return d.role == proto::Role::Client ? links_start(d) : open_server_sockets(d, n);
}

}  // namespace

void supervise_now(Daemon& d) { supervise(d, dataplane::now_ns()); }

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
    // A server that lists its clients' own keys may have no shared one.
    const bool shared = !cfg.preshared_key.empty();
    bool derived = !shared || proto::derive_psk_key(cfg.preshared_key, d.psk);
    // Only the derived keys are needed from here on; the passphrases go.
    wipe_string(cfg.preshared_key);
    ClientKeys client_keys;
    // About 0.1 s a key: with many clients, ask systemd for the time.
    Status keys_st = derive_client_keys(cfg.clients, nullptr, client_keys,
                                        [] { notify::extend_start_timeout(5'000'000); });
    d.cfg = cfg;
    if (!derived || !keys_st.ok()) {
        log::error("%s", derived ? keys_st.message().c_str() : "Failed to derive the key from preshared_key: out of memory");
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
        d.workers.resize(1);
        d.tun.reset();
        setup::undo(paths.state_file());
        pidfile::release(paths.pid_file);
        return 1;
    }
    // Set-up done: keep only what the running daemon uses, before any
    // worker thread exists (capabilities are per thread; they inherit these).
    st = privileges::drop(d.steered);
    if (!st.ok()) log::warn("%s; going on with the capabilities it was started with", st.message().c_str());
    if (role == proto::Role::Client) {
        client_init(d);
    } else {
        server_init(d);
        d.server->keys = std::move(client_keys);
        d.server->keys.shared = shared ? &d.psk : nullptr;
        if (!d.server->keys.list.empty())
            log::info("%zu clients with keys of their own%s", d.server->keys.list.size(),
                      shared ? "; other addresses take the shared preshared_key" : "; no shared preshared_key");
    }
    start_workers(d);
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

    stop_workers(d);
    log_stats(d);
    free_sessions(d);
    links_close_all(d);
    d.workers.resize(1);  // the other workers' queues and sockets
    d.udp.reset();
    d.tun.reset();  // the TUN device goes away with its last fd
    const bool keep_nat = d.role == proto::Role::Server && nat_outlives_stop(d.cfg.keep_nat);
    setup::undo(paths.state_file(), keep_nat);
    pidfile::release(paths.pid_file);
    log::event(proto::LogLevel::Info, log::Event::Stopped, {}, "%s",
               keep_nat ? "stopped; routes restored, the NAT table kept (keep_nat)" : "stopped; routes and firewall restored");
    bus::stop(d);  // last: `stop` waits for the name to go
    return worker_failed(d) ? 1 : d.exit_code;
}

}  // namespace onebox
