// fuzz_feedback.cpp — the Feedback and Probe payload decoders on arbitrary
// bytes. Traps if a payload that decodes does not re-encode to the same bytes
// (the formats are canonical: exact length, zero reserved fields).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "proto/feedback.h"

using namespace onebox::proto;

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
        if (n != size || std::memcmp(out, data, n) != 0) std::abort();
    }
    return 0;
}
