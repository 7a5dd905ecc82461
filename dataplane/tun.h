// tun.h — open the TUN device the data plane reads and writes.
#pragma once

#include <string>

#include "fd.h"

namespace onebox::dataplane {

// Creates (or attaches to) TUN device `name` without packet information
// headers, non-blocking. Returns the fd or -errno.
// With `offloads`, it also asks for a virtio_net_hdr in front of every packet
// (IFF_VNET_HDR) and lets the kernel hand over TSO segments and packets with
// their checksum left to finish (TUN_F_TSO4, TUN_F_CSUM; proto/tso.h).
// *got_offloads says whether it did: a kernel that refuses TUNSETOFFLOAD
// gets a plain TUN.
// With `multi_queue` the device is made with IFF_MULTI_QUEUE, and this fd is
// its queue 0: open_tun_queue() adds queues 1, 2, ... in call order (the
// index steering.h's program returns).
int open_tun(const std::string& name, bool offloads = false, bool* got_offloads = nullptr,
             bool multi_queue = false);

// Attaches one more queue to multi-queue TUN `name`, with the virtio_net_hdr
// if the first queue got offloads. Returns the fd or -errno.
int open_tun_queue(const std::string& name, bool vnet);

}  // namespace onebox::dataplane
