// test_link_policy.cpp — the client's keepalive payload (link set, mode,
// per-link overrides): known answer, round trips, table-driven rejections of
// decode and encode, and what apply_link_policy does to a Scheduler.
#include <doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "proto/link_policy.h"
#include "proto/scheduler.h"

#include "hex.h"

using namespace onebox::proto;

namespace {

using onebox::test::unhex;

// link_set 0b00001011, round-robin, two entries: link 3 (weight 1.50, cap
// 0x00012345 kbit/s) and link 0 (automatic weight, cap 1000 kbit/s).
const char* kPolicyHex =
    "0b 01 02"
    "03 00 0096 00012345"
    "00 00 0000 000003e8";

LinkPolicy two_entries() {
    LinkPolicy p;
    p.link_set = 0x0b;
    p.mode = SchedMode::RoundRobin;
    p.count = 2;
    p.entries[0] = {3, 150, 0x00012345};
    p.entries[1] = {0, 0, 1000};
    return p;
}

void check_same(const LinkPolicy& got, const LinkPolicy& want) {
    CHECK(got.link_set == want.link_set);
    CHECK(got.mode == want.mode);
    REQUIRE(got.count == want.count);
    for (unsigned k = 0; k < want.count; ++k) {
        CAPTURE(k);
        CHECK(got.entries[k].link == want.entries[k].link);
        CHECK(got.entries[k].weight_centi == want.entries[k].weight_centi);
        CHECK(got.entries[k].max_rate_kbit == want.entries[k].max_rate_kbit);
        CHECK(got.entries[k].priority == want.entries[k].priority);
    }
}

}  // namespace

TEST_SUITE_BEGIN("link policy");

TEST_CASE("link policy: known-answer encode and decode") {
    std::vector<uint8_t> want = unhex(kPolicyHex);
    REQUIRE(want.size() == kPolicyHeaderSize + 2 * kPolicyEntrySize);
    uint8_t buf[kPolicyMaxSize];
    REQUIRE(encode_link_policy(two_entries(), buf, sizeof buf) == want.size());
    CHECK(std::memcmp(buf, want.data(), want.size()) == 0);

    LinkPolicy got;
    REQUIRE(decode_link_policy(want.data(), want.size(), got));
    check_same(got, two_entries());
}

TEST_CASE("link policy: 0 entries, 8 entries and maximum values round-trip") {
    uint8_t buf[kPolicyMaxSize];

    // No overrides: the header only.
    LinkPolicy empty;
    empty.link_set = 0x81;
    REQUIRE(encode_link_policy(empty, buf, sizeof buf) == kPolicyHeaderSize);
    CHECK(buf[0] == 0x81);
    CHECK(buf[1] == 0);
    CHECK(buf[2] == 0);
    LinkPolicy e2;
    e2.count = 5;  // stale contents are overwritten
    e2.mode = SchedMode::RoundRobin;
    REQUIRE(decode_link_policy(buf, kPolicyHeaderSize, e2));
    check_same(e2, empty);

    // Every link listed (in descending order), every field at its maximum.
    LinkPolicy full;
    full.link_set = 0xff;
    full.mode = SchedMode::RoundRobin;
    full.count = kMaxLinks;
    for (unsigned k = 0; k < kMaxLinks; ++k)
        full.entries[k] = {uint8_t(kMaxLinks - 1 - k), 0xffff, 0xffffffffu};
    REQUIRE(encode_link_policy(full, buf, sizeof buf) == kPolicyMaxSize);
    CHECK(kPolicyMaxSize == 67);
    CHECK(buf[0] == 0xff);
    CHECK(buf[1] == 1);
    CHECK(buf[2] == kMaxLinks);
    for (unsigned k = 0; k < kMaxLinks; ++k) {
        const uint8_t* e = buf + kPolicyHeaderSize + k * kPolicyEntrySize;
        CHECK(e[0] == kMaxLinks - 1 - k);
        CHECK(e[1] == 0);
        for (unsigned j = 2; j < kPolicyEntrySize; ++j) CHECK(e[j] == 0xff);
    }
    LinkPolicy got;
    REQUIRE(decode_link_policy(buf, kPolicyMaxSize, got));
    check_same(got, full);

    // Mixed values, each entry overriding just one of the two fields.
    LinkPolicy mixed;
    mixed.link_set = 0x24;
    mixed.count = 3;
    mixed.entries[0] = {5, 1, 0};
    mixed.entries[1] = {2, 0, 1};
    mixed.entries[2] = {7, 0x1234, 0x89abcdef};
    size_t n = encode_link_policy(mixed, buf, sizeof buf);
    REQUIRE(n == kPolicyHeaderSize + 3 * kPolicyEntrySize);
    REQUIRE(decode_link_policy(buf, n, got));
    check_same(got, mixed);
    // Exactly the needed capacity is enough.
    uint8_t exact[kPolicyHeaderSize + 3 * kPolicyEntrySize];
    CHECK(encode_link_policy(mixed, exact, sizeof exact) == sizeof exact);
    CHECK(std::memcmp(exact, buf, sizeof exact) == 0);
}

TEST_CASE("link policy: modes redundant and backup, and priorities") {
    // Mode 3 (backup); link 0 priority 1 with a weight, link 2 priority 2 alone.
    std::vector<uint8_t> in = unhex("05 03 02 00 00 0064 00000000 02 02 0000 00000000");
    LinkPolicy p;
    REQUIRE(decode_link_policy(in.data(), in.size(), p));
    CHECK(p.mode == SchedMode::Backup);
    CHECK(p.entries[0].priority == 1);  // 0 on the wire: the default
    CHECK(p.entries[1].priority == 2);
    uint8_t buf[kPolicyMaxSize];
    REQUIRE(encode_link_policy(p, buf, sizeof buf) == in.size());
    CHECK(std::memcmp(buf, in.data(), in.size()) == 0);  // priority 1 goes out as 0
    Scheduler s;
    apply_link_policy(p, s);
    CHECK(s.cfg.mode == SchedMode::Backup);
    CHECK(s.links[0].priority == 1);
    CHECK(s.links[1].priority == 1);
    CHECK(s.links[2].priority == 2);
    in = unhex("03 02 00");
    REQUIRE(decode_link_policy(in.data(), in.size(), p));
    CHECK(p.mode == SchedMode::Redundant);
}

TEST_CASE("link policy: decode rejects every malformed payload") {
    struct Row { const char* name; std::string hex; };
    const std::string ok1 = "01 00 0064 00000000";  // link 1, weight 1.00
    const std::string ok2 = "02 00 0000 00000010";  // link 2, cap 16 kbit/s
    Row rows[] = {
        {"empty", ""},
        {"one byte", "03"},
        {"header cut short", "03 00"},
        {"count 1, no entry", "03 00 01"},
        {"count 1, entry one byte short", "03 00 01 01 00 0064 000000"},
        {"count 1, entry one byte long", "03 00 01" + ok1 + "00"},
        {"count 0, trailing byte", "03 00 00 00"},
        {"count 2, one entry", "03 00 02" + ok1},
        {"count 1, two entries", "03 00 01" + ok1 + ok2},
        {"count 9, nine entries", "ff 00 09" + ok1 + ok1 + ok1 + ok1 + ok1 + ok1 + ok1 + ok1 + ok1},
        {"count 9, eight entries", "ff 00 09" + ok1 + ok2 + ok1 + ok2 + ok1 + ok2 + ok1 + ok2},
        {"count 255", "ff 00 ff" + ok1},
        {"mode 4", "03 04 00"},
        {"mode 4 with entries", "03 04 02" + ok1 + ok2},
        {"mode 255", "03 ff 00"},
        {"link 8", "03 00 01 08 00 0064 00000000"},
        {"link 255", "03 00 02" + ok1 + "ff 00 0000 00000010"},
        {"duplicate link", "03 00 02" + ok1 + "01 00 0000 00000010"},
        {"priority 1 and nothing else", "03 00 01 01 01 0000 00000000"},
        {"priority byte 1 (1 is sent as 0)", "03 00 01 01 01 0064 00000000"},
        {"weight 0 and rate 0", "03 00 01 01 00 0000 00000000"},
        {"2nd entry weight 0 and rate 0", "03 00 02" + ok1 + "02 00 0000 00000000"},
    };
    // The building blocks themselves decode.
    LinkPolicy p;
    std::vector<uint8_t> good = unhex(("03 00 02" + ok1 + ok2).c_str());
    REQUIRE(decode_link_policy(good.data(), good.size(), p));
    CHECK(p.count == 2);
    for (const Row& r : rows) {
        CAPTURE(r.name);
        std::vector<uint8_t> in = unhex(r.hex.c_str());
        LinkPolicy q;
        CHECK_FALSE(decode_link_policy(in.data(), in.size(), q));
    }
    // Every truncation of a valid payload is rejected.
    for (size_t len = 0; len < good.size(); ++len) {
        CAPTURE(len);
        CHECK_FALSE(decode_link_policy(good.data(), len, p));
    }
}

TEST_CASE("link policy: encode rejects invalid values and short buffers") {
    struct Row { const char* name; LinkPolicy p; };
    auto with = [](auto&& edit) {
        LinkPolicy p = two_entries();
        edit(p);
        return p;
    };
    Row rows[] = {
        {"count 9", with([](LinkPolicy& p) { p.count = kMaxLinks + 1; })},
        {"count 255", with([](LinkPolicy& p) { p.count = 255; })},
        {"link 8", with([](LinkPolicy& p) { p.entries[1].link = kMaxLinks; })},
        {"duplicate link", with([](LinkPolicy& p) { p.entries[1].link = 3; })},
        {"nothing to override", with([](LinkPolicy& p) { p.entries[0] = {3, 0, 0}; })},
        {"unknown mode", with([](LinkPolicy& p) { p.mode = SchedMode(4); })},
    };
    uint8_t buf[kPolicyMaxSize + 16];
    for (const Row& r : rows) {
        CAPTURE(r.name);
        CHECK(encode_link_policy(r.p, buf, sizeof buf) == 0);
    }
    // An entry past count is not looked at.
    LinkPolicy tail = two_entries();
    tail.entries[2] = {99, 0, 0};
    CHECK(encode_link_policy(tail, buf, sizeof buf) == kPolicyHeaderSize + 2 * kPolicyEntrySize);
    // Capacity one short of the length, and none at all.
    const size_t need = kPolicyHeaderSize + 2 * kPolicyEntrySize;
    CHECK(encode_link_policy(two_entries(), buf, need - 1) == 0);
    CHECK(encode_link_policy(two_entries(), buf, 0) == 0);
    CHECK(encode_link_policy(LinkPolicy{}, buf, kPolicyHeaderSize - 1) == 0);
    CHECK(encode_link_policy(two_entries(), buf, need) == need);
}

TEST_CASE("link policy: apply sets the mode and every link's overrides") {
    Scheduler s;
    // Whatever was there before: old overrides, estimator inputs, usability.
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        s.links[i].weight = 7;
        s.links[i].max_rate_bps = 123;
        s.links[i].rate_bytes_per_s = 1000 + i;
        s.links[i].usable = (i % 2) == 0;
    }
    s.cfg.mode = SchedMode::Bond;

    LinkPolicy p;
    p.link_set = 0x25;
    p.mode = SchedMode::RoundRobin;
    p.count = 4;
    p.entries[0] = {2, 250, 0};              // weight 2.5, no cap
    p.entries[1] = {5, 0, 20'000};           // automatic, 20 Mbit/s
    p.entries[2] = {0, 33, 1};               // 0.33, 1 kbit/s
    p.entries[3] = {7, 0xffff, 0xffffffffu}; // maxima: no overflow
    apply_link_policy(p, s);

    CHECK(s.cfg.mode == SchedMode::RoundRobin);
    struct Want { unsigned link; double weight; uint64_t max_rate_bps; };
    Want want[] = {
        {0, 0.33, 1000},
        {1, 0, 0},
        {2, 2.5, 0},
        {3, 0, 0},
        {4, 0, 0},
        {5, 0, 20'000'000},
        {6, 0, 0},
        {7, 655.35, 4'294'967'295'000ull},
    };
    for (const Want& w : want) {
        CAPTURE(w.link);
        CHECK(s.links[w.link].weight == doctest::Approx(w.weight));
        CHECK(s.links[w.link].max_rate_bps == w.max_rate_bps);
        // Not the policy's business: the estimator inputs and usability.
        CHECK(s.links[w.link].rate_bytes_per_s == 1000 + w.link);
        CHECK(s.links[w.link].usable == ((w.link % 2) == 0));
    }

    // A policy without entries puts every link back to automatic, mode Bond.
    apply_link_policy(LinkPolicy{}, s);
    CHECK(s.cfg.mode == SchedMode::Bond);
    for (unsigned i = 0; i < kMaxLinks; ++i) {
        CAPTURE(i);
        CHECK(s.links[i].weight == 0);
        CHECK(s.links[i].max_rate_bps == 0);
    }

    // Decoded from the wire, then applied: weights 3 and 1 on links 0 and 1
    // give the exact 3:1 weighted split in Bond mode.
    std::vector<uint8_t> in = unhex("03 00 02 00 00 012c 00000000 01 00 0064 00000000");
    LinkPolicy d;
    REQUIRE(decode_link_policy(in.data(), in.size(), d));
    Scheduler w;
    w.links[0].usable = w.links[1].usable = true;
    apply_link_policy(d, w);
    CHECK(w.links[0].weight == 3.0);
    CHECK(w.links[1].weight == 1.0);
    std::string seq;
    for (int k = 0; k < 8; ++k) seq += char('0' + w.pick(uint64_t(k), 1400));
    CHECK(seq == "00100010");
}

TEST_SUITE_END();
