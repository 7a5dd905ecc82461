// notify.h — what systemd hears from the daemon (sd_notify; nothing at all
// when NOTIFY_SOCKET is unset): READY=1 once the daemon is set up, a
// one-line STATUS= kept current, RELOADING=1 and READY=1 around a reload,
// STOPPING=1, and WATCHDOG=1 only while the data plane makes progress.
#pragma once

#include <cstdint>
#include <string>

namespace onebox::notify {

void ready(const std::string& status);
void reloading();
void stopping();
// STATUS=line, only when it differs from the last one sent.
void status(const std::string& line);
// EXTEND_TIMEOUT_USEC: set-up that takes long (many client keys) asks systemd
// for this much more time before READY.
void extend_start_timeout(uint64_t usec);

// The watchdog decision, kept free of I/O so it can be tested with a fake
// clock. Every half WATCHDOG_USEC the worker's heartbeat (a counter its
// loop bumps at least every 100 ms) is compared with the last look: moved,
// the service gets WATCHDOG=1; stuck, it gets nothing, and systemd
// restarts the service once WATCHDOG_USEC passes without a ping.
struct Watchdog {
    uint64_t interval_ns = 0;  // WATCHDOG_USEC; 0 = no watchdog
    uint64_t next_ns = 0;      // the next look
    uint64_t beat = 0;         // the heartbeat at the last look
    bool looked = false;       // a first look was taken
    bool withholding = false;  // the last look found the worker stuck
};
enum class WatchdogAction : uint8_t { None, Ping, Withhold };
WatchdogAction watchdog_check(Watchdog& w, uint64_t now_ns, uint64_t heartbeat);

// WATCHDOG_USEC for this process (sd_watchdog_enabled) in ns, or 0.
uint64_t watchdog_interval_ns();
void watchdog_ping();

}  // namespace onebox::notify
