// test_client_keys.cpp — the server's per-client keys: which key an address
// needs, and what a reload keeps (the same client keeps its key's id, so its
// session stays) or changes (its sessions are closed).
#include <doctest.h>

#include <cstring>
#include <vector>

#include "control/client_keys.h"

using namespace onebox;

namespace {

std::vector<proto::ClientKeyConfig> list(std::initializer_list<proto::ClientKeyConfig> l) { return l; }

uint32_t addr(unsigned host) { return 0x0a000000u | host; }

}  // namespace

TEST_CASE("client keys: an address takes its client's key, any other the shared one or none") {
    proto::PskKey shared;
    std::memset(shared.bytes, 0x42, sizeof shared.bytes);
    auto cfg = list({{"alice", "alice-own-key", addr(2)}, {"bob", "bob-own-key-2", addr(3)}});
    ClientKeys keys;
    REQUIRE(derive_client_keys(cfg, nullptr, keys).ok());
    for (const auto& c : cfg) CHECK(c.preshared_key.empty());  // the passphrases are gone
    keys.shared = &shared;

    KeyChoice a = key_for_address(keys, addr(2)), b = key_for_address(keys, addr(3)), other = key_for_address(keys, addr(9));
    REQUIRE(a.client);
    REQUIRE(b.client);
    CHECK(a.client->name == "alice");
    CHECK(b.client->name == "bob");
    CHECK(a.id() != b.id());
    CHECK(a.id() != 0);
    CHECK(std::memcmp(a.key->bytes, b.key->bytes, sizeof a.key->bytes) != 0);
    proto::PskKey expect;
    REQUIRE(proto::derive_psk_key("alice-own-key", expect));
    CHECK(std::memcmp(a.key->bytes, expect.bytes, sizeof expect.bytes) == 0);
    CHECK(other.client == nullptr);
    CHECK(other.key == &shared);
    CHECK(other.id() == 0);
    keys.shared = nullptr;  // a server with no shared key
    CHECK(key_for_address(keys, addr(9)).key == nullptr);
}

TEST_CASE("client keys: a reload keeps what did not change, and only that") {
    auto cfg = list({{"alice", "alice-own-key", addr(2)}, {"bob", "bob-own-key-2", addr(3)}, {"carol", "carol-key-33", addr(4)}});
    ClientKeys old;
    REQUIRE(derive_client_keys(cfg, nullptr, old).ok());
    const uint64_t alice = key_for_address(old, addr(2)).id(), bob = key_for_address(old, addr(3)).id(),
                   carol = key_for_address(old, addr(4)).id();

    // alice unchanged; bob's key changed; carol moved to .5; dave is new.
    auto fresh_cfg = list({{"alice", "alice-own-key", addr(2)}, {"bob", "bob-new-key-22", addr(3)},
                           {"carol", "carol-key-33", addr(5)}, {"dave", "dave-key-4444", addr(6)}});
    unsigned derivations = 0;
    ClientKeys fresh;
    REQUIRE(derive_client_keys(fresh_cfg, &old, fresh, [&] { ++derivations; }).ok());
    CHECK(derivations == 3);  // alice's key was taken over, not derived again
    CHECK(key_for_address(fresh, addr(2)).id() == alice);
    CHECK(key_for_address(fresh, addr(3)).id() != bob);
    CHECK(key_for_address(fresh, addr(5)).id() != carol);
    CHECK(key_for_address(fresh, addr(4)).client == nullptr);
    CHECK(key_for_address(fresh, addr(6)).client->name == "dave");
    CHECK(std::memcmp(key_for_address(fresh, addr(2)).key->bytes, key_for_address(old, addr(2)).key->bytes,
                      sizeof(proto::PskKey::bytes)) == 0);

    // A rename is another client: a new id.
    auto renamed = list({{"alicia", "alice-own-key", addr(2)}});
    ClientKeys again;
    REQUIRE(derive_client_keys(renamed, &fresh, again).ok());
    CHECK(key_for_address(again, addr(2)).id() != alice);
}
