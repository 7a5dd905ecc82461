// bus.cpp — see bus.h. The vtables are built from bus_objects' property
// lists (prototype()), so a property is named and typed in one place; every
// getter reads the same snapshot of the daemon, taken once per batch of
// messages.
#include "bus.h"

#include <poll.h>
#include <systemd/sd-bus.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "bus_objects.h"
#include "client_links.h"
#include "dataplane/worker.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "reload.h"

namespace onebox::bus {

namespace {
constexpr uint64_t kAnnounceEveryNs = 500'000'000;  // PropertiesChanged at most twice a second
constexpr uint64_t kRetryNs = 5'000'000'000;       // reconnect attempts
constexpr const char* kErrorBadConfig = "org.onebox.Error.BadConfig";
constexpr const char* kErrorNoSuchLink = "org.onebox.Error.NoSuchLink";
constexpr const char* kErrorLastLink = "org.onebox.Error.LastLink";
constexpr const char* kErrorNoSuchClient = "org.onebox.Error.NoSuchClient";

// A vtable and the strings it points into (kept alive with it).
struct Table {
    std::deque<std::string> strings;
    std::vector<sd_bus_vtable> entries;
    const char* keep(std::string s) { return strings.emplace_back(std::move(s)).c_str(); }
};
}  // namespace

struct Service {
    sd_bus* bus = nullptr;
    std::vector<sd_bus_slot*> slots;
    Table daemon_table, child_table;
    BusView view;
    std::map<std::string, Object> announced;  // what listeners were last told, by path
    std::vector<Object> snapshot;             // for the getters of one process() batch
    bool snapshot_valid = false;
    uint64_t now = 0;
    uint64_t next_announce = 0;
    uint64_t next_attempt = 0;
    bool failed_before = false;  // a failure was logged: log the recovery, not every retry
    bool has_name = false;       // RequestName answered "primary owner"
    bool asking = false;         // a RequestName is out
    uint64_t next_ask = 0;       // when to ask again after a refusal
};

namespace {

// Writes out what is queued (InterfacesRemoved, the last PropertiesChanged)
// for at most `budget_ns`, then closes: a bus that stopped reading must not
// hold up an exit.
void close_bus(sd_bus* bus, uint64_t budget_ns) {
    if (!bus) return;
    uint64_t end = dataplane::now_ns() + budget_ns;
    while ((sd_bus_get_events(bus) & POLLOUT) && dataplane::now_ns() < end) {
        if (sd_bus_process(bus, nullptr) < 0) break;
        sd_bus_wait(bus, 50'000);
    }
    sd_bus_close_unref(bus);
}

}  // namespace

void ServiceDeleter::operator()(Service* s) const {
    if (!s) return;
    for (sd_bus_slot* slot : s->slots) sd_bus_slot_unref(slot);
    close_bus(s->bus, 0);
    delete s;
}

namespace {

Daemon& daemon_of(void* userdata) { return *static_cast<Daemon*>(userdata); }

const std::vector<Object>& objects(Daemon& d) {
    Service& s = *d.bus;
    if (!s.snapshot_valid) {
        s.snapshot = build_objects(d, s.view, s.now);
        s.snapshot_valid = true;
    }
    return s.snapshot;
}

const Object* object_at(Daemon& d, const char* path) {
    for (const Object& o : objects(d))
        if (o.path == path) return &o;
    return nullptr;
}

// ---- values into messages ---------------------------------------------------------

int append(sd_bus_message* m, const Value& v) {
    struct Visitor {
        sd_bus_message* m;
        int operator()(bool b) const {
            int i = b;
            return sd_bus_message_append_basic(m, 'b', &i);
        }
        int operator()(uint8_t y) const { return sd_bus_message_append_basic(m, 'y', &y); }
        int operator()(uint32_t u) const { return sd_bus_message_append_basic(m, 'u', &u); }
        int operator()(uint64_t t) const { return sd_bus_message_append_basic(m, 't', &t); }
        int operator()(double d) const { return sd_bus_message_append_basic(m, 'd', &d); }
        int operator()(const std::string& s) const { return sd_bus_message_append_basic(m, 's', s.c_str()); }
        int operator()(const std::vector<std::string>& as) const {
            int r = sd_bus_message_open_container(m, 'a', "s");
            for (size_t i = 0; r >= 0 && i < as.size(); ++i) r = sd_bus_message_append_basic(m, 's', as[i].c_str());
            return r < 0 ? r : sd_bus_message_close_container(m);
        }
        int operator()(const Counts& c) const {
            int r = sd_bus_message_open_container(m, 'a', "{st}");
            for (size_t i = 0; r >= 0 && i < c.size(); ++i)
                r = sd_bus_message_append(m, "{st}", c[i].first.c_str(), c[i].second);
            return r < 0 ? r : sd_bus_message_close_container(m);
        }
        int operator()(const std::vector<LinkRow>& rows) const {
            int r = sd_bus_message_open_container(m, 'a', "(ysstdtt)");
            for (size_t i = 0; r >= 0 && i < rows.size(); ++i) {
                const LinkRow& l = rows[i];
                r = sd_bus_message_append(m, "(ysstdtt)", l.id, l.address.c_str(), l.state.c_str(), l.rtt_us,
                                          l.loss, l.tx_bytes, l.rx_bytes);
            }
            return r < 0 ? r : sd_bus_message_close_container(m);
        }
    };
    return std::visit(Visitor{m}, v);
}

int get_property(sd_bus*, const char* path, const char*, const char* property, sd_bus_message* reply,
                 void* userdata, sd_bus_error* error) {
    const Object* o = object_at(daemon_of(userdata), path);
    const Value* v = o ? find(o->props, property) : nullptr;
    if (!v) return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "No property %s on %s", property, path);
    return append(reply, *v);
}

// ---- finding child objects ---------------------------------------------------------

int find_child(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
    if (!object_at(daemon_of(userdata), path)) return 0;
    *found = userdata;
    return 1;
}

int enumerate_children(sd_bus*, const char* prefix, void* userdata, char*** nodes, sd_bus_error*) {
    std::vector<const Object*> kids;
    for (const Object& o : objects(daemon_of(userdata)))
        if (o.path.rfind(std::string(prefix) + "/", 0) == 0) kids.push_back(&o);
    char** out = static_cast<char**>(calloc(kids.size() + 1, sizeof(char*)));
    if (!out) return -ENOMEM;
    for (size_t i = 0; i < kids.size(); ++i) {
        out[i] = strdup(kids[i]->path.c_str());
        if (!out[i]) {
            for (size_t j = 0; j < i; ++j) free(out[j]);
            free(out);
            return -ENOMEM;
        }
    }
    *nodes = out;
    return 1;
}

// ---- methods ---------------------------------------------------------------------

int method_reload(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Daemon& d = daemon_of(userdata);
    notify::reloading();
    Status st = reload_config(d);
    notify::ready(status_line(d));
    if (!st.ok()) return sd_bus_error_set(error, kErrorBadConfig, st.message().c_str());
    return sd_bus_reply_method_return(m, nullptr);
}

int method_stop(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Daemon& d = daemon_of(userdata);
    if (!d.stopping) log::info("stop requested over D-Bus: shutting down");
    d.stopping = true;
    return sd_bus_reply_method_return(m, nullptr);
}

int method_set_mode(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Daemon& d = daemon_of(userdata);
    const char* word = nullptr;
    int r = sd_bus_message_read(m, "s", &word);
    if (r < 0) return r;
    proto::Mode mode;
    if (!proto::parse_mode(word ? word : "", mode))
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s, got \"%s\"", proto::kModeExpected, word);
    if (mode != d.cfg.mode) {
        const char* was = mode_name(d.cfg.mode);
        d.cfg.mode = mode;
        send_policy(d);
        log::event(proto::LogLevel::Info, log::Event::ModeChanged, {}, "mode changed from %s to %s over D-Bus", was,
                   mode_name(mode));
    }
    return sd_bus_reply_method_return(m, nullptr);
}

int method_set_enabled(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Daemon& d = daemon_of(userdata);
    int enabled = 0;
    int r = sd_bus_message_read(m, "b", &enabled);
    if (r < 0) return r;
    std::string name = link_name_from_path(sd_bus_message_get_path(m));
    if (name.empty() || !d.links) return sd_bus_error_setf(error, kErrorNoSuchLink, "No such link");
    Status st = links_set_enabled(d, name, enabled != 0);
    if (!st.ok())
        return sd_bus_error_set(error, st.err == EBUSY ? kErrorLastLink : kErrorNoSuchLink, st.message().c_str());
    return sd_bus_reply_method_return(m, nullptr);
}

int method_disconnect(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Daemon& d = daemon_of(userdata);
    uint32_t id = 0;
    if (!peer_id_from_path(sd_bus_message_get_path(m), &id) || !server_disconnect(d, id))
        return sd_bus_error_setf(error, kErrorNoSuchClient, "No such client");
    return sd_bus_reply_method_return(m, nullptr);
}

struct Method {
    const char* name;
    const char* signature;
    const char* arg_names;  // NUL-separated, as SD_BUS_PARAM makes them
    sd_bus_message_handler_t handler;
};

void build_table(Table& t, const std::string& interface, std::initializer_list<Method> methods) {
    t.entries.push_back(SD_BUS_VTABLE_START(0));
    for (const Prop& p : prototype(interface)) {
        const char* name = t.keep(p.name);
        uint64_t flags = p.emits ? uint64_t(SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE) : 0;
        t.entries.push_back(SD_BUS_PROPERTY(name, signature(p.value), get_property, 0, flags));
    }
    for (const Method& m : methods) {
        // SD_BUS_METHOD_WITH_NAMES spelled out: its macro pastes literals.
        sd_bus_vtable e{};
        e.type = _SD_BUS_VTABLE_METHOD;
        // Who may call is the policy file's say (root only). sd-bus's own
        // "privileged" check would ask dbus-daemon for the caller's
        // credentials with a blocking call inside sd_bus_process, and a stuck
        // dbus-daemon would then hold up the control thread.
        e.flags = SD_BUS_VTABLE_UNPRIVILEGED;
        e.x.method.member = m.name;
        e.x.method.signature = m.signature;
        e.x.method.result = "";
        e.x.method.handler = m.handler;
        e.x.method.offset = 0;
        e.x.method.names = m.arg_names;  // in-argument names only: no method returns anything
        t.entries.push_back(e);
    }
    t.entries.push_back(SD_BUS_VTABLE_END);
}

// ---- connecting --------------------------------------------------------------------

int register_objects(Daemon& d) {
    Service& s = *d.bus;
    sd_bus_slot* slot = nullptr;
    const char* root = root_path(d.role);
    int r = sd_bus_add_object_manager(s.bus, &slot, kManagerPath);
    if (r < 0) return r;
    s.slots.push_back(slot);
    r = sd_bus_add_object_vtable(s.bus, &slot, root, bus_name(d.role), s.daemon_table.entries.data(), &d);
    if (r < 0) return r;
    s.slots.push_back(slot);
    const char* prefix = d.role == proto::Role::Client ? kLinkPrefix : kPeerPrefix;
    const char* iface = d.role == proto::Role::Client ? kLinkInterface : kPeerInterface;
    r = sd_bus_add_fallback_vtable(s.bus, &slot, prefix, iface, s.child_table.entries.data(), find_child, &d);
    if (r < 0) return r;
    s.slots.push_back(slot);
    r = sd_bus_add_node_enumerator(s.bus, &slot, prefix, enumerate_children, &d);
    if (r < 0) return r;
    s.slots.push_back(slot);
    return 0;
}

void disconnect(Service& s, uint64_t flush_ns = 0) {
    for (sd_bus_slot* slot : s.slots) sd_bus_slot_unref(slot);
    s.slots.clear();
    close_bus(s.bus, flush_ns);
    s.bus = nullptr;
    s.announced.clear();
    s.has_name = false;
    s.asking = false;
}

// Asynchronous: a bus that hangs must not hang the control thread.
int on_name_reply(sd_bus_message* m, void* userdata, sd_bus_error*);

int ask_for_name(Daemon& d) {
    Service& s = *d.bus;
    int r = sd_bus_request_name_async(s.bus, nullptr, bus_name(d.role), 0, on_name_reply, &d);
    s.asking = r >= 0;
    return r;
}

// The answer to RequestName. Only "primary owner" counts: another process
// holding the name (a second instance on this bus) comes back as a plain
// reply too, and then `status` would be talking to that one. Refused, the
// name is asked for again every 5 s.
int on_name_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Daemon& d = daemon_of(userdata);
    Service& s = *d.bus;
    s.asking = false;
    uint32_t ret = 0;
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (!e && sd_bus_message_read(m, "u", &ret) >= 0 && (ret == 1 || ret == 4)) {  // primary owner, already
        if (s.failed_before) log::info("on the system bus as %s", bus_name(d.role));
        else log::debug("on the system bus as %s", bus_name(d.role));
        s.failed_before = false;
        s.has_name = true;
        return 0;
    }
    s.next_ask = s.now + kRetryNs;
    if (e && sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY)) return 0;  // the connection is going: process() says so
    if (!s.failed_before) {
        if (e)
            log::warn("Failed to take the D-Bus name %s: %s; `status` cannot see this daemon (is "
                      "/usr/share/dbus-1/system.d/org.onebox.conf installed?); asking again every 5 s",
                      bus_name(d.role), e->message ? e->message : e->name);
        else
            log::warn("Failed to take the D-Bus name %s: another process holds it (a second instance?); "
                      "asking again every 5 s", bus_name(d.role));
    }
    s.failed_before = true;
    return 0;
}

void try_connect(Daemon& d, uint64_t now) {
    Service& s = *d.bus;
    s.next_attempt = now + kRetryNs;
    s.now = now;
    const char* step = "connect to the system bus";
    int r = sd_bus_open_system(&s.bus);
    if (r >= 0) r = sd_bus_set_method_call_timeout(s.bus, 1'000'000);  // our own calls never wait long
    if (r >= 0) {
        step = "register the D-Bus objects";
        r = register_objects(d);
    }
    if (r >= 0) {
        step = "ask for the D-Bus name";
        r = ask_for_name(d);
    }
    if (r < 0) {
        if (!s.failed_before)
            log::warn("Failed to %s: %s; `status` needs it (trying again every 5 s)", step, std::strerror(-r));
        s.failed_before = true;
        disconnect(s);
        return;
    }
    // Nobody has seen anything yet: what exists now is the baseline. (Success
    // is logged once the name is ours, in on_name_reply.)
    s.snapshot_valid = false;
    for (const Object& o : objects(d)) s.announced[o.path] = o;
}

// ---- announcing --------------------------------------------------------------------

void emit_changes(Daemon& d) {
    Service& s = *d.bus;
    std::map<std::string, Object> current;
    for (const Object& o : objects(d)) current[o.path] = o;
    for (const auto& [path, o] : s.announced)
        if (!current.count(path)) sd_bus_emit_interfaces_removed(s.bus, path.c_str(), o.interface.c_str(), nullptr);
    for (const auto& [path, o] : current) {
        auto was = s.announced.find(path);
        if (was == s.announced.end()) {
            sd_bus_emit_interfaces_added(s.bus, path.c_str(), o.interface.c_str(), nullptr);
            continue;
        }
        std::vector<const char*> changed;
        for (const Prop& p : o.props) {
            if (!p.emits) continue;
            const Value* old = find(was->second.props, p.name);
            if (!old || !(*old == p.value)) changed.push_back(p.name.c_str());
        }
        if (changed.empty()) continue;
        changed.push_back(nullptr);
        sd_bus_emit_properties_changed_strv(s.bus, path.c_str(), o.interface.c_str(), const_cast<char**>(changed.data()));
    }
    s.announced = std::move(current);
}

}  // namespace

void start(Daemon& d, uint64_t now) {
    d.bus.reset(new Service);
    Service& s = *d.bus;
    s.view.started_ns = now;
    s.view.started_wall_us = wall_clock_ns() / 1000;
    bool client = d.role == proto::Role::Client;
    build_table(s.daemon_table, bus_name(d.role),
                client ? std::initializer_list<Method>{{"Reload", "", "", method_reload},
                                                       {"SetMode", "s", SD_BUS_PARAM(mode), method_set_mode},
                                                       {"Stop", "", "", method_stop}}
                       : std::initializer_list<Method>{{"Reload", "", "", method_reload}, {"Stop", "", "", method_stop}});
    if (client) build_table(s.child_table, kLinkInterface, {{"SetEnabled", "b", SD_BUS_PARAM(enabled), method_set_enabled}});
    else build_table(s.child_table, kPeerInterface, {{"Disconnect", "", "", method_disconnect}});
    sample_rates(d, s.view, now);
    try_connect(d, now);
}

int poll_fd(const Daemon& d) { return d.bus && d.bus->bus ? sd_bus_get_fd(d.bus->bus) : -1; }

short poll_events(const Daemon& d) {
    if (!d.bus || !d.bus->bus) return 0;
    int e = sd_bus_get_events(d.bus->bus);
    return e < 0 ? 0 : short(e);
}

void process(Daemon& d) {
    Service* s = d.bus.get();
    if (!s || !s->bus) return;
    s->now = dataplane::now_ns();
    s->snapshot_valid = false;
    for (int n = 0; n < 64; ++n) {
        int r = sd_bus_process(s->bus, nullptr);
        if (r == 0) break;
        if (r < 0) {
            // Said once: a connection that was never ready (refused while
            // authenticating) would otherwise say it every 5 s.
            if (!s->failed_before) log::warn("Lost the system bus: %s; trying again every 5 s", std::strerror(-r));
            s->failed_before = true;
            disconnect(*s);
            s->next_attempt = s->now + kRetryNs;
            return;
        }
    }
}

void tick(Daemon& d, uint64_t now) {
    Service* s = d.bus.get();
    if (!s) return;
    if (!s->bus) {
        if (now >= s->next_attempt) try_connect(d, now);
        return;
    }
    if (!s->has_name && !s->asking && now >= s->next_ask) {
        s->now = now;
        ask_for_name(d);
    }
    if (now < s->next_announce) return;
    announce_now(d, now);
}

void announce_now(Daemon& d, uint64_t now) {
    Service* s = d.bus.get();
    if (!s || !s->bus) return;
    s->next_announce = now + kAnnounceEveryNs;
    sample_rates(d, s->view, now);
    s->now = now;
    s->snapshot_valid = false;
    emit_changes(d);  // written out as the socket takes it (poll_events asks for POLLOUT)
}

void stop(Daemon& d) {
    // Closing the connection gives the name back, after what is queued is
    // written (1 s at most).
    if (d.bus) disconnect(*d.bus, 1'000'000'000);
}

}  // namespace onebox::bus
