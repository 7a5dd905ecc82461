#include "privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace onebox::privileges {

namespace {

// glibc has no capget/capset wrappers; the raw calls with the 64-bit
// (version 3) layout: data[0] holds capabilities 0-31, data[1] 32-63.
struct CapSets {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
};

uint64_t bit(int cap) { return uint64_t(1) << cap; }

uint64_t join(uint32_t lo, uint32_t hi) { return uint64_t(hi) << 32 | lo; }

// The highest capability this kernel knows (CAP_LAST_CAP of its headers may
// be older or newer than the kernel).
int last_cap() {
    int last = CAP_LAST_CAP;
    while (last < 63 && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) ++last;
    return last;
}

}  // namespace

Status drop(bool keep_bpf) {
    CapSets now;
    if (syscall(SYS_capget, &now.hdr, now.data) < 0) return Status::fail(errno, "read the capabilities");
    uint64_t permitted = join(now.data[0].permitted, now.data[1].permitted);
    uint64_t effective = join(now.data[0].effective, now.data[1].effective);
    uint64_t keep = bit(CAP_NET_ADMIN) | (keep_bpf ? bit(CAP_BPF) : 0);
    keep &= permitted;

    // The bounding set needs CAP_SETPCAP in effect to shrink; under systemd's
    // CapabilityBoundingSet= it is small already and CAP_SETPCAP is not in
    // it. A failure here is reported, but the sets below are dropped anyway:
    // they are what the running daemon could use.
    Status bounding = Status::success();
    if (effective & bit(CAP_SETPCAP)) {
        for (int cap = 0, last = last_cap(); cap <= last && bounding.ok(); ++cap) {
            if (keep & bit(cap)) continue;
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                bounding = Status::fail(errno, "drop capability " + std::to_string(cap) + " from the bounding set");
        }
    }
    Status ambient = Status::success();
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        ambient = Status::fail(errno, "clear the ambient capabilities");

    CapSets want;
    for (int i = 0; i < 2; ++i) {
        uint32_t part = uint32_t(keep >> (32 * i));
        want.data[i].effective = part;
        want.data[i].permitted = part;
        want.data[i].inheritable = 0;
    }
    if (syscall(SYS_capset, &want.hdr, want.data) < 0) return Status::fail(errno, "drop capabilities");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return Status::fail(errno, "set no_new_privs");
    return !bounding.ok() ? bounding : ambient;
}

}  // namespace onebox::privileges
