// result.h — errors as values at the control-plane boundary.
#pragma once

#include <cerrno>
#include <string>

namespace onebox {

// err is a positive errno (0 = success); what says what we were doing,
// e.g. "add route 0.0.0.0/0 dev onebox0 table 28526".
struct Status {
    int err = 0;
    std::string what;
    std::string reason;  // overrides strerror(err) when the cause is not an errno
    bool ok() const { return err == 0; }
    static Status success() { return {}; }
    static Status fail(int e, std::string w) { return {e > 0 ? e : (e < 0 ? -e : EIO), std::move(w), {}}; }
    // A failure whose cause is not an errno (a resolver error, say).
    static Status fail_because(int e, std::string w, std::string why) {
        Status st = fail(e, std::move(w));
        st.reason = std::move(why);
        return st;
    }
    // "Failed to <what>: <reason or strerror(err)>"
    std::string message() const;
};

}  // namespace onebox
