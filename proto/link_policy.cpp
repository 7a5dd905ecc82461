// link_policy.cpp — see link_policy.h.
#include "link_policy.h"

namespace onebox::proto {

namespace {

bool entries_valid(const LinkPolicy& p) {
    if (p.count > kMaxLinks) return false;
    uint8_t seen = 0;
    for (unsigned k = 0; k < p.count; ++k) {
        const LinkOverride& e = p.entries[k];
        if (e.link >= kMaxLinks || (seen & (1u << e.link))) return false;
        if (e.weight_centi == 0 && e.max_rate_kbit == 0 && e.priority <= 1) return false;
        seen |= uint8_t(1u << e.link);
    }
    return true;
}

}  // namespace

size_t encode_link_policy(const LinkPolicy& p, uint8_t* out, size_t out_cap) {
    if (!entries_valid(p)) return 0;
    if (uint8_t(p.mode) > uint8_t(SchedMode::Backup)) return 0;
    size_t len = kPolicyHeaderSize + size_t(p.count) * kPolicyEntrySize;
    if (out_cap < len) return 0;
    out[0] = p.link_set;
    out[1] = uint8_t(p.mode);
    out[2] = p.count;
    for (unsigned k = 0; k < p.count; ++k) {
        uint8_t* e = out + kPolicyHeaderSize + k * kPolicyEntrySize;
        e[0] = p.entries[k].link;
        e[1] = p.entries[k].priority > 1 ? p.entries[k].priority : 0;  // 0: "1", as older ends send
        put_be16(e + 2, p.entries[k].weight_centi);
        put_be32(e + 4, p.entries[k].max_rate_kbit);
    }
    return len;
}

bool decode_link_policy(const uint8_t* in, size_t len, LinkPolicy& p) {
    if (len < kPolicyHeaderSize) return false;
    p.link_set = in[0];
    if (in[1] > uint8_t(SchedMode::Backup)) return false;
    p.mode = SchedMode(in[1]);
    p.count = in[2];
    if (p.count > kMaxLinks || len != kPolicyHeaderSize + size_t(p.count) * kPolicyEntrySize)
        return false;
    for (unsigned k = 0; k < p.count; ++k) {
        const uint8_t* e = in + kPolicyHeaderSize + k * kPolicyEntrySize;
        // Priority 1 is sent as 0 (as older ends send): a 1 on the wire is
        // not the one encoding of anything, so it is refused (exact parse).
        if (e[1] == 1) return false;
        p.entries[k] = LinkOverride{e[0], get_be16(e + 2), get_be32(e + 4), e[1] ? e[1] : uint8_t(1)};
    }
    return entries_valid(p);
}

void apply_link_policy(const LinkPolicy& p, Scheduler& s) {
    s.cfg.mode = p.mode;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        s.links[i].weight = 0;
        s.links[i].max_rate_bps = 0;
        s.links[i].priority = 1;
    }
    for (unsigned k = 0; k < p.count && k < kMaxLinks; ++k) {
        const LinkOverride& e = p.entries[k];
        if (e.link >= kMaxLinks) continue;  // decode_link_policy never yields one
        s.links[e.link].weight = e.weight_centi / 100.0;
        s.links[e.link].max_rate_bps = uint64_t(e.max_rate_kbit) * 1000;
        s.links[e.link].priority = e.priority;
    }
}

}  // namespace onebox::proto
