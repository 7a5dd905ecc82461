#include "log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace onebox::log {
namespace {

proto::LogLevel g_level = proto::LogLevel::Info;
const char* g_prefix = "onebox";
std::mutex g_mutex;  // control-plane only: lines from two threads must not interleave

struct EventInfo {
    const char* name;
    const char* message_id;
};
// Fixed for good: scripts and journalctl filters use them.
constexpr EventInfo kEvents[] = {
    {"started", "334e045d93f24f53ae0b97bcaba81539"},
    {"stopped", "561430dde46e47afa47700de5b2ed27b"},
    {"connected", "3508749ee7e4432ca3037cdf190ff89f"},
    {"disconnected", "3c9491f16aec4621951753010db44dfd"},
    {"link-added", "a8d31cd76a544f86865f280d33f7c92f"},
    {"link-removed", "74101a2868d54f78832ea930f83d3a42"},
    {"link-up", "4f53ffc292084bb4b16336d637e7ed1b"},
    {"link-down", "26596081a1ca4a36b76d23c8b2e7dab5"},
    {"link-stalled", "9cd9e7447ffe46f3a50518eeebc45672"},
    {"link-lossy", "c7021698f0ac436ba3eeee24d9a41f71"},
    {"auth-failed", "9b22ef2858e349faaabb58cb63dd31f2"},
    {"config-reloaded", "85295d96a80a48bb86f873415d2e3b4e"},
    {"config-refused", "c6e46d8924864706bc0134cd8d1377d5"},
    {"mode-changed", "65fe7107f6534120a8145c8f791cbbb8"},
    {"watchdog", "0e0d893f71f5456f9fc1016830b2395b"},
};
static_assert(sizeof kEvents / sizeof kEvents[0] == size_t(Event::count));

int syslog_priority(proto::LogLevel l) {
    switch (l) {
    case proto::LogLevel::Error: return LOG_ERR;
    case proto::LogLevel::Warn: return LOG_WARNING;
    case proto::LogLevel::Info: return LOG_INFO;
    case proto::LogLevel::Debug: return LOG_DEBUG;
    }
    return LOG_INFO;
}

uint64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

Limiter g_limiters[size_t(Event::count)];

// systemd's own test (log_stderr_is_journal): JOURNAL_STREAM holds the
// device and inode of the stream it gave us as stderr.
bool stderr_is_journal() {
    const char* e = std::getenv("JOURNAL_STREAM");
    if (!e) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0) return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void write_stderr(int prio, const std::string& msg) {
    // Stderr is the journal stream but its native socket failed us: "<N>"
    // still gives journald the priority. Anywhere else it would be noise.
    if (to_journal()) std::fprintf(stderr, "<%d>", prio);
    std::fprintf(stderr, "%s: %s\n", g_prefix, msg.c_str());
}

// Kinds that can repeat fast (a flapping link, a stuck worker). The rest
// are rare or are records someone may need each of (a reconnect storm's
// connected lines); auth-failed is limited where it is logged, per reason.
bool rate_limited(Event e) {
    return e == Event::LinkUp || e == Event::LinkDown || e == Event::LinkStalled || e == Event::LinkLossy ||
           e == Event::Watchdog;
}

void write_journal(int prio, const std::string& msg, const Event* e, const Tags& tags) {
    std::string fields[9];
    unsigned n = 0;
    fields[n++] = "MESSAGE=" + msg;
    fields[n++] = "PRIORITY=" + std::to_string(prio);
    fields[n++] = std::string("SYSLOG_IDENTIFIER=") + g_prefix;
    if (e) {
        fields[n++] = std::string("MESSAGE_ID=") + kEvents[size_t(*e)].message_id;
        fields[n++] = std::string("ONEBOX_EVENT=") + kEvents[size_t(*e)].name;
    }
    if (tags.link) fields[n++] = std::string("ONEBOX_LINK=") + tags.link;
    if (tags.client) fields[n++] = std::string("ONEBOX_CLIENT=") + tags.client;
    if (tags.address) fields[n++] = std::string("ONEBOX_ADDRESS=") + tags.address;
    iovec iov[9];
    for (unsigned i = 0; i < n; ++i) iov[i] = {fields[i].data(), fields[i].size()};
    if (sd_journal_sendv(iov, int(n)) < 0) write_stderr(prio, msg);  // journald gone: keep the line
}

[[gnu::format(printf, 4, 0)]] void emit(proto::LogLevel level, const Event* e, const Tags& tags, const char* fmt,
                                        va_list ap) {
    if (level > g_level) return;
    char buf[1024];
    va_list again;
    va_copy(again, ap);
    int len = std::vsnprintf(buf, sizeof buf, fmt, ap);
    std::string msg;
    if (len >= int(sizeof buf)) {  // the stats: line is long
        msg.resize(size_t(len) + 1);
        std::vsnprintf(msg.data(), msg.size(), fmt, again);
        msg.resize(size_t(len));
    } else {
        msg = len > 0 ? buf : "";
    }
    va_end(again);
    std::lock_guard<std::mutex> lock(g_mutex);
    if (e && rate_limited(*e)) {
        Limiter& l = g_limiters[size_t(*e)];
        uint64_t dropped = l.dropped;
        if (!l.allow(monotonic_ns())) return;
        if (dropped) {
            msg += " (" + std::to_string(dropped) + " similar message" + (dropped == 1 ? "" : "s") + " not logged)";
            l.dropped = 0;
        }
    }
    int prio = syslog_priority(level);
    if (to_journal()) write_journal(prio, msg, e, tags);
    else write_stderr(prio, msg);
}

}  // namespace

bool Limiter::allow(uint64_t now) {
    if (at != 0 && now > at) tokens = std::min(10.0, tokens + double(now - at) / 1e9);
    at = now;
    if (tokens < 1) {
        ++dropped;
        return false;
    }
    tokens -= 1;
    return true;
}

void set_level(proto::LogLevel level) { g_level = level; }
void set_prefix(const char* prefix) { g_prefix = prefix; }

bool to_journal() {
    static const bool yes = stderr_is_journal();
    return yes;
}

const char* event_name(Event e) { return e < Event::count ? kEvents[size_t(e)].name : "?"; }
const char* event_message_id(Event e) { return e < Event::count ? kEvents[size_t(e)].message_id : ""; }

void event(proto::LogLevel level, Event e, const Tags& tags, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit(level, &e, tags, fmt, ap);
    va_end(ap);
}

#define ONEBOX_LOG_FN(name, lvl)                        \
    void name(const char* fmt, ...) {                   \
        va_list ap;                                     \
        va_start(ap, fmt);                              \
        emit(proto::LogLevel::lvl, nullptr, {}, fmt, ap); \
        va_end(ap);                                     \
    }
ONEBOX_LOG_FN(error, Error)
ONEBOX_LOG_FN(warn, Warn)
ONEBOX_LOG_FN(info, Info)
ONEBOX_LOG_FN(debug, Debug)

}  // namespace onebox::log
