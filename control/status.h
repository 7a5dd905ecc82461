// status.h — what `onebox-client status` and `onebox-server status` print:
// a table a person reads, or JSON for scripts, from the objects the daemon
// shows on D-Bus. Pure: objects in, text out (unit-tested).
#pragma once

#include <cstdint>
#include <string>

#include "bus_value.h"
#include "proto/config.h"

namespace onebox::status {

std::string render_text(proto::Role role, const bus::ObjectMap& objects);
// {"daemon": {...}, "links": [...]} (client) or {"daemon": {...}, "clients": [...]} (server),
// every property by its D-Bus name.
std::string render_json(proto::Role role, const bus::ObjectMap& objects);

// Units for people: "38.2 Mbit/s", "1.23 GB", "2m 13s", "21.3 ms".
std::string format_rate(uint64_t bps);
std::string format_bytes(uint64_t bytes);
std::string format_duration(uint64_t us);
std::string format_ms(uint64_t us);

}  // namespace onebox::status
