// log.h — one line per thing that happened; no per-packet logging.
//
// Under systemd (stderr is the journal stream named by JOURNAL_STREAM) every
// line goes to journald through its native protocol (sd_journal_send), with
// PRIORITY=, and events also carry MESSAGE_ID= (one per kind, so
// `journalctl MESSAGE_ID=…` finds them), ONEBOX_EVENT= and, where there is
// one, ONEBOX_LINK=, ONEBOX_CLIENT= (a session id) and ONEBOX_ADDRESS=.
// Anywhere else: plain lines on stderr. Levels follow the config's
// log_level. The events that can repeat fast (link up, down and stalled,
// watchdog) are rate-limited per kind (a burst of 10, then one a second),
// and the next line that passes says how many were dropped; handshake
// rejections are limited where they are logged (server_sessions.h).
#pragma once

#include <cstdint>

#include "../proto/config.h"

namespace onebox::log {

void set_level(proto::LogLevel level);
void set_prefix(const char* prefix);  // e.g. "onebox-client": SYSLOG_IDENTIFIER and the stderr prefix

[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warn(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...);

// What kind of thing happened, for MESSAGE_ID= and ONEBOX_EVENT=. The list
// (names, ids, meaning) is in the README's "Logs" section.
enum class Event : uint8_t {
    Started,         // the daemon is up (TUN, routes, socket)
    Stopped,         // routes and firewall restored, exiting
    Connected,       // client: session with the server up; server: a client connected
    Disconnected,    // the session ended (peer closed, silent, or Disconnect())
    LinkAdded,       // client: a WAN interface became a link
    LinkRemoved,     // client: a link went away (interface down, address change, switched off)
    LinkUp,          // probes answered: the link carries traffic
    LinkDown,        // 4 probes lost in a row: the link is taken out of use
    LinkStalled,     // deliveries stopped while other links went on; in-flight resent
    LinkLossy,       // the link lost a share of its packets while another was clean: out of use
    AuthFailed,      // a handshake failed its MAC or was refused
    ConfigReloaded,  // SIGHUP or Reload(): the new config is in force
    ConfigRefused,   // SIGHUP or Reload(): the new config did not parse; the old one stays
    ModeChanged,     // SetMode() over D-Bus
    Watchdog,        // the data-plane worker made no progress: watchdog ping withheld
    count
};
const char* event_name(Event e);        // "link-up"
const char* event_message_id(Event e);  // 32 hex digits

struct Tags {
    const char* link = nullptr;     // ONEBOX_LINK: interface name (client), link id (server)
    const char* client = nullptr;   // ONEBOX_CLIENT: session id, 8 hex digits
    const char* address = nullptr;  // ONEBOX_ADDRESS: the peer's ip:port
};

[[gnu::format(printf, 4, 5)]] void event(proto::LogLevel level, Event e, const Tags& tags, const char* fmt, ...);

// True when stderr is the journal stream JOURNAL_STREAM names (checked once).
bool to_journal();

// The per-kind rate limit: a burst of 10 lines, then one a second.
struct Limiter {
    double tokens = 10;
    uint64_t at = 0;       // last look, ns (monotonic)
    uint64_t dropped = 0;  // lines refused since the last one let through
    bool allow(uint64_t now_ns);
};

}  // namespace onebox::log
