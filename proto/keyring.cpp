// keyring.cpp — which key opens a packet, and how keys change hands across a
// rekey (keyring.h).
#include "keyring.h"

#include <sodium.h>

#include <cstring>

namespace onebox::proto {

KeyRing::Opened KeyRing::open(const Header& h, uint8_t* pkt, size_t len, bool seq_fresh, uint64_t now,
                              size_t* payload_len) {
    // Tags first, each under one key with the packet untouched; then one
    // decryption under the key that verified. Steady state tries one key.
    const uint8_t* key = nullptr;
    Opened which = Opened::None;
    if (has_current && seq_fresh && verify_tag(current.recv, h, pkt, len)) {
        key = current.recv;
        which = Opened::Current;
    } else if (has_pending && (seq_fresh || !pending_continues || !has_current) &&
               verify_tag(pending.recv, h, pkt, len)) {
        key = pending.recv;
        which = Opened::Pending;
    } else if (has_older && (seq_fresh || !older_continues || !has_current) && verify_tag(older.recv, h, pkt, len)) {
        // The client took the answer to its older Init: those are the keys.
        pending = older;
        pending_continues = older_continues;
        key = pending.recv;
        which = Opened::Pending;
    } else if (has_previous && seq_fresh && verify_tag(previous, h, pkt, len)) {
        key = previous;
        which = Opened::Previous;
    }
    if (!key) return Opened::None;
    *payload_len = decrypt_verified(key, h, pkt, len);
    if (which == Opened::Current) {
        ++uses;
        if (!current_heard) {
            current_heard = true;
            if (has_previous && previous_until_ns == 0) previous_until_ns = now + kGraceNs;
        }
    }
    return which;
}

bool KeyRing::authentic_seen(const Header& h, const uint8_t* pkt, size_t len) const {
    return (has_current && verify_tag(current.recv, h, pkt, len)) ||
           (has_previous && verify_tag(previous, h, pkt, len));
}

bool KeyRing::promote(uint64_t now) {
    const bool continued = pending_continues && has_current;
    if (continued)
        keep_previous(now + kGraceNs);
    else
        drop_previous();  // another sequence space: its packets could not be told apart
    current = pending;
    has_current = true;
    current_heard = true;
    pending.wipe();
    older.wipe();
    has_pending = has_older = false;
    pending_continues = older_continues = false;
    uses = 1;  // the packet that promoted them
    return continued;
}

void KeyRing::start(const SessionKeys& keys) {
    wipe();
    current = keys;
    has_current = true;
}

void KeyRing::rekey(const SessionKeys& next) {
    // Keys the server never used are no loss; the ones it still sends under
    // (the previous, unheard-of switch's old key) are kept instead.
    if (has_current && (current_heard || !has_previous)) keep_previous(0);
    current = next;
    has_current = true;
    current_heard = false;
    uses = 0;
}

void KeyRing::set_pending(const SessionKeys& keys, bool continues) {
    if (has_pending) {
        older = pending;
        older_continues = pending_continues;
        has_older = true;
    }
    pending = keys;
    has_pending = true;
    pending_continues = continues;
}

bool KeyRing::expire(uint64_t now) {
    if (!has_previous || previous_until_ns == 0 || now < previous_until_ns) return false;
    drop_previous();
    return true;
}

void KeyRing::keep_previous(uint64_t until_ns) {
    if (has_previous) ++wiped;  // the older one is overwritten: gone
    std::memcpy(previous, current.recv, kKeySize);
    has_previous = true;
    previous_until_ns = until_ns;
}

void KeyRing::drop_previous() {
    if (has_previous) ++wiped;
    sodium_memzero(previous, sizeof previous);
    has_previous = false;
    previous_until_ns = 0;
}

void KeyRing::wipe() {
    current.wipe();
    pending.wipe();
    older.wipe();
    drop_previous();
    has_current = has_pending = has_older = current_heard = pending_continues = older_continues = false;
    uses = 0;
}

}  // namespace onebox::proto
