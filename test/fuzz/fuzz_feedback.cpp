// fuzz_feedback.cpp — the Feedback, Probe and LinkPolicy payload decoders on
// arbitrary bytes, and a Bond fed the same bytes as the peer's Feedback and
// Probe payloads on every link id (in range or not). Traps if a payload that
// decodes does not re-encode to the same bytes (the formats are canonical:
// exact length, zero reserved fields; a size probe's padding aside) or if
// the Bond's outputs leave their ranges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "proto/bond.h"
#include "proto/feedback.h"
#include "proto/link_policy.h"

using namespace onebox::proto;

namespace {

void check_bond(const Bond& b) {
    int c = b.control_link();
    if (c < -1 || c >= int(kMaxLinks) || (c >= 0 && !b.usable(unsigned(c)))) std::abort();
    uint64_t g = b.gap_timeout_ns();
    if (g != b.cfg.gap_unknown_ns && (g < b.cfg.gap_floor_ns || g > b.cfg.gap_ceil_ns)) std::abort();
}

void fuzz_bond(const uint8_t* data, size_t size, const LinkPolicy* policy) {
    Bond b;
    // Which links are usable: the first byte, if any.
    uint8_t usable = size ? data[0] : 0x03;
    for (unsigned i = 0; i < kMaxLinks; ++i) b.set_usable(i, (usable >> i) & 1);
    if (policy) apply_link_policy(*policy, b.sched);

    uint64_t now = 1'000'000'000;
    // A round trip of 20 ms on every link (probe_seq 1..8, echoed by a peer),
    // so that the scheduler forecasts arrivals and the late judgements run.
    uint8_t probe[kProbeSize];
    Bond peer;
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        if (b.make_probe(i, now - 20'000'000, probe, sizeof probe) != kProbeSize) std::abort();
        if (peer.on_probe(i, now - 10'000'000, probe, sizeof probe) != Bond::ProbeAction::SendEcho) std::abort();
        b.on_probe(i, now, probe, sizeof probe);
    }
    // Probes of our own, so that an echo in the input can match one (probe_seq 9..16).
    for (unsigned i = 0; i < kMaxLinks; ++i)
        if (b.make_probe(i, now, probe, sizeof probe) != kProbeSize) std::abort();
    for (uint32_t k = 0; k < 64; ++k) {
        int l = b.pick(now + k, 1400);
        if (l < -1 || l >= int(kMaxLinks) || (l >= 0 && !b.usable(unsigned(l)))) std::abort();
        if (l >= 0) {
            b.on_sent(unsigned(l), now + k, 1400);
            b.on_sent_data(unsigned(l), now + k, k);  // so that a Feedback can count losses
        }
    }

    // The input as the peer's Feedback, twice (the second a later report).
    now += 20'000'000;
    b.on_feedback(now, data, size);
    Bond::Lost lost[Bond::kLostMax];
    unsigned n = b.take_lost(lost, Bond::kLostMax);
    now += 20'000'000;
    b.on_feedback(now, data, size);
    check_bond(b);
    // Found lost: only what was sent (0..63), in increasing order, each once
    // (the second, identical report finds nothing new: it is not newer).
    for (unsigned k = 0; k < n; ++k)
        if (lost[k].seq >= 64 || lost[k].link >= kMaxLinks || (k > 0 && lost[k].seq <= lost[k - 1].seq)) std::abort();
    if (b.take_lost(lost, Bond::kLostMax) != 0) std::abort();

    // The input as a Probe or an echo arriving on each link id, also out of range.
    std::vector<uint8_t> copy(data, data + size);
    for (unsigned i = 0; i < kMaxLinks + 2; ++i) {
        if (size) std::memcpy(copy.data(), data, size);
        now += 1'000'000;
        Bond::ProbeAction a = b.on_probe(i, now, copy.data(), size);
        if (a == Bond::ProbeAction::SendEcho) {
            // An echo differs from its probe in the flags byte only (its
            // low bit set); a size probe's padding is not echoed.
            if (size < kProbeSize || (data[1] & 1) || copy[1] != (data[1] | 1)) std::abort();
            for (size_t k = 0; k < kProbeSize; ++k)
                if (k != 1 && copy[k] != data[k]) std::abort();
        } else if (size && std::memcmp(copy.data(), data, size) != 0) {
            std::abort();  // only an echo is written in place
        }
        b.on_received(i, now, uint32_t(size));
        b.update(now);  // silent tails are found here
        check_bond(b);
    }
    n = b.take_lost(lost, Bond::kLostMax);
    for (unsigned k = 0; k < n; ++k)
        if (lost[k].seq >= 64 || lost[k].link >= kMaxLinks) std::abort();

    // What the Bond produces in turn is well-formed.
    uint8_t fb[kFeedbackMaxSize];
    if (b.feedback_due(now)) {
        size_t n = b.make_feedback(now, fb, sizeof fb);
        Feedback parsed;
        if (n == 0 || !decode_feedback(fb, n, parsed)) std::abort();
    }
    for (int guard = 0; guard < int(kMaxLinks); ++guard) {
        int l = b.probe_due(now);
        if (l < 0) break;
        if (l >= int(kMaxLinks) || !b.usable(unsigned(l))) std::abort();
        if (b.make_probe(unsigned(l), now, probe, sizeof probe) != kProbeSize) std::abort();
    }
    for (uint32_t k = 0; k < 16; ++k) b.pick(now + k * 1'000'000, 1400);
    check_bond(b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Feedback fb;
    if (decode_feedback(data, size, fb)) {
        uint8_t out[kFeedbackMaxSize];
        size_t n = encode_feedback(fb, out, sizeof out);
        if (n != size || std::memcmp(out, data, n) != 0) std::abort();
    }
    Probe p;
    if (decode_probe(data, size, p)) {
        uint8_t out[kProbeSize];
        size_t n = encode_probe(p, out, sizeof out);
        // A size probe's padding is not part of the body: the body re-encodes.
        if (n != kProbeSize || std::memcmp(out, data, n) != 0) std::abort();
        if (size != kProbeSize && p.flags != ProbeFlags::SizeProbe) std::abort();
    }
    LinkPolicy lp;
    bool policy = decode_link_policy(data, size, lp);
    if (policy) {
        uint8_t out[kPolicyMaxSize];
        size_t n = encode_link_policy(lp, out, sizeof out);
        if (n != size || std::memcmp(out, data, n) != 0) std::abort();
    }
    fuzz_bond(data, size, policy ? &lp : nullptr);
    return 0;
}
