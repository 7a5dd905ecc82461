// tso.h — packets from a TUN with offloads (IFF_VNET_HDR + TUNSETOFFLOAD
// TUN_F_CSUM | TUN_F_TSO4): the kernel may hand over one TCP/IPv4 segment of
// up to 64 KiB that stands for many MTU-size ones (TSO), and packets whose
// transport checksum it left for the device to finish (NEEDS_CSUM). This
// cuts them into the packets they stand for, each a complete IPv4 packet
// with every checksum right, as the wire wants them. Pure: bytes in, bytes
// out (fuzzed: test/fuzz/fuzz_tso.cpp).
//
// Every read from such a TUN starts with a virtio_net_hdr (10 bytes, host
// byte order; TUN's legacy header is native-endian), and so must every
// write: onebox writes a header of zeros (a plain, finished packet).
#pragma once

#include <cstddef>
#include <cstdint>

namespace onebox::proto {

inline constexpr size_t kVnetHdrSize = 10;
inline constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
inline constexpr uint8_t kGsoNone = 0;        // VIRTIO_NET_HDR_GSO_NONE
inline constexpr uint8_t kGsoTcpV4 = 1;       // VIRTIO_NET_HDR_GSO_TCPV4

struct VnetHdr {
    uint8_t flags = 0;
    uint8_t gso_type = kGsoNone;
    uint16_t hdr_len = 0;
    uint16_t gso_size = 0;
    uint16_t csum_start = 0;
    uint16_t csum_offset = 0;
};
VnetHdr read_vnet_hdr(const uint8_t in[kVnetHdrSize]);

// The Internet checksum (RFC 1071) of `len` bytes, added to `sum`, not yet
// folded or inverted.
uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t len);
uint16_t csum_fold(uint32_t sum);  // folded and inverted: what goes in the header

// One packet as read from the TUN (after its virtio_net_hdr).
struct TunPacket {
    const uint8_t* pkt = nullptr;
    size_t len = 0;
    VnetHdr vh;
    unsigned count = 0;      // packets it stands for
    // TSO (gso_type TCPV4): the IPv4 + TCP headers and the payload size of
    // each packet but the last.
    size_t ip_hdr = 0, hdr_len = 0;
    size_t mss = 0;
};

// Checks the packet and what the header says of it. False for anything this
// cannot make whole: a GSO type other than TCPV4, a TSO packet that is not
// IPv4 + TCP with sane header lengths, a checksum position outside the
// packet, a segment size of 0, or more than kMaxSegments packets.
inline constexpr unsigned kMaxTsoSegments = 1024;
bool parse_tun_packet(const VnetHdr& vh, const uint8_t* pkt, size_t len, TunPacket& out);

// Writes packet i (0 <= i < count) into out, which has room for `cap`
// bytes; returns its length, 0 if it does not fit. The IPv4 header of a TSO
// packet gets its own total length, id (+i) and checksum, the TCP header
// its sequence number, flags (FIN and PSH on the last only, CWR on the first
// only) and checksum; a NEEDS_CSUM packet its transport checksum.
size_t tun_segment(const TunPacket& p, unsigned i, uint8_t* out, size_t cap);

}  // namespace onebox::proto
