// packet_path.cpp — what one 1400-byte packet costs the data plane's own code,
// beside libsodium's bare ChaCha20-Poly1305 (IETF) on the same buffer.
//
//   send:    the calls dataplane/worker.cpp makes per TUN packet, in its
//            order: the scheduler's pick (Bond::pick), the next sequence
//            number, the header, seal_in_place (the AEAD), the bond's send
//            accounting (on_sent, on_sent_data) and the counters;
//   receive: read_header, the replay check, open_in_place (the AEAD), the
//            replay commit, the bond's receive accounting (on_received,
//            on_data_seq), the reorder buffer (in order: released at once)
//            and the counters.
// The io_uring submission and the syscalls are not in here: bench/tunnel.sh
// measures the whole path. Time runs on a fake clock, 2 µs per packet.
//
// Prints, for each: ns per packet and TSC ticks per byte (x86: the TSC ticks
// at the nominal clock), and the ratio to the bare AEAD. Usage:
//   bench_packet_path [PACKETS=2000000] [SIZE=1400] [ONLY]
// ONLY (seal, open, send or receive) runs that loop alone, with what it
// needs (open needs seal, receive needs send), and prints nothing but
// "done": for counting instructions from outside, e.g. under qemu-user
// (bench/packet_path.sh, aarch64), where the difference between two packet
// counts is the cost of the extra packets.
#include <sodium.h>
#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "dataplane/counters.h"
#include "proto/aead.h"
#include "proto/bond.h"
#include "proto/reorder.h"
#include "proto/replay.h"
#include "proto/wire.h"

using namespace onebox;

namespace {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

uint64_t ticks() {
#if defined(__x86_64__)
    return __rdtsc();
#else
    return 0;
#endif
}

struct Measure {
    uint64_t ns = 0, ticks = 0;
};

template <typename F>
Measure timed(F f) {
    uint64_t t0 = now_ns(), c0 = ticks();
    f();
    return {now_ns() - t0, ticks() - c0};
}

constexpr unsigned kBatch = 1024;  // packets sealed, then opened, per round

struct Path {
    proto::SessionKeys keys;
    proto::Bond tx_bond, rx_bond;
    proto::ReplayWindow replay;
    proto::ReorderBuffer reorder;
    dataplane::Counters counters;
    proto::ReorderEntry released[proto::kReorderCapacity + 1];
    uint64_t tx_seq = 0;
    uint64_t clock = 1'000'000'000;
    size_t payload = 1400;
    std::vector<uint8_t> bufs;
    size_t lens[kBatch]{};

    explicit Path(size_t size) : payload(size), bufs(size_t(kBatch) * 2048) {
        randombytes_buf(keys.send, sizeof keys.send);
        std::memcpy(keys.recv, keys.send, sizeof keys.recv);  // one end talking to itself
        for (unsigned i = 0; i < 2; ++i) {
            tx_bond.set_usable(i, true);
            rx_bond.set_usable(i, true);
        }
        for (unsigned i = 0; i < kBatch; ++i) {
            uint8_t* ip = buf(i) + proto::kHeaderSize;
            randombytes_buf(ip, payload);
            ip[0] = 0x45;
        }
    }
    uint8_t* buf(unsigned i) { return bufs.data() + size_t(i) * 2048; }

    // Returns the packets sealed.
    [[gnu::noinline]] unsigned send_batch() {
        unsigned sealed = 0;
        for (unsigned i = 0; i < kBatch; ++i) {
            uint8_t* pkt = buf(i);
            clock += 2000;
            if ((pkt[proto::kHeaderSize] >> 4) != 4) continue;
            int link = tx_bond.pick(clock, uint32_t(payload + proto::kDataOverhead));
            if (link < 0) link = 0;
            uint64_t seq = tx_seq++;
            proto::Header h{proto::PacketType::Data, proto::kProtocolVersion, 0x1234, seq, uint8_t(link)};
            lens[i] = proto::seal_in_place(keys.send, h, pkt, payload);
            tx_bond.on_sent(unsigned(link), clock, uint32_t(lens[i]));
            tx_bond.on_sent_data(unsigned(link), clock, seq);
            counters.add(dataplane::Counter::tx_packets);
            counters.add(dataplane::Counter::tx_bytes, payload);
            dataplane::bump(counters.links[link].tx_packets, 1);
            dataplane::bump(counters.links[link].tx_bytes, payload);
            ++sealed;
        }
        return sealed;
    }

    // send_batch sealed the inner packets in place; receive_batch opens
    // them again. A run of sends alone (ONLY=send) puts back the one byte
    // send_batch looks at (the IP version), or later rounds would skip
    // every packet as not IPv4: ~5 instructions a packet, not the path's.
    [[gnu::noinline]] void restore_plaintext() {
        for (unsigned i = 0; i < kBatch; ++i) buf(i)[proto::kHeaderSize] = 0x45;
    }

    // Opens what send_batch sealed; returns the packets delivered.
    [[gnu::noinline]] unsigned receive_batch() {
        unsigned delivered = 0;
        for (unsigned i = 0; i < kBatch; ++i) {
            uint8_t* pkt = buf(i);
            clock += 2000;
            proto::Header h{};
            if (proto::read_header(pkt, lens[i], h) != proto::HeaderError::Ok) continue;
            if (replay.check(h.seq) != proto::ReplayVerdict::Fresh) continue;
            size_t n = 0;
            if (!proto::open_in_place(keys.recv, h, pkt, lens[i], &n)) continue;
            replay.commit(h.seq);
            rx_bond.on_received(h.link, clock, uint32_t(lens[i]), true);
            rx_bond.on_data_seq(h.link, h.seq);
            size_t out = 0;
            reorder.insert(h.seq, i, clock, released, &out);
            delivered += unsigned(out);
            counters.add(dataplane::Counter::rx_packets, out);
            counters.add(dataplane::Counter::rx_bytes, n * out);
            dataplane::bump(counters.links[h.link].rx_packets, 1);
            dataplane::bump(counters.links[h.link].rx_bytes, n);
        }
        return delivered;
    }
};

// The bare AEAD on the same buffers: seal, then open, with the same nonce
// layout and the 16-byte header as associated data.
struct Bare {
    uint8_t key[32];
    size_t payload;
    std::vector<uint8_t> bufs;
    uint64_t seq = 0;
    explicit Bare(size_t size) : payload(size), bufs(size_t(kBatch) * 2048) {
        randombytes_buf(key, sizeof key);
        randombytes_buf(bufs.data(), bufs.size());
    }
    uint8_t* buf(unsigned i) { return bufs.data() + size_t(i) * 2048; }
    [[gnu::noinline]] void seal_batch() {
        for (unsigned i = 0; i < kBatch; ++i) {
            uint8_t nonce[12] = {};
            uint64_t s = seq + i;
            std::memcpy(nonce + 4, &s, 8);
            uint8_t* p = buf(i);
            crypto_aead_chacha20poly1305_ietf_encrypt_detached(p + 16, p + 16 + payload, nullptr, p + 16, payload, p,
                                                               16, nullptr, nonce, key);
        }
    }
    [[gnu::noinline]] unsigned open_batch() {
        unsigned ok = 0;
        for (unsigned i = 0; i < kBatch; ++i) {
            uint8_t nonce[12] = {};
            uint64_t s = seq + i;
            std::memcpy(nonce + 4, &s, 8);
            uint8_t* p = buf(i);
            ok += crypto_aead_chacha20poly1305_ietf_decrypt_detached(p + 16, nullptr, p + 16, payload,
                                                                     p + 16 + payload, p, 16, nonce, key) == 0;
        }
        seq += kBatch;
        return ok;
    }
};

}  // namespace

// One loop alone (see ONLY above). 0 when every packet made it through.
int run_only(const char* only, unsigned rounds, Path& path, Bare& bare) {
    bool seal = !std::strcmp(only, "seal"), open = !std::strcmp(only, "open");
    bool send = !std::strcmp(only, "send"), receive = !std::strcmp(only, "receive");
    if (!seal && !open && !send && !receive) {
        std::fprintf(stderr, "unknown ONLY '%s': seal, open, send or receive\n", only);
        return 2;
    }
    uint64_t n = uint64_t(rounds) * kBatch, got = 0;
    for (unsigned r = 0; r < rounds; ++r) {
        if (seal || open) bare.seal_batch();
        if (open) got += bare.open_batch();
        if (send || receive) {
            unsigned sealed = path.send_batch();
            if (send) got += sealed;
        }
        if (send) path.restore_plaintext();
        if (receive) got += path.receive_batch();
    }
    if ((open || receive || send) && got != n) {
        std::fprintf(stderr, "FAIL: %" PRIu64 " of %" PRIu64 " came through\n", got, n);
        return 1;
    }
    std::printf("done\n");
    return 0;
}

int main(int argc, char** argv) {
    if (sodium_init() < 0) return 1;
    uint64_t packets = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
    size_t size = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1400;
    if (size < 20 || size > proto::kMaxInnerPacket || packets < kBatch) {
        std::fprintf(stderr, "usage: %s [PACKETS>=%u] [SIZE 20..%zu]\n", argv[0], kBatch, proto::kMaxInnerPacket);
        return 2;
    }
    unsigned rounds = unsigned(packets / kBatch);
    Path path(size);
    Bare bare(size);
    if (argc > 3) return run_only(argv[3], rounds, path, bare);
    Measure p_send{}, p_recv{}, b_seal{}, b_open{};
    uint64_t delivered = 0, opened = 0;
    // Interleaved rounds, so both see the same machine.
    for (unsigned r = 0; r < rounds; ++r) {
        Measure m;
        m = timed([&] { path.send_batch(); });
        p_send.ns += m.ns; p_send.ticks += m.ticks;
        m = timed([&] { delivered += path.receive_batch(); });
        p_recv.ns += m.ns; p_recv.ticks += m.ticks;
        m = timed([&] { bare.seal_batch(); });
        b_seal.ns += m.ns; b_seal.ticks += m.ticks;
        m = timed([&] { opened += bare.open_batch(); });
        b_open.ns += m.ns; b_open.ticks += m.ticks;
    }
    uint64_t n = uint64_t(rounds) * kBatch;
    if (delivered != n || opened != n) {
        std::fprintf(stderr, "FAIL: delivered %" PRIu64 ", bare opened %" PRIu64 " of %" PRIu64 "\n", delivered,
                     opened, n);
        return 1;
    }
    auto line = [&](const char* what, const Measure& m, const Measure& base) {
        double per = double(m.ns) / double(n);
        double tpb = double(m.ticks) / double(n) / double(size);
        std::printf("%-44s %8.1f ns/packet  %6.2f ticks/byte  %5.2fx the bare AEAD\n", what, per, tpb,
                    double(m.ns) / double(base.ns));
    };
    std::printf("packets: %" PRIu64 " of %zu bytes (inner), %s\n", n, size,
#if defined(__x86_64__)
                "ticks = TSC"
#else
                "ticks: no TSC on this machine (0)"
#endif
    );
    line("bare AEAD seal", b_seal, b_seal);
    line("bare AEAD open", b_open, b_open);
    line("packet path send (frame+seal+schedule)", p_send, b_seal);
    line("packet path receive (open+replay+reorder)", p_recv, b_open);
    std::printf("result: send %.3f receive %.3f (ratio to the bare AEAD)\n", double(p_send.ns) / double(b_seal.ns),
                double(p_recv.ns) / double(b_open.ns));
    return 0;
}
