#include "worker.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include <netinet/udp.h>

#include <memory>

#include "buf_ring.h"
#include "buffers.h"
#include "hold.h"
#include "proto/link_policy.h"
#include "proto/overtake.h"
#include "proto/retransmit.h"
#include "proto/tcp_coalesce.h"
#include "proto/tso.h"
#include "resend.h"
#include "send_batch.h"

namespace onebox::dataplane {

// Clock `id` in ns: CLOCK_MONOTONIC is the data plane's time, CLOCK_REALTIME
// the one the kernel's receive timestamps are on.
static int64_t clock_ns(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

uint64_t now_ns() { return uint64_t(clock_ns(CLOCK_MONOTONIC)); }

namespace {

using proto::kHeaderSize;

// What a completion is for, in user_data: the operation (bits 40+), the WAN
// link (bits 32-39) and the buffer index (low 32 bits).
enum class Op : uint32_t { TunRead = 1, TunReadSlab, TunWrite, UdpRecv, UdpRecvSlab, UdpRecvMulti, UdpSend, UdpSendBatch, TunWriteRun, Wake, Cancel };

uint64_t make_tag(Op op, uint32_t idx, unsigned link = 0) {
    return uint64_t(op) << 40 | uint64_t(link & 0xff) << 32 | idx;
}
Op tag_op(uint64_t tag) { return Op(tag >> 40); }
unsigned tag_link(uint64_t tag) { return unsigned(tag >> 32) & 0xff; }
uint32_t tag_index(uint64_t tag) { return uint32_t(tag); }

using proto::kMaxLinks;

// Client side: one WAN link's socket (bound to its interface, connected to
// the server) as the worker uses it.
struct ClientLink {
    int fd = -1;
    bool active = false;      // sending and receiving on it
    bool removing = false;    // told to stop; waiting for its receives to finish
    unsigned recvs_armed = 0;
    uint64_t last_tx_ns = 0;
    bool gso = false;         // sends are batched (send_batch.h) until the path refuses
    bool gro = false;         // UDP_GRO on: receives land in slabs (buffers.h)
    uint16_t mtu = 0;         // the interface's MTU: where its path MTU search starts
    unsigned gso_failures = 0;  // batches refused in a row (send_batch.h)
    // The user's overrides ([client.link.NAME]); 0 = learned.
    double weight = 0;
    uint64_t max_rate_up_bps = 0;
    uint64_t max_rate_down_bps = 0;
    uint8_t priority = 1;
};

constexpr uint64_t kTimerPeriodNs = 5'000'000;     // keepalive / expiry pass
constexpr uint64_t kMaxWaitNs = 100'000'000;        // wake at least this often
constexpr uint64_t kHoldPollNs = 1'000'000;         // ... and this often while packets are held
// The server spreads a session's traffic over the client links it heard from
// within this long (clients send a keepalive on every idle link each second).
constexpr uint64_t kPeerLinkTimeoutNs = 3'000'000'000;

// UDP_SEGMENT is known to this kernel (4.18 and later). Whether a given
// path can segment shows at the first batch (on_batch_sent).
bool kernel_has_udp_gso() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int size = 1400;
    bool ok = setsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) == 0;
    ::close(fd);
    return ok;
}

struct Worker {
    const WorkerConfig& cfg;
    Channel& ch;
    Counters& counters;
    io_uring ring{};
    BufferPool pool;

    Session* client_session = nullptr;                 // client role
    std::unordered_map<uint32_t, Session*> by_id;       // server role
    std::unordered_map<uint32_t, Session*> by_ip;       // server role, confirmed only

    unsigned tun_reads_armed = 0;
    unsigned udp_recvs_armed = 0;          // server socket
    ClientLink links[kMaxLinks];           // client role
    uint64_t wake_value = 0;
    bool events_pending = false;
    bool tun_failed = false;
    bool wake_armed = false;
    unsigned inflight = 0;   // submitted operations whose completion we have not seen
    uint64_t now = 0;
    // CLOCK_REALTIME minus CLOCK_MONOTONIC at `now`: the kernel stamps
    // receives on the real-time clock, the worker counts on the monotonic one.
    int64_t realtime_offset_ns = 0;
    // When the datagrams being handled reached the socket (monotonic; 0:
    // not known, take `now`). Set for one receive's datagrams at a time.
    uint64_t rx_ns = 0;
    uint64_t last_stall_ns = 0;  // resend_stalled ran (on_sent looks for late sends shortly after)
    uint64_t next_timer = 0;
    uint64_t next_reorder_deadline = UINT64_MAX;
    proto::ReorderEntry released[proto::kReorderCapacity + 1];

    // Sent data datagrams, kept for resending on a live link if theirs stalls.
    SentRing sent_ring;
    // UDP GSO: datagrams in a row for one destination go out in one sendmsg.
    std::unique_ptr<SendBatcher> batcher = std::make_unique<SendBatcher>();
    bool gso = false;         // the kernel has UDP_SEGMENT and the config allows it
    bool server_gso = false;  // the server socket still batches
    bool server_gro = false;  // the server socket has UDP_GRO (receives into slabs)
    unsigned server_gso_failures = 0;
    static constexpr unsigned kGsoGiveUp = 16;  // batches refused in a row before a socket gives up GSO
    // TUN writes held to the end of the loop pass (write_tun), and the
    // gather lists of the runs written as one (tcp_coalesce.h).
    struct PendingWrite {
        uint32_t idx;
        uint32_t len;
    };
    static constexpr unsigned kTunPendingMax = 256;
    PendingWrite tun_pending[kTunPendingMax];
    unsigned tun_pending_n = 0;
    struct TunRunWrite {
        iovec iov[proto::kMaxRunPackets];
        uint32_t handles[proto::kMaxRunPackets];
        unsigned count = 0;
    };
    static constexpr unsigned kRunWrites = 64;
    std::unique_ptr<TunRunWrite[]> run_writes = std::make_unique<TunRunWrite[]>(kRunWrites);
    uint32_t run_free[kRunWrites];
    unsigned run_free_n = 0;
    // Multishot receives: a GRO socket's one recvmsg takes slabs from a
    // provided buffer ring (buf_ring.h) until the ring runs dry (ENOBUFS),
    // then is armed again once slabs are back. Off: one recvmsg per slab.
    ProvidedRing slab_ring;
    bool multishot = false;
    unsigned ring_avail = 0;   // slabs the kernel holds for the ring now
    msghdr multishot_msg{};    // the shape of each receive: name (server) and control lengths
    static constexpr unsigned kRingSlabsMax = 64;
    static constexpr uint16_t kSlabGroup = 1;
    // What a reload may change (SetPolicy); from cfg at start.
    proto::SchedMode mode;          // client: its mode, told to the server
    uint64_t probe_interval_ns;
    uint64_t link_hold_ns;
    uint32_t loss_limit_pm;
    uint64_t repair_window_ns;
    bool light_copies;
    uint64_t queue_budget_ns;
    uint64_t queue_hold_ns;

    Worker(const WorkerConfig& c, Channel& channel)
        : cfg(c), ch(channel), counters(channel.counters), pool(c.buffers, c.offloads ? c.slabs : 0),
          sent_ring(c.buffers / 4),
          mode(c.mode), probe_interval_ns(c.probe_interval_ns), link_hold_ns(c.link_hold_ns), loss_limit_pm(c.loss_limit_pm),
          repair_window_ns(c.repair_window_ns), light_copies(c.light_copies), queue_budget_ns(c.queue_budget_ns),
          queue_hold_ns(c.queue_hold_ns) {}
    ~Worker() {
        slab_ring.reset();
        io_uring_queue_exit(&ring);
    }

    bool is_server() const { return cfg.role == proto::Role::Server; }

    // ---- events to the control thread ------------------------------------------

    // Control events must not be lost (a lost SessionFree leaks a session), so
    // when the ring is full they wait here and go out on a later iteration.
    static constexpr unsigned kBacklog = 1024;
    Event backlog[kBacklog];
    unsigned backlog_n = 0;

    void emit(const Event& ev) {
        if (backlog_n == 0 && ch.events.push(ev)) { events_pending = true; return; }
        if (backlog_n < kBacklog) backlog[backlog_n++] = ev;
        else counters.add(Counter::events_lost);
    }

    void flush_backlog() {
        unsigned sent = 0;
        while (sent < backlog_n && ch.events.push(backlog[sent])) ++sent;
        if (sent == 0) return;
        std::memmove(backlog, backlog + sent, (backlog_n - sent) * sizeof(Event));
        backlog_n -= sent;
        events_pending = true;
    }

    // ---- submission helpers -------------------------------------------------

    // Registered files: the TUN, the server's socket and each client link's
    // socket sit in the ring's file table, so an operation on them takes no
    // reference on the file (an atomic pair per operation in a threaded
    // process). Without a table (a kernel that refuses it), plain fds.
    static constexpr unsigned kSlotTun = 0, kSlotServer = 1, kSlotLink0 = 2;
    static constexpr unsigned kFileSlots = kSlotLink0 + kMaxLinks;
    bool fixed_files = false;          // the table exists
    bool slot_set[kFileSlots] = {};    // and this slot holds the fd its operations name
    static unsigned link_slot(unsigned link) { return kSlotLink0 + link; }
    unsigned socket_slot(unsigned link) const { return is_server() ? kSlotServer : link_slot(link); }
    void use_slot(io_uring_sqe* s, unsigned slot) {
        if (!slot_set[slot]) return;
        s->fd = int(slot);
        s->flags |= IOSQE_FIXED_FILE;
    }
    // Puts fd (or -1: none) in a slot; a slot the kernel refuses stays
    // unused and its operations name the plain fd.
    void set_file(unsigned slot, int fd) {
        if (!fixed_files) return;
        bool ok = io_uring_register_files_update(&ring, slot, &fd, 1) == 1;
        slot_set[slot] = ok && fd >= 0;
        if (slot_set[slot]) counters.add(Counter::files_registered);
    }

    // A free submission slot, or nullptr if the kernel would not take the
    // queued ones (then the caller returns its buffer and counts a drop).
    io_uring_sqe* sqe() {
        io_uring_sqe* s = io_uring_get_sqe(&ring);
        if (!s) {  // SQ full: hand what we have to the kernel and take a slot
            io_uring_submit(&ring);
            s = io_uring_get_sqe(&ring);
        }
        if (s) ++inflight;
        return s;
    }

    // The server needs the peer address with every datagram, so its receives
    // and sends go through a msghdr that lives in the buffer's metadata.
    msghdr* prepare_msghdr(uint32_t idx, size_t len) {
        BufferMeta& m = pool.meta[idx];
        m.iov = {pool.data(idx), len};
        m.msg = {};
        m.msg.msg_name = &m.addr;
        m.msg.msg_namelen = sizeof m.addr;
        m.msg.msg_iov = &m.iov;
        m.msg.msg_iovlen = 1;
        return &m.msg;
    }

    // A TUN with offloads may hand over 64 KiB at once: its reads go into a
    // slab, cut into packets when they complete (on_tun_slab).
    bool arm_tun_slab_read() {
        uint32_t slab = pool.get_slab();
        if (slab == kNoBuffer) return false;
        io_uring_sqe* s = sqe();
        if (!s) { pool.put_slab(slab); return false; }
        io_uring_prep_read(s, cfg.tun_fd, pool.slab_data(slab), unsigned(kSlabSize), 0);
        use_slot(s, kSlotTun);
        io_uring_sqe_set_data64(s, make_tag(Op::TunReadSlab, slab));
        ++tun_reads_armed;
        return true;
    }

    bool arm_tun_read() {
        if (cfg.tun_vnet) return arm_tun_slab_read();
        uint32_t idx = pool.get();
        if (idx == kNoBuffer) return false;
        io_uring_sqe* s = sqe();
        if (!s) { pool.put(idx); return false; }
        // Read at kHeaderSize: the header goes in front without a copy.
        io_uring_prep_read(s, cfg.tun_fd, pool.data(idx) + kHeaderSize, proto::kMaxInnerPacket, 0);
        use_slot(s, kSlotTun);
        io_uring_sqe_set_data64(s, make_tag(Op::TunRead, idx));
        ++tun_reads_armed;
        return true;
    }

    // A receive on a UDP_GRO socket: into a slab, whose datagrams are split
    // out when it completes (on_slab_recv).
    bool arm_slab_recv(unsigned link) {
        uint32_t slab = pool.get_slab();
        if (slab == kNoBuffer) return false;
        io_uring_sqe* s = sqe();
        if (!s) { pool.put_slab(slab); return false; }
        SlabMeta& m = pool.slab_meta[slab];
        m.iov = {pool.slab_data(slab), kSlabSize};
        m.msg = {};
        m.msg.msg_name = is_server() ? &m.addr : nullptr;
        m.msg.msg_namelen = is_server() ? sizeof m.addr : 0;
        m.msg.msg_iov = &m.iov;
        m.msg.msg_iovlen = 1;
        m.msg.msg_control = m.control;
        m.msg.msg_controllen = sizeof m.control;
        int fd = is_server() ? cfg.udp_fd : links[link].fd;
        io_uring_prep_recvmsg(s, fd, &m.msg, 0);
        use_slot(s, socket_slot(link));
        io_uring_sqe_set_data64(s, make_tag(Op::UdpRecvSlab, slab, link));
        if (is_server()) ++udp_recvs_armed;
        else ++links[link].recvs_armed;
        return true;
    }

    // The socket's multishot recvmsg, taking slabs from the ring. Armed only
    // while the ring has slabs: on an empty one it would end at once.
    bool arm_multishot_recv(unsigned link) {
        if (ring_avail == 0) return false;
        io_uring_sqe* s = sqe();
        if (!s) return false;
        int fd = is_server() ? cfg.udp_fd : links[link].fd;
        io_uring_prep_recvmsg_multishot(s, fd, &multishot_msg, 0);
        use_slot(s, socket_slot(link));
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = slab_ring.group;
        io_uring_sqe_set_data64(s, make_tag(Op::UdpRecvMulti, 0, link));
        counters.add(Counter::multishot_arms);
        if (is_server()) ++udp_recvs_armed;
        else ++links[link].recvs_armed;
        return true;
    }

    // Slabs put back since the last pass go to the kernel again, in one go.
    void return_ring_slabs() {
        if (!multishot || pool.ring_returns_n == 0) return;
        for (uint32_t k = 0; k < pool.ring_returns_n; ++k) {
            uint32_t slab = pool.ring_returns[k];
            slab_ring.add(uint16_t(slab - pool.ring_base), pool.slab_data(slab), unsigned(kSlabStride));
        }
        ring_avail += pool.ring_returns_n;
        pool.ring_returns_n = 0;
        slab_ring.publish();
    }

    bool arm_udp_recv(unsigned link) {
        bool gro = is_server() ? server_gro : links[link].gro;
        if (gro && multishot) return arm_multishot_recv(link);
        if (gro) return arm_slab_recv(link);
        uint32_t idx = pool.get();
        if (idx == kNoBuffer) return false;
        io_uring_sqe* s = sqe();
        if (!s) { pool.put(idx); return false; }
        if (is_server()) {
            io_uring_prep_recvmsg(s, cfg.udp_fd, prepare_msghdr(idx, kBufferSize), 0);
            ++udp_recvs_armed;
        } else {
            io_uring_prep_recv(s, links[link].fd, pool.data(idx), kBufferSize, 0);
            ++links[link].recvs_armed;
        }
        use_slot(s, socket_slot(link));
        io_uring_sqe_set_data64(s, make_tag(Op::UdpRecv, idx, link));
        return true;
    }

    void arm_wake() {
        io_uring_sqe* s = sqe();
        if (!s) { wake_armed = false; return; }  // retried by the loop
        wake_armed = true;
        io_uring_prep_read(s, ch.worker_wake_fd, &wake_value, sizeof wake_value, 0);
        io_uring_sqe_set_data64(s, make_tag(Op::Wake, 0));
    }

    // Keeps the configured number of receives in flight. Receives are re-armed
    // here rather than in their completion handler so a buffer shortage only
    // delays them until buffers come back.
    void refill_receives() {
        return_ring_slabs();
        if (is_server()) {
            unsigned depth = server_gro ? (multishot ? 1 : cfg.slab_recv_depth * 4) : cfg.udp_recv_depth;
            while (udp_recvs_armed < depth) {
                if (!arm_udp_recv(0)) { counters.add(Counter::no_buffer); break; }
            }
        }
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            ClientLink& l = links[i];
            unsigned depth = l.gro ? (multishot ? 1 : cfg.slab_recv_depth) : cfg.udp_recv_depth;
            while (l.active && l.recvs_armed < depth) {
                if (!arm_udp_recv(i)) { counters.add(Counter::no_buffer); break; }
            }
        }
        unsigned tun_depth = cfg.tun_vnet ? cfg.tun_slab_reads : cfg.tun_read_depth;
        while (!tun_failed && tun_reads_armed < tun_depth) {
            if (!arm_tun_read()) { counters.add(Counter::no_buffer); break; }
        }
    }

    // Sends a sealed datagram on `link`: batched with the ones before it for
    // the same destination when GSO is on (flushed before the next submit),
    // on its own otherwise.
    void send_datagram(Session* s, unsigned link, uint32_t idx, size_t len) {
        int fd;
        const sockaddr_in* dest = nullptr;
        bool batch;
        if (is_server()) {
            const PeerLink& p = s->links[link];
            pool.meta[idx].addr = p.key.load(std::memory_order_relaxed) ? p.addr : s->peer;
            fd = cfg.udp_fd;
            dest = &pool.meta[idx].addr;
            batch = server_gso;
        } else {
            fd = links[link].fd;
            batch = links[link].gso;
        }
        if (batch && batcher->add(fd, dest, uint8_t(link), idx, pool.data(idx), uint32_t(len),
                                  [&](uint32_t b) { submit_batch(b); }))
            return;
        send_single(link, idx, len);
    }

    // One datagram, one send (the server's destination is in the buffer's meta).
    void send_single(unsigned link, uint32_t idx, size_t len) {
        io_uring_sqe* q = sqe();
        if (!q) return drop(idx, Counter::drop_send_error);
        if (is_server()) io_uring_prep_sendmsg(q, cfg.udp_fd, prepare_msghdr(idx, len), 0);
        else io_uring_prep_send(q, links[link].fd, pool.data(idx), len, 0);
        use_slot(q, socket_slot(link));
        io_uring_sqe_set_data64(q, make_tag(Op::UdpSend, idx, link));
    }

    void submit_batch(uint32_t bi) {
        SendBatch& b = batcher->batches[bi];
        if (b.count == 1) {
            send_single(b.link, b.idx[0], b.iov[0].iov_len);
            return batcher->release(bi);
        }
        io_uring_sqe* q = sqe();
        if (!q) {
            for (unsigned i = 0; i < b.count; ++i) drop(b.idx[i], Counter::drop_send_error);
            return batcher->release(bi);
        }
        io_uring_prep_sendmsg(q, b.fd, &b.msg, 0);
        use_slot(q, socket_slot(b.link));  // a batch waits for no link's removal (flushed first)
        io_uring_sqe_set_data64(q, make_tag(Op::UdpSendBatch, bi, b.link));
        counters.add(Counter::gso_sends);
        counters.add(Counter::gso_datagrams, b.count);
    }

    // A batch's sendmsg completed. A path that cannot segment (EIO: no
    // checksum offload, EINVAL) gets its datagrams one by one, now and from
    // then on; anything else is each datagram's result.
    void on_batch_sent(uint32_t bi, int res) {
        SendBatch& b = batcher->batches[bi];
        unsigned& failures = is_server() ? server_gso_failures : links[b.link].gso_failures;
        if (res == -EIO || res == -EINVAL || res == -EOPNOTSUPP) {
            // Refused as a batch: sent again one by one (each then meets
            // EMSGSIZE, if its size was the trouble, and the path MTU search
            // goes down). Many refusals in a row: the path cannot segment.
            counters.add(Counter::gso_refused);
            if (++failures >= kGsoGiveUp) {
                counters.add(Counter::gso_fallbacks);
                if (is_server()) server_gso = false;
                else if (links[b.link].fd == b.fd) links[b.link].gso = false;
            }
            for (unsigned i = 0; i < b.count; ++i) send_single(b.link, b.idx[i], b.iov[i].iov_len);
        } else {
            if (res >= 0) failures = 0;
            for (unsigned i = 0; i < b.count; ++i) on_sent(b.idx[i], res < 0 ? res : 1);
        }
        batcher->release(bi);
    }

    // UDP_GRO on `fd`, when offloads are on and there are slabs to receive
    // into; and the kernel's receive times, which those receives carry
    // (rx_stamp): a probe echo's RTT ends when it arrived, not when a busy
    // worker got to it.
    bool enable_gro(int fd) const {
        if (!cfg.offloads || pool.slabs == 0 || fd < 0) return false;
        int one = 1;
        if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) != 0) return false;
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);  // without: rx_ns stays 0 (= now)
        return true;
    }

    void flush_sends() {
        batcher->flush_all([&](uint32_t b) { submit_batch(b); });
    }

    // A send completed: a data datagram is kept (resend.h) until a newer one
    // pushes it out; anything else goes back to the pool.
    void on_sent(uint32_t idx, int res) {
        BufferMeta& m = pool.meta[idx];
        if (res == -EMSGSIZE) {  // bigger than the path the kernel knows of (ICMP): the search hears it
            counters.add(Counter::drop_too_big);
            if (Session* s = find_session(m.session_id)) s->bond.on_too_big(m.link, now, uint16_t(m.len + proto::kIpUdpHeaders));
        } else if (res < 0) {
            counters.add(Counter::drop_send_error);
        }
        if (res < 0 || !m.keep) return pool.put(idx);
        m.keep = false;
        SentRecord r{idx, m.session_id, m.key_gen, m.len, m.link, m.light, m.seq, m.sent_ns};
        if (now - last_stall_ns < kStallLateSendNs && resend_if_link_failed(r)) return;
        uint32_t evicted = sent_ring.keep(r);
        if (evicted != kNoBuffer) pool.put(evicted);
    }

    // A datagram still in the batcher or in the ring when its link stalled
    // was not among those kept, so resend_stalled could not send it again:
    // it completes now, on a link out of use. Sent again at once on a live
    // one (the peer keeps the first copy), rather than kept under a link
    // that will never report it. Looked for only shortly after a stall.
    static constexpr uint64_t kStallLateSendNs = 1'000'000'000;
    bool resend_if_link_failed(const SentRecord& r) {
        Session* s = find_session(r.session_id);
        if (!s || s->key_gen != r.key_gen || s->bond.usable(r.link) || !usable_besides(s, r.link)) return false;
        uint64_t through = 0;
        if (s->bond.delivered_through(r.link, &through) && r.seq <= through) return false;
        counters.add(Counter::resent_late);
        resend(s, r, Counter::resent, Counter::resend_dropped);
        return true;
    }

    // Links of `s` that just stalled, went Down or were taken out for loss
    // (`lossy`, a subset) (Bond::take_stalled): what
    // was sent on them and not yet reported delivered goes out again, oldest
    // first, on the links the scheduler picks now. The peer keeps the first
    // copy. "Not reported": a sequence number above the newest the peer saw
    // on the link (Bond::delivered_through), or, before it reported one, sent
    // since Bond::undelivered_since.
    void resend_stalled(Session* s, uint8_t stalled, uint8_t lossy) {
        last_stall_ns = now;
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            if (!(stalled >> i & 1u)) continue;
            uint64_t through = 0;
            bool by_seq = s->bond.delivered_through(i, &through);
            uint64_t since = s->bond.undelivered_since(i);
            auto undelivered = [&](const SentRecord& r) { return by_seq ? r.seq > through : r.sent_ns >= since; };
            uint64_t oldest = now;
            unsigned n = sent_ring.take(s->id, s->key_gen, uint8_t(i), undelivered, [&](const SentRecord& r) {
                oldest = std::min(oldest, r.sent_ns);
                resend(s, r, Counter::resent, Counter::resend_dropped);
            });
            Event ev{Event::Kind::LinkFailed, nullptr, s->id, int(n), uint8_t(i)};
            ev.since_ms = uint32_t(std::min<uint64_t>((now - oldest) / 1'000'000, UINT32_MAX));
            if (lossy >> i & 1u) {
                ev.lossy = true;
                ev.loss_pm = s->bond.loss_pm_at_exclusion(i);
                ev.hold_ms = uint32_t(s->bond.health[i].stable_needed() / 1'000'000);
            }
            emit(ev);
        }
    }

    // Sends a kept datagram again, byte for byte, on a link other than the
    // one it went out on (the scheduler's pick among the others); a light
    // one past the admission budget, as it went the first time.
    // A stall's resend the links have no room for waits with the held
    // packets (hold) while the failover lasts.
    void resend(Session* s, const SentRecord& r, Counter sent, Counter dropped, uint64_t extra_headroom_ns = 0) {
        auto admission = r.light ? proto::Admission::Exempt : proto::Admission::Budgeted;
        int link = s->bond.pick_other_than(r.link, now, r.len, extra_headroom_ns, admission);
        if (link >= 0) return resend_on(s, unsigned(link), r.idx, r.len, sent);
        if (sent == Counter::resent && s->bond.headroom(now) > 0 && usable_besides(s, r.link) &&
            hold(s, r.idx, r.len, r.link))
            return;
        drop(r.idx, dropped);
    }

    void resend_on(Session* s, unsigned link, uint32_t idx, uint32_t len, Counter sent) {
        BufferMeta& m = pool.meta[idx];
        m.keep = true;  // kept again under its new link
        m.link = uint8_t(link);
        m.sent_ns = now;
        s->bond.on_sent(link, now, len);
        send_datagram(s, link, idx, len);
        counters.add(sent);
        LinkCounters& lc = counters.links[link];
        bump(lc.tx_packets, 1);
        bump(lc.tx_bytes, len - proto::kDataOverhead);
        bump(s->stats.links[link].tx_bytes, len - proto::kDataOverhead);
    }

    // Is a link other than `failed` in use (so a refused resend may wait for it)?
    static bool usable_besides(const Session* s, unsigned failed) {
        for (unsigned i = 0; i < kMaxLinks; ++i)
            if (i != failed && s->bond.usable(i)) return true;
        return false;
    }

    // Loss repair: the data datagrams the peer's last Feedback showed lost
    // on their links (Bond::take_lost) go out again on another link, if
    // still held and sent within repair_window_ns. Looks at the newest part
    // of the ring only, and only when something was lost.
    // A record is wanted if its number was found lost and it is still on
    // the link it was lost on: one already sent again elsewhere (after a
    // stall) is not sent a third time.
    void repair_lost(Session* s) {
        proto::Bond::Lost lost[proto::Bond::kLostMax];
        unsigned n = s->bond.take_lost(lost, proto::Bond::kLostMax);
        if (n == 0) return;
        auto by_seq = [](const proto::Bond::Lost& a, const proto::Bond::Lost& b) { return a.seq < b.seq; };
        std::sort(lost, lost + n, by_seq);
        uint64_t window = s->bond.cfg.repair_window_ns;
        auto recent = [&](const SentRecord& r) { return now - r.sent_ns <= window; };
        auto wanted = [&](const SentRecord& r) {
            const proto::Bond::Lost key{r.seq, 0};
            const proto::Bond::Lost* it = std::lower_bound(lost, lost + n, key, by_seq);
            return it != lost + n && it->seq == r.seq && it->link == r.link;
        };
        sent_ring.take_recent(s->id, s->key_gen, n, recent, wanted, [&](const SentRecord& r) {
            resend(s, r, Counter::repaired, Counter::repair_dropped, s->bond.repair_headroom());
        });
    }

    void release_sent(const Session* s) {
        sent_ring.release_all([&](uint32_t idx) { pool.put(idx); }, s->id, true);
    }

    // A packet for the TUN. With offloads it waits for the end of the loop
    // pass (flush_tun_writes), where runs of one flow's TCP packets become
    // one write; without, it goes at once.
    void write_tun(uint32_t idx, size_t len) {
        if (!cfg.tun_vnet) return write_tun_now(idx, len);
        if (tun_pending_n == kTunPendingMax) flush_tun_writes();
        tun_pending[tun_pending_n++] = {idx, uint32_t(len)};
    }

    // The packets waiting for the TUN, in order: each run that
    // proto/tcp_coalesce.h allows as one GSO write (the first packet whole,
    // then the others' payloads, gathered from their buffers by writev),
    // the rest one by one.
    void flush_tun_writes() {
        unsigned i = 0;
        while (i < tun_pending_n) {
            const PendingWrite& w = tun_pending[i];
            unsigned j = i + 1;
            proto::TcpRun r;
            if (run_free_n && proto::tcp_run_start(r, pool.data(w.idx) + kHeaderSize, w.len)) {
                while (j < tun_pending_n &&
                       proto::tcp_run_append(r, pool.data(tun_pending[j].idx) + kHeaderSize, tun_pending[j].len))
                    ++j;
            }
            if (j - i >= 2) write_tun_run(r, i, j);
            else write_tun_now(w.idx, w.len);
            i = j;
        }
        tun_pending_n = 0;
    }

    void write_tun_run(const proto::TcpRun& r, unsigned from, unsigned to) {
        io_uring_sqe* q = sqe();
        if (!q) {
            for (unsigned k = from; k < to; ++k) drop(tun_pending[k].idx, Counter::drop_tun_write);
            return;
        }
        uint32_t slot = run_free[--run_free_n];
        TunRunWrite& rw = run_writes[slot];
        rw.count = to - from;
        uint8_t* first = pool.data(tun_pending[from].idx) + kHeaderSize;
        uint8_t* vnet = first - proto::kVnetHdrSize;  // in our header's bytes, as write_tun_now
        proto::tcp_run_finish(r, first, vnet);
        rw.iov[0] = {vnet, proto::kVnetHdrSize + tun_pending[from].len};
        rw.handles[0] = tun_pending[from].idx;
        for (unsigned k = from + 1; k < to; ++k) {
            const PendingWrite& w = tun_pending[k];
            rw.iov[k - from] = {pool.data(w.idx) + kHeaderSize + r.hdr_len, w.len - r.hdr_len};
            rw.handles[k - from] = w.idx;
        }
        io_uring_prep_writev(q, cfg.tun_fd, rw.iov, rw.count, 0);
        use_slot(q, kSlotTun);
        io_uring_sqe_set_data64(q, make_tag(Op::TunWriteRun, slot));
        counters.add(Counter::tun_runs);
        counters.add(Counter::tun_run_packets, rw.count);
    }

    void on_tun_run_written(uint32_t slot, int res) {
        TunRunWrite& rw = run_writes[slot];
        if (res < 0) counters.add(Counter::drop_tun_write, rw.count);
        for (unsigned k = 0; k < rw.count; ++k) pool.put(rw.handles[k]);
        run_free[run_free_n++] = slot;
    }

    // The plaintext sits at kHeaderSize; with offloads a virtio_net_hdr of
    // zeros (a finished packet, nothing to segment) goes in the bytes before
    // it, which our own header no longer needs.
    void write_tun_now(uint32_t idx, size_t len) {
        io_uring_sqe* q = sqe();
        if (!q) return drop(idx, Counter::drop_tun_write);
        uint8_t* p = pool.data(idx) + kHeaderSize;
        if (cfg.tun_vnet) {
            p -= proto::kVnetHdrSize;
            std::memset(p, 0, proto::kVnetHdrSize);
            len += proto::kVnetHdrSize;
        }
        io_uring_prep_write(q, cfg.tun_fd, p, unsigned(len), 0);
        use_slot(q, kSlotTun);
        io_uring_sqe_set_data64(q, make_tag(Op::TunWrite, idx));
    }

    void drop(uint32_t idx, Counter reason) {
        counters.add(reason);
        pool.put(idx);
    }

    // ---- sending (TUN -> network) -------------------------------------------

    void seal_and_send(Session* s, unsigned link, uint32_t idx, size_t payload_len,
                       proto::PacketType type, bool light = false) {
        bool ctl = proto::nonce_channel(type) == proto::kControlChannel;
        uint64_t seq = ctl ? s->tx_ctl_seq++ : s->tx_seq++;
        proto::Header h{type, proto::kProtocolVersion, s->id, seq, uint8_t(link)};
        size_t n = proto::seal_in_place(s->keys.current.send, h, pool.data(idx), payload_len);
        ++s->keys.uses;
        BufferMeta& m = pool.meta[idx];
        m.keep = type == proto::PacketType::Data;
        m.link = uint8_t(link);
        m.session_id = s->id;
        m.key_gen = s->key_gen;
        m.seq = seq;
        m.sent_ns = now;
        m.len = uint32_t(n);
        m.light = light;
        s->bond.on_sent(link, now, uint32_t(n));
        if (!ctl) s->bond.on_sent_data(link, now, seq, type == proto::PacketType::Data);
        send_datagram(s, link, idx, n);
        if (is_server()) s->links[link].last_tx_ns = now;
        else links[link].last_tx_ns = now;
        LinkCounters& lc = counters.links[link];
        bump(lc.tx_packets, 1);
        bump(lc.tx_bytes, payload_len);
        bump(s->stats.links[link].tx_bytes, payload_len);
    }

    // Sends an empty sealed packet of `type` (Keepalive, Close) on one link.
    // A client's keepalive carries one byte: the set of links it uses now
    // (bit n = link n), so the server stops sending on a link the moment the
    // client gives it up instead of waiting for it to fall silent.
    void send_control(Session* s, unsigned link, proto::PacketType type) {
        uint32_t idx = pool.get();
        if (idx == kNoBuffer) { counters.add(Counter::no_buffer); return; }
        size_t len = 0;
        if (type == proto::PacketType::Keepalive && !is_server())
            len = proto::encode_link_policy(link_policy(), pool.data(idx) + kHeaderSize,
                                            proto::kPolicyMaxSize);
        seal_and_send(s, link, idx, len, type);
        if (type == proto::PacketType::Keepalive) counters.add(Counter::keepalive_tx);
    }

    // Client: what its keepalives tell the server: the links in use, the
    // mode, and the user's overrides for the server's direction.
    proto::LinkPolicy link_policy() const {
        proto::LinkPolicy p;
        p.mode = mode;
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            const ClientLink& l = links[i];
            if (!l.active) continue;
            p.link_set |= uint8_t(1u << i);
            auto weight = uint16_t(std::clamp(l.weight * 100.0 + 0.5, 0.0, 65535.0));
            // Rounded up: a cap is never sent as "none".
            auto kbit = uint32_t(std::min<uint64_t>((l.max_rate_down_bps + 999) / 1000, UINT32_MAX));
            if (weight || kbit || l.priority > 1)
                p.entries[p.count++] = proto::LinkOverride{uint8_t(i), weight, kbit, l.priority};
        }
        return p;
    }

    // Client: its own links as its session's scheduler sees them.
    void apply_client_links(Session* s) {
        s->bond.sched.cfg.mode = mode;
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            s->bond.set_interface_mtu(i, links[i].mtu);
            s->bond.set_usable(i, links[i].active);
            s->bond.sched.links[i].weight = links[i].weight;
            s->bond.sched.links[i].max_rate_bps = links[i].max_rate_up_bps;
            s->bond.sched.links[i].priority = links[i].priority;
        }
        s->bond.refresh(now);
    }

    // Client: tell the server the new link set at once, on every link.
    void announce_links() {
        Session* s = client_session;
        if (!s || !s->keys.has_current) return;
        for_each_link(s, [&](unsigned i) { send_control(s, i, proto::PacketType::Keepalive); });
    }

    // Server: a client keepalive's policy: the links it uses now, its mode and
    // overrides. Links it gave up stop carrying traffic at once.
    void apply_client_policy(Session* s, const uint8_t* payload, size_t len) {
        proto::LinkPolicy p;
        if (!proto::decode_link_policy(payload, len, p)) return counters.add(Counter::drop_bad_control);
        for (unsigned i = 0; i < kMaxLinks; ++i) s->links[i].retired = !(p.link_set & (1u << i));
        proto::apply_link_policy(p, s->bond.sched);
        refresh_server_links(s);
        s->bond.refresh(now);
    }

    // ---- choosing a link ------------------------------------------------------
    // The session's scheduler (proto/scheduler.h) picks; this keeps its idea
    // of which links are usable in step with the worker's.

    void refresh_server_links(Session* s) {
        for (unsigned i = 0; i < kMaxLinks; ++i) s->bond.set_usable(i, peer_link_live(s, i));
    }

    // A client link is usable by the server while it has heard from it lately.
    bool peer_link_live(const Session* s, unsigned i) const {
        const PeerLink& p = s->links[i];
        return p.key.load(std::memory_order_relaxed) != 0 && !p.retired &&
               now - p.last_rx_ns < kPeerLinkTimeoutNs;
    }

    // Server with no live link for a session: the link heard from last (or
    // the handshake's address), so a session whose links all fell silent
    // still tries.
    unsigned newest_server_link(const Session* s) const {
        unsigned newest = 0;
        for (unsigned i = 1; i < kMaxLinks; ++i)
            if (s->links[i].last_rx_ns > s->links[newest].last_rx_ns) newest = i;
        return newest;
    }

    // The link for one outgoing data packet of `bytes` (as sealed), or -1 with
    // the drop reason in *why.
    int pick_link(Session* s, uint32_t bytes, Counter* why, uint64_t extra_headroom_ns = 0,
                  proto::Admission admission = proto::Admission::Budgeted) {
        int link = s->bond.pick(now, bytes, extra_headroom_ns, admission);
        if (link >= 0) return link;
        bool any = false, fits = false;
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            any |= s->bond.usable(i);
            fits |= s->bond.usable(i) && bytes <= s->bond.max_datagram(i);
        }
        if (any) {
            *why = fits ? Counter::drop_over_budget : Counter::drop_too_big;
            return -1;
        }
        if (is_server()) return int(newest_server_link(s));
        *why = Counter::drop_no_link;
        return -1;
    }

    Session* session_for_outbound(const uint8_t* ip) {
        if (!is_server()) return client_session;
        uint32_t dst = proto::get_be32(ip + 16);
        auto it = by_ip.find(dst);
        return it == by_ip.end() ? nullptr : it->second;
    }

    // A TUN that returns EBADFD/EIO/EINVAL was deleted or broken under us:
    // re-arming would spin, so stop reading and let the control thread decide.
    void on_tun_error(int err) {
        if (err == EAGAIN || err == EINTR || err == ENOBUFS || tun_failed) return;
        tun_failed = true;
        emit({Event::Kind::TunFailed, nullptr, 0, err});
    }

    void on_tun_read(uint32_t idx, int res) {
        --tun_reads_armed;
        if (res <= 0) {
            pool.put(idx);
            if (res < 0) on_tun_error(-res);
            return;
        }
        on_inner_packet(idx, res);
    }

    // A read from a TUN with offloads: a virtio_net_hdr and one packet that
    // may stand for many (TSO) or want its checksum finished; each packet it
    // stands for goes into a buffer of its own, at kHeaderSize, and on.
    void on_tun_slab(uint32_t slab, int res) {
        --tun_reads_armed;
        if (res <= 0) {
            pool.put_slab(slab);
            if (res < 0) on_tun_error(-res);
            return;
        }
        const uint8_t* in = pool.slab_data(slab);
        proto::TunPacket tp;
        if (size_t(res) <= proto::kVnetHdrSize ||
            !proto::parse_tun_packet(proto::read_vnet_hdr(in), in + proto::kVnetHdrSize,
                                     size_t(res) - proto::kVnetHdrSize, tp)) {
            counters.add(Counter::drop_not_ipv4);
            return pool.put_slab(slab);
        }
        if (tp.count > 1) {
            counters.add(Counter::tso_reads);
            counters.add(Counter::tso_packets, tp.count);
        }
        for (unsigned i = 0; i < tp.count; ++i) {
            uint32_t idx = pool.get();
            if (idx == kNoBuffer) {
                counters.add(Counter::no_buffer, tp.count - i);
                break;
            }
            size_t n = proto::tun_segment(tp, i, pool.data(idx) + kHeaderSize, proto::kMaxInnerPacket);
            if (n == 0) {
                drop(idx, Counter::drop_not_ipv4);
                continue;
            }
            on_inner_packet(idx, int(n));
        }
        pool.put_slab(slab);
    }

    // One inner packet at kHeaderSize of buffer `idx`: to its session, sealed, sent.
    void on_inner_packet(uint32_t idx, int res) {
        const uint8_t* ip = pool.data(idx) + kHeaderSize;
        if (res < 20 || (ip[0] >> 4) != 4) return drop(idx, Counter::drop_not_ipv4);
        Session* s = session_for_outbound(ip);
        if (!s || !s->keys.has_current) return drop(idx, Counter::drop_no_session);
        uint32_t bytes = uint32_t(res) + uint32_t(proto::kDataOverhead);
        // A TCP retransmission fills a hole its flow's receiver waits on:
        // past the hold, with a repair's headroom (proto/retransmit.h).
        // Refused even so: held or dropped as any refused packet.
        if (retransmits.is_retransmission(ip, uint32_t(res), now)) {
            counters.add(Counter::tcp_retransmits);
            Counter why = Counter::drop_no_link;
            int link = pick_link(s, bytes, &why, s->bond.repair_headroom());
            if (link >= 0) {
                counters.add(Counter::retransmits_ahead);
                return send_inner(s, unsigned(link), idx, uint32_t(res));
            }
            if (why == Counter::drop_over_budget && hold_refused_packet(s, idx, uint32_t(res))) return;
            return drop(idx, why);
        }
        // A ping or a TCP acknowledgement without data: never refused for
        // the admission budget (proto::Admission::Exempt).
        bool light = bytes <= s->bond.sched.cfg.small_bytes && proto::may_overtake(ip, uint32_t(res));
        auto admission = light ? proto::Admission::Exempt : proto::Admission::Budgeted;
        if (s->held > 0) {
            // A light packet cannot be out of order with what waits, and goes
            // ahead: what waits is a bulk flow's surplus.
            if (light && send_light_now(s, idx, uint32_t(res))) return;
            // Else behind what of its session already waits (order within a flow).
            if (!hold_refused_packet(s, idx, uint32_t(res))) drop(idx, Counter::drop_over_budget);
            return;
        }
        Counter why = Counter::drop_no_link;
        int link = pick_link(s, bytes, &why, 0, admission);
        if (link < 0) {
            if (why == Counter::drop_over_budget && hold_refused_packet(s, idx, uint32_t(res))) return;
            return drop(idx, why);
        }
        if (light) return send_light(s, unsigned(link), idx, uint32_t(res));
        send_inner(s, unsigned(link), idx, uint32_t(res));
    }

    // A light packet, sent at once if a link takes it now (with its copies);
    // false: nothing done.
    bool send_light_now(Session* s, uint32_t idx, uint32_t len) {
        Counter why = Counter::drop_no_link;
        int link = pick_link(s, len + uint32_t(proto::kDataOverhead), &why, 0, proto::Admission::Exempt);
        if (link < 0) return false;
        send_light(s, unsigned(link), idx, len);
        return true;
    }

    // A light packet on `link`, and byte for byte on the links that carried
    // none lately (proto::Bond::light_copies: whichever link dies, the
    // peer's TCP senders keep getting acknowledgements).
    void send_light(Session* s, unsigned link, uint32_t idx, uint32_t len) {
        send_inner(s, link, idx, len, true);
        send_copies(s, s->bond.light_copies(link, now, pool.meta[idx].len), idx, Counter::light_copies);
    }

    // An inner packet the links refused now (or that must wait behind its
    // session's held ones), held: while a failure is recent, or behind a
    // failover's held packets, as a failover hold (HoldList::kFailoverNs); else for
    // queue_hold_ns (a short queue of our own in front of the links: a
    // saturating flow's surplus waits there instead of being dropped at
    // once, and a ping goes ahead of it). False: not held (the caller
    // drops it).
    bool hold_refused_packet(Session* s, uint32_t idx, uint32_t len) {
        if (s->bond.headroom(now) > 0 || (queue_hold_ns == 0 && s->held > 0)) return hold(s, idx, len);
        if (queue_hold_ns == 0) return false;
        // A queue hold takes at most half the list, and a session at most a
        // quarter: failover holds and resends, and the other sessions,
        // keep their room whatever one saturating client does.
        if (holds.n >= HoldList::kMax / 2 || s->held >= HoldList::kMax / 4) {
            counters.add(Counter::hold_refused);
            return false;
        }
        if (!hold(s, idx, len, HoldList::kFresh, HoldKind::Queue)) return false;
        counters.add(Counter::queue_held);
        return true;
    }

    // An inner packet of `len` bytes at kHeaderSize of `idx`, on `link`;
    // `light`: a ping or a bare TCP acknowledgement (BufferMeta::light).
    void send_inner(Session* s, unsigned link, uint32_t idx, uint32_t len, bool light = false) {
        seal_and_send(s, link, idx, len, proto::PacketType::Data, light);
        counters.add(Counter::tx_packets);
        counters.add(Counter::tx_bytes, len);
        bump(s->stats.tx_packets, 1);
        bump(s->stats.tx_bytes, len);
        if (s->bond.sched.cfg.mode == proto::SchedMode::Redundant)
            send_copies(s, redundant_links(s, link), idx, Counter::redundant_copies);
    }

    // ---- holding after a link failed, and queue_hold (hold.h) ------------------
    // Held packets are not sealed until they go, so they take their sequence
    // numbers in the order they leave. While any are held the worker looks
    // every millisecond (kHoldPollNs), and each look walks the list.
    HoldList holds;
    // The highest data sent per inner TCP flow, to tell its retransmissions.
    proto::RetransmitTracker retransmits;

    // Holds an inner packet (or a resend: `failed`); false (the caller drops
    // it) when the list is full or a quarter of the pool is all that is left
    // (receives need it).
    bool hold(Session* s, uint32_t idx, uint32_t len, uint8_t failed = HoldList::kFresh,
              HoldKind kind = HoldKind::Failover) {
        uint64_t limit = kind == HoldKind::Queue ? queue_hold_ns : HoldList::kFailoverNs;
        if (pool.available() < pool.count / 4 || !holds.add(s, idx, len, now, limit, failed, kind)) {
            counters.add(Counter::hold_refused);
            return false;
        }
        counters.add(Counter::held);
        return true;
    }

    // What the links have room for now goes out, oldest first; the rest of
    // a session whose oldest still finds no room waits for the next pass.
    void release_held() {
        holds.release(
            now, [&](const Held& h) { return h.failed != HoldList::kFresh ? release_resend(h) : release_fresh(h); },
            [&](const Held& h, HoldDrop why) {
                if (why == HoldDrop::Signal) return drop(h.idx, Counter::hold_signals);
                if (h.kind == HoldKind::Failover) return drop(h.idx, Counter::hold_expired);
                counters.add(Counter::queue_hold_expired);
                drop(h.idx, Counter::drop_over_budget);
            });
    }

    // Each false: no room on the links yet (it stays); true: sent, or dropped.
    bool release_fresh(const Held& h) {
        Counter why = Counter::drop_no_session;
        int link = h.s->keys.has_current ? pick_link(h.s, h.len + uint32_t(proto::kDataOverhead), &why) : -1;
        if (link < 0 && why == Counter::drop_over_budget) return false;
        if (link < 0) drop(h.idx, why);
        else send_inner(h.s, unsigned(link), h.idx, h.len);
        return true;
    }

    bool release_resend(const Held& h) {
        Session* s = h.s;
        // Sealed under keys a fresh start has replaced: no use to the peer.
        if (pool.meta[h.idx].key_gen != s->key_gen || !usable_besides(s, h.failed)) {
            drop(h.idx, Counter::resend_dropped);
            return true;
        }
        auto admission = pool.meta[h.idx].light ? proto::Admission::Exempt : proto::Admission::Budgeted;
        int link = s->bond.pick_other_than(h.failed, now, h.len, 0, admission);
        if (link < 0) return false;
        resend_on(s, unsigned(link), h.idx, h.len, Counter::resent);
        return true;
    }

    // A session going away: what it held goes back to the pool.
    void release_held(const Session* s) {
        holds.remove_session(s, [&](uint32_t idx) { pool.put(idx); });
    }

    // Mode redundant: the sealed datagram sent on `first` goes out on every
    // other link too, whatever its health: a copy on a lossy or flapping
    // link is what this mode is for, and one on a dead link costs only its
    // bytes. The peer keeps the first copy to arrive (its replay window
    // drops the rest as drop_replay).
    static uint8_t redundant_links(const Session* s, unsigned first) {
        uint8_t mask = 0;
        for (unsigned j = 0; j < kMaxLinks; ++j)
            if (j != first && s->bond.exists(j)) mask |= uint8_t(1u << j);
        return mask;
    }

    // The sealed datagram in `idx`, byte for byte, on each link of `to`
    // (a bit per link), each copy counted as `counter`. A copy per link,
    // because one buffer can be in one send at a time here.
    void send_copies(Session* s, uint8_t to, uint32_t idx, Counter counter) {
        for (unsigned j = 0; to; ++j, to = uint8_t(to >> 1)) {
            if (!(to & 1u)) continue;
            if (!send_copy(s, j, idx)) return;
            counters.add(counter);
        }
    }

    // The sealed datagram in `idx`, byte for byte, in a buffer of its own
    // (one buffer is in one send at a time) on `link`. False if the pool is empty.
    bool send_copy(Session* s, unsigned link, uint32_t idx) {
        const uint32_t len = pool.meta[idx].len;
        uint32_t copy = pool.get();
        if (copy == kNoBuffer) { counters.add(Counter::no_buffer); return false; }
        std::memcpy(pool.data(copy), pool.data(idx), len);
        pool.meta[copy].keep = false;
        pool.meta[copy].len = len;
        s->bond.on_sent(link, now, len);
        send_datagram(s, link, copy, len);
        // Counted on its link like any datagram: a Feedback copy left out
        // made each end's wan0:wan1 in mode round-robin read 1.04 for 1.00.
        LinkCounters& lc = counters.links[link];
        bump(lc.tx_packets, 1);
        bump(lc.tx_bytes, len - proto::kDataOverhead);
        bump(s->stats.links[link].tx_bytes, len - proto::kDataOverhead);
        return true;
    }

    // ---- receiving (network -> TUN) -----------------------------------------

    void deliver(Session* s, const proto::ReorderEntry* entries, size_t n) {
        for (size_t i = 0; i < n; ++i) {
            uint32_t idx = entries[i].handle;
            if (idx == kPassedMark) {  // written when it arrived (pass_gap)
                --s->reorder_marks;
                continue;
            }
            uint32_t len = pool.meta[idx].len;
            if (len == 0) { pool.put(idx); continue; }  // keepalive or refused packet
            write_tun(idx, len);
            counters.add(Counter::rx_packets);
            counters.add(Counter::rx_bytes, len);
            bump(s->stats.rx_packets, 1);
            bump(s->stats.rx_bytes, len);
        }
    }

    void forward_handshake(uint32_t idx, int len, const sockaddr_in& from, unsigned link) {
        HandshakeDatagram hs;
        hs.from = from;
        hs.link = uint8_t(link);
        hs.len = uint16_t(std::min<int>(len, int(sizeof hs.bytes)));
        std::memcpy(hs.bytes, pool.data(idx), hs.len);
        pool.put(idx);
        if (len > int(sizeof hs.bytes) || !ch.handshakes.push(hs)) {
            counters.add(Counter::drop_handshake_queue);
            return;
        }
        counters.add(Counter::handshake_rx);
        events_pending = true;
    }

    Session* find_session(uint32_t id) {
        if (!is_server()) return client_session && client_session->id == id ? client_session : nullptr;
        auto it = by_id.find(id);
        return it == by_id.end() ? nullptr : it->second;
    }

    // A packet opened under the pending keys: the peer has the new keys, so
    // switch to them. A rekey goes on in the same sequence space (nothing is
    // reset, nothing in flight is lost); a fresh start (a client that lost
    // its state) begins the new key's sequence space afresh.
    void promote(Session* s) {
        if (s->keys.promote(now)) {
            counters.add(Counter::rekeys);
            s->key_uses.store(s->keys.uses, std::memory_order_relaxed);
            emit({Event::Kind::SessionConfirmed, s, s->id, 0});
            return;
        }
        release_sent(s);  // sealed under the old keys: no use to the peer now
        ++s->key_gen;     // and any still in flight are kept under the old generation
        size_t n = s->reorder.drain(released);
        deliver(s, released, n);
        s->tx_seq = 0;
        s->tx_ctl_seq = 0;
        s->replay = proto::ReplayWindow{};  // drain() above already restarted the reorder buffer at 0
        s->replay_ctl = proto::ReplayWindow{};
        // New keys: the peer's Feedback counters start again at 0 (a client
        // that re-handshakes has a fresh session), so older totals must not
        // make its reports look stale.
        s->bond.on_peer_restart();
        s->confirmed.store(true, std::memory_order_release);
        if (is_server()) by_ip[s->tunnel_ip] = s;
        counters.add(Counter::sessions_promoted);
        emit({Event::Kind::SessionConfirmed, s, s->id, 0});
    }

    // Opens the datagram under whichever of the session's keys sealed it
    // (promoting pending ones). Returns which, None with the drop counted;
    // `verdict`: the replay window's, for what a refusal does next.
    proto::KeyRing::Opened open_for_session(Session* s, const proto::Header& h, uint8_t* pkt, size_t len,
                                            size_t* payload_len, proto::ReplayVerdict& verdict) {
        verdict = replay_window(s, h.type).check(h.seq);
        bool fresh = verdict == proto::ReplayVerdict::Fresh;
        auto opened = s->keys.open(h, pkt, len, fresh, now, payload_len);
        switch (opened) {
        case proto::KeyRing::Opened::Current: break;
        case proto::KeyRing::Opened::Pending: promote(s); break;
        case proto::KeyRing::Opened::Previous: counters.add(Counter::rx_previous_key); break;
        case proto::KeyRing::Opened::None:
            counters.add(fresh || !s->keys.has_current              ? Counter::drop_bad_tag
                         : verdict == proto::ReplayVerdict::Duplicate ? Counter::drop_duplicate
                                                                      : Counter::drop_replay);
            break;
        }
        return opened;
    }

    // A data-channel datagram refused as a duplicate may be the original, on
    // its own link, of a copy that came first on another (a light copy, a
    // redundant copy, a resend): its link delivered it, and the peer counts
    // on that (proto::Bond::on_original_after_copy). Its tag is checked (no
    // decryption): at most one such a copy, a light copy a millisecond per
    // link.
    void count_original_after_copy(Session* s, const proto::Header& h, const uint8_t* pkt, size_t len,
                                   unsigned link, const sockaddr_in& from, proto::ReplayVerdict verdict) {
        if (proto::nonce_channel(h.type) == proto::kControlChannel || !s->keys.has_current) return;
        if (verdict != proto::ReplayVerdict::Duplicate) return;
        bool own_link = is_server() ? arrival_link(s, link, from) == link : h.link == link;
        if (!own_link || !s->keys.authentic_seen(h, pkt, len)) return;
        if (!s->bond.on_original_after_copy(link, now, uint32_t(len), h.seq)) return;
        counters.add(Counter::late_originals);
        bump(counters.links[link].rx_packets, 1);
        if (is_server()) follow_peer(s, link, from);
    }

    static proto::ReplayWindow& replay_window(Session* s, proto::PacketType t) {
        return proto::nonce_channel(t) == proto::kControlChannel ? s->replay_ctl : s->replay;
    }

    // The server accepts from a session only packets whose source is the
    // session's own tunnel address, so one client cannot speak for another.
    bool inner_source_allowed(const Session* s, const uint8_t* ip, size_t len) const {
        if (!is_server()) return true;
        if (len < 20 || (ip[0] >> 4) != 4) return false;
        return proto::get_be32(ip + 12) == s->tunnel_ip;
    }

    // The server numbers a packet's link by its header, except a packet that
    // comes from the address of another link of the session: that is a
    // copy the client sent again on that link after the header's link
    // stalled (resend.h), and it is counted, and followed, there.
    unsigned arrival_link(const Session* s, unsigned link, const sockaddr_in& from) const {
        uint64_t key = pack_addr(from);
        if (key == s->links[link].key.load(std::memory_order_relaxed)) return link;
        // Any other link that has this address (live or not): never move the
        // header's link onto an address another link of the session owns.
        for (unsigned j = 0; j < kMaxLinks; ++j)
            if (j != link && s->links[j].key.load(std::memory_order_relaxed) == key) return j;
        return link;
    }

    // Replies go where the last authenticated packet came from (NAT
    // rebinding, a new LTE address).
    void follow_peer(Session* s, unsigned link, const sockaddr_in& from) {
        PeerLink& p = s->links[link];
        p.last_rx_ns = now;
        p.retired = false;  // the client is using it
        uint64_t key = pack_addr(from);
        if (key == p.key.load(std::memory_order_relaxed)) return;
        p.addr = from;
        p.key.store(key, std::memory_order_relaxed);
    }

    // `link` is the link id the packet is for: the header's on the server (the
    // client's numbering), the socket it arrived on at the client.
    void on_sealed(uint32_t idx, size_t len, const proto::Header& h, unsigned link,
                   const sockaddr_in& from) {
        if (len < proto::kDataOverhead) return drop(idx, Counter::drop_short);
        Session* s = find_session(h.session_id);
        if (!s) return drop(idx, Counter::drop_unknown_session);
        uint8_t* pkt = pool.data(idx);
        size_t payload = 0;
        proto::ReplayVerdict replay{};
        auto opened = open_for_session(s, h, pkt, len, &payload, replay);
        if (opened == proto::KeyRing::Opened::None) {
            count_original_after_copy(s, h, pkt, len, link, from, replay);
            return pool.put(idx);
        }
        replay_window(s, h.type).commit(h.seq);
        // The client counts the server as heard only under the newest keys:
        // a server that never took up a rekey goes silent and is handshaken
        // with again, instead of living on old keys for ever.
        if (is_server() || opened != proto::KeyRing::Opened::Previous)
            s->last_rx_ns.store(now, std::memory_order_relaxed);
        if (is_server()) {
            link = arrival_link(s, link, from);
            follow_peer(s, link, from);
        }
        bump(counters.links[link].rx_packets, 1);
        bump(counters.links[link].rx_bytes, payload);
        bump(s->stats.links[link].rx_bytes, payload);
        s->bond.on_received(link, now, uint32_t(len), h.type != proto::PacketType::Feedback);
        if (proto::nonce_channel(h.type) != proto::kControlChannel) s->bond.on_data_seq(link, h.seq, h.link != link);
        if (proto::nonce_channel(h.type) == proto::kControlChannel)
            return on_control(s, link, idx, h.type, payload);

        uint32_t deliver_len = uint32_t(payload);
        if (h.type == proto::PacketType::Close) {
            counters.add(Counter::close_rx);
            emit({Event::Kind::PeerClosed, s, s->id, 0});
            deliver_len = 0;
        } else if (h.type == proto::PacketType::Keepalive || payload == 0) {
            counters.add(Counter::keepalive_rx);
            if (is_server() && payload >= 1) apply_client_policy(s, pkt + kHeaderSize, payload);
            deliver_len = 0;
        } else if (!inner_source_allowed(s, pkt + kHeaderSize, payload)) {
            counters.add(Counter::drop_spoofed_source);
            deliver_len = 0;  // still consumes its sequence number in the reorder buffer
        }
        pool.meta[idx].len = deliver_len;
        if (pass_gap(s, idx, h.seq, deliver_len)) return;
        // The reorder buffer would hold it (a number after the next one
        // expected): out of its slab into a buffer of its own, so no slab
        // waits on a gap.
        if (pool.is_sub(idx) && h.seq > s->reorder.next) {
            uint32_t own = pool.get();
            if (own == kNoBuffer) return drop(idx, Counter::no_buffer);
            std::memcpy(pool.data(own) + kHeaderSize, pool.data(idx) + kHeaderSize, deliver_len);
            pool.meta[own].len = deliver_len;
            pool.put(idx);
            idx = own;
            counters.add(Counter::gro_copied);
        }

        size_t n = 0;
        auto verdict = s->reorder.insert(h.seq, idx, now, released, &n);
        if (verdict == proto::ReorderBuffer::Insert::Late) {
            // Behind the point the buffer gave up at, yet never seen before
            // (the replay window said so): sent again after its link stalled,
            // or delivered by a slow link after its gap timed out. Out of
            // order beats lost: the inner TCP takes it.
            counters.add(Counter::late_delivered);
            proto::ReorderEntry late{idx, h.seq};
            return deliver(s, &late, 1);
        }
        if (verdict == proto::ReorderBuffer::Insert::Held) {
            counters.add(Counter::reorder_held);
            next_reorder_deadline = std::min(next_reorder_deadline, now + s->reorder.gap_timeout_ns);
        }
        deliver(s, released, n);
    }

    // The reorder buffer's mark for a number whose packet went to the TUN
    // when it arrived: the number counts as received, nothing is written.
    // Never a buffer index: the pool holds far fewer than 2^32 - 2 buffers.
    static constexpr uint32_t kPassedMark = kNoBuffer - 1;

    // A small ICMP packet (a ping; overtake.h may_pass_gap) that the
    // reorder buffer would hold behind a gap goes to the TUN now: the gap is
    // bulk data on a slower link, and waiting for it would add that link's
    // queue to the ping. Its number stays in the buffer as a mark, so the
    // gap logic sees it arrived. True: delivered.
    bool pass_gap(Session* s, uint32_t idx, uint64_t seq, uint32_t len) {
        if (len == 0 || seq <= s->reorder.next) return false;
        if (len + uint32_t(proto::kDataOverhead) > s->bond.sched.cfg.small_bytes) return false;
        if (!proto::may_pass_gap(pool.data(idx) + kHeaderSize, len)) return false;
        size_t n = 0;
        auto verdict = s->reorder.insert(seq, kPassedMark, now, released, &n);
        if (verdict != proto::ReorderBuffer::Insert::Late) ++s->reorder_marks;  // deliver() takes it off
        if (verdict == proto::ReorderBuffer::Insert::Held)
            next_reorder_deadline = std::min(next_reorder_deadline, now + s->reorder.gap_timeout_ns);
        deliver(s, released, n);  // what a full buffer gave up first, in order
        counters.add(Counter::reorder_passed);
        proto::ReorderEntry now_entry{idx, seq};
        deliver(s, &now_entry, 1);
        return true;
    }

    // Feedback and probes: acted on at once, never through the reorder buffer.
    // A probe's echo goes back in the same buffer, on the link it came in on.
    void on_control(Session* s, unsigned link, uint32_t idx, proto::PacketType type, size_t payload) {
        uint8_t* body = pool.data(idx) + kHeaderSize;
        if (type == proto::PacketType::Feedback) {
            counters.add(s->bond.on_feedback(now, body, payload) ? Counter::feedback_rx
                                                                  : Counter::drop_bad_control);
            pool.put(idx);
            uint8_t lossy = 0;
            if (uint8_t stalled = s->bond.take_stalled(&lossy)) resend_stalled(s, stalled, lossy);
            repair_lost(s);
            return;
        }
        size_t echo_len = payload;
        switch (s->bond.on_probe(link, now, body, payload, &echo_len, rx_ns)) {
        case proto::Bond::ProbeAction::SendEcho:
            if (!may_send(s)) break;
            counters.add(Counter::probe_echoed);
            return seal_and_send(s, link, idx, echo_len, proto::PacketType::Probe);
        case proto::Bond::ProbeAction::Sampled:
            counters.add(Counter::probe_rtt);
            if (rx_ns) counters.add(Counter::probe_rx_stamped);
            break;
        case proto::Bond::ProbeAction::Ignored: counters.add(Counter::drop_bad_control); break;
        }
        pool.put(idx);
    }

    // The server speaks only to confirmed sessions; the client to any it has keys for.
    bool may_send(Session* s) const {
        return s->keys.has_current && (!is_server() || s->confirmed.load(std::memory_order_relaxed));
    }

    void on_udp_recv(unsigned link, uint32_t idx, int res) {
        // A receive cancelled by RemoveLink (or one that raced it), or an
        // error (ECONNREFUSED while the server is down): the buffer goes back.
        if (!receive_done(link) || res < 0) return pool.put(idx);
        rx_ns = 0;  // a receive without a kernel stamp: never the one before's
        on_datagram(link, idx, size_t(res));
    }

    // A slab receive completed: its datagrams, back to back, each
    // UDP_GRO's segment size long (the last may be shorter), become handles
    // of their own and go their ways like any received datagram.
    void on_slab_recv(unsigned link, uint32_t slab, int res) {
        if (!receive_done(link)) return pool.put_slab(slab);
        if (res <= 0) return pool.put_slab(slab);
        SlabMeta& m = pool.slab_meta[slab];
        int seg = res;
        rx_ns = 0;  // this receive's stamp, or none: never the one before's
        for (cmsghdr* c = CMSG_FIRSTHDR(&m.msg); c; c = CMSG_NXTHDR(&m.msg, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) std::memcpy(&seg, CMSG_DATA(c), sizeof seg);
            rx_stamp(c);
        }
        split_slab(link, slab, 0, uint32_t(res), seg);
    }

    // A receive's SO_TIMESTAMPNS, on the monotonic clock, into rx_ns. One
    // that is in the future or over a second old (the real-time clock was
    // set meanwhile) is not believed.
    void rx_stamp(const cmsghdr* c) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) return;
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        int64_t mono = int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec - realtime_offset_ns;
        bool sane = mono > 0 && uint64_t(mono) <= now && now - uint64_t(mono) < 1'000'000'000u;
        rx_ns = sane ? uint64_t(mono) : 0;
    }

    // A completion of the multishot recvmsg. With IORING_CQE_F_MORE it goes
    // on; without, it has ended (the ring ran dry: ENOBUFS, or it was
    // cancelled) and refill_receives arms it again. Each one that carries a
    // slab holds io_uring_recvmsg_out, the name, the control message, then
    // the datagrams.
    void on_multishot_recv(unsigned link, const io_uring_cqe* cqe) {
        bool more = cqe->flags & IORING_CQE_F_MORE;
        uint32_t slab = kNoBuffer;
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            slab = pool.ring_base + (cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            --ring_avail;
            if (slab >= pool.slabs) return counters.add(Counter::drop_bad_header);  // never from the kernel
        }
        if (!more) {
            if (cqe->res == -ENOBUFS) counters.add(Counter::no_buffer);
            if (!receive_done(link)) {
                if (slab != kNoBuffer) pool.put_slab(slab);
                return;
            }
        } else if (!is_server() && links[link].removing) {
            if (slab != kNoBuffer) pool.put_slab(slab);
            return;
        }
        if (slab == kNoBuffer) return;
        int res = cqe->res;
        io_uring_recvmsg_out* o = res > 0 ? io_uring_recvmsg_validate(pool.slab_data(slab), res, &multishot_msg) : nullptr;
        if (!o) return pool.put_slab(slab);
        int seg = 0;
        rx_ns = 0;  // this receive's stamp, or none: never the one before's
        for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(o, &multishot_msg); c;
             c = io_uring_recvmsg_cmsg_nexthdr(o, &multishot_msg, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) std::memcpy(&seg, CMSG_DATA(c), sizeof seg);
            rx_stamp(c);
        }
        if (is_server()) {
            if (o->namelen < sizeof(sockaddr_in)) return pool.put_slab(slab);
            std::memcpy(&pool.slab_meta[slab].addr, io_uring_recvmsg_name(o), sizeof(sockaddr_in));
        }
        auto* payload = static_cast<uint8_t*>(io_uring_recvmsg_payload(o, &multishot_msg));
        uint32_t len = io_uring_recvmsg_payload_length(o, res, &multishot_msg);
        split_slab(link, slab, uint32_t(payload - pool.slab_data(slab)), len, seg ? seg : int(len));
    }

    // The `len` bytes at `base` in `slab`: datagrams back to back, each
    // UDP_GRO's segment size `seg` long (the last may be shorter). Each
    // becomes a handle of its own and goes its way like any received one.
    void split_slab(unsigned link, uint32_t slab, uint32_t base, uint32_t len, int seg) {
        if (len == 0) return pool.put_slab(slab);
        if (seg <= 0 || uint32_t(seg) > len) seg = int(len);
        unsigned n = unsigned((len + uint32_t(seg) - 1) / uint32_t(seg));
        if (n > kSlabSegments) {  // never from the kernel; a slab has no more handles
            counters.add(Counter::drop_bad_header, n);
            return pool.put_slab(slab);
        }
        if (n > 1) {
            counters.add(Counter::gro_receives);
            counters.add(Counter::gro_datagrams, n);
        }
        SlabMeta& m = pool.slab_meta[slab];
        m.refs = n;  // before any is handled: one put back early must not free the slab
        for (unsigned j = 0; j < n; ++j) {
            uint32_t off = uint32_t(j) * uint32_t(seg);
            uint32_t h = pool.sub(slab, j, base + off);
            if (is_server()) pool.meta[h].addr = m.addr;
            on_datagram(link, h, std::min<size_t>(size_t(seg), size_t(len - off)));
        }
    }

    // One receive fewer in flight; false if its link is being removed (the
    // caller gives its buffer back).
    bool receive_done(unsigned link) {
        if (is_server()) {
            --udp_recvs_armed;
            return true;
        }
        ClientLink& l = links[link];
        --l.recvs_armed;
        if (!l.removing) return true;
        finish_link_removal(link);
        return false;
    }

    // A received datagram (`len` bytes in buffer `idx`), on `link`.
    void on_datagram(unsigned link, uint32_t idx, size_t len) {
        const sockaddr_in& from = pool.meta[idx].addr;
        proto::Header h{};
        switch (proto::read_header(pool.data(idx), len, h)) {
        case proto::HeaderError::Ok: break;
        case proto::HeaderError::Short: return drop(idx, Counter::drop_short);
        default: return drop(idx, Counter::drop_bad_header);
        }
        switch (h.type) {
        case proto::PacketType::HandshakeInit:
            if (!is_server()) return drop(idx, Counter::drop_bad_header);
            return forward_handshake(idx, int(len), from, link);
        case proto::PacketType::HandshakeResp:
        case proto::PacketType::CookieReply:
            if (is_server()) return drop(idx, Counter::drop_bad_header);
            return forward_handshake(idx, int(len), from, link);
        case proto::PacketType::Data:
        case proto::PacketType::Keepalive:
        case proto::PacketType::Close:
        case proto::PacketType::Feedback:
        case proto::PacketType::Probe:
            return on_sealed(idx, len, h, is_server() ? h.link : link, from);
        }
    }

    // ---- commands from the control thread ------------------------------------

    // `owns_sent`: false for a duplicate handshake's session that shares a
    // live session's id (the kept datagrams are the live one's).
    void hand_back(Session* s, bool owns_sent = true) {
        if (owns_sent) release_sent(s);
        release_held(s);
        size_t n = s->reorder.drain(released);
        deliver(s, released, n);
        emit({Event::Kind::SessionFree, s, s->id, 0});
    }

    void install_session(Session* fresh) {
        fresh->reorder.gap_timeout_ns = cfg.reorder_gap_ns;
        fresh->bond.cfg.gap_unknown_ns = cfg.reorder_gap_ns;
        apply_timing(fresh);
        if (!is_server() && fresh->rekey) return rekey_client(fresh);
        if (!is_server()) {
            apply_client_links(fresh);
            // The client trusts new keys as soon as the server answered; its
            // first keepalive (sent at once) confirms them to the server.
            Session* old = client_session;
            client_session = fresh;
            if (old) hand_back(old);
            // On every link, so the server learns each link's address at once.
            for_each_link(fresh, [&](unsigned i) { send_control(fresh, i, proto::PacketType::Keepalive); });
            return;
        }
        auto it = by_id.find(fresh->id);
        if (it == by_id.end()) {
            by_id.emplace(fresh->id, fresh);
            return;
        }
        // A new handshake for a live session: keep serving the old keys until
        // the client proves it has the new ones.
        Session* live = it->second;
        live->keys.set_pending(fresh->keys.pending, fresh->keys.pending_continues);
        hand_back(fresh, false);
    }

    // Client: the server answered a rekey. Send under the new keys at once
    // (the server takes them up with the first packet it opens under them);
    // everything else about the session goes on.
    void rekey_client(Session* carrier) {
        Session* s = client_session;
        if (s && s->id == carrier->id) {
            s->keys.rekey(carrier->keys.current);
            s->key_uses.store(0, std::memory_order_relaxed);
            counters.add(Counter::rekeys);
            for_each_link(s, [&](unsigned i) { send_control(s, i, proto::PacketType::Keepalive); });
        }
        hand_back(carrier, false);
    }

    void apply_timing(Session* s) {
        s->bond.cfg.idle_probe_every_ns = probe_interval_ns;
        for (proto::LinkHealth& h : s->bond.health) h.cfg.stable_ns = link_hold_ns;
        s->bond.cfg.lossy_share = double(loss_limit_pm) / 1000;
        s->bond.cfg.repair_window_ns = repair_window_ns;
        s->bond.cfg.light_copy_every_ns = light_copies ? proto::BondConfig{}.light_copy_every_ns : 0;
        s->bond.sched.cfg.budget_ns = queue_budget_ns;
    }

    // A reload: the client's mode (the server hears it in the next
    // keepalives, sent at once) and both ends' probe timing.
    void set_policy(const Command& cmd) {
        mode = cmd.mode;
        probe_interval_ns = cmd.probe_interval_ns;
        link_hold_ns = cmd.link_hold_ns;
        loss_limit_pm = cmd.loss_limit_pm;
        repair_window_ns = cmd.repair_window_ns;
        light_copies = cmd.light_copies;
        queue_budget_ns = cmd.queue_budget_ns;
        queue_hold_ns = cmd.queue_hold_ns;
        if (client_session) {
            apply_timing(client_session);
            apply_client_links(client_session);
            announce_links();
        }
        for (auto& [id, s] : by_id) apply_timing(s);
    }

    // The user's overrides for a link, from AddLink or SetLinkOverrides.
    static void take_overrides(ClientLink& l, const Command& cmd) {
        l.weight = cmd.weight;
        l.max_rate_up_bps = cmd.max_rate_up_bps;
        l.max_rate_down_bps = cmd.max_rate_down_bps;
        l.priority = cmd.priority;
    }

    void set_link_overrides(const Command& cmd) {
        unsigned i = cmd.link;
        if (i >= kMaxLinks || !links[i].active) return;
        take_overrides(links[i], cmd);
        if (client_session) apply_client_links(client_session);
        announce_links();
    }

    void remove_session(uint32_t id) {
        if (!is_server()) {
            if (client_session && client_session->id == id) {
                hand_back(client_session);
                client_session = nullptr;
            }
            return;
        }
        auto it = by_id.find(id);
        if (it == by_id.end()) return;
        Session* s = it->second;
        by_id.erase(it);
        auto ip = by_ip.find(s->tunnel_ip);
        if (ip != by_ip.end() && ip->second == s) by_ip.erase(ip);
        hand_back(s);
    }

    // A clean stop tells each peer at once, so a client that restarts is not
    // refused its address while the server waits for the old session to go quiet.
    void close_session(Session* s) {
        bool may_send = s->keys.has_current && s->confirmed.load(std::memory_order_relaxed);
        if (!may_send) return;
        // On every link: one of them may be the one that is down.
        for_each_link(s, [&](unsigned i) { send_control(s, i, proto::PacketType::Close); });
    }

    // Calls f(link) for every link this session can send on now: the client's
    // active links, or the client links the server heard from lately.
    template <typename F>
    void for_each_link(Session* s, F f) {
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            bool usable = is_server() ? peer_link_live(s, i) : links[i].active;
            if (usable) f(i);
        }
    }

    void close_all() {
        if (client_session) close_session(client_session);
        for (auto& [id, s] : by_id) close_session(s);
    }

    // ---- client WAN links -------------------------------------------------------

    void add_link(const Command& cmd) {
        unsigned i = cmd.link;
        if (i >= kMaxLinks || links[i].active || links[i].removing) return;
        links[i] = ClientLink{};
        links[i].fd = cmd.fd;
        links[i].active = true;
        links[i].gso = gso;
        links[i].gro = enable_gro(cmd.fd);
        links[i].mtu = cmd.mtu;
        set_file(link_slot(i), cmd.fd);
        counters.links[i].reset();  // another interface may have had this slot
        take_overrides(links[i], cmd);
        if (client_session) apply_client_links(client_session);
        // At once: the server learns the new link's address and the new set.
        announce_links();
    }

    // Stops sending on link i and cancels its receives; LinkRemoved tells the
    // control thread when the fd is no longer referenced by any receive.
    void remove_link(unsigned i) {
        if (i >= kMaxLinks || !links[i].active) return;
        flush_sends();  // nothing of this link's may wait in a batch once its fd is given back
        links[i].active = false;
        links[i].removing = true;
        if (client_session) apply_client_links(client_session);
        announce_links();
        io_uring_sqe* q = sqe();
        if (q) {
            if (slot_set[link_slot(i)]) io_uring_prep_cancel_fd(q, int(link_slot(i)), IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
            else io_uring_prep_cancel_fd(q, links[i].fd, IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(q, make_tag(Op::Cancel, 0));
        }
        finish_link_removal(i);
    }

    void finish_link_removal(unsigned i) {
        ClientLink& l = links[i];
        if (!l.removing || l.recvs_armed > 0) return;
        l.removing = false;
        l.fd = -1;
        set_file(link_slot(i), -1);  // the table's reference too, before the control thread closes it
        emit({Event::Kind::LinkRemoved, nullptr, 0, 0, uint8_t(i)});
    }

    void on_wake() {
        Command cmd;
        while (ch.commands.pop(cmd)) {
            switch (cmd.kind) {
            case Command::Kind::InstallSession: install_session(cmd.session); break;
            case Command::Kind::RemoveSession: remove_session(cmd.session_id); break;
            case Command::Kind::CloseSession:
                if (Session* s = find_session(cmd.session_id)) close_session(s);
                remove_session(cmd.session_id);
                break;
            case Command::Kind::CloseAll: close_all(); break;
            case Command::Kind::AddLink: add_link(cmd); break;
            case Command::Kind::RemoveLink: remove_link(cmd.link); break;
            case Command::Kind::SetPolicy: set_policy(cmd); break;
            case Command::Kind::SetLinkOverrides: set_link_overrides(cmd); break;
            }
        }
        arm_wake();
    }

    // ---- timers ---------------------------------------------------------------

    void tick_session(Session* s) {
        if (is_server()) refresh_server_links(s);
        s->keys.expire(now);
        if (unsigned wiped = s->keys.take_wiped()) counters.add(Counter::keys_wiped, wiped);
        s->key_uses.store(s->keys.uses, std::memory_order_relaxed);
        s->bond.update(now);
        uint8_t lossy = 0;
        if (uint8_t failed = s->bond.take_stalled(&lossy)) resend_stalled(s, failed, lossy);
        repair_lost(s);  // a silent tail (Bond::update)
        s->reorder.gap_timeout_ns = s->bond.gap_timeout_ns();
        size_t n = s->reorder.expire(now, released);
        deliver(s, released, n);
        next_reorder_deadline = std::min(next_reorder_deadline, s->reorder.next_deadline());
        // Both sides keep an idle session alive so the peer can tell silence
        // from death.
        if (!may_send(s)) return;
        send_bonding_control(s);
        // Per link: an idle link still proves it is alive, and keeps its NAT open.
        for_each_link(s, [&](unsigned i) {
            uint64_t last = is_server() ? s->links[i].last_tx_ns : links[i].last_tx_ns;
            if (now - last >= cfg.keepalive_ns) send_control(s, i, proto::PacketType::Keepalive);
        });
    }

    // What the peer's scheduler needs from us (Feedback on what arrived per
    // link) and what ours needs (a probe per link for its RTT).
    void send_bonding_control(Session* s) {
        if (s->bond.feedback_due(now)) {
            int link = s->bond.control_link();
            uint32_t idx = link < 0 ? kNoBuffer : pool.get();
            if (idx != kNoBuffer) {
                size_t n = s->bond.make_feedback(now, pool.data(idx) + kHeaderSize, proto::kFeedbackMaxSize, &s->replay);
                seal_and_send(s, unsigned(link), idx, n, proto::PacketType::Feedback);
                // And byte for byte on a second link, if there is one: a link
                // cut before it turns quiet would swallow every Feedback, and
                // the peer would learn of the cut from its probes only. The
                // peer's replay window drops the later copy. (idx is ours
                // until its send's completion is reaped, after this returns.)
                int second = s->bond.control_link(link);
                if (second >= 0 && send_copy(s, unsigned(second), idx)) counters.add(Counter::feedback_copies);
                counters.add(Counter::feedback_tx);
            }
        }
        for (int link; (link = s->bond.probe_due(now)) >= 0;) {
            uint32_t idx = pool.get();
            if (idx == kNoBuffer) { counters.add(Counter::no_buffer); return; }
            size_t n = s->bond.make_probe(unsigned(link), now, pool.data(idx) + kHeaderSize, proto::kProbeSize);
            seal_and_send(s, unsigned(link), idx, n, proto::PacketType::Probe);
            counters.add(Counter::probe_tx);
        }
        // Path MTU: a size probe, padded to the size being tried (pmtu.h).
        uint16_t size = 0;
        for (int link; (link = s->bond.size_probe_due(now, &size)) >= 0;) {
            uint32_t idx = pool.get();
            if (idx == kNoBuffer) { counters.add(Counter::no_buffer); return; }
            size_t n = s->bond.make_size_probe(unsigned(link), now, size, pool.data(idx) + kHeaderSize,
                                               proto::kMaxInnerPacket);
            if (n == 0) { pool.put(idx); break; }
            seal_and_send(s, unsigned(link), idx, n, proto::PacketType::Probe);
            counters.add(Counter::pmtu_probes);
        }
    }

    // One session's links as its scheduler sees them (the server's per-client
    // D-Bus objects).
    static void publish_session_gauges(Session* s) {
        SessionStats& st = s->stats;
        st.mode.store(uint8_t(s->bond.sched.cfg.mode), std::memory_order_relaxed);
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            const proto::LinkHealth& h = s->bond.health[i];
            st.links[i].state.store(uint64_t(h.state()), std::memory_order_relaxed);
            st.links[i].srtt_us.store(s->bond.est[i].srtt_ns() / 1000, std::memory_order_relaxed);
            st.links[i].loss_pm.store(uint64_t(h.loss() * 1000 + 0.5), std::memory_order_relaxed);
        }
    }

    // Each link as the sessions' schedulers see it, for `stats:` and D-Bus:
    // the client's one session; on the server rates summed over sessions
    // (by the clients' link ids) and the largest smoothed RTT.
    void publish_link_gauges() {
        struct Gauges { uint64_t rate, pace, srtt, state, used, loss_pm, jitter_us, downs, stalls, stalls_undone, lossy, restarts, pmtu; };
        Gauges g[kMaxLinks]{};
        auto add = [&](Session* s) {
            publish_session_gauges(s);
            for (unsigned i = 0; i < kMaxLinks; ++i) {
                const proto::LinkHealth& h = s->bond.health[i];
                g[i].rate += s->bond.est[i].rate_bytes_per_s() * 8;
                if (s->bond.usable(i)) {
                    g[i].pace += s->bond.sched.pacing_rate(i) * 8;
                    g[i].used = 1;
                }
                g[i].srtt = std::max(g[i].srtt, s->bond.est[i].srtt_ns() / 1000);
                g[i].state = std::max<uint64_t>(g[i].state, uint64_t(h.state()));
                g[i].loss_pm = std::max(g[i].loss_pm, uint64_t(h.loss() * 1000 + 0.5));
                g[i].jitter_us = std::max(g[i].jitter_us, h.jitter_ns() / 1000);
                g[i].downs += h.downs();
                g[i].stalls += h.stalls();
                g[i].stalls_undone += h.stalls_undone();
                g[i].lossy += h.lossy();
                g[i].restarts += s->bond.sched.restarts(i);
                // The smallest over sessions (the client has one).
                uint64_t m = s->bond.pmtu[i].mtu();
                if (s->bond.exists(i)) g[i].pmtu = g[i].pmtu ? std::min(g[i].pmtu, m) : m;
            }
        };
        if (client_session) add(client_session);
        for (auto& [id, s] : by_id) add(s);
        for (unsigned i = 0; i < kMaxLinks; ++i) {
            LinkCounters& lc = counters.links[i];
            lc.rate_bps.store(g[i].rate, std::memory_order_relaxed);
            lc.pace_bps.store(g[i].pace, std::memory_order_relaxed);
            lc.srtt_us.store(g[i].srtt, std::memory_order_relaxed);
            lc.state.store(g[i].state, std::memory_order_relaxed);
            lc.used.store(g[i].used, std::memory_order_relaxed);
            lc.loss_pm.store(g[i].loss_pm, std::memory_order_relaxed);
            lc.jitter_us.store(g[i].jitter_us, std::memory_order_relaxed);
            lc.downs.store(g[i].downs, std::memory_order_relaxed);
            lc.stalls.store(g[i].stalls, std::memory_order_relaxed);
            lc.stalls_undone.store(g[i].stalls_undone, std::memory_order_relaxed);
            lc.lossy.store(g[i].lossy, std::memory_order_relaxed);
            lc.restarts.store(g[i].restarts, std::memory_order_relaxed);
            lc.pmtu.store(g[i].pmtu, std::memory_order_relaxed);
        }
    }

    void run_timers() {
        next_reorder_deadline = UINT64_MAX;
        if (client_session) tick_session(client_session);
        for (auto& [id, s] : by_id) tick_session(s);
        next_timer = now + kTimerPeriodNs;
    }

    void publish_reorder_stats() {
        uint64_t timeouts = 0, overflows = 0, held = 0;
        if (client_session) {
            timeouts += client_session->reorder.timeouts;
            overflows += client_session->reorder.overflows;
            held += client_session->reorder.held - client_session->reorder_marks;
        }
        for (auto& [id, s] : by_id) {
            timeouts += s->reorder.timeouts;
            overflows += s->reorder.overflows;
            held += s->reorder.held - s->reorder_marks;
        }
        counters.reorder_depth.store(held, std::memory_order_relaxed);
        // Sessions come and go; publish the live sum as a gauge-like total.
        counters.values[unsigned(Counter::reorder_timeouts)].store(timeouts, std::memory_order_relaxed);
        counters.values[unsigned(Counter::reorder_overflows)].store(overflows, std::memory_order_relaxed);
    }

    // ---- the loop -------------------------------------------------------------

    void on_completion(const io_uring_cqe* cqe) {
        if (!(cqe->flags & IORING_CQE_F_MORE)) --inflight;  // a multishot's last one counts
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        uint32_t idx = tag_index(tag);
        switch (tag_op(tag)) {
        case Op::TunRead: on_tun_read(idx, cqe->res); break;
        case Op::TunReadSlab: on_tun_slab(idx, cqe->res); break;
        case Op::UdpRecv: on_udp_recv(tag_link(tag), idx, cqe->res); break;
        case Op::UdpRecvSlab: on_slab_recv(tag_link(tag), idx, cqe->res); break;
        case Op::UdpRecvMulti: on_multishot_recv(tag_link(tag), cqe); break;
        case Op::UdpSend: on_sent(idx, cqe->res); break;
        case Op::UdpSendBatch: on_batch_sent(idx, cqe->res); break;
        case Op::TunWriteRun: on_tun_run_written(idx, cqe->res); break;
        case Op::TunWrite:
            if (cqe->res < 0) counters.add(Counter::drop_tun_write);
            pool.put(idx);
            break;
        case Op::Wake:
            wake_armed = false;
            if (!ch.stop.load(std::memory_order_relaxed)) on_wake();
            break;
        case Op::Cancel: break;
        }
    }

    static constexpr unsigned kReapChunk = 256;

    // Handles every completion available now, retiring them in chunks so the
    // queue drains while handlers submit new work.
    void reap_completions() {
        io_uring_cqe* batch[kReapChunk];
        for (;;) {
            unsigned n = io_uring_peek_batch_cqe(&ring, batch, kReapChunk);
            if (n == 0) return;
            for (unsigned i = 0; i < n; ++i) on_completion(batch[i]);
            io_uring_cq_advance(&ring, n);
        }
    }

    // Cancels every outstanding operation and waits for their completions, so
    // the kernel writes into no buffer after the pool is gone.
    void cancel_all() {
        flush_sends();
        flush_tun_writes();
        io_uring_sqe* s = sqe();
        if (s) {
            io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64(s, make_tag(Op::Cancel, 0));
        }
        uint64_t deadline = now_ns() + 2'000'000'000;
        while (inflight > 0 && now_ns() < deadline) {
            __kernel_timespec ts{0, 50'000'000};
            io_uring_cqe* first = nullptr;
            io_uring_submit_and_wait_timeout(&ring, &first, 1, &ts, nullptr);
            reap_completions();
        }
    }

    uint64_t wait_budget() const {
        uint64_t deadline = std::min(next_timer, next_reorder_deadline);
        if (deadline <= now) return 0;
        // Held packets: the links' queues drain by the millisecond.
        return std::min(deadline - now, holds.n ? kHoldPollNs : kMaxWaitNs);
    }

    int setup() {
        io_uring_params params{};
        params.flags = IORING_SETUP_CQSIZE;
        // Every in-flight operation owns a buffer (plus the wake read), and
        // completions are retired in chunks of kReapChunk, so a queue of twice
        // the pool can hold everything that may be outstanding at once even
        // when sends complete inline during a mid-pass submit.
        params.cq_entries = 1;
        while (params.cq_entries < 2 * (pool.count + kReapChunk + 2)) params.cq_entries <<= 1;
        int r = io_uring_queue_init_params(1024, &ring, &params);
        if (r < 0) return r;
        // The ring's own fd, registered: io_uring_enter takes no reference either.
        io_uring_register_ring_fd(&ring);
        if (cfg.fixed_files && io_uring_register_files_sparse(&ring, kFileSlots) == 0) {
            fixed_files = true;
            set_file(kSlotTun, cfg.tun_fd);
            if (is_server()) set_file(kSlotServer, cfg.udp_fd);
        }
        gso = cfg.offloads && kernel_has_udp_gso();
        server_gso = is_server() && gso;
        server_gro = is_server() && enable_gro(cfg.udp_fd);
        setup_multishot();
        for (uint32_t k = 0; k < kRunWrites; ++k) run_free[run_free_n++] = k;
        arm_wake();
        return 0;
    }

    // Multishot receives into a ring of GRO slabs, when offloads and the
    // config allow and the kernel has buffer rings (5.19); the slabs left
    // over serve the TUN's reads. Without, receives stay one per slab.
    void setup_multishot() {
        if (!cfg.offloads || !cfg.multishot) return;
        unsigned spare = pool.slabs > cfg.tun_slab_reads ? pool.slabs - cfg.tun_slab_reads : 0;
        unsigned n = kRingSlabsMax;
        while (n > spare) n >>= 1;
        if (n < 8) return;
        if (slab_ring.setup(&ring, n, kSlabGroup) < 0) return;
        pool.reserve_ring_slabs(n);
        multishot = true;
        multishot_msg = {};
        multishot_msg.msg_namelen = is_server() ? sizeof(sockaddr_in) : 0;
        multishot_msg.msg_controllen = kSlabControl;
        static_assert(sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_in) + kSlabControl <= kSlabHeadroom);
        return_ring_slabs();
    }

    void loop() {
        now = now_ns();
        realtime_offset_ns = clock_ns(CLOCK_REALTIME) - int64_t(now);
        next_timer = now;
        while (!ch.stop.load(std::memory_order_relaxed)) {
            refill_receives();
            if (!wake_armed) arm_wake();
            flush_backlog();
            release_held();
            flush_sends();
            flush_tun_writes();
            uint64_t budget = wait_budget();
            __kernel_timespec ts{int64_t(budget / 1'000'000'000u), int64_t(budget % 1'000'000'000u)};
            io_uring_cqe* first = nullptr;
            io_uring_submit_and_wait_timeout(&ring, &first, budget ? 1 : 0, &ts, nullptr);
            now = now_ns();
            realtime_offset_ns = clock_ns(CLOCK_REALTIME) - int64_t(now);
            reap_completions();
            if (now >= next_timer || now >= next_reorder_deadline) {
                bool tick = now >= next_timer;  // gauges on the 5 ms tick, not on every reorder deadline
                run_timers();
                if (tick) {
                    publish_reorder_stats();
                    publish_link_gauges();
                }
            }
            if (events_pending) {
                uint64_t one = 1;
                [[maybe_unused]] ssize_t w = ::write(ch.control_wake_fd, &one, sizeof one);
                events_pending = false;
            }
            ch.heartbeat.fetch_add(1, std::memory_order_relaxed);
        }
    }
};

void pin_to_cpu(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

}  // namespace

int run_worker(const WorkerConfig& cfg, Channel& channel) {
    // Named, so `top -H`, a debugger and the watchdog test can tell it apart.
    pthread_setname_np(pthread_self(), "onebox-dp");
    pin_to_cpu(cfg.cpu);
    Worker w(cfg, channel);
    int r = w.setup();
    if (r < 0) return r;
    w.loop();
    w.cancel_all();
    return 0;
}

}  // namespace onebox::dataplane
