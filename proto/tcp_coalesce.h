// tcp_coalesce.h — the reverse of tso.h, for writes to a TUN with offloads:
// TCP/IPv4 packets of one flow that follow each other in sequence become
// one large segment with a virtio_net_hdr of GSO type TCPV4, which the
// kernel takes through its stack (forwarding, NAT, a local socket) as one
// packet, as its own GRO would have built it, and cuts again only where a
// device needs it. Only packets next to each other in the write order join
// (no flow table): order is kept and the work per packet is O(1).
//
// A packet joins a run if it is IPv4 without options or fragments, DF set,
// TCP with ACK and nothing but ACK and PSH set, and carries data; and, to
// follow the run's first packet: same addresses, TOS, TTL, ports, ack,
// window and TCP options (byte for byte), its sequence number where the run
// ends, and a payload no larger than the first's. A payload shorter than
// the first's, or PSH, ends the run after it. At most kMaxRunPackets
// packets and 65535 bytes. Pure (fuzzed: test/fuzz/fuzz_tcp_coalesce.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tso.h"

namespace onebox::proto {

inline constexpr unsigned kMaxRunPackets = 64;

struct TcpRun {
    const uint8_t* first = nullptr;  // the first packet: what the others are held against
    unsigned count = 0;              // packets in the run
    uint16_t hdr_len = 0;            // IPv4 + TCP header bytes of every packet
    uint16_t mss = 0;                // the first packet's payload: the segment size
    uint32_t total = 0;              // the first packet whole plus the others' payloads
    uint32_t next_seq = 0;           // the sequence number that continues the run
    bool psh = false;                // the last packet had PSH
    bool closed = false;             // nothing more may join
};

// Starts a run with `pkt`. False: it cannot be part of one (write it alone).
bool tcp_run_start(TcpRun& r, const uint8_t* pkt, size_t len);

// True if `pkt` continues the run (it is then counted in); its payload is
// the bytes after r.hdr_len.
bool tcp_run_append(TcpRun& r, const uint8_t* pkt, size_t len);

// For a run of two or more: makes the first packet's headers those of the
// whole (IPv4 total length and checksum, PSH if the last had it, the TCP
// checksum field the pseudo-header's sum for the device to finish) and
// fills the virtio_net_hdr that goes in front of it. `first` is r.first.
void tcp_run_finish(const TcpRun& r, uint8_t* first, uint8_t vnet[kVnetHdrSize]);

}  // namespace onebox::proto
