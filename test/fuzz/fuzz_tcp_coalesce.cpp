// fuzz_tcp_coalesce.cpp — proto/tcp_coalesce on packets built from the
// input: a template TCP/IPv4 packet per 4 input bytes (payload size, then
// one header byte changed: offset, value), sequence numbers in order unless
// a change breaks them. Runs are formed as the worker forms them; each run
// of two or more is finished and cut again with tso.h's tun_segment (what
// the kernel does with it). Traps unless the pieces are as many as the
// packets, carry the same payload bytes in the same order, and every
// limit holds (64 packets, 65535 bytes, each payload at most the first's).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "proto/tcp_coalesce.h"
#include "proto/tso.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {

std::vector<uint8_t> make_packet(size_t payload, uint32_t seq, uint8_t at, uint8_t value) {
    std::vector<uint8_t> p(52 + payload);
    const uint8_t hdr[52] = {0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 88, 10, 0, 0, 2,
                             0x14, 0x51, 0x9c, 0x40, 0, 0, 0, 0, 1, 2, 3, 4, 0x80, 0x10, 0x01, 0xf5, 0, 0, 0, 0,
                             1, 1, 8, 10, 0, 0, 3, 0xe8, 0, 0, 7, 0xd0};
    std::memcpy(p.data(), hdr, 52);
    put_be16(p.data() + 2, uint16_t(p.size()));
    put_be32(p.data() + 24, seq);
    for (size_t i = 0; i < payload; ++i) p[52 + i] = uint8_t(seq + i);
    if (at < 52) p[at] = value;  // 52 and up: no change
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<std::vector<uint8_t>> pkts;
    uint32_t seq = 0xffff0000u;
    for (size_t k = 0; k + 4 <= size && pkts.size() < 200; k += 4) {
        size_t payload = size_t(data[k] << 8 | data[k + 1]) % 1500;
        pkts.push_back(make_packet(payload, seq, uint8_t(data[k + 2] % 64), data[k + 3]));
        seq += uint32_t(payload);
    }
    size_t i = 0;
    static uint8_t seg[70000];
    while (i < pkts.size()) {
        TcpRun r;
        size_t j = i + 1;
        if (tcp_run_start(r, pkts[i].data(), pkts[i].size()))
            while (j < pkts.size() && tcp_run_append(r, pkts[j].data(), pkts[j].size())) ++j;
        if (j - i >= 2) {
            if (r.count != j - i || r.count > kMaxRunPackets || r.total > 0xffff) std::abort();
            std::vector<uint8_t> whole = pkts[i];
            uint8_t vnet[kVnetHdrSize];
            tcp_run_finish(r, whole.data(), vnet);
            std::vector<uint8_t> payload(pkts[i].begin() + r.hdr_len, pkts[i].end());
            for (size_t k = i + 1; k < j; ++k) {
                if (pkts[k].size() - r.hdr_len > r.mss) std::abort();
                whole.insert(whole.end(), pkts[k].begin() + r.hdr_len, pkts[k].end());
                payload.insert(payload.end(), pkts[k].begin() + r.hdr_len, pkts[k].end());
            }
            if (whole.size() != r.total) std::abort();
            TunPacket tp;
            if (!parse_tun_packet(read_vnet_hdr(vnet), whole.data(), whole.size(), tp)) std::abort();
            if (tp.count != r.count) std::abort();
            std::vector<uint8_t> again;
            for (unsigned k = 0; k < tp.count; ++k) {
                size_t n = tun_segment(tp, k, seg, sizeof seg);
                if (n < r.hdr_len) std::abort();
                if (csum_fold(csum_add(0, seg, 20)) != 0) std::abort();
                again.insert(again.end(), seg + r.hdr_len, seg + n);
            }
            if (again != payload) std::abort();
        }
        i = j;
    }
    return 0;
}
