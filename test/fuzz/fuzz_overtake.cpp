// fuzz_overtake.cpp — proto/overtake's may_overtake on the input as an
// inner packet, in a buffer of exactly its size (ASan sees any read past
// it). Traps if it lets through what must keep its order: not IPv4, a
// fragment, neither ICMP nor TCP, or TCP with data or with SYN, FIN or RST.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "proto/overtake.h"
#include "proto/wire.h"

using namespace onebox::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> p(data, data + size);
    bool pass = may_pass_gap(p.data(), uint32_t(p.size()));
    if (!may_overtake(p.data(), uint32_t(p.size()))) {
        if (pass) std::abort();  // the reorder buffer's rule is the narrower one
        return 0;
    }
    if (pass && p[9] != 1) std::abort();
    // Said yes: everything below must hold.
    if (size < 20 || (p[0] >> 4) != 4) std::abort();
    size_t ihl = (p[0] & 15u) * 4u;
    if (ihl < 20 || size < ihl) std::abort();
    if (get_be16(p.data() + 6) & 0x3fff) std::abort();  // MF or an offset
    if (p[9] == 1) return 0;
    if (p[9] != 6) std::abort();
    if (size < ihl + 20) std::abort();
    const uint8_t* tcp = p.data() + ihl;
    if (tcp[13] & 0x07) std::abort();  // FIN, SYN, RST
    size_t total = get_be16(p.data() + 2) < size ? get_be16(p.data() + 2) : size;
    if (total > ihl + (tcp[12] >> 4) * 4u) std::abort();  // carries data
    return 0;
}
