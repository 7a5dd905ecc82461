// keyring.h — the keys one session seals and opens with, across rekeys.
//
// A rekey (a new handshake of a live session; PROTOCOL.md, "Rekeying")
// changes the keys and nothing else: sequence numbers go on, so the replay
// window, the reorder buffer and the scheduler carry on as they were, and a
// packet sealed under the old keys that is still in flight opens under
// `previous` and takes its place in order.
//
//   server: an Init gives `pending` keys; the first packet that opens under
//           them promotes them (the client has them): the old receive key
//           becomes `previous` for kGraceNs.
//   client: it sends under new keys the moment the server answers (rekey);
//           the old receive key stays `previous` until a packet from the
//           server opens under the new one, and kGraceNs more.
//
// Pure: time is an argument. The worker owns one per session.
#pragma once

#include <cstddef>
#include <cstdint>

#include "aead.h"
#include "wire.h"

namespace onebox::proto {

struct KeyRing {
    // How long the old receive key outlives the switch: longer than any
    // path's delay plus the reorder buffer's wait, far shorter than a rekey
    // interval. Then it is wiped.
    static constexpr uint64_t kGraceNs = 5'000'000'000;

    SessionKeys current;
    bool has_current = false;
    bool current_heard = false;      // a packet opened under `current`: the peer uses it
    SessionKeys pending;             // server: from an Init, not yet used by the client
    bool has_pending = false;
    bool pending_continues = false;  // a rekey of this session (else a fresh start)
    // ... and from the Init before it: on a path slower than the client's
    // retry, the client may take the answer to its older Init.
    SessionKeys older;
    bool has_older = false;
    bool older_continues = false;
    uint8_t previous[kKeySize]{};    // the receive key before the last switch
    bool has_previous = false;
    uint64_t previous_until_ns = 0;  // wiped then; 0 = not before `current` is heard
    uint64_t uses = 0;               // packets sealed or opened under `current`
    unsigned wiped = 0;              // previous keys wiped (expired or replaced) since take_wiped

    KeyRing() = default;
    KeyRing(const KeyRing&) = delete;
    KeyRing& operator=(const KeyRing&) = delete;
    ~KeyRing() { wipe(); }

    enum class Opened : uint8_t { None, Current, Pending, Previous };

    // Opens a datagram in place under whichever key sealed it. `seq_fresh` is
    // the replay window's verdict on h.seq: the window is shared by every key
    // of one sequence space, so a number it has seen is tried only under
    // pending keys that start a new space. On Pending the caller promotes.
    Opened open(const Header& h, uint8_t* pkt, size_t len, bool seq_fresh, uint64_t now,
                size_t* payload_len);

    // A datagram whose number the replay window has seen (its copy on
    // another link came first): true if its tag verifies under the current
    // or previous receive key. Nothing is decrypted or changed.
    bool authentic_seen(const Header& h, const uint8_t* pkt, size_t len) const;

    // Server: the client's pending keys become current. Returns true if the
    // session goes on in the same sequence space (a rekey); false for a fresh
    // start, which the caller must begin at sequence 0.
    bool promote(uint64_t now);

    // Client: the first keys of a session.
    void start(const SessionKeys& keys);
    // Client: a rekey answered; send under `next` from now on.
    void rekey(const SessionKeys& next);
    // Server: keys from an Init, kept until the client uses them (the
    // pending keys they replace are kept too, as `older`).
    void set_pending(const SessionKeys& keys, bool continues);

    // Wipes the previous key once its grace is over. True if it did.
    bool expire(uint64_t now);
    // How many previous keys are gone since the last call: expired, or
    // overwritten by a newer switch within their grace.
    unsigned take_wiped() { unsigned n = wiped; wiped = 0; return n; }
    void wipe();

private:
    void keep_previous(uint64_t until_ns);
    void drop_previous();
};

}  // namespace onebox::proto
