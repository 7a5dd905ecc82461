// cli.cpp — onebox-client / onebox-server command line: start, stop,
// --help, --version. Config errors are reported before anything changes.
#include "cli.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "config.h"
#include "daemon.h"
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
        "\n"
        "Options:\n"
        "  -c, --config PATH   config file (default %s)\n"
        "  --pid-file PATH     pid file (default %s)\n"
        "  -h, --help          show this help\n"
        "  --version           show the version\n"
        "\n"
        "Signals: SIGUSR1 logs a 'stats:' line with every counter; SIGHUP re-reads the\n"
        "config and applies mode, link overrides, probe_interval, link_hold and log_level.\n",
        name,
        role == proto::Role::Client
            ? "Bonding client: carries this machine's and its LAN's traffic to an onebox-server."
            : "Bonding server: terminates onebox clients and forwards their traffic with NAT.",
        default_config(role).c_str(), default_pid_file(role).c_str());
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

int cmd_stop(proto::Role role, const std::string& pid_file) {
    int pid = pidfile::running_pid(pid_file);
    if (pid <= 0) {
        std::fprintf(stderr, "%s: not running (no live pid in %s)\n", role_name(role), pid_file.c_str());
        return 1;
    }
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

}  // namespace

int run_cli(proto::Role role, int argc, char** argv) {
    log::set_prefix(role_name(role));
    std::string command, config_path = default_config(role), pid_file = default_pid_file(role);
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "-h" || a == "--help") { print_help(role); return 0; }
        if (a == "--version") { std::printf("%s %s\n", role_name(role), ONEBOX_VERSION); return 0; }
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
    if (command.empty()) return usage_error(role, "missing command (start or stop)");
    if (command == "start") return cmd_start(role, config_path, pid_file);
    if (command == "stop") return cmd_stop(role, pid_file);
    return usage_error(role, "unknown command " + command);
}

}  // namespace onebox
