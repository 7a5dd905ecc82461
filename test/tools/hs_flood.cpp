// hs_flood — floods a onebox server with HandshakeInit-shaped datagrams that
// no key made (random MACs), from many spoofed source addresses, as a test
// tool for the handshake-flood test.
//
//   hs_flood [--psk KEY [--tunnel-net NET/PREFIX]] DST_IP PORT RATE_PPS SECONDS [SRC_NET/PREFIX]
//
// A raw socket (IP_HDRINCL, so it needs CAP_NET_RAW) sends 80-byte datagrams
// shaped like an Init (type 1, version 1, a random session id, random key,
// timestamp and MAC) from random addresses of SRC_NET (198.18.0.0/15 by
// default, the benchmarking range) and random ports, in batches of 64 per
// sendmmsg, paced to RATE_PPS. Prints "sent N datagrams in S s (R per
// second)". With --psk the Inits are real ones, MACed with the key (random
// session ids, keys and tunnel addresses): what a key holder could send, to
// test the per-source rate limit and the cookies of a busy server; with
// --tunnel-net they ask for addresses in that subnet (so each would hold a
// half-open session), else for random ones. Exit 0, 1 on a socket error, 2
// on bad arguments.
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sodium.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "proto/handshake.h"
#include "proto/wire.h"

namespace {

constexpr unsigned kBatch = 64;
constexpr size_t kPayload = onebox::proto::kInitSize;
constexpr size_t kDatagram = sizeof(iphdr) + sizeof(udphdr) + kPayload;

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// One datagram: IPv4 header (the kernel fills in its checksum and id), UDP
// header (checksum 0: none, which IPv4 allows) and the Init-shaped payload.
void build(uint8_t* out, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, std::mt19937_64& rng) {
    auto* ip = reinterpret_cast<iphdr*>(out);
    std::memset(ip, 0, sizeof *ip);
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(uint16_t(kDatagram));
    ip->saddr = htonl(src);
    ip->daddr = htonl(dst);
    auto* udp = reinterpret_cast<udphdr*>(out + sizeof *ip);
    udp->source = htons(sport);
    udp->dest = htons(dport);
    udp->len = htons(uint16_t(sizeof *udp + kPayload));
    udp->check = 0;
    uint8_t* p = out + sizeof *ip + sizeof *udp;
    for (size_t i = 0; i < kPayload; i += 8) {
        uint64_t r = rng();
        std::memcpy(p + i, &r, std::min<size_t>(8, kPayload - i));
    }
    p[0] = uint8_t(onebox::proto::PacketType::HandshakeInit);
    p[1] = onebox::proto::kProtocolVersion;
    p[2] = 0;  // link
    p[3] = 0;  // reserved
    if (p[4] == 0 && p[5] == 0 && p[6] == 0 && p[7] == 0) p[7] = 1;  // session id 0 is never valid
    std::memset(p + 8, 0, 8);  // seq 0
}

// With the key: a real Init in place of the random payload.
void make_valid(uint8_t* out, const onebox::proto::PskKey& psk, std::mt19937_64& rng, uint64_t& timestamp,
                uint32_t tunnel_base, uint32_t tunnel_hosts) {
    onebox::proto::InitMsg msg;
    msg.session_id = uint32_t(rng()) | 1;
    for (auto& b : msg.eph_pub) b = uint8_t(rng());
    msg.timestamp = ++timestamp;
    msg.tunnel_ip = tunnel_hosts ? tunnel_base + 2 + uint32_t(rng() % (tunnel_hosts - 3)) : uint32_t(rng());
    onebox::proto::write_init(psk, msg, out + sizeof(iphdr) + sizeof(udphdr));
}

}  // namespace

int main(int argc, char** argv) {
    onebox::proto::PskKey psk;
    bool valid = false;
    uint32_t tunnel_base = 0, tunnel_hosts = 0;
    if (argc > 2 && std::strcmp(argv[1], "--psk") == 0) {
        if (sodium_init() < 0 || !onebox::proto::derive_psk_key(argv[2], psk)) return 1;
        valid = true;
        argv += 2;
        argc -= 2;
    }
    if (valid && argc > 2 && std::strcmp(argv[1], "--tunnel-net") == 0) {
        char text[32];
        std::snprintf(text, sizeof text, "%s", argv[2]);
        char* cut = std::strchr(text, '/');
        int bits = cut ? std::atoi(cut + 1) : 0;
        if (cut) *cut = '\0';
        in_addr a{};
        if (!cut || bits < 8 || bits > 29 || inet_pton(AF_INET, text, &a) != 1) {
            std::fprintf(stderr, "hs_flood: bad --tunnel-net\n");
            return 2;
        }
        tunnel_base = ntohl(a.s_addr);
        tunnel_hosts = uint32_t(1) << (32 - bits);
        argv += 2;
        argc -= 2;
    }
    if (argc < 5 || argc > 6) {
        std::fprintf(stderr, "usage: hs_flood [--psk KEY] DST_IP PORT RATE_PPS SECONDS [SRC_NET/PREFIX]\n");
        return 2;
    }
    in_addr dst{}, net{};
    int port = std::atoi(argv[2]);
    double rate = std::atof(argv[3]), seconds = std::atof(argv[4]);
    const char* src_net = argc == 6 ? argv[5] : "198.18.0.0/15";
    char net_text[32];
    std::snprintf(net_text, sizeof net_text, "%s", src_net);
    char* slash = std::strchr(net_text, '/');
    int prefix = slash ? std::atoi(slash + 1) : 32;
    if (slash) *slash = '\0';
    if (inet_pton(AF_INET, argv[1], &dst) != 1 || inet_pton(AF_INET, net_text, &net) != 1 || port <= 0 ||
        port > 65535 || rate <= 0 || seconds <= 0 || prefix < 8 || prefix > 32) {
        std::fprintf(stderr, "hs_flood: bad arguments\n");
        return 2;
    }
    int fd = ::socket(AF_INET, SOCK_RAW, IPPROTO_RAW);  // IPPROTO_RAW implies IP_HDRINCL
    if (fd < 0) {
        std::fprintf(stderr, "hs_flood: raw socket: %s\n", std::strerror(errno));
        return 1;
    }
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    uint32_t base = ntohl(net.s_addr), hosts = prefix == 32 ? 1 : (uint32_t(1) << (32 - prefix));
    std::mt19937_64 rng(uint64_t(now_s() * 1e9));
    static uint8_t bufs[kBatch][kDatagram];
    iovec iov[kBatch];
    mmsghdr msgs[kBatch];
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr = dst;
    for (unsigned i = 0; i < kBatch; ++i) {
        iov[i] = {bufs[i], kDatagram};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
    }
    double start = now_s(), end = start + seconds;
    uint64_t sent = 0, timestamp = uint64_t(start * 1e9);
    for (double t = start; t < end; t = now_s()) {
        double due = start + double(sent) / rate;  // pacing: the next batch is due then
        if (t < due) {
            usleep(unsigned(std::min(1000.0, (due - t) * 1e6)));
            continue;
        }
        for (unsigned i = 0; i < kBatch; ++i) {
            uint32_t src = (base & ~(hosts - 1)) | uint32_t(rng() % hosts);
            build(bufs[i], src, uint16_t(1024 + rng() % 64000), ntohl(dst.s_addr), uint16_t(port), rng);
            if (valid) make_valid(bufs[i], psk, rng, timestamp, tunnel_base, tunnel_hosts);
        }
        int n = ::sendmmsg(fd, msgs, kBatch, 0);
        if (n < 0) {
            if (errno == ENOBUFS || errno == EAGAIN) continue;
            std::fprintf(stderr, "hs_flood: sendmmsg: %s\n", std::strerror(errno));
            return 1;
        }
        sent += unsigned(n);
    }
    double took = now_s() - start;
    std::printf("sent %llu datagrams in %.1f s (%.0f per second)\n", (unsigned long long)sent, took,
                double(sent) / took);
    return 0;
}
