// pmtu.cpp — see pmtu.h.
#include "pmtu.h"

#include <algorithm>

namespace onebox::proto {

namespace {
// The sizes tried, largest first: Ethernet, PPPoE, the usual tunnel and
// mobile-network values, and steps down to the floor.
constexpr uint16_t kLadder[] = {1500, 1492, 1480, 1472, 1460, 1452, 1440, 1420, 1400,
                                1380, 1360, 1340, 1320, 1300, 1280};
}  // namespace

void PmtuSearch::start(uint64_t now, uint16_t interface_mtu) {
    ceiling_ = std::max(interface_mtu, kPmtuFloor);
    confirmed_ = 0;
    trying_ = ceiling_;
    sent_ = 0;
    next_ns_ = now;
}

uint16_t PmtuSearch::next_down(uint16_t size) const {
    for (uint16_t s : kLadder)
        if (s < size) return s;
    return 0;
}

uint16_t PmtuSearch::next_up(uint16_t size) const {
    uint16_t up = 0;
    for (uint16_t s : kLadder)
        if (s > size && s <= ceiling_) up = s;  // the ladder runs down: the last one above is the nearest
    if (up == 0 && ceiling_ > size) up = ceiling_;
    return up;
}

void PmtuSearch::update(uint64_t now) {
    if (trying_ || !confirmed_ || confirmed_ >= ceiling_ || now < next_ns_) return;
    trying_ = next_up(confirmed_);
    sent_ = 0;
}

uint16_t PmtuSearch::due(uint64_t now) const {
    if (trying_ == 0 || now < next_ns_ || sent_ >= cfg.tries) return 0;
    return trying_;
}

void PmtuSearch::on_sent(uint64_t now, uint16_t size) {
    if (size != trying_) return;
    ++sent_;
    next_ns_ = now + cfg.probe_gap_ns;
}

void PmtuSearch::on_echo(uint64_t now, uint16_t size) {
    if (size <= confirmed_) return;
    confirmed_ = size;
    if (trying_ && size >= trying_) trying_ = 0;
    if (!trying_ && confirmed_ < ceiling_) next_ns_ = now + cfg.raise_after_ns;
}

// `size` is too big: the next size down is tried at once; a failed try
// upward leaves the confirmed size and waits for the next try.
void PmtuSearch::give_up_on(uint64_t now, uint16_t size) {
    if (confirmed_ && size > confirmed_) {
        trying_ = 0;
        next_ns_ = now + cfg.raise_after_ns;
        return;
    }
    uint16_t down = next_down(size);
    if (down == 0) {  // not even the floor: stay there (the link's own probes say whether it lives)
        confirmed_ = kPmtuFloor;
        trying_ = 0;
        next_ns_ = now + cfg.raise_after_ns;
        return;
    }
    trying_ = down;
    sent_ = 0;
    next_ns_ = now;
}

void PmtuSearch::on_lost(uint64_t now, uint16_t size) {
    // Too big once every try of it is lost. A lost probe of another size is
    // an older one's and says nothing now.
    if (size != trying_ || sent_ < cfg.tries) return;
    give_up_on(now, size);
}

void PmtuSearch::on_too_big(uint64_t now, uint16_t size) {
    // The kernel refused it: it knows (ICMP) of a smaller path. Whatever was
    // confirmed at or above it holds no more.
    if (confirmed_ >= size) confirmed_ = 0;
    give_up_on(now, size);
}

}  // namespace onebox::proto
