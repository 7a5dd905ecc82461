// pmtu.h — the largest datagram one link carries to the peer (its path MTU),
// found by sending size probes (RFC 8899's packetization-layer PMTU
// discovery, simplified): Probes padded to a size, sent with DF, and echoed
// small by the peer. The first size echoed, going down a ladder from the
// interface's MTU, is the path MTU; a size whose three probes all go
// unanswered, or that the kernel refuses at once (EMSGSIZE: it has heard an
// ICMP "fragmentation needed"), is too big. A link found smaller than its
// interface tries the next size up again every 10 minutes. Sizes are of the
// whole IPv4 datagram: our datagram plus 28 bytes of IP and UDP header.
//
// Until a size is confirmed the link is taken to carry its interface's MTU,
// so an ordinary link never waits for a search. Pure; the clock is passed in.
#pragma once

#include <cstdint>

namespace onebox::proto {

inline constexpr uint16_t kPmtuFloor = 1280;  // IPv6's minimum, and a sane floor for IPv4 paths
inline constexpr uint16_t kIpUdpHeaders = 28;

struct PmtuConfig {
    uint64_t probe_gap_ns = 200'000'000;       // between tries of one size
    unsigned tries = 3;                        // unanswered probes that make a size too big
    uint64_t probe_timeout_ns = 1'000'000'000; // a size probe not echoed within this is lost
    uint64_t raise_after_ns = 600'000'000'000; // a link below its interface MTU tries bigger again
};

struct PmtuSearch {
    PmtuConfig cfg{};

    // A (new) link whose interface has this MTU; the search begins.
    void start(uint64_t now, uint16_t interface_mtu);
    // The path MTU to use now: the confirmed size; while a search goes down
    // from sizes that failed, the one being tried; else the interface's.
    uint16_t mtu() const { return confirmed_ ? confirmed_ : trying_ ? trying_ : ceiling_; }
    bool confirmed() const { return confirmed_ != 0; }
    bool searching() const { return trying_ != 0; }

    // Once per tick: a link below its interface MTU starts trying bigger
    // again after raise_after_ns.
    void update(uint64_t now);
    // The size of the next probe to send now, or 0 (none due).
    uint16_t due(uint64_t now) const;
    void on_sent(uint64_t now, uint16_t size);
    // A probe of `size` was echoed / went unanswered / was refused by the kernel.
    void on_echo(uint64_t now, uint16_t size);
    void on_lost(uint64_t now, uint16_t size);
    void on_too_big(uint64_t now, uint16_t size);

  private:
    uint16_t next_down(uint16_t size) const;
    uint16_t next_up(uint16_t size) const;
    void give_up_on(uint64_t now, uint16_t size);

    uint16_t ceiling_ = 1500;  // the interface's MTU
    uint16_t confirmed_ = 0;   // largest size echoed in the last search
    uint16_t trying_ = 0;      // the size being probed, 0 = not searching
    unsigned sent_ = 0;        // probes of trying_ sent
    uint64_t next_ns_ = 0;     // no probe before this
};

}  // namespace onebox::proto
