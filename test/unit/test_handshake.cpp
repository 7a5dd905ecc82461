// test_handshake.cpp — PSK handshake: happy path, every forgery we can think of.
#include <doctest.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "proto/handshake.h"

#include "hex.h"

using namespace onebox::proto;

namespace {

using onebox::test::sodium_ready;
using onebox::test::to_hex;

// Cheap PSK key for tests: derive_psk_key costs ~0.1 s, so only one test calls it.
PskKey test_psk(uint8_t fill = 0x42) {
    PskKey k;
    std::memset(k.bytes, fill, sizeof k.bytes);
    return k;
}

EphemeralKey test_ephemeral(uint8_t fill) {
    uint8_t random[32];
    std::memset(random, fill, sizeof random);
    return ephemeral_from_random(random);
}

using InitBytes = std::array<uint8_t, kInitSize>;
using RespBytes = std::array<uint8_t, kRespSize>;

// Independent re-implementation of the MAC (PROTOCOL.md, "Key derivation"):
// BLAKE2b-128 keyed with KDF(psk, id, "onebox01").
void spec_mac(const PskKey& psk, uint64_t subkey_id, const uint8_t* a, size_t a_len,
              const uint8_t* b, size_t b_len, uint8_t out[kMacSize]) {
    uint8_t key[32];
    crypto_kdf_derive_from_key(key, sizeof key, subkey_id, "onebox01", psk.bytes);
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof key, kMacSize);
    crypto_generichash_update(&st, a, a_len);
    if (b_len) crypto_generichash_update(&st, b, b_len);
    crypto_generichash_final(&st, out, kMacSize);
}

// Recomputes the MAC after a test edits a field, so the edit gets past the MAC
// check and reaches the field validation.
void remac_init(const PskKey& psk, InitBytes& b) {
    spec_mac(psk, 1, b.data(), 64, nullptr, 0, b.data() + 64);
}
void remac_resp(const PskKey& psk, RespBytes& b, const uint8_t init_mac[kMacSize]) {
    spec_mac(psk, 2, b.data(), kRespSize - kMacSize, init_mac, kMacSize,
             b.data() + kRespSize - kMacSize);
}

struct Handshake {
    PskKey psk = test_psk();
    EphemeralKey client_eph = test_ephemeral(0x11);
    EphemeralKey server_eph = test_ephemeral(0x22);
    InitMsg init;
    InitBytes init_bytes{};
    RespMsg resp;
    RespBytes resp_bytes{};

    Handshake() {
        REQUIRE(sodium_ready);
        init.session_id = 0xc0ffee01;
        std::memcpy(init.eph_pub, client_eph.pub, kPublicKeySize);
        init.timestamp = 1'700'000'000'000'000'000ull;
        init.tunnel_ip = 0x0a000002;  // 10.0.0.2
        write_init(psk, init, init_bytes.data());
        resp.session_id = init.session_id;
        std::memcpy(resp.eph_pub, server_eph.pub, kPublicKeySize);
        resp.status = RespStatus::Ok;
        write_resp(psk, resp, init.mac, resp_bytes.data());
    }
};

bool same_key(const uint8_t* a, const uint8_t* b) { return std::memcmp(a, b, kKeySize) == 0; }

}  // namespace

TEST_CASE_FIXTURE(Handshake, "handshake: happy path, both sides derive matching keys") {
    InitMsg got_init;
    REQUIRE(read_init(psk, init_bytes.data(), init_bytes.size(), got_init) == HsError::Ok);
    CHECK(got_init.session_id == init.session_id);
    CHECK(std::memcmp(got_init.eph_pub, client_eph.pub, kPublicKeySize) == 0);
    CHECK(got_init.timestamp == init.timestamp);
    CHECK(got_init.tunnel_ip == init.tunnel_ip);
    CHECK(std::memcmp(got_init.mac, init.mac, kMacSize) == 0);

    auto guard = std::make_unique<InitGuard>();
    CHECK(guard->accept(got_init) == HsError::Ok);

    RespMsg got_resp;
    REQUIRE(read_resp(psk, resp_bytes.data(), resp_bytes.size(), init, got_resp) == HsError::Ok);
    CHECK(got_resp.session_id == init.session_id);
    CHECK(got_resp.status == RespStatus::Ok);
    CHECK(std::memcmp(got_resp.eph_pub, server_eph.pub, kPublicKeySize) == 0);

    SessionKeys client, server;
    REQUIRE(derive_session_keys(psk, client_eph, client_eph.pub, got_resp.eph_pub, true, client) ==
            HsError::Ok);
    REQUIRE(derive_session_keys(psk, server_eph, got_init.eph_pub, server_eph.pub, false, server) ==
            HsError::Ok);
    CHECK(same_key(client.send, server.recv));
    CHECK(same_key(client.recv, server.send));
    CHECK_FALSE(same_key(client.send, client.recv));

    // And the keys actually carry traffic both ways.
    uint8_t pkt[kDataOverhead + 4] = {};
    std::memcpy(pkt + kHeaderSize, "ping", 4);
    const Header h{PacketType::Data, kProtocolVersion, init.session_id, 0};
    seal_in_place(client.send, h, pkt, 4);
    size_t n = 0;
    CHECK(open_in_place(server.recv, h, pkt, sizeof pkt, &n));
    CHECK(std::memcmp(pkt + kHeaderSize, "ping", 4) == 0);
    seal_in_place(server.send, h, pkt, 4);
    CHECK(open_in_place(client.recv, h, pkt, sizeof pkt, &n));
}

TEST_CASE_FIXTURE(Handshake, "handshake: Init layout byte by byte") {
    const auto& b = init_bytes;
    CHECK(to_hex(b.data(), kHeaderSize) == "01010000c0ffee010000000000000000");
    CHECK(std::memcmp(b.data() + 16, client_eph.pub, 32) == 0);
    CHECK(to_hex(b.data() + 48, 8) == "17979cfe362a0000");  // 1.7e18 ns, big-endian
    CHECK(to_hex(b.data() + 56, 4) == "0a000002");
    CHECK(to_hex(b.data() + 60, 4) == "00000000");
    uint8_t mac[kMacSize];
    spec_mac(psk, 1, b.data(), 64, nullptr, 0, mac);
    CHECK(std::memcmp(b.data() + 64, mac, kMacSize) == 0);
    CHECK(std::memcmp(init.mac, mac, kMacSize) == 0);
    CHECK(to_hex(b.data() + 80, 16) == std::string(32, '0'));  // mac2: no cookie
}

TEST_CASE_FIXTURE(Handshake, "handshake: Resp layout byte by byte") {
    const auto& b = resp_bytes;
    CHECK(to_hex(b.data(), kHeaderSize) == "02010000c0ffee010000000000000000");
    CHECK(std::memcmp(b.data() + 16, server_eph.pub, 32) == 0);
    CHECK(to_hex(b.data() + 48, 8) == "0000000000000000");  // status Ok, flags 0, 6 zero bytes
    uint8_t mac[kMacSize];
    spec_mac(psk, 2, b.data(), 56, init.mac, kMacSize, mac);
    CHECK(std::memcmp(b.data() + 56, mac, kMacSize) == 0);
}

TEST_CASE_FIXTURE(Handshake, "handshake: session keys match the documented KDF") {
    uint8_t shared[32];
    REQUIRE(crypto_scalarmult(shared, client_eph.priv, server_eph.pub) == 0);
    uint8_t kdf_key[32];
    crypto_kdf_derive_from_key(kdf_key, sizeof kdf_key, 3, "onebox01", psk.bytes);
    uint8_t both[64];
    crypto_generichash_state st;
    crypto_generichash_init(&st, kdf_key, sizeof kdf_key, sizeof both);
    crypto_generichash_update(&st, shared, sizeof shared);
    crypto_generichash_update(&st, client_eph.pub, 32);
    crypto_generichash_update(&st, server_eph.pub, 32);
    crypto_generichash_final(&st, both, sizeof both);

    SessionKeys client;
    REQUIRE(derive_session_keys(psk, client_eph, client_eph.pub, server_eph.pub, true, client) ==
            HsError::Ok);
    CHECK(same_key(client.send, both));       // client -> server: first half
    CHECK(same_key(client.recv, both + 32));  // server -> client: second half

    // The MAC keys are not the traffic keys.
    uint8_t mac_key[32];
    crypto_kdf_derive_from_key(mac_key, sizeof mac_key, 1, "onebox01", psk.bytes);
    CHECK_FALSE(same_key(mac_key, kdf_key));
}

TEST_CASE("handshake: derive_psk_key is Argon2id with the fixed salt (known answer)") {
    REQUIRE(sodium_ready);
    PskKey k;
    REQUIRE(derive_psk_key("correct horse battery staple", k));
    uint8_t expected[kKeySize];
    const char salt[] = "onebox-psk-salt1";
    const char pass[] = "correct horse battery staple";
    REQUIRE(crypto_pwhash(expected, sizeof expected, pass, sizeof pass - 1,
                          reinterpret_cast<const uint8_t*>(salt),
                          crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                          crypto_pwhash_ALG_ARGON2ID13) == 0);
    CHECK(same_key(k.bytes, expected));
    // Pinned so the derivation can never change silently.
    CHECK(to_hex(k.bytes, kKeySize) ==
          "0187ffeda9ea511bc5703c605b574e4a8f562062c412876b0f376c6f8ae4f071");
}

TEST_CASE_FIXTURE(Handshake, "handshake: wrong PSK is rejected with BadMac") {
    const PskKey other = test_psk(0x43);
    InitMsg got_init;
    CHECK(read_init(other, init_bytes.data(), init_bytes.size(), got_init) == HsError::BadMac);
    RespMsg got_resp;
    CHECK(read_resp(other, resp_bytes.data(), resp_bytes.size(), init, got_resp) ==
          HsError::BadMac);
}

TEST_CASE_FIXTURE(Handshake, "handshake: a flipped bit anywhere in Init's mac1 bytes is rejected") {
    // mac1 covers bytes 0..63 and is 64..79; mac2 (80..95) is the cookie's
    // business (checked by a busy server, see the cookie tests).
    for (size_t i = 0; i < 80; ++i) {
        for (uint8_t flip : {uint8_t(0x01), uint8_t(0x80)}) {
            CAPTURE(i);
            CAPTURE(int(flip));
            auto b = init_bytes;
            b[i] ^= flip;
            InitMsg got;
            CHECK(read_init(psk, b.data(), b.size(), got) == HsError::BadMac);
        }
    }
}

TEST_CASE_FIXTURE(Handshake, "handshake: a flipped bit anywhere in Resp is rejected") {
    for (size_t i = 0; i < kRespSize; ++i) {
        for (uint8_t flip : {uint8_t(0x01), uint8_t(0x80)}) {
            CAPTURE(i);
            CAPTURE(int(flip));
            auto b = resp_bytes;
            b[i] ^= flip;
            RespMsg got;
            CHECK(read_resp(psk, b.data(), b.size(), init, got) == HsError::BadMac);
        }
    }
}

TEST_CASE_FIXTURE(Handshake, "handshake: truncated and extended messages are rejected") {
    std::vector<uint8_t> big(200, 0);
    std::memcpy(big.data(), init_bytes.data(), kInitSize);
    InitMsg got_init;
    for (size_t len : {size_t(0), size_t(1), kHeaderSize, kInitSize - 1, kInitSize + 1, size_t(200)}) {
        CAPTURE(len);
        CHECK(read_init(psk, big.data(), len, got_init) == HsError::BadLength);
    }
    std::memcpy(big.data(), resp_bytes.data(), kRespSize);
    RespMsg got_resp;
    for (size_t len : {size_t(0), size_t(1), kHeaderSize, kRespSize - 1, kRespSize + 1, kInitSize}) {
        CAPTURE(len);
        CHECK(read_resp(psk, big.data(), len, init, got_resp) == HsError::BadLength);
    }
}

TEST_CASE_FIXTURE(Handshake, "handshake: Init with a valid MAC but bad fields") {
    struct Row { const char* name; size_t byte; uint8_t value; HsError expect; };
    const Row table[] = {
        {"type Resp", 0, uint8_t(PacketType::HandshakeResp), HsError::BadHeader},
        {"type Data", 0, uint8_t(PacketType::Data), HsError::BadHeader},
        {"type 9", 0, 9, HsError::BadHeader},
        {"version", 1, 2, HsError::BadHeader},
        {"reserved", 3, 1, HsError::BadHeader},
        {"link not 0", 2, 1, HsError::BadHeader},
        {"seq not zero", 15, 1, HsError::BadHeader},
        {"flags: unknown bit 1", 63, 2, HsError::BadField},
        {"flags byte 0", 60, 1, HsError::BadField},
        {"flags byte 3", 63, 0x80, HsError::BadField},
    };
    for (const auto& row : table) {
        CAPTURE(row.name);
        auto b = init_bytes;
        b[row.byte] = row.value;
        remac_init(psk, b);
        InitMsg got;
        CHECK(read_init(psk, b.data(), b.size(), got) == row.expect);
    }
    SUBCASE("session id 0") {
        auto b = init_bytes;
        std::memset(b.data() + 4, 0, 4);
        remac_init(psk, b);
        InitMsg got;
        CHECK(read_init(psk, b.data(), b.size(), got) == HsError::BadHeader);
    }
}

TEST_CASE_FIXTURE(Handshake, "handshake: Resp with a valid MAC but bad fields") {
    struct Row { const char* name; size_t byte; uint8_t value; HsError expect; };
    const Row table[] = {
        {"type Init", 0, uint8_t(PacketType::HandshakeInit), HsError::BadHeader},
        {"version", 1, 0, HsError::BadHeader},
        {"seq not zero", 8, 1, HsError::BadHeader},
        {"status 4", 48, 4, HsError::BadField},
        {"status 255", 48, 255, HsError::BadField},
        {"flag Continued, not asked for", 49, 1, HsError::BadField},
        {"flags: unknown bit 1", 49, 2, HsError::BadField},
        {"zero byte 50", 50, 1, HsError::BadField},
        {"zero byte 55", 55, 1, HsError::BadField},
    };
    for (const auto& row : table) {
        CAPTURE(row.name);
        auto b = resp_bytes;
        b[row.byte] = row.value;
        remac_resp(psk, b, init.mac);
        RespMsg got;
        CHECK(read_resp(psk, b.data(), b.size(), init, got) == row.expect);
    }
}

TEST_CASE_FIXTURE(Handshake, "handshake: every Resp status parses") {
    for (RespStatus s : {RespStatus::Ok, RespStatus::AddressInUse, RespStatus::AddressRefused,
                         RespStatus::ServerFull}) {
        CAPTURE(int(s));
        resp.status = s;
        write_resp(psk, resp, init.mac, resp_bytes.data());
        RespMsg got;
        REQUIRE(read_resp(psk, resp_bytes.data(), kRespSize, init, got) == HsError::Ok);
        CHECK(got.status == s);
    }
}

TEST_CASE_FIXTURE(Handshake, "handshake: Resp for another session id is rejected") {
    // Correctly MACed and bound to our Init, but naming another session.
    RespMsg other = resp;
    other.session_id = init.session_id + 1;
    write_resp(psk, other, init.mac, resp_bytes.data());
    RespMsg got;
    CHECK(read_resp(psk, resp_bytes.data(), kRespSize, init, got) == HsError::WrongSession);
}

TEST_CASE_FIXTURE(Handshake, "handshake: stale Resp (answering an older Init) is rejected") {
    // The client retried with a newer Init; the server's answer to the first
    // one arrives late. The Resp MAC covers the first Init's MAC, so it fails.
    InitMsg retry = init;
    retry.timestamp += 1'000'000'000;
    InitBytes retry_bytes;
    write_init(psk, retry, retry_bytes.data());
    RespMsg got;
    CHECK(read_resp(psk, resp_bytes.data(), kRespSize, retry, got) == HsError::BadMac);
    // The server's answer to the retry is accepted.
    RespBytes fresh;
    write_resp(psk, resp, retry.mac, fresh.data());
    CHECK(read_resp(psk, fresh.data(), kRespSize, retry, got) == HsError::Ok);
}

TEST_CASE_FIXTURE(Handshake, "handshake: InitGuard rejects replays") {
    auto guard = std::make_unique<InitGuard>();
    InitMsg got;
    REQUIRE(read_init(psk, init_bytes.data(), kInitSize, got) == HsError::Ok);
    CHECK(guard->accept(got) == HsError::Ok);

    SUBCASE("the same Init again") { CHECK(guard->accept(got) == HsError::Replayed); }
    SUBCASE("same timestamp, different ephemeral") {
        InitMsg other = init;
        other.eph_pub[0] ^= 1;
        InitBytes b;
        write_init(psk, other, b.data());
        REQUIRE(read_init(psk, b.data(), kInitSize, got) == HsError::Ok);
        CHECK(guard->accept(got) == HsError::Replayed);
    }
    SUBCASE("older timestamp") {
        InitMsg older = init;
        older.timestamp -= 1;
        write_init(psk, older, init_bytes.data());
        CHECK(guard->accept(older) == HsError::Replayed);
    }
    SUBCASE("newer timestamp is accepted, then the old one is still rejected") {
        InitMsg newer = init;
        newer.timestamp += 1;
        write_init(psk, newer, init_bytes.data());
        CHECK(guard->accept(newer) == HsError::Ok);
        CHECK(guard->accept(newer) == HsError::Replayed);
        CHECK(guard->accept(got) == HsError::Replayed);
    }
    SUBCASE("another session id is independent") {
        InitMsg other = init;
        other.session_id += 1;
        write_init(psk, other, init_bytes.data());
        CHECK(guard->accept(other) == HsError::Ok);
        CHECK(guard->accept(got) == HsError::Replayed);
    }    SUBCASE("another key's Inits for the same session id cannot spend its timestamps") {
        // A client with its own key (scope 7) naming this session id with a
        // far-future timestamp: recorded in its own scope only.
        InitMsg squat = init;
        squat.timestamp = UINT64_MAX;
        CHECK(guard->accept(squat, 7) == HsError::Ok);
        InitMsg newer = init;
        newer.timestamp += 1;
        write_init(psk, newer, init_bytes.data());
        CHECK(guard->accept(newer) == HsError::Ok);  // the shared key's scope, untouched
        CHECK(guard->accept(squat, 7) == HsError::Replayed);
    }
}

TEST_CASE("handshake: InitGuard remembers many sessions at once") {
    const PskKey psk = test_psk();
    auto guard = std::make_unique<InitGuard>();
    std::vector<InitMsg> msgs(1000);
    for (uint32_t i = 0; i < msgs.size(); ++i) {
        msgs[i].session_id = i + 1;  // sequential ids spread over distinct buckets
        msgs[i].timestamp = 1000 + i;
        uint8_t b[kInitSize];
        write_init(psk, msgs[i], b);
        REQUIRE(guard->accept(msgs[i]) == HsError::Ok);
    }
    for (const auto& m : msgs) CHECK(guard->accept(m) == HsError::Replayed);
}

TEST_CASE_FIXTURE(Handshake, "handshake: weak peer keys are refused") {
    // Low-order points give an all-zero shared secret.
    const uint8_t zero[32] = {};
    uint8_t one[32] = {1};
    SessionKeys keys;
    CHECK(derive_session_keys(psk, client_eph, client_eph.pub, zero, true, keys) ==
          HsError::WeakKey);
    CHECK(derive_session_keys(psk, client_eph, client_eph.pub, one, true, keys) ==
          HsError::WeakKey);
    CHECK(derive_session_keys(psk, server_eph, zero, server_eph.pub, false, keys) ==
          HsError::WeakKey);
}

TEST_CASE("handshake: ephemeral_from_random") {
    REQUIRE(sodium_ready);
    uint8_t random[32];
    for (int i = 0; i < 32; ++i) random[i] = uint8_t(i * 3);
    const EphemeralKey k = ephemeral_from_random(random);
    uint8_t pub[32];
    crypto_scalarmult_base(pub, random);
    CHECK(std::memcmp(k.pub, pub, 32) == 0);
    CHECK(std::memcmp(k.priv, random, 32) == 0);
}

TEST_CASE("handshake: error names") {
    CHECK(std::string(hs_error_name(HsError::Ok)) == "ok");
    CHECK(std::string(hs_error_name(HsError::BadLength)) == "bad length");
    CHECK(std::string(hs_error_name(HsError::BadHeader)) == "bad header");
    CHECK(std::string(hs_error_name(HsError::BadMac)) == "bad mac");
    CHECK(std::string(hs_error_name(HsError::BadField)) == "bad field");
    CHECK(std::string(hs_error_name(HsError::WrongSession)) == "wrong session");
    CHECK(std::string(hs_error_name(HsError::Replayed)) == "replayed");
    CHECK(std::string(hs_error_name(HsError::WeakKey)) == "weak key");
}

TEST_CASE_FIXTURE(Handshake, "handshake: a rekey Init asks to go on, and only its Ok answer may say so") {
    init.flags = kInitFlagContinue;
    write_init(psk, init, init_bytes.data());
    CHECK(to_hex(init_bytes.data() + 60, 4) == "00000001");
    InitMsg got;
    REQUIRE(read_init(psk, init_bytes.data(), init_bytes.size(), got) == HsError::Ok);
    CHECK(got.flags == kInitFlagContinue);

    struct Row { const char* name; RespStatus status; uint8_t flags; HsError expect; };
    const Row table[] = {
        {"Ok, continued", RespStatus::Ok, kRespFlagContinued, HsError::Ok},
        {"Ok, afresh (the server lost the session)", RespStatus::Ok, 0, HsError::Ok},
        {"refused, continued", RespStatus::AddressInUse, kRespFlagContinued, HsError::BadField},
        {"server full, continued", RespStatus::ServerFull, kRespFlagContinued, HsError::BadField},
    };
    for (const auto& row : table) {
        CAPTURE(row.name);
        resp.status = row.status;
        resp.flags = row.flags;
        write_resp(psk, resp, init.mac, resp_bytes.data());
        CHECK(resp_bytes[49] == row.flags);
        RespMsg r;
        CHECK(read_resp(psk, resp_bytes.data(), resp_bytes.size(), init, r) == row.expect);
        if (row.expect == HsError::Ok) CHECK(r.flags == row.flags);
    }
}
