#include "status.h"

#include <cinttypes>
#include <cstdio>
#include <vector>

#include "bus_objects.h"

namespace onebox::status {

using bus::get_bool;
using bus::get_double;
using bus::get_string;
using bus::get_u64;
using bus::Props;

std::string format_rate(uint64_t bps) {
    char buf[32];
    if (bps >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f Gbit/s", double(bps) / 1e9);
    else if (bps >= 1'000'000) std::snprintf(buf, sizeof buf, "%.1f Mbit/s", double(bps) / 1e6);
    else if (bps >= 1'000) std::snprintf(buf, sizeof buf, "%.1f kbit/s", double(bps) / 1e3);
    else std::snprintf(buf, sizeof buf, "%" PRIu64 " bit/s", bps);
    return buf;
}

std::string format_bytes(uint64_t b) {
    char buf[32];
    if (b >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f GB", double(b) / 1e9);
    else if (b >= 1'000'000) std::snprintf(buf, sizeof buf, "%.1f MB", double(b) / 1e6);
    else if (b >= 1'000) std::snprintf(buf, sizeof buf, "%.1f kB", double(b) / 1e3);
    else std::snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
    return buf;
}

std::string format_duration(uint64_t us) {
    uint64_t s = us / 1'000'000;
    char buf[48];
    if (s >= 86400) std::snprintf(buf, sizeof buf, "%" PRIu64 "d %" PRIu64 "h", s / 86400, s % 86400 / 3600);
    else if (s >= 3600) std::snprintf(buf, sizeof buf, "%" PRIu64 "h %" PRIu64 "m", s / 3600, s % 3600 / 60);
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%" PRIu64 "s", s);
    return buf;
}

std::string format_ms(uint64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", double(us) / 1000.0);
    return buf;
}

namespace {

std::string percent(double fraction) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f %%", fraction * 100.0);
    return buf;
}

// Rows of cells, left-aligned in columns two spaces apart.
std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width;
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

const Props* props_of(const bus::ObjectMap& objects, const std::string& path, const std::string& iface) {
    auto o = objects.find(path);
    if (o == objects.end()) return nullptr;
    auto i = o->second.find(iface);
    return i == o->second.end() ? nullptr : &i->second;
}

// The children under `prefix` that have `iface`, in path order.
std::vector<const Props*> children(const bus::ObjectMap& objects, const std::string& prefix, const std::string& iface) {
    std::vector<const Props*> out;
    for (const auto& [path, ifaces] : objects) {
        if (path.rfind(prefix + "/", 0) != 0) continue;
        auto i = ifaces.find(iface);
        if (i != ifaces.end()) out.push_back(&i->second);
    }
    return out;
}

std::string drops_line(const Props& d) {
    const bus::Value* v = bus::find(d, "Drops");
    const auto* drops = v ? std::get_if<bus::Counts>(v) : nullptr;
    std::string out;
    uint64_t total = 0;
    if (drops)
        for (const auto& [name, n] : *drops) {
            if (n == 0 || name == "duplicate") continue;  // our own copies, by design: shown apart
            total += n;
            out += (out.empty() ? "" : ", ") + name + " " + std::to_string(n);
        }
    return "drops: " + (total ? out : std::string("none"));
}

// The count named `name` in the dictionary property `prop` (0 if absent).
uint64_t count_in(const Props& d, const char* prop, std::string_view name) {
    uint64_t total = 0;
    if (const bus::Value* v = bus::find(d, prop))
        if (const auto* c = std::get_if<bus::Counts>(v))
            for (const auto& [n, count] : *c) total += n == name ? count : 0;
    return total;
}

std::string totals_lines(const Props& d, const char* sent, const char* received) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "total: %s %s (%s, %" PRIu64 " packets), %s %s (%s, %" PRIu64 " packets)\n", sent,
                  format_rate(get_u64(d, "TxRate")).c_str(), format_bytes(get_u64(d, "TxBytes")).c_str(),
                  get_u64(d, "TxPackets"), received, format_rate(get_u64(d, "RxRate")).c_str(),
                  format_bytes(get_u64(d, "RxBytes")).c_str(), get_u64(d, "RxPackets"));
    std::string out = buf;
    out += drops_line(d) + "\n";
    uint64_t copies = count_in(d, "Drops", "duplicate");
    uint64_t repaired = count_in(d, "Counters", "repaired");
    std::snprintf(buf, sizeof buf,
                  "reorder buffer: %" PRIu64 " held now, %" PRIu64 " gaps timed out; resent after a link failed: %" PRIu64
                  ", after a loss: %" PRIu64 "; second copies dropped: %" PRIu64 "\n",
                  get_u64(d, "ReorderDepth"), get_u64(d, "ReorderTimeouts"), get_u64(d, "Resent"), repaired, copies);
    return out + buf;
}

std::string link_state_cell(const Props& l) {
    std::string state = get_string(l, "State", "?");
    if (state == "up" && !get_bool(l, "Used")) return "standby";  // healthy, not carrying (backup, or held after a failure)
    return state;
}

std::string render_client(const bus::ObjectMap& objects) {
    const Props* d = props_of(objects, bus::kClientPath, bus::kClientName);
    if (!d) return "onebox-client: no daemon object on the bus\n";
    std::string out;
    char buf[512];
    std::string state = get_string(*d, "State");
    std::string session;
    if (state == "connected") {
        std::snprintf(buf, sizeof buf, " (session %08" PRIx64 ")", get_u64(*d, "SessionId"));
        session = buf;
    }
    std::snprintf(buf, sizeof buf, "onebox-client %s: %s %s%s, mode %s, up %s\n", get_string(*d, "Version").c_str(),
                  state.c_str(), get_string(*d, "Server").c_str(), session.c_str(), get_string(*d, "Mode").c_str(),
                  format_duration(get_u64(*d, "Uptime")).c_str());
    out += buf;
    std::snprintf(buf, sizeof buf, "tunnel %s on %s\n\n", get_string(*d, "TunnelAddress").c_str(),
                  get_string(*d, "TunnelInterface").c_str());
    out += buf;
    std::vector<std::vector<std::string>> rows = {
        {"LINK", "STATE", "RTT", "JITTER", "LOSS", "CAPACITY", "UP", "DOWN", "SENT", "RECEIVED", "ADDRESS"}};
    for (const Props* l : children(objects, bus::kLinkPrefix, bus::kLinkInterface)) {
        bool live = get_bool(*l, "Enabled") && get_string(*l, "State") != "unknown";
        const bus::Value* a = bus::find(*l, "Addresses");
        const auto* addrs = a ? std::get_if<std::vector<std::string>>(a) : nullptr;
        rows.push_back({get_string(*l, "Name"), link_state_cell(*l), live ? format_ms(get_u64(*l, "RTT")) : "-",
                        live ? format_ms(get_u64(*l, "Jitter")) : "-", live ? percent(get_double(*l, "Loss")) : "-",
                        get_u64(*l, "Capacity") ? format_rate(get_u64(*l, "Capacity")) : "-",
                        format_rate(get_u64(*l, "RateUp")), format_rate(get_u64(*l, "RateDown")),
                        format_bytes(get_u64(*l, "TxBytes")), format_bytes(get_u64(*l, "RxBytes")),
                        addrs && !addrs->empty() ? (*addrs)[0] : "-"});
    }
    out += rows.size() > 1 ? table(rows) : "no WAN link\n";
    out += "\n" + totals_lines(*d, "up", "down");
    return out;
}

std::string render_server(const bus::ObjectMap& objects) {
    const Props* d = props_of(objects, bus::kServerPath, bus::kServerName);
    if (!d) return "onebox-server: no daemon object on the bus\n";
    std::string out;
    char buf[512];
    std::snprintf(buf, sizeof buf, "onebox-server %s: %s on %s, %" PRIu64 " of %" PRIu64 " clients, up %s\n",
                  get_string(*d, "Version").c_str(), get_string(*d, "State").c_str(),
                  get_string(*d, "ListenAddress").c_str(), get_u64(*d, "Clients"), get_u64(*d, "MaxClients"),
                  format_duration(get_u64(*d, "Uptime")).c_str());
    out += buf;
    std::snprintf(buf, sizeof buf, "tunnel %s on %s\n\n", get_string(*d, "TunnelAddress").c_str(),
                  get_string(*d, "TunnelInterface").c_str());
    out += buf;
    std::vector<std::vector<std::string>> rows = {
        {"CLIENT", "TUNNEL", "MODE", "UP", "DOWN", "RECEIVED", "SENT", "LINK", "ADDRESS", "STATE", "RTT", "LOSS"}};
    auto peers = children(objects, bus::kPeerPrefix, bus::kPeerInterface);
    for (const Props* c : peers) {
        std::vector<std::string> row = {get_string(*c, "Id"), get_string(*c, "TunnelAddress"), get_string(*c, "Mode"),
                                        format_rate(get_u64(*c, "RxRate")), format_rate(get_u64(*c, "TxRate")),
                                        format_bytes(get_u64(*c, "RxBytes")), format_bytes(get_u64(*c, "TxBytes"))};
        const bus::Value* v = bus::find(*c, "Links");
        const auto* links = v ? std::get_if<std::vector<bus::LinkRow>>(v) : nullptr;
        bool first = true;
        if (links)
            for (const bus::LinkRow& l : *links) {
                std::vector<std::string> r = first ? row : std::vector<std::string>(row.size(), "");
                r.insert(r.end(), {std::to_string(l.id), l.address, l.state, format_ms(l.rtt_us), percent(l.loss)});
                rows.push_back(r);
                first = false;
            }
        if (first) rows.push_back(row);
    }
    out += peers.empty() ? "no client connected\n" : table(rows);
    out += "\n" + totals_lines(*d, "to clients", "from clients");
    return out;
}

std::string json_object(const Props& p) {
    std::string out = "{";
    for (size_t i = 0; i < p.size(); ++i) out += (i ? "," : "") + std::string("\"") + p[i].name + "\":" + bus::to_json(p[i].value);
    return out + "}";
}

}  // namespace

std::string render_text(proto::Role role, const bus::ObjectMap& objects) {
    return role == proto::Role::Client ? render_client(objects) : render_server(objects);
}

std::string render_json(proto::Role role, const bus::ObjectMap& objects) {
    bool client = role == proto::Role::Client;
    const Props* d = props_of(objects, bus::root_path(role), bus::bus_name(role));
    std::string out = "{\"daemon\":" + (d ? json_object(*d) : std::string("null"));
    out += client ? ",\"links\":[" : ",\"clients\":[";
    auto kids = children(objects, client ? bus::kLinkPrefix : bus::kPeerPrefix,
                         client ? bus::kLinkInterface : bus::kPeerInterface);
    for (size_t i = 0; i < kids.size(); ++i) out += (i ? "," : "") + json_object(*kids[i]);
    return out + "]}\n";
}

}  // namespace onebox::status
