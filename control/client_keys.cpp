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

static uint64_t next_key_id() {
    static uint64_t last = 0;  // control thread only
    return ++last;
}

static const ClientKey* same_entry(const ClientKeys* previous, const ClientKey& k) {
    if (!previous) return nullptr;
    auto it = previous->by_ip.find(k.ip);
    if (it == previous->by_ip.end()) return nullptr;
    const ClientKey& old = *it->second;
    bool same = old.name == k.name && sodium_memcmp(old.key.bytes, k.key.bytes, sizeof k.key.bytes) == 0;
    return same ? &old : nullptr;
}

Status derive_client_keys(std::vector<proto::ClientKeyConfig>& clients, const ClientKeys* previous,
                          ClientKeys& out) {
    out.list.clear();
    out.by_ip.clear();
    Status st;
    for (proto::ClientKeyConfig& c : clients) {
        auto k = std::make_unique<ClientKey>();
        k->name = c.name;
        k->ip = c.ip;
        bool derived = proto::derive_psk_key(c.preshared_key, k->key);
        sodium_memzero(c.preshared_key.data(), c.preshared_key.size());
        c.preshared_key.clear();
        if (!derived) {
            if (st.ok()) st = Status::fail_because(ENOMEM, "derive the key of client " + c.name, "out of memory");
            continue;
        }
        const ClientKey* old = same_entry(previous, *k);
        k->id = old ? old->id : next_key_id();
        out.by_ip[k->ip] = k.get();
        out.list.push_back(std::move(k));
    }
    return st;
}

}  // namespace onebox
