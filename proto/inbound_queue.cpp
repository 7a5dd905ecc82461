#include "inbound_queue.h"

namespace onebox::proto {

void InboundQueue::on_probe(uint64_t rx_ns, uint64_t peer_sent_ns) {
    // The two clocks have an arbitrary offset: the difference, biased by
    // 2^63, orders correctly (wrapping) while the one-way delays of the
    // window differ by less than 2^63 ns.
    uint64_t owd = rx_ns - peer_sent_ns + (uint64_t(1) << 63);
    uint64_t base = base_.running_min(window_ns, rx_ns, owd);
    latest_ = owd - base;
    if (samples_++ == 0) {
        queue_ = latest_;
        var_ = latest_ / 2;
        return;
    }
    uint64_t dev = queue_ > latest_ ? queue_ - latest_ : latest_ - queue_;
    var_ = var_ - var_ / 4 + dev / 4;
    queue_ = queue_ - queue_ / 8 + latest_ / 8;
}

}  // namespace onebox::proto
