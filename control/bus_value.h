// bus_value.h — a D-Bus property value as onebox uses it, in both
// directions: the daemon builds them (bus_objects.h) and appends them to
// replies (bus.cpp); `status` reads them back from GetManagedObjects
// (bus_query.cpp) and prints them (status.cpp). Plain data, no sd-bus here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace onebox::bus {

// One of a server's client's links, as its Links property carries it:
// a(ysstdtt) = id, address, state, RTT (µs), probe loss (0..1), tx bytes, rx bytes.
struct LinkRow {
    uint8_t id = 0;
    std::string address;
    std::string state;
    uint64_t rtt_us = 0;
    double loss = 0;
    uint64_t tx_bytes = 0;
    uint64_t rx_bytes = 0;
    bool operator==(const LinkRow&) const = default;
};

using Counts = std::vector<std::pair<std::string, uint64_t>>;  // a{st}, in a fixed order

using Value = std::variant<bool, uint8_t, uint32_t, uint64_t, double, std::string,
                           std::vector<std::string>, Counts, std::vector<LinkRow>>;

// The D-Bus signature of the value's type: b y u t d s as a{st} a(ysstdtt).
const char* signature(const Value& v);

struct Prop {
    std::string name;
    Value value;
    // Changes are announced with PropertiesChanged (coalesced). Off for what
    // changes all the time by its nature (Uptime): read it when you need it.
    bool emits = true;
};
using Props = std::vector<Prop>;

// What GetManagedObjects returns: path -> interface -> properties.
using Interfaces = std::map<std::string, Props>;
using ObjectMap = std::map<std::string, Interfaces>;

// The property `name` in `props`, or nullptr.
const Value* find(const Props& props, const std::string& name);
// Typed reads with a default, for printing.
uint64_t get_u64(const Props& props, const std::string& name, uint64_t def = 0);
double get_double(const Props& props, const std::string& name, double def = 0);
std::string get_string(const Props& props, const std::string& name, const std::string& def = "");
bool get_bool(const Props& props, const std::string& name, bool def = false);

// The value as JSON (numbers, strings, arrays, objects).
std::string to_json(const Value& v);

}  // namespace onebox::bus
