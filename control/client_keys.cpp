// client_keys.cpp — deriving and looking up the server's per-client keys.
#include "client_keys.h"

#include <sodium.h>

#include <cerrno>

namespace onebox {

KeyChoice key_for_address(const ClientKeys& keys, uint32_t ip) {
    auto it = keys.by_ip.find(ip);
    if (it != keys.by_ip.end()) return {&it->second->key, it->second};
    return {keys.shared, nullptr};
}

ClientKey::~ClientKey() { sodium_memzero(fingerprint, sizeof fingerprint); }

static uint64_t next_key_id() {
    static uint64_t last = 0;  // control thread only
    return ++last;
}

static void fingerprint_of(const std::string& passphrase, uint8_t out[32]) {
    static uint8_t key[32];
    static bool keyed = false;  // control thread only
    if (!keyed) {
        randombytes_buf(key, sizeof key);
        keyed = true;
    }
    crypto_generichash(out, 32, reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size(), key,
                       sizeof key);
}

static const ClientKey* same_entry(const ClientKeys* previous, const ClientKey& k) {
    if (!previous) return nullptr;
    auto it = previous->by_ip.find(k.ip);
    if (it == previous->by_ip.end()) return nullptr;
    const ClientKey& old = *it->second;
    bool same = old.name == k.name && sodium_memcmp(old.fingerprint, k.fingerprint, sizeof k.fingerprint) == 0;
    return same ? &old : nullptr;
}

Status derive_client_keys(std::vector<proto::ClientKeyConfig>& clients, const ClientKeys* previous,
                          ClientKeys& out, const std::function<void()>& after_each) {
    out.list.clear();
    out.by_ip.clear();
    Status st;
    for (proto::ClientKeyConfig& c : clients) {
        auto k = std::make_unique<ClientKey>();
        k->name = c.name;
        k->ip = c.ip;
        fingerprint_of(c.preshared_key, k->fingerprint);
        const ClientKey* old = same_entry(previous, *k);
        bool derived = true;
        if (old) {
            k->key = old->key;
            k->id = old->id;
        } else {
            derived = proto::derive_psk_key(c.preshared_key, k->key);
            k->id = next_key_id();
            if (after_each) after_each();
        }
        sodium_memzero(c.preshared_key.data(), c.preshared_key.size());
        c.preshared_key.clear();
        if (!derived) {
            if (st.ok()) st = Status::fail_because(ENOMEM, "derive the key of client " + c.name, "out of memory");
            continue;
        }
        out.by_ip[k->ip] = k.get();
        out.list.push_back(std::move(k));
    }
    return st;
}

}  // namespace onebox
