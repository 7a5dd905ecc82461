// fuzz_bus_input.cpp — what a D-Bus caller controls, as the daemons decode
// it: SetMode's word (proto::parse_mode), the object path a link's
// SetEnabled is called on (bus::link_name_from_path: sd-bus's path
// decoding) and the one a client's Disconnect is called on
// (bus::peer_id_from_path). The first byte picks which; the rest is the
// input. Nothing may crash, and whatever is accepted must map back to itself:
// a mode to its name, a link name to a path naming it, a client id to its
// one canonical path.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "control/bus_objects.h"
#include "control/reload.h"
#include "proto/config.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void mode_word(const std::string& word) {
    onebox::proto::Mode mode;
    if (!onebox::proto::parse_mode(word, mode)) return;
    onebox::proto::Mode again;
    check(onebox::proto::parse_mode(onebox::mode_name(mode), again) && again == mode);
}

void link_object(const std::string& path) {
    std::string name = onebox::bus::link_name_from_path(path);
    if (name.empty()) return;
    check(onebox::bus::link_name_from_path(onebox::bus::link_path(name)) == name);
}

// Any interface name (they come from the kernel, but may hold anything but
// '/' and NUL) gets a path that decodes back to it.
void link_name(const std::string& name) {
    if (name.empty() || name.find('\0') != std::string::npos) return;
    std::string path = onebox::bus::link_path(name);
    check(!path.empty());
    check(onebox::bus::link_name_from_path(path) == name);
}

void peer_object(const std::string& path) {
    uint32_t id = 0;
    if (!onebox::bus::peer_id_from_path(path, &id)) return;
    check(onebox::bus::peer_path(id) == path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 4) {
        case 0: mode_word(rest); break;
        case 1: link_object(rest); break;
        case 2: link_name(rest); break;
        case 3: peer_object(rest); break;
    }
    return 0;
}
