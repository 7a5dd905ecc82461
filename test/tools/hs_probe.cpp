// hs_probe — speaks the onebox handshake to a server, as a test tool.
//
//   hs_probe SERVER_IP PORT PSK SESSION_ID_HEX TUNNEL_IP [--confirm] [--future]
//
// Sends one HandshakeInit (fresh ephemeral key, current time) and prints the
// server's answer: "status ok", "status address-in-use", ... or "no answer".
// With --confirm and status ok it also sends a Keepalive sealed under the new
// keys, which is what would make the server switch the session to them.
// With --future the Init's timestamp is the largest there is: an attempt to
// make the server's replay guard refuse the real owner's later Inits.
// Its socket carries onebox-client's default fwmark (0x6f6e).
// Exit 0 when an answer came, 1 when none did, 2 on bad arguments.
#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "proto/aead.h"
#include "proto/config.h"
#include "proto/handshake.h"

using namespace onebox::proto;

static const char* status_name(RespStatus s) {
    switch (s) {
    case RespStatus::Ok: return "ok";
    case RespStatus::AddressInUse: return "address-in-use";
    case RespStatus::AddressRefused: return "address-refused";
    case RespStatus::ServerFull: return "server-full";
    }
    return "?";
}

int main(int argc, char** argv) {
    if (argc < 6 || sodium_init() < 0) {
        std::fprintf(stderr, "usage: hs_probe SERVER_IP PORT PSK SESSION_ID_HEX TUNNEL_IP [--confirm]\n");
        return 2;
    }
    bool confirm = false, future = false;
    for (int i = 6; i < argc; ++i) {
        confirm |= std::strcmp(argv[i], "--confirm") == 0;
        future |= std::strcmp(argv[i], "--future") == 0;
    }
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_port = htons(uint16_t(std::atoi(argv[2])));
    uint32_t tunnel_ip = 0;
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1 || !parse_ipv4(argv[5], tunnel_ip)) {
        std::fprintf(stderr, "hs_probe: bad address\n");
        return 2;
    }
    PskKey psk;
    if (!derive_psk_key(argv[3], psk)) return 2;

    uint8_t random[32];
    randombytes_buf(random, sizeof random);
    EphemeralKey eph = ephemeral_from_random(random);
    InitMsg init;
    init.session_id = uint32_t(std::strtoul(argv[4], nullptr, 16));
    std::memcpy(init.eph_pub, eph.pub, sizeof eph.pub);
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    init.timestamp = uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
    if (future) init.timestamp = UINT64_MAX - 1;
    init.tunnel_ip = tunnel_ip;
    uint8_t pkt[kInitSize];
    write_init(psk, init, pkt);

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    // Marked like onebox-client's own socket, so that run beside a client it
    // reaches the server over the WAN as another host would, not through the
    // tunnel (whose replies would come from the server's tunnel address).
    uint32_t mark = 0x6f6e;
    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) < 0 ||
        send(fd, pkt, sizeof pkt, 0) < 0) {
        std::perror("hs_probe: send");
        return 1;
    }
    pollfd p{fd, POLLIN, 0};
    uint8_t buf[2048];
    if (poll(&p, 1, 2000) <= 0) { std::puts("no answer"); return 1; }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    RespMsg resp;
    HsError err = read_resp(psk, buf, n > 0 ? size_t(n) : 0, init, resp);
    if (err != HsError::Ok) { std::printf("bad answer: %s\n", hs_error_name(err)); return 1; }
    std::printf("status %s\n", status_name(resp.status));
    if (confirm && resp.status == RespStatus::Ok) {
        SessionKeys keys;
        if (derive_session_keys(psk, eph, init.eph_pub, resp.eph_pub, true, keys) != HsError::Ok) return 1;
        uint8_t ka[kDataOverhead];
        Header h{PacketType::Keepalive, kProtocolVersion, init.session_id, 0};
        size_t len = seal_in_place(keys.send, h, ka, 0);
        send(fd, ka, len, 0);
        std::puts("confirmed");
    }
    close(fd);
    return 0;
}
