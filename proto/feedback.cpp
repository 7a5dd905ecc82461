// feedback.cpp — see feedback.h.
#include "feedback.h"

namespace onebox::proto {

namespace {

// True if the entries name distinct links, all below kMaxLinks.
bool links_valid(const FeedbackEntry* e, unsigned n) {
    unsigned seen = 0;
    for (unsigned i = 0; i < n; ++i) {
        if (e[i].link >= kMaxLinks) return false;
        unsigned bit = 1u << e[i].link;
        if (seen & bit) return false;
        seen |= bit;
    }
    return true;
}

}  // namespace

size_t encode_feedback(const Feedback& fb, uint8_t* out, size_t out_cap) {
    if (fb.count > kMaxLinks || !links_valid(fb.entries, fb.count)) return 0;
    for (unsigned i = 0; i < fb.count; ++i)
        if ((!fb.entries[i].has_seq && fb.entries[i].newest_seq != 0) ||
            (!fb.entries[i].has_data && fb.entries[i].rx_data != 0))
            return 0;
    if (fb.has_missing && (!fb.has_time || fb.missing_first % 64 != 0)) return 0;
    size_t body = 1 + size_t(fb.count) * kFeedbackEntrySize;
    size_t need = body + (fb.has_time ? 8 : 0) + (fb.has_missing ? kFeedbackMissingSize : 0);
    if (out == nullptr || out_cap < need) return 0;
    if (!fb.has_time && fb.report_time_ns != 0) return 0;
    out[0] = fb.count;
    for (unsigned i = 0; i < fb.count; ++i) {
        uint8_t* p = out + 1 + i * kFeedbackEntrySize;
        p[0] = fb.entries[i].link;
        p[1] = uint8_t((fb.entries[i].has_seq ? kFeedbackHasSeq : 0) | (fb.entries[i].has_data ? kFeedbackHasData : 0));
        put_be16(p + 2, fb.entries[i].rx_data);
        put_be32(p + 4, fb.entries[i].rx_packets);
        put_be64(p + 8, fb.entries[i].rx_bytes);
        put_be64(p + 16, fb.entries[i].newest_seq);
    }
    if (fb.has_time) put_be64(out + body, fb.report_time_ns);
    if (fb.has_missing) {
        uint8_t* p = out + body + 8;
        put_be64(p, fb.missing_first);
        for (unsigned w = 0; w < kFeedbackMissingWords; ++w) put_be64(p + 8 + 8 * w, fb.missing[w]);
    }
    return need;
}

bool decode_feedback(const uint8_t* in, size_t len, Feedback& fb) {
    if (in == nullptr || len < 1) return false;
    uint8_t count = in[0];
    if (count > kMaxLinks) return false;
    size_t body = 1 + size_t(count) * kFeedbackEntrySize;
    if (len != body && len != body + 8 && len != body + 8 + kFeedbackMissingSize) return false;
    fb.count = count;
    fb.has_time = len >= body + 8;
    fb.report_time_ns = fb.has_time ? get_be64(in + body) : 0;
    fb.has_missing = len == body + 8 + kFeedbackMissingSize;
    fb.missing_first = 0;
    for (uint64_t& w : fb.missing) w = 0;
    if (fb.has_missing) {
        const uint8_t* p = in + body + 8;
        fb.missing_first = get_be64(p);
        if (fb.missing_first % 64 != 0) return false;
        for (unsigned w = 0; w < kFeedbackMissingWords; ++w) fb.missing[w] = get_be64(p + 8 + 8 * w);
    }
    for (unsigned i = 0; i < count; ++i) {
        const uint8_t* p = in + 1 + i * kFeedbackEntrySize;
        if ((p[1] & ~(kFeedbackHasSeq | kFeedbackHasData)) != 0) return false;
        fb.entries[i].has_data = p[1] & kFeedbackHasData;
        fb.entries[i].rx_data = get_be16(p + 2);
        if (!fb.entries[i].has_data && fb.entries[i].rx_data != 0) return false;
        fb.entries[i].link = p[0];
        fb.entries[i].rx_packets = get_be32(p + 4);
        fb.entries[i].rx_bytes = get_be64(p + 8);
        fb.entries[i].has_seq = p[1] & kFeedbackHasSeq;
        fb.entries[i].newest_seq = get_be64(p + 16);
        if (!fb.entries[i].has_seq && fb.entries[i].newest_seq != 0) return false;
    }
    return links_valid(fb.entries, count);
}

size_t encode_probe(const Probe& p, uint8_t* out, size_t out_cap) {
    if (p.link >= kMaxLinks) return 0;
    if (uint8_t(p.flags) > uint8_t(ProbeFlags::SizeEcho)) return 0;
    if (out == nullptr || out_cap < kProbeSize) return 0;
    out[0] = p.link;
    out[1] = uint8_t(p.flags);
    put_be16(out + 2, 0);
    put_be32(out + 4, p.probe_seq);
    put_be64(out + 8, p.sender_time_ns);
    return kProbeSize;
}

bool decode_probe(const uint8_t* in, size_t len, Probe& p) {
    if (in == nullptr || len < kProbeSize) return false;
    if (in[0] >= kMaxLinks) return false;
    if (in[1] > uint8_t(ProbeFlags::SizeEcho)) return false;
    if (len != kProbeSize && in[1] != uint8_t(ProbeFlags::SizeProbe)) return false;  // only size probes are padded
    if (get_be16(in + 2) != 0) return false;
    p.link = in[0];
    p.flags = ProbeFlags(in[1]);
    p.probe_seq = get_be32(in + 4);
    p.sender_time_ns = get_be64(in + 8);
    return true;
}

}  // namespace onebox::proto
