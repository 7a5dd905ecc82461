// udp.h — the UDP sockets that carry the tunnel.
#pragma once

#include <netinet/in.h>

#include <cstdint>

namespace onebox::dataplane {

// Client: a socket marked with `fwmark` (so policy routing sends it by the WAN,
// never into the tunnel) and connected to the server. Returns fd or -errno.
int open_client_socket(const sockaddr_in& server, uint32_t fwmark);

// Server: a socket bound to addr:port. Returns fd or -errno. With
// `reuseport`, one of a SO_REUSEPORT group (one socket per worker, in worker
// order: steering.h picks among them by that order).
int open_server_socket(uint32_t addr_host_order, uint16_t port, bool reuseport = false);

}  // namespace onebox::dataplane

namespace onebox::dataplane {

// Client WAN link: a socket bound to interface `ifname` (SO_BINDTODEVICE),
// marked `fwmark` (its policy route), connected to the server. fd or -errno.
int open_link_socket(const sockaddr_in& server, uint32_t fwmark, const char* ifname);

}  // namespace onebox::dataplane
