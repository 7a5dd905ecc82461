// test_resend.cpp — the worker's ring of sent datagrams kept for resending.
#include <doctest.h>

#include <vector>

#include "dataplane/resend.h"

using onebox::dataplane::kNoBuffer;
using onebox::dataplane::SentRecord;
using onebox::dataplane::SentRing;

TEST_CASE("resend: the ring keeps the newest records and hands back what it evicts") {
    SentRing r(4);
    for (uint32_t k = 0; k < 4; ++k) CHECK(r.keep(SentRecord{k, 7, 0, 100, 0, false, k, k}) == kNoBuffer);
    CHECK(r.size() == 4);
    CHECK(r.keep(SentRecord{4, 7, 0, 100, 0, false, 4, 4}) == 0);  // the oldest goes
    CHECK(r.keep(SentRecord{5, 7, 0, 100, 0, false, 5, 5}) == 1);
    CHECK(r.size() == 4);
}

TEST_CASE("resend: take picks one session's link's undelivered records, oldest first") {
    SentRing r(16);
    // Session 7: link 0 sent at 0..4 (seq 10..14), link 1 at 0..2,
    // interleaved; session 8 on link 0.
    uint32_t idx = 100;
    for (uint64_t k = 0; k < 5; ++k) {
        r.keep(SentRecord{idx++, 7, 0, 1000, 0, false, 10 + k, k});
        if (k < 3) r.keep(SentRecord{idx++, 7, 0, 1200, 1, false, 20 + k, k});
        r.keep(SentRecord{idx++, 8, 0, 900, 0, false, 10 + k, k});
    }
    auto after_seq = [](uint64_t through) { return [through](const SentRecord& s) { return s.seq > through; }; };
    auto any = [](const SentRecord&) { return true; };
    std::vector<uint64_t> got;
    unsigned n = r.take(7, 0, 0, after_seq(11), [&](const SentRecord& s) {
        CHECK(s.session_id == 7);
        CHECK(s.link == 0);
        CHECK(s.len == 1000);
        got.push_back(s.sent_ns);
    });
    CHECK(n == 3);
    CHECK(got == std::vector<uint64_t>{2, 3, 4});
    // Taken records are gone; evicting them later hands back nothing.
    CHECK(r.take(7, 1, 0, any, [](const SentRecord&) {}) == 0);  // other keys: never
    CHECK(r.take(7, 0, 0, any, [](const SentRecord&) {}) == 2);
    CHECK(r.take(7, 0, 0, any, [](const SentRecord&) {}) == 0);
    // release_all of one session returns only its buffers.
    std::vector<uint32_t> freed;
    r.release_all([&](uint32_t b) { freed.push_back(b); }, 8, true);
    CHECK(freed.size() == 5);
    freed.clear();
    r.release_all([&](uint32_t b) { freed.push_back(b); });
    CHECK(freed.size() == 3);  // session 7's link 1
    for (uint32_t k = 0; k < 16; ++k) CHECK(r.keep(SentRecord{k, 1, 0, 1, 0, false, k, k}) == kNoBuffer);
}
