#include "bus_query.h"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "bus_objects.h"

namespace onebox::bus {
namespace {

struct BusDeleter {
    void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct MessageDeleter {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using BusPtr = std::unique_ptr<sd_bus, BusDeleter>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageDeleter>;

// sd_bus_error freed on every path.
struct Error {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    ~Error() { sd_bus_error_free(&e); }
};

Status open_bus(BusPtr& out) {
    sd_bus* b = nullptr;
    int r = sd_bus_open_system(&b);
    if (r < 0) return Status::fail(-r, "connect to the system bus");
    out.reset(b);
    return Status::success();
}

bool not_running(const sd_bus_error& e) {
    return sd_bus_error_has_name(&e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
           sd_bus_error_has_name(&e, SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

Status from_error(int r, const sd_bus_error& e, const std::string& what) {
    if (not_running(e)) return Status::fail(ESRCH, what);
    if (sd_bus_error_has_name(&e, SD_BUS_ERROR_ACCESS_DENIED)) return Status::fail(EACCES, what);
    if (sd_bus_error_is_set(&e)) return Status::fail_because(-r, what, e.message ? e.message : e.name);
    return Status::fail(-r, what);
}

// ---- variants into Values ---------------------------------------------------------

int read_value(sd_bus_message* m, const std::string& sig, Value& out) {
    int r = 0;
    if (sig == "b") {
        int b = 0;
        r = sd_bus_message_read_basic(m, 'b', &b);
        out = bool(b);
    } else if (sig == "y") {
        uint8_t y = 0;
        r = sd_bus_message_read_basic(m, 'y', &y);
        out = y;
    } else if (sig == "u") {
        uint32_t u = 0;
        r = sd_bus_message_read_basic(m, 'u', &u);
        out = u;
    } else if (sig == "t") {
        uint64_t t = 0;
        r = sd_bus_message_read_basic(m, 't', &t);
        out = t;
    } else if (sig == "d") {
        double d = 0;
        r = sd_bus_message_read_basic(m, 'd', &d);
        out = d;
    } else if (sig == "s" || sig == "o") {
        const char* s = nullptr;
        r = sd_bus_message_read_basic(m, sig[0], &s);
        out = std::string(s ? s : "");
    } else if (sig == "as") {
        char** strv = nullptr;
        r = sd_bus_message_read_strv(m, &strv);
        std::vector<std::string> v;
        for (char** p = strv; p && *p; ++p) {
            v.emplace_back(*p);
            free(*p);
        }
        free(strv);
        out = v;
    } else if (sig == "a{st}") {
        Counts c;
        r = sd_bus_message_enter_container(m, 'a', "{st}");
        while (r >= 0) {
            const char* k = nullptr;
            uint64_t v = 0;
            r = sd_bus_message_read(m, "{st}", &k, &v);
            if (r <= 0) break;
            c.emplace_back(k, v);
        }
        if (r >= 0) r = sd_bus_message_exit_container(m);
        out = c;
    } else if (sig == "a(ysstdtt)") {
        std::vector<LinkRow> rows;
        r = sd_bus_message_enter_container(m, 'a', "(ysstdtt)");
        while (r >= 0) {
            LinkRow l;
            const char* addr = nullptr;
            const char* state = nullptr;
            r = sd_bus_message_read(m, "(ysstdtt)", &l.id, &addr, &state, &l.rtt_us, &l.loss, &l.tx_bytes, &l.rx_bytes);
            if (r <= 0) break;
            l.address = addr ? addr : "";
            l.state = state ? state : "";
            rows.push_back(l);
        }
        if (r >= 0) r = sd_bus_message_exit_container(m);
        out = rows;
    } else {
        return 0;  // a type we do not know: the caller skips it
    }
    return r < 0 ? r : 1;
}

// {sv} entries of one interface.
int read_props(sd_bus_message* m, Props& out) {
    int r = sd_bus_message_enter_container(m, 'a', "{sv}");
    if (r < 0) return r;
    while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
        const char* name = nullptr;
        if ((r = sd_bus_message_read_basic(m, 's', &name)) < 0) return r;
        char type = 0;
        const char* contents = nullptr;
        if ((r = sd_bus_message_peek_type(m, &type, &contents)) < 0) return r;
        if ((r = sd_bus_message_enter_container(m, 'v', contents)) < 0) return r;
        Value v;
        r = read_value(m, contents ? contents : "", v);
        if (r < 0) return r;
        if (r == 0) {
            if ((r = sd_bus_message_skip(m, contents)) < 0) return r;
        } else {
            out.push_back({name ? name : "", v});
        }
        if ((r = sd_bus_message_exit_container(m)) < 0) return r;  // v
        if ((r = sd_bus_message_exit_container(m)) < 0) return r;  // e
    }
    if (r < 0) return r;
    return sd_bus_message_exit_container(m);
}

int read_managed_objects(sd_bus_message* m, ObjectMap& out) {
    int r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
    if (r < 0) return r;
    while ((r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
        const char* path = nullptr;
        if ((r = sd_bus_message_read_basic(m, 'o', &path)) < 0) return r;
        Interfaces& ifaces = out[path ? path : ""];
        if ((r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}")) < 0) return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
            const char* iface = nullptr;
            if ((r = sd_bus_message_read_basic(m, 's', &iface)) < 0) return r;
            Props props;
            if ((r = read_props(m, props)) < 0) return r;
            // The standard interfaces have no properties: keep only ours.
            if (!props.empty()) ifaces[iface ? iface : ""] = std::move(props);
            if ((r = sd_bus_message_exit_container(m)) < 0) return r;
        }
        if (r < 0) return r;
        if ((r = sd_bus_message_exit_container(m)) < 0) return r;
        if ((r = sd_bus_message_exit_container(m)) < 0) return r;
    }
    if (r < 0) return r;
    return sd_bus_message_exit_container(m);
}

}  // namespace

Status fetch_objects(proto::Role role, ObjectMap& out) {
    BusPtr bus;
    Status st = open_bus(bus);
    if (!st.ok()) return st;
    Error err;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus.get(), bus_name(role), kManagerPath, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &err.e, &reply, "");
    MessagePtr hold(reply);
    if (r < 0) return from_error(r, err.e, std::string("read ") + bus_name(role));
    r = read_managed_objects(reply, out);
    if (r < 0) return Status::fail(-r, std::string("parse what ") + bus_name(role) + " sent");
    return Status::success();
}

Status call_method(proto::Role role, const std::string& path, const std::string& interface, const std::string& method,
                   const std::string& arg_sig, const std::string& s_arg, bool b_arg) {
    BusPtr bus;
    Status st = open_bus(bus);
    if (!st.ok()) return st;
    Error err;
    sd_bus_message* reply = nullptr;
    int r;
    std::string what = "call " + method + " on " + bus_name(role);
    if (arg_sig == "s")
        r = sd_bus_call_method(bus.get(), bus_name(role), path.c_str(), interface.c_str(), method.c_str(), &err.e,
                               &reply, "s", s_arg.c_str());
    else if (arg_sig == "b")
        r = sd_bus_call_method(bus.get(), bus_name(role), path.c_str(), interface.c_str(), method.c_str(), &err.e,
                               &reply, "b", int(b_arg));
    else
        r = sd_bus_call_method(bus.get(), bus_name(role), path.c_str(), interface.c_str(), method.c_str(), &err.e,
                               &reply, "");
    MessagePtr hold(reply);
    if (r < 0) return from_error(r, err.e, what);
    return Status::success();
}

bool wait_until_gone(proto::Role role, unsigned timeout_ms) {
    BusPtr bus;
    if (!open_bus(bus).ok()) return false;
    for (unsigned waited = 0;; waited += 50) {
        Error err;
        sd_bus_message* reply = nullptr;
        int r = sd_bus_call_method(bus.get(), "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                   "NameHasOwner", &err.e, &reply, "s", bus_name(role));
        MessagePtr hold(reply);
        int has = 1;
        if (r >= 0) sd_bus_message_read(reply, "b", &has);
        if (r >= 0 && !has) return true;
        if (waited >= timeout_ms) return false;
        usleep(50'000);
    }
}

}  // namespace onebox::bus
