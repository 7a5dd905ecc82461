// spsc.h — bounded single-producer/single-consumer ring. The control thread
// and a worker talk through two of these (commands in, events out), so the
// packet path never takes a lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>

namespace onebox::dataplane {

template <typename T, size_t N>
struct SpscRing {
    static_assert((N & (N - 1)) == 0, "capacity must be a power of two");
    alignas(64) std::atomic<size_t> head{0};  // next slot to read (consumer)
    alignas(64) std::atomic<size_t> tail{0};  // next slot to write (producer)
    T slots[N];

    // Producer. False when full: the caller counts the drop.
    bool push(const T& item) {
        size_t t = tail.load(std::memory_order_relaxed);
        if (t - head.load(std::memory_order_acquire) == N) return false;
        slots[t & (N - 1)] = item;
        tail.store(t + 1, std::memory_order_release);
        return true;
    }
    // Consumer. False when empty.
    bool pop(T& item) {
        size_t h = head.load(std::memory_order_relaxed);
        if (h == tail.load(std::memory_order_acquire)) return false;
        item = slots[h & (N - 1)];
        head.store(h + 1, std::memory_order_release);
        return true;
    }
};

}  // namespace onebox::dataplane
