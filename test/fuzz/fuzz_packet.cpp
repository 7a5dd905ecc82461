// fuzz_packet.cpp — the data-plane receive path: read_header, replay check,
// open_in_place with a fixed key, replay commit, reorder insert/expire/drain.
//
// Input: first byte selects the mode.
//   even: the rest is one raw datagram (almost always a bad tag, which
//         exercises the parsers and the rejection path);
//   odd:  the rest is a list of records, each sealed with the fixed key and
//         then optionally corrupted, so the fuzzer reaches the replay window
//         and reorder buffer with sequence numbers it controls:
//           seq_mode (1) | seq (8, BE) | flags (1) | payload_len (1) | payload
//         flags bit 0: corrupt byte payload[0..] / header; bit 1: expire;
//         bits 2..7: time step.
// Traps if a packet sealed with the right key and not corrupted fails to
// open, if a corrupted one opens, or if the reorder buffer releases out of order.
#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "proto/aead.h"
#include "proto/reorder.h"
#include "proto/replay.h"

using namespace onebox::proto;

namespace {

constexpr uint32_t kSession = 0x0b0e0001;

void init_once() {
    static bool done = false;
    if (!done) {
        if (sodium_init() < 0) std::abort();
        done = true;
    }
}

// Bytes a0 a1 ... bf: any fixed key will do; the seed corpus is sealed with it.
const uint8_t* fixed_key() {
    static const auto key = [] {
        std::array<uint8_t, kKeySize> k{};
        for (size_t i = 0; i < kKeySize; ++i) k[i] = uint8_t(0xa0 + i);
        return k;
    }();
    return key.data();
}

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// The receiving side of one session, as the data plane drives it.
struct Receiver {
    ReplayWindow replay;
    std::unique_ptr<ReorderBuffer> reorder = std::make_unique<ReorderBuffer>();
    std::vector<ReorderEntry> out = std::vector<ReorderEntry>(kReorderCapacity + 1);
    uint64_t now = 0;
    bool released_any = false;
    uint64_t last_released = 0;

    void take(size_t n) {
        for (size_t i = 0; i < n; ++i) {
            check(!released_any || out[i].seq > last_released);
            check(out[i].handle == uint32_t(out[i].seq));
            released_any = true;
            last_released = out[i].seq;
        }
    }

    // Returns whether the datagram was authentic and fresh.
    bool receive(uint8_t* pkt, size_t len) {
        Header h{};
        if (read_header(pkt, len, h) != HeaderError::Ok) return false;
        if (h.type != PacketType::Data && h.type != PacketType::Keepalive &&
            h.type != PacketType::Close)
            return false;
        if (replay.check(h.seq) != ReplayVerdict::Fresh) return false;
        size_t payload_len = 0;
        if (!open_in_place(fixed_key(), h, pkt, len, &payload_len)) return false;
        check(payload_len == len - kDataOverhead);
        replay.commit(h.seq);
        check(replay.check(h.seq) == ReplayVerdict::Duplicate);
        size_t n = 0;
        reorder->insert(h.seq, uint32_t(h.seq), now, out.data(), &n);
        take(n);
        check(reorder->held < kReorderCapacity);
        return true;
    }

    void finish() { take(reorder->drain(out.data())); }
};

void run_raw(const uint8_t* data, size_t size) {
    Receiver rx;
    std::vector<uint8_t> pkt(data, data + size);
    rx.receive(pkt.data(), pkt.size());
    rx.finish();
}

uint64_t pick_seq(uint8_t mode, uint64_t raw, uint64_t prev) {
    switch (mode % 4) {
        case 0: return raw;                      // anything
        case 1: return prev + (raw % 2048);      // near the previous one
        case 2: return prev - (raw % 5000);      // behind it
        default: return raw | (uint64_t(1) << 63);
    }
}

void run_records(const uint8_t* data, size_t size) {
    Receiver rx;
    uint64_t prev = 0;
    std::vector<uint8_t> pkt(kMaxDatagram);
    constexpr size_t kRecordHead = 1 + 8 + 1 + 1;
    while (size >= kRecordHead) {
        const uint64_t seq = pick_seq(data[0], get_be64(data + 1), prev);
        const uint8_t flags = data[9];
        size_t payload_len = data[10];
        data += kRecordHead;
        size -= kRecordHead;
        if (payload_len > size) payload_len = size;
        std::memcpy(pkt.data() + kHeaderSize, data, payload_len);
        data += payload_len;
        size -= payload_len;

        const Header h{PacketType::Data, kProtocolVersion, kSession, seq};
        const size_t len = seal_in_place(fixed_key(), h, pkt.data(), payload_len);
        const bool corrupt = flags & 1;
        if (corrupt) pkt[(flags >> 2) % len] ^= uint8_t(1 + (seq & 0x7f));
        const bool fresh = rx.replay.check(seq) == ReplayVerdict::Fresh;
        rx.now += uint64_t(flags >> 2) * 1'000'000;
        const bool accepted = rx.receive(pkt.data(), len);
        if (!corrupt) check(accepted == fresh);
        if (corrupt) check(!accepted);
        if (flags & 2) rx.take(rx.reorder->expire(rx.now, rx.out.data()));
        prev = seq;
    }
    rx.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    init_once();
    if (size == 0) return 0;
    if (data[0] % 2 == 0) run_raw(data + 1, size - 1);
    else run_records(data + 1, size - 1);
    return 0;
}
