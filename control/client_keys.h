// client_keys.h — the server's per-client keys ([server.client.NAME]): which
// key the Init for a tunnel address must be MACed with (control thread only).
//
// A listed client's tunnel address is bound to its key: an Init asking for
// that address is checked under that key alone, and an Init made with that
// key is good for no other address. Unlisted addresses take the shared
// preshared_key, if there is one. One MAC check per Init either way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proto/config.h"
#include "proto/handshake.h"
#include "result.h"

namespace onebox {

struct ClientKey {
    std::string name;
    uint32_t ip = 0;      // host order
    proto::PskKey key;    // wiped on destruction
    uint64_t id = 0;      // which key a session was made with (0 = the shared key)
    // Keyed BLAKE2b of the passphrase (a per-process random key), so a reload
    // knows an unchanged key without running Argon2id again.
    uint8_t fingerprint[32]{};
    ~ClientKey();
};

struct ClientKeys {
    std::vector<std::unique_ptr<ClientKey>> list;
    std::unordered_map<uint32_t, const ClientKey*> by_ip;
    const proto::PskKey* shared = nullptr;  // the shared key, or none
};

// The key an Init for `ip` must carry; key == nullptr if there is none
// (an unlisted address and no shared preshared_key).
struct KeyChoice {
    const proto::PskKey* key = nullptr;
    const ClientKey* client = nullptr;  // nullptr: the shared key
    uint64_t id() const { return client ? client->id : 0; }
};
KeyChoice key_for_address(const ClientKeys& keys, uint32_t ip);

// Derives each listed client's key (Argon2id, about 0.1 s each) and wipes
// the passphrases in `clients`. An entry the same as one in `previous`
// (name, address and passphrase) takes its key and id without a new
// derivation, so its sessions stay. `after_each` runs after every
// derivation (the caller keeps systemd's watchdog and start timeout fed).
Status derive_client_keys(std::vector<proto::ClientKeyConfig>& clients, const ClientKeys* previous,
                          ClientKeys& out, const std::function<void()>& after_each = {});

}  // namespace onebox
