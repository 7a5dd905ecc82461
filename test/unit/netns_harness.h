// netns_harness.h — shared harness for unit tests that change network state
// (links, addresses, routes, rules, nftables, sysctls) against a real kernel.
//
// Such checks run in a forked child that first moves into a fresh network
// namespace (unshare(CLONE_NEWNET)); the namespace disappears when the child
// exits. Safety rule: nothing is changed unless the child is provably in a
// namespace of its own (its /proc/self/ns/net differs from the parent's);
// otherwise the child exits with kSkip before running anything.
//
// Inside the child, EXPECT / EXPECT_OK count failures in g_failures and print
// each one to stderr; the child's exit code is that count (doctest's counters
// live in the parent), which check_in_fresh_netns() turns into a CHECK.
#pragma once

#include <doctest.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <string>

#include "control/result.h"

namespace onebox::test {

// Exit code of a child that could not set up (no namespace, missing driver, ...).
constexpr int kSkip = 77;

// Failed expectations in this process; one variable per test binary. Reset at
// the start of every forked child, so a child's exit code counts only its own.
inline int g_failures = 0;

inline bool expect(bool ok, const std::string& what, const char* file, int line) {
    if (!ok) {
        std::fprintf(stderr, "%s:%d: EXPECT failed: %s\n", file, line, what.c_str());
        ++g_failures;
    }
    return ok;
}

#define EXPECT(cond) ::onebox::test::expect((cond), #cond, __FILE__, __LINE__)
#define EXPECT_OK(expr)                                                                                  \
    do {                                                                                                 \
        const ::onebox::Status expect_status_ = (expr);                                                  \
        ::onebox::test::expect(expect_status_.ok(), std::string(#expr) + ": " + expect_status_.message(), \
                               __FILE__, __LINE__);                                                      \
    } while (0)

// Test-only shell-outs to the standard tools (stdout and stderr together), as an
// independent view of the kernel state.
inline std::string sh(const std::string& cmd) {
    std::string out;
    if (FILE* p = ::popen((cmd + " 2>&1").c_str(), "r")) {
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

inline ino_t netns_inode(const char* path) {
    struct stat st {};
    return ::stat(path, &st) == 0 ? st.st_ino : 0;
}

// For body: gives up on the child (a missing driver or device), reported as skipped.
[[noreturn]] inline void skip_child() { ::_exit(kSkip); }

// Runs body in a forked child inside a new network namespace; returns the
// number of failed expectations, or kSkip if the namespace cannot be made
// (or body called skip_child()).
inline int in_fresh_netns(const std::function<void()>& body) {
    const ino_t host_ns = netns_inode("/proc/self/ns/net");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        g_failures = 0;
        // Never change anything unless we are provably in a namespace of our own.
        if (::unshare(CLONE_NEWNET) != 0) skip_child();
        const ino_t ns = netns_inode("/proc/self/ns/net");
        if (ns == 0 || ns == host_ns) skip_child();
        body();
        std::fflush(nullptr);
        ::_exit(g_failures > 60 ? 60 : g_failures);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    std::fprintf(stderr, "test child died with signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 100;
}

// in_fresh_netns() as a doctest check: skipped without root or when the child
// skips (also_needs names what else it needs, e.g. "TUN device"), failing when
// any expectation failed in the child.
inline void check_in_fresh_netns(const char* also_needs, const std::function<void()>& body) {
    if (::geteuid() != 0) {
        MESSAGE("skipped: needs root (network namespaces)");
        return;
    }
    const int rc = in_fresh_netns(body);
    if (rc == kSkip) {
        MESSAGE("skipped: cannot create a network namespace or " << also_needs << " here");
        return;
    }
    CHECK_MESSAGE(rc == 0, rc << " expectation(s) failed in the namespace (see stderr)");
}

}  // namespace onebox::test
