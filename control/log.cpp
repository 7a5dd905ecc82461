#include "log.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace onebox::log {
namespace {
proto::LogLevel g_level = proto::LogLevel::Info;
const char* g_prefix = "onebox";
std::mutex g_mutex;  // control-plane only: lines from two threads must not interleave

// systemd reads "<N>" at the start of a line as the syslog priority.
[[gnu::format(printf, 3, 0)]] void emit(proto::LogLevel level, int syslog_prio, const char* fmt, va_list ap) {
    if (level > g_level) return;
    std::lock_guard<std::mutex> lock(g_mutex);
    // Under systemd (JOURNAL_STREAM set) "<N>" gives journald the priority;
    // on a terminal it would only be noise.
    static const bool under_journal = std::getenv("JOURNAL_STREAM") != nullptr;
    if (under_journal) std::fprintf(stderr, "<%d>", syslog_prio);
    std::fprintf(stderr, "%s: ", g_prefix);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
}
}  // namespace

void set_level(proto::LogLevel level) { g_level = level; }
void set_prefix(const char* prefix) { g_prefix = prefix; }

#define ONEBOX_LOG_FN(name, lvl, prio)          \
    void name(const char* fmt, ...) {            \
        va_list ap;                              \
        va_start(ap, fmt);                       \
        emit(proto::LogLevel::lvl, prio, fmt, ap); \
        va_end(ap);                              \
    }
ONEBOX_LOG_FN(error, Error, 3)
ONEBOX_LOG_FN(warn, Warn, 4)
ONEBOX_LOG_FN(info, Info, 6)
ONEBOX_LOG_FN(debug, Debug, 7)

}  // namespace onebox::log
