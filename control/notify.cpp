// notify.cpp — see notify.h.
#include "notify.h"

#include <systemd/sd-daemon.h>

namespace onebox::notify {
namespace {
std::string g_status;  // the last STATUS= sent (control thread only)
}

void ready(const std::string& line) {
    g_status = line;
    sd_notifyf(0, "READY=1\nSTATUS=%s", line.c_str());
}

void reloading() { sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration"); }

void stopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping: restoring routes and firewall"); }

void extend_start_timeout(uint64_t usec) {
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", static_cast<unsigned long long>(usec));
}

void status(const std::string& line) {
    if (line == g_status) return;
    g_status = line;
    sd_notifyf(0, "STATUS=%s", line.c_str());
}

WatchdogAction watchdog_check(Watchdog& w, uint64_t now, uint64_t heartbeat) {
    if (w.interval_ns == 0) return WatchdogAction::None;
    if (w.looked && now < w.next_ns) return WatchdogAction::None;
    // A look every half interval: one late or missed ping still leaves the
    // next in time.
    w.next_ns = now + w.interval_ns / 2;
    bool moved = !w.looked || heartbeat != w.beat;
    w.looked = true;
    w.beat = heartbeat;
    w.withholding = !moved;
    return moved ? WatchdogAction::Ping : WatchdogAction::Withhold;
}

uint64_t watchdog_interval_ns() {
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec * 1000 : 0;
}

void watchdog_ping() { sd_notify(0, "WATCHDOG=1"); }

}  // namespace onebox::notify
