// loadgen — many onebox clients at once, as a test tool for the load test.
//
//   loadgen SERVER_IP PORT PSK CLIENTS SECONDS SRC_BASE SRC_COUNT
//
// Client i speaks from two UDP sockets (its links 0 and 1) bound to source
// address SRC_BASE + i % SRC_COUNT (the addresses must exist on the host),
// asks for tunnel address 10.0.(1 + i / 250).(1 + i % 250), handshakes on
// link 0 and confirms the keys with a Keepalive on each link. Then, every
// second, each link sends a sealed Data packet holding an ICMP echo request
// from the client's tunnel address to 10.0.0.1 (the server's), and every
// echo reply that comes back, on either link, is opened and counted. Probes
// and Feedback from the server are read and ignored.
//
// Prints one line: clients, established, kept (a reply within the last 3 s),
// echo requests sent, replies, handshakes sent. Exit 0 when it ran, 1 on a
// socket error, 2 on bad arguments.
#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "proto/aead.h"
#include "proto/config.h"
#include "proto/handshake.h"
#include "proto/replay.h"
#include "proto/wire.h"

using namespace onebox::proto;

namespace {

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

uint16_t checksum(const uint8_t* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += uint32_t(p[n - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

// An IPv4 ICMP echo request of 64 bytes in all at out.
size_t echo_request(uint8_t* out, uint32_t src, uint32_t dst, uint16_t id, uint16_t seq) {
    const size_t len = 64;
    std::memset(out, 0, len);
    out[0] = 0x45;
    put_be16(out + 2, uint16_t(len));
    out[8] = 64;  // ttl
    out[9] = 1;   // ICMP
    put_be32(out + 12, src);
    put_be32(out + 16, dst);
    put_be16(out + 10, checksum(out, 20));
    uint8_t* icmp = out + 20;
    icmp[0] = 8;  // echo request
    put_be16(icmp + 4, id);
    put_be16(icmp + 6, seq);
    put_be16(icmp + 2, checksum(icmp, len - 20));
    return len;
}

struct Client {
    uint32_t session_id = 0, tunnel_ip = 0, src = 0;
    int fd[2] = {-1, -1};
    EphemeralKey eph;
    InitMsg init;
    SessionKeys keys;
    bool established = false;
    uint64_t seq = 0;        // data channel
    double last_reply = 0;
    double next_init = 0;
    uint16_t echo_seq = 0;
    ReplayWindow seen;       // the server's data channel: a resent copy counts once
    uint8_t cookie[kCookieSize]{};  // a busy server's cookie for fd[0]'s address
    bool has_cookie = false;
};

int bound_socket(uint32_t src, const sockaddr_in& server) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(src);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
        ::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void send_init(Client& c, const PskKey& psk, uint64_t& handshakes) {
    uint8_t random[32];
    randombytes_buf(random, sizeof random);
    c.eph = ephemeral_from_random(random);
    c.init.session_id = c.session_id;
    std::memcpy(c.init.eph_pub, c.eph.pub, sizeof c.eph.pub);
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c.init.timestamp = uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
    c.init.tunnel_ip = c.tunnel_ip;
    uint8_t pkt[kInitSize];
    write_init(psk, c.init, pkt, c.has_cookie ? c.cookie : nullptr);
    if (::send(c.fd[0], pkt, sizeof pkt, 0) == ssize_t(sizeof pkt)) ++handshakes;
}

void send_sealed(Client& c, unsigned link, PacketType type, const uint8_t* payload, size_t len) {
    uint8_t pkt[2048];
    if (len) std::memcpy(pkt + kHeaderSize, payload, len);
    Header h{type, kProtocolVersion, c.session_id, c.seq++, uint8_t(link)};
    size_t n = seal_in_place(c.keys.send, h, pkt, len);
    (void)::send(c.fd[link], pkt, n, 0);
}

// One datagram from the server on client c.
void receive(Client& c, const PskKey& psk, uint8_t* buf, size_t n, double now, uint64_t& replies,
             uint64_t& handshakes, uint64_t& cookies) {
    Header h;
    if (read_header(buf, n, h) != HeaderError::Ok) return;
    if (h.type == PacketType::CookieReply) {  // the server is busy: ask again with mac2, as a client does
        if (c.established || read_cookie_reply(psk, buf, n, c.init, c.cookie) != HsError::Ok) return;
        c.has_cookie = true;
        ++cookies;
        send_init(c, psk, handshakes);
        return;
    }
    if (h.type == PacketType::HandshakeResp) {
        RespMsg resp;
        if (c.established || read_resp(psk, buf, n, c.init, resp) != HsError::Ok || resp.status != RespStatus::Ok)
            return;
        if (derive_session_keys(psk, c.eph, c.init.eph_pub, resp.eph_pub, true, c.keys) != HsError::Ok) return;
        c.established = true;
        c.last_reply = now;
        send_sealed(c, 0, PacketType::Keepalive, nullptr, 0);  // confirms the keys
        send_sealed(c, 1, PacketType::Keepalive, nullptr, 0);  // and shows the server link 1
        return;
    }
    if (!c.established || h.type != PacketType::Data) return;
    size_t plain = 0;
    if (c.seen.check(h.seq) != ReplayVerdict::Fresh) return;
    if (!open_in_place(c.keys.recv, h, buf, n, &plain)) return;
    c.seen.commit(h.seq);
    const uint8_t* ip = buf + kHeaderSize;
    if (plain >= 28 && ip[9] == 1 && ip[20] == 0) {  // ICMP echo reply
        ++replies;
        c.last_reply = now;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 8 || sodium_init() < 0) {
        std::fprintf(stderr, "usage: loadgen SERVER_IP PORT PSK CLIENTS SECONDS SRC_BASE SRC_COUNT\n");
        return 2;
    }
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_port = htons(uint16_t(std::atoi(argv[2])));
    in_addr base{};
    unsigned clients = unsigned(std::atoi(argv[4])), srcs = unsigned(std::atoi(argv[7]));
    double seconds = std::atof(argv[5]);
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1 || inet_pton(AF_INET, argv[6], &base) != 1 ||
        clients == 0 || clients > 60000 || srcs == 0 || seconds <= 0) {
        std::fprintf(stderr, "loadgen: bad arguments\n");
        return 2;
    }
    PskKey psk;
    if (!derive_psk_key(argv[3], psk)) return 2;
    rlimit nofile{};  // two sockets per client: as many fds as the hard limit allows
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    std::vector<Client> cs(clients);
    std::vector<pollfd> pfds;
    std::vector<unsigned> owner;
    for (unsigned i = 0; i < clients; ++i) {
        Client& c = cs[i];
        c.session_id = randombytes_uniform(0xfffffffe) + 1;
        c.tunnel_ip = (10u << 24) | ((1 + i / 250) << 8) | (1 + i % 250);
        c.src = ntohl(base.s_addr) + i % srcs;
        for (unsigned l = 0; l < 2; ++l) {
            c.fd[l] = bound_socket(c.src, server);
            if (c.fd[l] < 0) {
                std::perror("loadgen: socket");
                return 1;
            }
            pfds.push_back({c.fd[l], POLLIN, 0});
            owner.push_back(i);
        }
    }
    uint64_t handshakes = 0, requests = 0, replies = 0, cookies = 0;
    double start = now_s(), end = start + seconds, next_round = start;
    uint8_t buf[2048];
    while (now_s() < end) {
        double now = now_s();
        for (unsigned i = 0; i < clients; ++i) {
            Client& c = cs[i];
            // Unanswered handshakes are sent again after a second, as the client does.
            if (!c.established && now >= c.next_init) {
                send_init(c, psk, handshakes);
                c.next_init = now + 1.0;
            }
        }
        if (now >= next_round) {  // a round of echo requests, one per link per client
            for (unsigned i = 0; i < clients; ++i) {
                Client& c = cs[i];
                if (!c.established) continue;
                for (unsigned l = 0; l < 2; ++l) {
                    uint8_t pkt[64];
                    size_t n = echo_request(pkt, c.tunnel_ip, 0x0A000001, uint16_t(i), c.echo_seq++);
                    send_sealed(c, l, PacketType::Data, pkt, n);
                    ++requests;
                }
            }
            next_round += 1.0;
        }
        if (::poll(pfds.data(), pfds.size(), 10) < 0) continue;
        now = now_s();
        for (size_t k = 0; k < pfds.size(); ++k) {
            if (!(pfds[k].revents & POLLIN)) continue;
            for (int reads = 0; reads < 64; ++reads) {
                ssize_t n = ::recv(pfds[k].fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                receive(cs[owner[k]], psk, buf, size_t(n), now, replies, handshakes, cookies);
            }
        }
    }
    double now = now_s();
    unsigned established = 0, kept = 0;
    for (const Client& c : cs) {
        established += c.established;
        kept += c.established && now - c.last_reply < 3.0;
    }
    std::printf("clients %u established %u kept %u requests %llu replies %llu handshakes %llu cookies %llu\n", clients,
                established, kept, (unsigned long long)requests, (unsigned long long)replies,
                (unsigned long long)handshakes, (unsigned long long)cookies);
    for (Client& c : cs)
        for (int fd : c.fd) ::close(fd);
    return 0;
}
