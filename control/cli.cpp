// cli.cpp — onebox-client / onebox-server command line: start, stop,
// reload, status, --help, --version. Config errors are reported before
// anything changes; stop, reload and status talk to the daemon over D-Bus.
#include "cli.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "bus_objects.h"
#include "bus_query.h"
#include "config.h"
#include "daemon.h"
#include "status.h"
#include "log.h"
#include "pidfile.h"

namespace onebox {
namespace {

const char* role_name(proto::Role role) {
    return role == proto::Role::Client ? "onebox-client" : "onebox-server";
}

std::string default_config(proto::Role role) {
    return role == proto::Role::Client ? "/etc/onebox/client.conf" : "/etc/onebox/server.conf";
}

// systemd's RuntimeDirectory= sets RUNTIME_DIRECTORY; otherwise /run/onebox.
std::string default_pid_file(proto::Role role) {
    const char* dir = std::getenv("RUNTIME_DIRECTORY");
    std::string base = dir && *dir ? dir : "/run/onebox";
    return base + (role == proto::Role::Client ? "/client.pid" : "/server.pid");
}

void print_help(proto::Role role) {
    const char* name = role_name(role);
    std::printf(
        "Usage: %s COMMAND [OPTIONS]\n"
        "\n"
        "%s\n"
        "\n"
        "Commands:\n"
        "  start     run in the foreground until SIGTERM/SIGINT (as systemd runs it)\n"
        "  stop      stop the running instance and wait until it has cleaned up\n"
        "  reload    re-read the config (a bad one is refused and the running one stays)\n"
        "  status    show %s\n"
        "\n"
        "Options:\n"
        "  -c, --config PATH   config file (default %s)\n"
        "  --pid-file PATH     pid file (default %s)\n"
        "  --json              status: print JSON instead of a table\n"
        "  --watch             status: print again every second until interrupted\n"
        "  -h, --help          show this help\n"
        "  --version           show the version\n"
        "\n"
        "stop, reload and status use D-Bus (%s on the system bus); stop and reload\n"
        "fall back to signals through the pid file when the bus cannot be reached.\n"
        "Signals: SIGUSR1 logs a 'stats:' line with every counter; SIGHUP re-reads the\n"
        "config and applies mode, link overrides, probe_interval, link_hold and log_level.\n",
        name,
        role == proto::Role::Client
            ? "Bonding client: carries this machine's and its LAN's traffic to an onebox-server."
            : "Bonding server: terminates onebox clients and forwards their traffic with NAT.",
        role == proto::Role::Client ? "the session, each link's state, RTT, loss and rates, and totals"
                                    : "the connected clients, their links and rates, and totals",
        default_config(role).c_str(), default_pid_file(role).c_str(), bus::bus_name(role));
}

// What to tell a person whose daemon is not on the bus.
int not_running(proto::Role role) {
    std::fprintf(stderr, "%s is not running: start it with systemctl start %s\n", role_name(role), role_name(role));
    return 3;  // LSB: program is not running
}

int bus_unreachable(proto::Role role, const Status& st) {
    std::fprintf(stderr, "%s: %s (is dbus running?)\n", role_name(role), st.message().c_str());
    return 1;
}

int not_allowed(proto::Role role, const char* command) {
    std::fprintf(stderr, "%s: %s: permission denied (the D-Bus policy lets only root do that; try sudo)\n",
                 role_name(role), command);
    return 4;  // LSB: insufficient privilege
}

int usage_error(proto::Role role, const std::string& msg) {
    std::fprintf(stderr, "%s: %s\nTry '%s --help'.\n", role_name(role), msg.c_str(), role_name(role));
    return 2;
}

int cmd_start(proto::Role role, const std::string& config_path, const std::string& pid_file) {
    proto::Config cfg;
    proto::ConfigError err = load_config_file(config_path, role, cfg);
    if (!err.ok) {
        std::fprintf(stderr, "%s: %s\n", role_name(role), format_config_error(config_path, err).c_str());
        return 2;
    }
    log::set_level(cfg.log_level);
    // The example configs ship the seed's placeholder so they load as they
    // are; running a real tunnel on a published key deserves a loud word.
    if (cfg.preshared_key == "your-secure-preshared-key")
        log::warn("%s: preshared_key is the example placeholder; set your own secret",
                  config_path.c_str());
    DaemonPaths paths{config_path, pid_file};
    return run_daemon(role, cfg, paths);
}

// Without D-Bus: SIGTERM through the pid file, then wait for the process to go.
int stop_by_signal(proto::Role role, const std::string& pid_file) {
    int pid = pidfile::running_pid(pid_file);
    if (pid <= 0) return not_running(role);
    if (::kill(pid, SIGTERM) < 0) {
        std::fprintf(stderr, "%s: Failed to signal pid %d: %s\n", role_name(role), pid, std::strerror(errno));
        return 1;
    }
    // Wait for the instance to finish restoring routes and firewall.
    for (int i = 0; i < 300; ++i) {
        if (::kill(pid, 0) < 0 && errno == ESRCH) return 0;
        usleep(50'000);
    }
    std::fprintf(stderr, "%s: pid %d did not stop within 15 s\n", role_name(role), pid);
    return 1;
}

// Stop() over D-Bus, then wait until the name is gone: the daemon gives it
// up as the very last thing, after routes and firewall are restored.
int cmd_stop(proto::Role role, const std::string& pid_file) {
    Status st = bus::call_method(role, bus::root_path(role), bus::bus_name(role), "Stop");
    if (st.ok()) {
        if (bus::wait_until_gone(role, 15'000)) return 0;
        std::fprintf(stderr, "%s: did not stop within 15 s\n", role_name(role));
        return 1;
    }
    if (st.err == EACCES) return not_allowed(role, "stop");
    if (st.err != ESRCH && !st.reason.empty()) {  // the daemon answered with an error
        std::fprintf(stderr, "%s: %s\n", role_name(role), st.reason.c_str());
        return 1;
    }
    // No bus, or not on it (maybe running without one: dbus was down at its
    // start): the pid file.
    return stop_by_signal(role, pid_file);
}

int cmd_reload(proto::Role role, const std::string& pid_file) {
    Status st = bus::call_method(role, bus::root_path(role), bus::bus_name(role), "Reload");
    if (st.ok()) return 0;
    if (st.err == EACCES) return not_allowed(role, "reload");
    if (st.err != ESRCH && !st.reason.empty()) {  // the daemon answered: refused, with the config's error
        std::fprintf(stderr, "%s: %s\n", role_name(role), st.reason.c_str());
        return 1;
    }
    // Not on the bus, or no bus: SIGHUP through the pid file.
    int pid = pidfile::running_pid(pid_file);
    if (pid <= 0) return st.err == ESRCH ? not_running(role) : bus_unreachable(role, st);
    if (::kill(pid, SIGHUP) < 0) {
        std::fprintf(stderr, "%s: Failed to signal pid %d: %s\n", role_name(role), pid, std::strerror(errno));
        return 1;
    }
    std::fprintf(stderr, "%s: not reachable over D-Bus; sent SIGHUP to pid %d, see its log for the outcome\n",
                 role_name(role), pid);
    return 0;
}

volatile sig_atomic_t g_interrupted = 0;

int cmd_status(proto::Role role, bool json, bool watch) {
    if (watch) {
        struct sigaction sa{};
        sa.sa_handler = [](int) { g_interrupted = 1; };
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
    }
    for (;;) {
        bus::ObjectMap objects;
        Status st = bus::fetch_objects(role, objects);
        std::string text;
        if (st.ok()) text = json ? status::render_json(role, objects) : status::render_text(role, objects);
        if (watch && !json) std::fputs("\033[H\033[2J", stdout);  // home, clear
        if (!st.ok()) {
            std::fflush(stdout);
            int rc = st.err == ESRCH    ? not_running(role)
                     : st.err == EACCES ? not_allowed(role, "status")
                                        : bus_unreachable(role, st);
            if (!watch) return rc;
        } else {
            std::fputs(text.c_str(), stdout);
            std::fflush(stdout);
            if (!watch) return 0;
        }
        for (int i = 0; i < 10 && !g_interrupted; ++i) usleep(100'000);
        if (g_interrupted) return 0;
    }
}

}  // namespace

int run_cli(proto::Role role, int argc, char** argv) {
    log::set_prefix(role_name(role));
    std::string command, config_path = default_config(role), pid_file = default_pid_file(role);
    bool json = false, watch = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "-h" || a == "--help") { print_help(role); return 0; }
        if (a == "--version") { std::printf("%s %s\n", role_name(role), ONEBOX_VERSION); return 0; }
        if (a == "--json") { json = true; continue; }
        if (a == "--watch") { watch = true; continue; }
        if (a == "-c" || a == "--config" || a == "--pid-file") {
            const char* v = value();
            if (!v) return usage_error(role, "option " + a + " needs a value");
            (a == "--pid-file" ? pid_file : config_path) = v;
        } else if (a.rfind("--config=", 0) == 0) {
            config_path = a.substr(9);
        } else if (a.rfind("--pid-file=", 0) == 0) {
            pid_file = a.substr(11);
        } else if (!a.empty() && a[0] == '-') {
            return usage_error(role, "unknown option " + a);
        } else if (command.empty()) {
            command = a;
        } else {
            return usage_error(role, "unexpected argument " + a);
        }
    }
    if (command.empty()) return usage_error(role, "missing command (start, stop, reload or status)");
    if ((json || watch) && command != "status") return usage_error(role, "--json and --watch are for status");
    if (command == "start") return cmd_start(role, config_path, pid_file);
    if (command == "stop") return cmd_stop(role, pid_file);
    if (command == "reload") return cmd_reload(role, pid_file);
    if (command == "status") return cmd_status(role, json, watch);
    return usage_error(role, "unknown command " + command);
}

}  // namespace onebox
