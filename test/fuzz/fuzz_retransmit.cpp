// fuzz_retransmit.cpp — proto/retransmit's tracker on the input cut into
// inner packets (a 2-byte length before each), in buffers of exactly their
// size (ASan sees any read past them), one tracker for the whole input.
// Traps if it calls a retransmission what is not a whole TCP segment with
// data, SYN or FIN, or the same such segment twice in a row not one the
// second time.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "proto/retransmit.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {
// A whole TCP segment, not a fragment, that takes sequence numbers.
bool tracked(const std::vector<uint8_t>& p) {
    if (p.size() < 40 || (p[0] >> 4) != 4 || p[9] != 6) return false;
    if (get_be16(p.data() + 6) & 0x3fff) return false;
    size_t ihl = (p[0] & 15u) * 4u;
    if (ihl < 20 || p.size() < ihl + 20) return false;
    size_t total = get_be16(p.data() + 2) < p.size() ? get_be16(p.data() + 2) : p.size();
    size_t doff = (p[ihl + 12] >> 4) * 4u;
    if (doff < 20 || total < ihl + doff) return false;
    return total > ihl + doff || (p[ihl + 13] & 0x03);  // data, SYN or FIN
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static RetransmitTracker t;  // one table, as in a worker: stale slots from earlier inputs too
    uint64_t now = 1;
    while (size >= 2) {
        size_t n = get_be16(data) % 1600;
        data += 2, size -= 2;
        if (n > size) n = size;
        std::vector<uint8_t> p(data, data + n);
        data += n, size -= n;
        now += 1'000'000;
        bool first = t.is_retransmission(p.data(), uint32_t(p.size()), now);
        if (first && !tracked(p)) std::abort();
        bool again = t.is_retransmission(p.data(), uint32_t(p.size()), now);
        if (tracked(p) && !again) std::abort();
    }
    return 0;
}
