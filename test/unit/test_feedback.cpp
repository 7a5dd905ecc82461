// test_feedback.cpp — Feedback and Probe payloads: known answers, round trips,
// table-driven rejections.
#include <doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "proto/feedback.h"

#include "hex.h"

using namespace onebox::proto;

namespace {

using onebox::test::unhex;

// Two entries: link 2 (0x01020304 packets, 0x1112131415161718 bytes,
// newest data seq 0x2122232425262728) and link 0 (0xffffffff packets, 0
// bytes, no data packet yet).
const char* kFeedbackHex =
    "02"
    "02 01 0000 01020304 1112131415161718 2122232425262728"
    "00 00 0000 ffffffff 0000000000000000 0000000000000000";

const char* kProbeHex = "05 01 0000 deadbeef 0102030405060708";

}  // namespace

TEST_SUITE_BEGIN("feedback");

TEST_CASE("feedback: known-answer encode and decode") {
    Feedback fb;
    fb.count = 2;
    fb.entries[0] = {2, 0x01020304, 0x1112131415161718, true, 0x2122232425262728};
    fb.entries[1] = {0, 0xffffffff, 0, false, 0};
    uint8_t buf[kFeedbackMaxSize];
    std::vector<uint8_t> want = unhex(kFeedbackHex);
    REQUIRE(encode_feedback(fb, buf, sizeof buf) == want.size());
    CHECK(std::memcmp(buf, want.data(), want.size()) == 0);

    Feedback got;
    REQUIRE(decode_feedback(want.data(), want.size(), got));
    CHECK(got.count == 2);
    CHECK(got.entries[0].link == 2);
    CHECK(got.entries[0].rx_packets == 0x01020304);
    CHECK(got.entries[0].rx_bytes == 0x1112131415161718);
    CHECK(got.entries[0].has_seq);
    CHECK(got.entries[0].newest_seq == 0x2122232425262728);
    CHECK(got.entries[1].link == 0);
    CHECK(got.entries[1].rx_packets == 0xffffffff);
    CHECK(got.entries[1].rx_bytes == 0);
    CHECK_FALSE(got.entries[1].has_seq);
}

TEST_CASE("feedback: rx_data, the data-channel arrivals, in the second and third bytes of an entry") {
    Feedback fb;
    fb.count = 1;
    fb.entries[0] = {1, 7, 700, true, 9, true, 0xbeef};
    uint8_t buf[kFeedbackMaxSize];
    std::vector<uint8_t> want = unhex("01 01 03 beef 00000007 00000000000002bc 0000000000000009");
    REQUIRE(encode_feedback(fb, buf, sizeof buf) == want.size());
    CHECK(std::memcmp(buf, want.data(), want.size()) == 0);
    Feedback got;
    REQUIRE(decode_feedback(want.data(), want.size(), got));
    CHECK(got.entries[0].has_data);
    CHECK(got.entries[0].rx_data == 0xbeef);
    // A count of 0 with its flag is a count.
    std::vector<uint8_t> zero = unhex("01 01 02 0000 00000007 00000000000002bc 0000000000000000");
    REQUIRE(decode_feedback(zero.data(), zero.size(), got));
    CHECK(got.entries[0].has_data);
    CHECK(got.entries[0].rx_data == 0);
    // Encoding refuses a count without its flag.
    fb.entries[0].has_data = false;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);
}

TEST_CASE("feedback: empty and full payloads round-trip") {
    uint8_t buf[kFeedbackMaxSize];
    Feedback empty;
    REQUIRE(encode_feedback(empty, buf, sizeof buf) == 1);
    CHECK(buf[0] == 0);
    Feedback e2;
    e2.count = 5;
    CHECK(decode_feedback(buf, 1, e2));
    CHECK(e2.count == 0);

    Feedback full;
    full.count = kMaxLinks;
    for (unsigned i = 0; i < kMaxLinks; ++i)
        full.entries[i] = {uint8_t(kMaxLinks - 1 - i), i * 1000u, uint64_t(i) << 40, i % 2 == 1, (i % 2) * (uint64_t(i) << 50)};
    const size_t entries = 1 + kMaxLinks * kFeedbackEntrySize;
    REQUIRE(encode_feedback(full, buf, sizeof buf) == entries);  // no report time
    Feedback got;
    REQUIRE(decode_feedback(buf, entries, got));
    CHECK_FALSE(got.has_time);
    full.has_time = true;
    full.report_time_ns = 0x0102030405060708;
    REQUIRE(encode_feedback(full, buf, sizeof buf) == entries + 8);
    CHECK(buf[entries] == 0x01);  // big-endian, after the entries
    CHECK(buf[entries + 7] == 0x08);
    REQUIRE(decode_feedback(buf, entries + 8, got));
    CHECK(got.has_time);
    CHECK_FALSE(got.has_missing);
    CHECK(got.report_time_ns == 0x0102030405060708);
    CHECK(got.count == kMaxLinks);
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        CHECK(got.entries[i].link == full.entries[i].link);
        CHECK(got.entries[i].rx_packets == full.entries[i].rx_packets);
        CHECK(got.entries[i].rx_bytes == full.entries[i].rx_bytes);
        CHECK(got.entries[i].has_seq == full.entries[i].has_seq);
        CHECK(got.entries[i].newest_seq == full.entries[i].newest_seq);
    }
}

TEST_CASE("feedback: the missing block round-trips after the report time") {
    uint8_t buf[kFeedbackMaxSize];
    Feedback fb;
    fb.count = 1;
    fb.entries[0] = {2, 7, 9, true, 1000, true, 3};
    fb.has_time = true;
    fb.report_time_ns = 5;
    fb.has_missing = true;
    fb.missing_first = 128;
    fb.missing[0] = 0x8000000000000001;  // 128 and 191 missing
    fb.missing[kFeedbackMissingWords - 1] = 0x0102030405060708;
    size_t n = encode_feedback(fb, buf, sizeof buf);
    REQUIRE(n == 1 + kFeedbackEntrySize + 8 + kFeedbackMissingSize);
    CHECK(buf[1 + kFeedbackEntrySize + 8 + 7] == 128);  // missing_first, big-endian
    Feedback got;
    REQUIRE(decode_feedback(buf, n, got));
    CHECK(got.has_missing);
    CHECK(got.missing_first == 128);
    CHECK(got.missing[0] == 0x8000000000000001);
    CHECK(got.missing[1] == 0);
    CHECK(got.missing[kFeedbackMissingWords - 1] == 0x0102030405060708);
    // Cut anywhere inside the block: refused.
    for (size_t cut = n - kFeedbackMissingSize + 1; cut < n; ++cut) CHECK_FALSE(decode_feedback(buf, cut, got));
    // missing_first must be a multiple of 64, both ways.
    buf[1 + kFeedbackEntrySize + 8 + 7] = 129;
    CHECK_FALSE(decode_feedback(buf, n, got));
    fb.missing_first = 129;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);
    // And the block needs a report time before it.
    fb.missing_first = 128;
    fb.has_time = false;
    fb.report_time_ns = 0;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);
}

TEST_CASE("feedback: decode rejects malformed payloads") {
    struct Row { const char* name; std::string hex; };
    std::string e0 = "00 00 0000 00000001 0000000000000002 0000000000000000";
    std::string e1 = "01 01 0000 00000001 0000000000000002 0000000000000003";
    Row rows[] = {
        {"empty", ""},
        {"count 1, no entry", "01"},
        {"short entry", "01" + e0.substr(0, e0.size() - 2)},
        {"long: trailing byte", "01" + e0 + "00"},
        {"report time cut short", "01" + e0 + "00000000000000"},
        {"report time and a byte", "01" + e0 + "000000000000000100"},
        {"long: count 0 with data", "00" + e0},
        {"count says 2, one entry", "02" + e0},
        {"count 9", "09" + e0 + e1 + e0 + e1 + e0 + e1 + e0 + e1 + e0},
        {"count 255", "ff"},
        {"duplicate link", "02" + e1 + e1},
        {"link 8", "01 08 00 0000 00000001 0000000000000002 0000000000000000"},
        {"link 255", "01 ff 00 0000 00000001 0000000000000002 0000000000000000"},
        {"unknown flag", "01 00 04 0000 00000001 0000000000000002 0000000000000000"},
        {"seq without its flag", "01 00 00 0000 00000001 0000000000000002 0000000000000001"},
        {"rx_data (high byte) without its flag", "01 00 00 0100 00000001 0000000000000002 0000000000000000"},
        {"rx_data (low byte) without its flag", "01 00 00 0001 00000001 0000000000000002 0000000000000000"},
        {"old 16-byte entry", "01 00 00 0000 00000001 0000000000000002"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        std::vector<uint8_t> b = unhex(r.hex.c_str());
        Feedback fb;
        CHECK_FALSE(decode_feedback(b.data(), b.size(), fb));
    }
    Feedback fb;
    CHECK_FALSE(decode_feedback(nullptr, 0, fb));
    CHECK_FALSE(decode_feedback(nullptr, 17, fb));
}

TEST_CASE("feedback: encode refuses invalid values and small buffers") {
    uint8_t buf[kFeedbackMaxSize];
    Feedback fb;
    fb.count = 2;
    fb.entries[0].link = 1;
    fb.entries[1].link = 1;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);  // duplicate
    fb.entries[1].link = kMaxLinks;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);  // link out of range
    fb.entries[1].link = 0;
    fb.entries[1].newest_seq = 5;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);  // a seq without has_seq
    fb.entries[1].has_seq = true;
    CHECK(encode_feedback(fb, buf, 48) == 0);          // needs 49
    CHECK(encode_feedback(fb, buf, 49) == 49);
    fb.count = kMaxLinks + 1;
    CHECK(encode_feedback(fb, buf, sizeof buf) == 0);
}

TEST_CASE("probe: known-answer encode and decode, echo") {
    Probe p;
    p.link = 5;
    p.flags = ProbeFlags::Echo;
    p.probe_seq = 0xdeadbeef;
    p.sender_time_ns = 0x0102030405060708;
    uint8_t buf[kProbeSize];
    std::vector<uint8_t> want = unhex(kProbeHex);
    REQUIRE(encode_probe(p, buf, sizeof buf) == kProbeSize);
    CHECK(std::memcmp(buf, want.data(), kProbeSize) == 0);

    Probe got;
    REQUIRE(decode_probe(want.data(), want.size(), got));
    CHECK(got.link == 5);
    CHECK(got.flags == ProbeFlags::Echo);
    CHECK(got.probe_seq == 0xdeadbeef);
    CHECK(got.sender_time_ns == 0x0102030405060708);

    Probe q = p;
    q.flags = ProbeFlags::Probe;
    Probe e = echo_of(q);
    CHECK(e.flags == ProbeFlags::Echo);
    CHECK(e.link == q.link);
    CHECK(e.probe_seq == q.probe_seq);
    CHECK(e.sender_time_ns == q.sender_time_ns);
}

TEST_CASE("probe: decode rejects malformed payloads, encode refuses bad values") {
    struct Row { const char* name; const char* hex; };
    Row rows[] = {
        {"empty", ""},
        {"short", "05 00 0000 deadbeef 01020304050607"},
        {"long", "05 00 0000 deadbeef 0102030405060708 00"},
        {"link 8", "08 00 0000 deadbeef 0102030405060708"},
        {"flag 4", "05 04 0000 deadbeef 0102030405060708"},
        {"padded echo", "05 01 0000 deadbeef 0102030405060708 00"},
        {"padded size echo", "05 03 0000 deadbeef 0102030405060708 00"},
        {"reserved", "05 00 0001 deadbeef 0102030405060708"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        std::vector<uint8_t> b = unhex(r.hex);
        Probe p;
        CHECK_FALSE(decode_probe(b.data(), b.size(), p));
    }
    uint8_t buf[kProbeSize];
    Probe p;
    CHECK(encode_probe(p, buf, kProbeSize - 1) == 0);
    p.link = kMaxLinks;
    CHECK(encode_probe(p, buf, sizeof buf) == 0);
    p.link = 0;
    p.flags = ProbeFlags(7);
    CHECK(encode_probe(p, buf, sizeof buf) == 0);
}

TEST_SUITE_END();
