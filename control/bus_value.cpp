#include "bus_value.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace onebox::bus {

const char* signature(const Value& v) {
    static constexpr const char* kSigs[] = {"b", "y", "u", "t", "d", "s", "as", "a{st}", "a(ysstdtt)"};
    static_assert(std::variant_size_v<Value> == sizeof kSigs / sizeof kSigs[0]);
    return kSigs[v.index()];
}

const Value* find(const Props& props, const std::string& name) {
    for (const Prop& p : props)
        if (p.name == name) return &p.value;
    return nullptr;
}

uint64_t get_u64(const Props& props, const std::string& name, uint64_t def) {
    const Value* v = find(props, name);
    if (!v) return def;
    if (auto* t = std::get_if<uint64_t>(v)) return *t;
    if (auto* u = std::get_if<uint32_t>(v)) return *u;
    if (auto* y = std::get_if<uint8_t>(v)) return *y;
    return def;
}

double get_double(const Props& props, const std::string& name, double def) {
    const Value* v = find(props, name);
    if (auto* d = v ? std::get_if<double>(v) : nullptr) return *d;
    return def;
}

std::string get_string(const Props& props, const std::string& name, const std::string& def) {
    const Value* v = find(props, name);
    if (auto* s = v ? std::get_if<std::string>(v) : nullptr) return *s;
    return def;
}

bool get_bool(const Props& props, const std::string& name, bool def) {
    const Value* v = find(props, name);
    if (auto* b = v ? std::get_if<bool>(v) : nullptr) return *b;
    return def;
}

namespace {

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += char(c);
            }
        }
    }
    return out + "\"";
}

std::string json_number(double d) {
    if (!std::isfinite(d)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", d);
    return buf;
}

std::string json_u64(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%" PRIu64, v);
    return buf;
}

}  // namespace

std::string to_json(const Value& v) {
    struct Visitor {
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(uint8_t y) const { return json_u64(y); }
        std::string operator()(uint32_t u) const { return json_u64(u); }
        std::string operator()(uint64_t t) const { return json_u64(t); }
        std::string operator()(double d) const { return json_number(d); }
        std::string operator()(const std::string& s) const { return json_string(s); }
        std::string operator()(const std::vector<std::string>& as) const {
            std::string out = "[";
            for (size_t i = 0; i < as.size(); ++i) out += (i ? "," : "") + json_string(as[i]);
            return out + "]";
        }
        std::string operator()(const Counts& c) const {
            std::string out = "{";
            for (size_t i = 0; i < c.size(); ++i)
                out += (i ? "," : "") + json_string(c[i].first) + ":" + json_u64(c[i].second);
            return out + "}";
        }
        std::string operator()(const std::vector<LinkRow>& rows) const {
            std::string out = "[";
            for (size_t i = 0; i < rows.size(); ++i) {
                const LinkRow& r = rows[i];
                out += std::string(i ? "," : "") + "{\"id\":" + json_u64(r.id) +
                       ",\"address\":" + json_string(r.address) + ",\"state\":" + json_string(r.state) +
                       ",\"rtt_us\":" + json_u64(r.rtt_us) + ",\"loss\":" + json_number(r.loss) +
                       ",\"tx_bytes\":" + json_u64(r.tx_bytes) + ",\"rx_bytes\":" + json_u64(r.rx_bytes) + "}";
            }
            return out + "]";
        }
    };
    return std::visit(Visitor{}, v);
}

}  // namespace onebox::bus
