// linkemu — a user-space link emulator for the namespace lab.
//
//   linkemu [--ctl PATH] [--seed N] [--pool N] [--reorder]
//           [--both 'k=v ...'] [--up 'k=v ...'] [--down 'k=v ...'] IF_A IF_B
//   linkemu ctl PATH COMMAND...        send one control command, print the answer
//   linkemu offloads IFNAME off|on     tx checksum, TSO, GSO, GRO of IFNAME (see below)
//
// It runs inside one network namespace that holds two interfaces, A and B
// (veth ends, no addresses needed), and forwards every Ethernet frame from A
// to B ("up") and from B to A ("down") through raw AF_PACKET sockets, applying
// per direction:
//
//   rate=20mbit   serialization at that bit rate (whole frames, Ethernet header
//                 included, like tc); 0 = unlimited
//   queue=100ms   bound of the queue in front of the rate limiter, as waiting time
//                 (ms/us/s) or bytes (b/kb/mb, ×1000); frames beyond it are
//                 tail-dropped and counted (drop_queue)
//   delay=10ms    one-way propagation delay (after serialization)
//   jitter=2ms    random extra delay: uniform in [-j, +j] (dist=uniform, default)
//                 or normal with sigma j (dist=normal); never below zero total
//   reorder=0|1   0 (default): a frame never overtakes an earlier one of the
//                 same direction (its release time is raised to the previous
//                 one's, so when frames come closer together than the jitter
//                 the delays bunch up above the mean); 1: jitter may reorder
//   loss=1        random loss in percent (Bernoulli, seeded: --seed)
//   cut=0|1       drop everything
//
// A frame arrives when the kernel's receive timestamp says (SO_TIMESTAMPNS), not
// when the loop reads it, so an emulator that lost the CPU for a while still
// queues and drops as the link would have.
//
// Each direction keeps a min-heap of (release time, arrival number, frame) over a
// preallocated frame pool; the loop sleeps in ppoll() until the next release or
// the next frame/control request. Nothing is allocated per packet.
//
// Control: --ctl PATH listens on a UNIX stream socket. One command per line:
//   set up|down|both key=value...   (atomic: a bad key changes nothing)
//   show                            settings and counters, one line per direction,
//                                   with the queue's waiting time (median, p99, max)
//   reset                           zero the counters
//   help
// Answers are "ok", "error: ...", or the show lines. `linkemu ctl PATH 'show'`
// is a tiny client (exit 1 when the answer is an error), so scripts need no socat.
//
// Offloads: a frame handed to AF_PACKET from a veth whose sender has TSO/GSO
// or tx checksum offload on may be a 64 KB "superpacket" or carry an unfinished
// checksum. linkemu finishes such checksums itself (PACKET_VNET_HDR tells where
// they are), but cannot cut superpackets into frames: it drops them, counts them
// as drop_oversize and says so once. `linkemu offloads IF off` (run in the
// namespace of IF) turns those offloads off on the interfaces that feed it.
//
// Exit: SIGTERM/SIGINT stop it cleanly (final counters to stderr). Exit codes:
// 0 clean stop, 1 runtime failure, 2 bad command line.
#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int64_t kUs = 1000;
constexpr int64_t kMs = 1000 * kUs;
constexpr int64_t kSec = 1000 * kMs;
// struct virtio_net_hdr of <linux/virtio_net.h> (that header does not compile as
// C++): PACKET_VNET_HDR puts it in front of every frame we read or write.
struct VnetHdr {
    uint8_t flags;        // kVnetNeedsCsum: checksum at csum_start + csum_offset unfinished
    uint8_t gso_type;     // kVnetGsoNone unless the frame is a GSO superpacket
    uint16_t hdr_len, gso_size, csum_start, csum_offset;  // little-endian
};
static_assert(sizeof(VnetHdr) == 10);
constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetGsoNone = 0;    // VIRTIO_NET_HDR_GSO_NONE
constexpr size_t kVnet = sizeof(VnetHdr);
constexpr int kRxBudget = 256;                     // frames read per socket per loop turn
constexpr size_t kMaxCtlClients = 8;

int64_t ns_of(const timespec& ts) { return int64_t(ts.tv_sec) * kSec + ts.tv_nsec; }

int64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return ns_of(ts);
}

int64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }

// ------------------------------------------------------------ settings

struct Settings {
    uint64_t rate_bps = 0;     // 0 = unlimited
    int64_t delay_ns = 0;
    int64_t jitter_ns = 0;
    bool normal = false;       // jitter distribution: false uniform, true normal
    double loss_pct = 0;
    bool cut = false;
    bool reorder = false;
    int64_t queue_ns = 100 * kMs;  // queue bound as waiting time (when queue_bytes == 0)
    uint64_t queue_bytes = 0;      // queue bound in bytes (when non-zero)
};

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& ch : r) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return r;
}

// Splits "12.5mbit" into 12.5 and "mbit". False when there is no number.
bool split_number(std::string_view v, double& num, std::string& unit) {
    std::string s(v);
    char* end = nullptr;
    errno = 0;
    num = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || errno != 0 || !std::isfinite(num) || num < 0) return false;
    unit = lower(end);
    return true;
}

bool parse_rate(std::string_view v, uint64_t& out) {
    double n;
    std::string u;
    if (!split_number(v, n, u)) return false;
    double mul;
    if (u.empty() || u == "bit") mul = 1;
    else if (u == "k" || u == "kbit") mul = 1e3;
    else if (u == "m" || u == "mbit") mul = 1e6;
    else if (u == "g" || u == "gbit") mul = 1e9;
    else return false;
    double bps = n * mul;
    if (bps > 1e12 || (bps > 0 && bps < 1000)) return false;  // 1 kbit/s .. 1 Tbit/s
    out = uint64_t(std::llround(bps));
    return true;
}

// A time; a bare number is in milliseconds.
bool parse_time(std::string_view v, int64_t& out) {
    double n;
    std::string u;
    if (!split_number(v, n, u)) return false;
    double mul;
    if (u.empty() || u == "ms") mul = double(kMs);
    else if (u == "us") mul = double(kUs);
    else if (u == "s") mul = double(kSec);
    else return false;
    double ns = n * mul;
    if (ns > 600.0 * double(kSec)) return false;
    out = int64_t(std::llround(ns));
    return true;
}

bool parse_bool(std::string_view v, bool& out) {
    std::string s = lower(v);
    if (s == "1" || s == "on" || s == "yes" || s == "true") out = true;
    else if (s == "0" || s == "off" || s == "no" || s == "false") out = false;
    else return false;
    return true;
}

// queue=100ms | 64kb | 150000b
bool parse_queue(std::string_view v, Settings& s) {
    double n;
    std::string u;
    if (!split_number(v, n, u)) return false;
    double mul = 0;
    if (u == "b") mul = 1;
    else if (u == "kb") mul = 1e3;
    else if (u == "mb") mul = 1e6;
    if (mul != 0) {
        if (n * mul < 1 || n * mul > 1e9) return false;
        s.queue_bytes = uint64_t(std::llround(n * mul));
        return true;
    }
    int64_t ns;
    if (!parse_time(v, ns) || ns <= 0) return false;
    s.queue_ns = ns;
    s.queue_bytes = 0;
    return true;
}

// One "key=value" into s; on failure a one-line reason in err.
bool apply_kv(Settings& s, std::string_view kv, std::string& err) {
    auto eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) {
        err = "expected key=value, got '" + std::string(kv) + "'";
        return false;
    }
    std::string key = lower(kv.substr(0, eq));
    std::string_view val = kv.substr(eq + 1);
    bool ok = false;
    const char* want = "";
    if (key == "rate") {
        ok = parse_rate(val, s.rate_bps);
        want = "e.g. 20mbit, 500kbit, 1gbit; 0 = unlimited";
    } else if (key == "delay") {
        ok = parse_time(val, s.delay_ns);
        want = "e.g. 10ms, 500us (bare number = ms)";
    } else if (key == "jitter") {
        ok = parse_time(val, s.jitter_ns);
        want = "e.g. 2ms (bare number = ms)";
    } else if (key == "dist") {
        std::string d = lower(val);
        ok = d == "uniform" || d == "normal";
        if (ok) s.normal = d == "normal";
        want = "uniform or normal";
    } else if (key == "loss") {
        double n;
        std::string u;
        ok = split_number(val, n, u) && (u.empty() || u == "%") && n <= 100;
        if (ok) s.loss_pct = n;
        want = "a percentage 0..100, e.g. 1 or 0.5%";
    } else if (key == "cut") {
        ok = parse_bool(val, s.cut);
        want = "0 or 1";
    } else if (key == "reorder") {
        ok = parse_bool(val, s.reorder);
        want = "0 or 1";
    } else if (key == "queue") {
        ok = parse_queue(val, s);
        want = "a time (100ms) or bytes (64kb, 150000b)";
    } else {
        err = "unknown key '" + key + "' (want rate, delay, jitter, dist, loss, cut, reorder, queue)";
        return false;
    }
    if (!ok) err = "bad value for " + key + ": '" + std::string(val) + "' (want " + want + ")";
    return ok;
}

// Words separated by blanks or commas.
std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (char ch : s) {
        if (ch == ' ' || ch == '\t' || ch == ',' || ch == '\r' || ch == '\n') {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += ch;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::string fmt_rate(uint64_t bps) {
    char b[48];
    if (bps == 0) return "0";
    if (bps % 1000000000 == 0) std::snprintf(b, sizeof b, "%llugbit", (unsigned long long)(bps / 1000000000));
    else if (bps % 1000000 == 0) std::snprintf(b, sizeof b, "%llumbit", (unsigned long long)(bps / 1000000));
    else if (bps % 1000 == 0) std::snprintf(b, sizeof b, "%llukbit", (unsigned long long)(bps / 1000));
    else std::snprintf(b, sizeof b, "%llubit", (unsigned long long)bps);
    return b;
}

std::string fmt_time(int64_t ns) {
    char b[48];
    if (ns % kMs == 0) std::snprintf(b, sizeof b, "%lldms", (long long)(ns / kMs));
    else if (ns % kUs == 0) std::snprintf(b, sizeof b, "%lldus", (long long)(ns / kUs));
    else std::snprintf(b, sizeof b, "%lldns", (long long)ns);
    return b;
}

std::string fmt_settings(const Settings& s) {
    char b[320];
    std::string q = s.queue_bytes ? std::to_string(s.queue_bytes) + "b" : fmt_time(s.queue_ns);
    std::snprintf(b, sizeof b, "rate=%s delay=%s jitter=%s dist=%s loss=%g%% cut=%d reorder=%d queue=%s",
                  fmt_rate(s.rate_bps).c_str(), fmt_time(s.delay_ns).c_str(), fmt_time(s.jitter_ns).c_str(),
                  s.normal ? "normal" : "uniform", s.loss_pct, int(s.cut), int(s.reorder), q.c_str());
    return b;
}

// ------------------------------------------------------------ the emulated link

struct Counters {
    uint64_t rx_frames = 0, rx_bytes = 0;    // frames taken from the ingress interface
    uint64_t fwd_frames = 0, fwd_bytes = 0;  // frames handed to the egress interface
    uint64_t drop_loss = 0, drop_cut = 0, drop_queue = 0;
    uint64_t drop_nobuf = 0;                 // frame pool exhausted
    uint64_t drop_oversize = 0;              // bigger than a pool slot (GSO superpackets)
    uint64_t tx_errors = 0;                  // send() on the egress socket failed
    uint64_t kernel_drops = 0;               // the ingress socket's buffer overflowed
    // How long admitted frames waited in the queue before the rate limiter
    // took them, in 0.5 ms steps (the last step: that or longer): what a
    // ping crossing this link meets, to tell the link's queue apart from
    // queueing elsewhere. `show` prints its median, p99 and maximum.
    static constexpr int kWaitSteps = 400;
    static constexpr int64_t kWaitStepNs = 500'000;
    uint64_t wait_hist[kWaitSteps] = {};
    int64_t wait_max_ns = 0;
};

// The waiting time below which `q` (0-1) of the counted frames waited, in
// microseconds (the upper edge of its step, at most the maximum seen); 0
// with nothing counted.
int64_t wait_quantile_us(const Counters& c, double q) {
    uint64_t total = 0;
    for (uint64_t n : c.wait_hist) total += n;
    if (total == 0) return 0;
    uint64_t want = uint64_t(double(total) * q), seen = 0;
    for (int i = 0; i < Counters::kWaitSteps; i++) {
        seen += c.wait_hist[i];
        if (seen > want) return std::min<int64_t>((i + 1) * Counters::kWaitStepNs, c.wait_max_ns) / 1000;
    }
    return c.wait_max_ns / 1000;
}

struct Pending {
    int64_t release;
    uint64_t seq;
    uint32_t slot;
    uint32_t len;  // frame bytes (without the vnet header)
};
// std heap functions build a max-heap; "later" ordering makes the earliest the top.
bool later(const Pending& a, const Pending& b) {
    return a.release != b.release ? a.release > b.release : a.seq > b.seq;
}

struct Direction {
    const char* name = "";
    const char* from = "";
    const char* to = "";
    int rx_fd = -1, tx_fd = -1;
    Settings s;
    Counters c;
    uint8_t* pool = nullptr;      // pool_slots * slot_size bytes, mmap'ed
    size_t slot_size = 0;         // vnet header + largest frame
    std::vector<uint32_t> free_slots;
    std::vector<Pending> heap;    // capacity reserved for every slot: never reallocates
    std::vector<uint8_t> scratch; // one slot, for frames that find the pool empty
    int64_t link_free = 0;        // when the rate limiter finishes the last accepted frame
    int64_t last_arrival = 0;     // arrival time of the last frame read (arrival_time())
    int64_t last_release = 0;     // latest release time handed out (order keeping)
    uint64_t seq = 0;
    std::mt19937_64 rng;
    std::uniform_real_distribution<double> uni{0.0, 1.0};
    std::normal_distribution<double> gauss{0.0, 1.0};

    uint8_t* slot(uint32_t i) { return pool + size_t(i) * slot_size; }
};

bool g_warned_gso = false;

// Finish a checksum the sender left to "hardware" (CHECKSUM_PARTIAL): the field
// at start+off already holds the pseudo-header sum, so the one's-complement sum
// from start to the end, folded and inverted, is the checksum (as the kernel's
// skb_checksum_help does).
bool finish_checksum(uint8_t* f, size_t len, size_t start, size_t off) {
    if (start >= len || start + off + 2 > len) return false;
    uint64_t sum = 0;
    size_t i = start;
    for (; i + 1 < len; i += 2) sum += uint32_t(f[i]) << 8 | f[i + 1];
    if (i < len) sum += uint32_t(f[i]) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t c = uint16_t(~sum);
    if (c == 0) c = 0xffff;  // CSUM_MANGLED_0: 0 means "no checksum" for UDP
    f[start + off] = uint8_t(c >> 8);
    f[start + off + 1] = uint8_t(c);
    return true;
}

// A frame arrived at `now` into slot `sl` (vnet header + frame of len bytes): drop it or queue it.
void admit(Direction& d, uint32_t sl, uint32_t len, int64_t now) {
    const Settings& s = d.s;
    d.c.rx_frames++;
    d.c.rx_bytes += len;
    auto drop = [&](uint64_t& counter) {
        counter++;
        d.free_slots.push_back(sl);
    };
    if (s.cut) return drop(d.c.drop_cut);
    if (s.loss_pct > 0 && d.uni(d.rng) * 100.0 < s.loss_pct) return drop(d.c.drop_loss);

    int64_t sent = now;  // when the last bit has left the rate limiter
    if (s.rate_bps > 0) {
        int64_t start = std::max(now, d.link_free);
        int64_t tx = int64_t((uint64_t(len) * 8 * uint64_t(kSec) + s.rate_bps - 1) / s.rate_bps);
        int64_t backlog = start - now;  // waiting time in the queue
        bool over = s.queue_bytes ? uint64_t(double(backlog) * double(s.rate_bps) / 8e9) + len > s.queue_bytes
                                  : backlog + tx > s.queue_ns;
        if (backlog > 0 && over) return drop(d.c.drop_queue);
        d.c.wait_hist[std::min<int64_t>(backlog / Counters::kWaitStepNs, Counters::kWaitSteps - 1)]++;
        d.c.wait_max_ns = std::max(d.c.wait_max_ns, backlog);
        d.link_free = start + tx;
        sent = d.link_free;
    } else {
        d.link_free = now;
    }
    int64_t extra = s.delay_ns;
    if (s.jitter_ns > 0) {
        double j = s.normal ? d.gauss(d.rng) : d.uni(d.rng) * 2.0 - 1.0;
        extra += int64_t(j * double(s.jitter_ns));
    }
    int64_t release = sent + std::max<int64_t>(extra, 0);
    if (!s.reorder) release = std::max(release, d.last_release);
    d.last_release = std::max(d.last_release, release);
    d.heap.push_back(Pending{release, d.seq++, sl, len});
    std::push_heap(d.heap.begin(), d.heap.end(), later);
}

// When the frame of `mh` reached the socket, on the monotonic clock: the
// kernel's receive timestamp (SO_TIMESTAMPNS, realtime), moved back by its age.
// A frame must be admitted at the time it arrived, not when this loop got to
// it: after the emulator lost the CPU for 50 ms, the frames that came
// meanwhile would otherwise all arrive "now" at once, as a burst the sender
// never sent, and overflow the queue. Without a timestamp, now. Never before
// the previous frame (a realtime clock step must not reorder the queue).
int64_t arrival_time(Direction& d, const msghdr& mh) {
    int64_t now = now_ns(), at = now;
    for (const cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&mh), const_cast<cmsghdr*>(c))) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
        timespec ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        int64_t age = clock_ns(CLOCK_REALTIME) - ns_of(ts);
        at = now - std::clamp<int64_t>(age, 0, kSec);
    }
    at = std::max(at, d.last_arrival);
    d.last_arrival = at;
    return at;
}

// Read up to kRxBudget frames from d.rx_fd.
void receive(Direction& d) {
    for (int k = 0; k < kRxBudget; k++) {
        if (d.free_slots.empty()) {
            // No slot: read into the scratch buffer only to count and drop.
            ssize_t n = recv(d.rx_fd, d.scratch.data(), d.scratch.size(), MSG_DONTWAIT);
            if (n < 0) return;
            d.c.rx_frames++;
            d.c.rx_bytes += size_t(n) > kVnet ? size_t(n) - kVnet : 0;
            d.c.drop_nobuf++;
            continue;
        }
        uint32_t sl = d.free_slots.back();
        uint8_t* buf = d.slot(sl);
        sockaddr_ll from{};
        iovec iov{buf, d.slot_size};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
        msghdr mh{};
        mh.msg_name = &from;
        mh.msg_namelen = sizeof from;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        ssize_t n = recvmsg(d.rx_fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                std::fprintf(stderr, "linkemu: recv on %s: %s\n", d.from, std::strerror(errno));
            return;
        }
        if (from.sll_pkttype == PACKET_OUTGOING) continue;  // our own sends (kernels without IGNORE_OUTGOING)
        if (size_t(n) < kVnet + ETH_HLEN) continue;
        size_t len = size_t(n) - kVnet;
        VnetHdr vh;
        std::memcpy(&vh, buf, kVnet);
        if (size_t(n) > d.slot_size || (mh.msg_flags & MSG_TRUNC) || vh.gso_type != kVnetGsoNone) {
            d.c.rx_frames++;
            d.c.rx_bytes += len;
            d.c.drop_oversize++;
            if (!g_warned_gso) {
                g_warned_gso = true;
                std::fprintf(stderr,
                             "linkemu: dropping a %zu-byte frame from %s (GSO superpacket or larger than the "
                             "MTU); turn off offloads where it comes from: linkemu offloads IF off\n",
                             len, d.from);
            }
            continue;
        }
        d.free_slots.pop_back();
        if (vh.flags & kVnetNeedsCsum)
            finish_checksum(buf + kVnet, len, le16toh(vh.csum_start), le16toh(vh.csum_offset));
        admit(d, sl, uint32_t(len), arrival_time(d, mh));
    }
}

// Send every frame whose release time has come.
void release_due(Direction& d, int64_t now) {
    while (!d.heap.empty() && d.heap.front().release <= now) {
        std::pop_heap(d.heap.begin(), d.heap.end(), later);
        Pending p = d.heap.back();
        d.heap.pop_back();
        uint8_t* buf = d.slot(p.slot);
        std::memset(buf, 0, kVnet);  // a plain frame: no checksum or GSO work for the kernel
        if (send(d.tx_fd, buf, kVnet + p.len, MSG_DONTWAIT) < 0) {
            d.c.tx_errors++;
        } else {
            d.c.fwd_frames++;
            d.c.fwd_bytes += p.len;
        }
        d.free_slots.push_back(p.slot);
    }
}

void collect_kernel_drops(Direction& d) {
    tpacket_stats st{};
    socklen_t sl = sizeof st;
    if (getsockopt(d.rx_fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) d.c.kernel_drops += st.tp_drops;
}

std::string show_line(Direction& d) {
    collect_kernel_drops(d);
    const Counters& c = d.c;
    char b[768];
    std::snprintf(b, sizeof b,
                  "%s %s->%s %s | rx_frames=%llu rx_bytes=%llu fwd_frames=%llu fwd_bytes=%llu drop_loss=%llu "
                  "drop_cut=%llu drop_queue=%llu drop_nobuf=%llu drop_oversize=%llu tx_errors=%llu "
                  "kernel_drops=%llu queued=%zu backlog_us=%lld wait_p50_us=%lld wait_p99_us=%lld wait_max_us=%lld",
                  d.name, d.from, d.to, fmt_settings(d.s).c_str(), (unsigned long long)c.rx_frames,
                  (unsigned long long)c.rx_bytes, (unsigned long long)c.fwd_frames,
                  (unsigned long long)c.fwd_bytes, (unsigned long long)c.drop_loss,
                  (unsigned long long)c.drop_cut, (unsigned long long)c.drop_queue,
                  (unsigned long long)c.drop_nobuf, (unsigned long long)c.drop_oversize,
                  (unsigned long long)c.tx_errors, (unsigned long long)c.kernel_drops, d.heap.size(),
                  (long long)(std::max<int64_t>(d.link_free - now_ns(), 0) / 1000),
                  (long long)wait_quantile_us(c, 0.5), (long long)wait_quantile_us(c, 0.99),
                  (long long)(c.wait_max_ns / 1000));
    return b;
}

// ------------------------------------------------------------ control commands

const char* kHelp =
    "commands: set up|down|both key=value... | show | reset | help\n"
    "keys: rate=20mbit (0 = unlimited) delay=10ms jitter=2ms dist=uniform|normal loss=1 (percent) "
    "cut=0|1 reorder=0|1 queue=100ms|64kb\n";

// "set DIR k=v..." into the directions named by DIR; nothing changes on error.
bool apply_set(Direction* dirs, const std::vector<std::string>& w, size_t first, std::string& err) {
    if (w.size() <= first) {
        err = "set: missing direction (up, down or both)";
        return false;
    }
    std::string which = lower(w[first]);
    bool up = which == "up" || which == "both", down = which == "down" || which == "both";
    if (!up && !down) {
        err = "set: unknown direction '" + w[first] + "' (want up, down or both)";
        return false;
    }
    if (w.size() <= first + 1) {
        err = "set: no key=value given";
        return false;
    }
    Settings nu = dirs[0].s, nd = dirs[1].s;
    for (size_t i = first + 1; i < w.size(); i++)
        if (!apply_kv(nu, w[i], err) || !apply_kv(nd, w[i], err)) return false;
    if (up) dirs[0].s = nu;
    if (down) dirs[1].s = nd;
    return true;
}

std::string handle_command(Direction* dirs, std::string_view line) {
    auto w = words(line);
    if (w.empty()) return "";
    std::string cmd = lower(w[0]);
    if (cmd == "show") return show_line(dirs[0]) + "\n" + show_line(dirs[1]) + "\n";
    if (cmd == "help") return kHelp;
    if (cmd == "reset") {
        for (int i = 0; i < 2; i++) {
            collect_kernel_drops(dirs[i]);
            dirs[i].c = Counters{};
        }
        return "ok\n";
    }
    if (cmd == "set") {
        std::string err;
        if (!apply_set(dirs, w, 1, err)) return "error: " + err + "\n";
        return "ok\n";
    }
    return "error: unknown command '" + w[0] + "' (want set, show, reset, help)\n";
}

struct CtlClient {
    int fd = -1;
    std::string in;
};

// ------------------------------------------------------------ setup helpers

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "linkemu: %s (see linkemu --help)\n", msg.c_str());
    std::exit(2);
}

const char* kUsage =
    "usage: linkemu [--ctl PATH] [--seed N] [--pool N] [--reorder]\n"
    "               [--both 'k=v ...'] [--up 'k=v ...'] [--down 'k=v ...'] IF_A IF_B\n"
    "       linkemu ctl PATH COMMAND...\n"
    "       linkemu offloads IFNAME off|on\n"
    "Forwards every frame IF_A -> IF_B (\"up\") and IF_B -> IF_A (\"down\") with per-direction\n"
    "rate, queue, delay, jitter, loss and cut; changeable at run time through --ctl.\n";

// Raw socket bound to ifname, promiscuous, with vnet headers. Exits on failure.
int open_port(const char* ifname, unsigned& mtu) {
    unsigned idx = if_nametoindex(ifname);
    if (idx == 0) {
        std::fprintf(stderr, "linkemu: no interface '%s' in this network namespace\n", ifname);
        std::exit(1);
    }
    // Protocol 0 first: the socket receives nothing until bind names the interface.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        std::fprintf(stderr, "linkemu: AF_PACKET socket: %s (needs CAP_NET_RAW)\n", std::strerror(errno));
        std::exit(1);
    }
    auto fail = [&](const char* what) {
        std::fprintf(stderr, "linkemu: %s on %s: %s\n", what, ifname, std::strerror(errno));
        std::exit(1);
    };
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) fail("SIOCGIFFLAGS");
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) fail("setting the interface up");
        std::fprintf(stderr, "linkemu: set %s up\n", ifname);
    }
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) fail("SIOCGIFMTU");
    mtu = unsigned(ifr.ifr_mtu);
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) fail("PACKET_VNET_HDR");
    // Not fatal on old kernels: receive() also skips PACKET_OUTGOING.
    (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    // Not fatal either: without it a frame arrives when it is read (arrival_time()).
    (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    int bufsz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = int(idx);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) fail("bind");
    // veth hands a frame for another MAC to the packet socket only in promiscuous mode.
    packet_mreq mr{};
    mr.mr_ifindex = int(idx);
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) fail("PACKET_MR_PROMISC");
    return fd;
}

int open_ctl(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) usage_error("--ctl path too long: " + path);
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    struct stat st{};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) usage_error("--ctl " + path + " exists and is not a socket");
        unlink(path.c_str());  // a stale socket of an earlier run
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(fd, 8) < 0) {
        std::fprintf(stderr, "linkemu: control socket %s: %s\n", path.c_str(), std::strerror(errno));
        std::exit(1);
    }
    chmod(path.c_str(), 0600);
    return fd;
}

// ------------------------------------------------------------ subcommands

int cmd_ctl(int argc, char** argv) {
    if (argc < 4) usage_error("usage: linkemu ctl PATH COMMAND...");
    std::string path = argv[2], line;
    for (int i = 3; i < argc; i++) line += std::string(i > 3 ? " " : "") + argv[i];
    line += "\n";
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) usage_error("control path too long: " + path);
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        std::fprintf(stderr, "linkemu: cannot connect to %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != ssize_t(line.size())) {
        std::fprintf(stderr, "linkemu: send to %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    shutdown(fd, SHUT_WR);
    std::string reply;
    char buf[4096];
    int64_t deadline = now_ns() + 5 * kSec;
    for (;;) {
        int64_t left = deadline - now_ns();
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, int(left / kMs) + 1) <= 0) {
            std::fprintf(stderr, "linkemu: no answer from %s within 5 s\n", path.c_str());
            return 1;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        reply.append(buf, size_t(n));
    }
    close(fd);
    std::fputs(reply.c_str(), stdout);
    return reply.rfind("error", 0) == 0 ? 1 : 0;
}

int cmd_offloads(int argc, char** argv) {
    if (argc != 4) usage_error("usage: linkemu offloads IFNAME off|on");
    bool on;
    if (!parse_bool(argv[3], on)) usage_error(std::string("offloads: want off or on, got '") + argv[3] + "'");
    if (if_nametoindex(argv[2]) == 0) {
        std::fprintf(stderr, "linkemu: no interface '%s' in this network namespace\n", argv[2]);
        return 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::fprintf(stderr, "linkemu: socket: %s\n", std::strerror(errno));
        return 1;
    }
    struct Feature {
        uint32_t cmd;
        const char* name;
    };
    // tx checksum first: without it the kernel drops TSO by itself.
    const Feature features[] = {{ETHTOOL_STXCSUM, "tx-checksumming"},
                                {ETHTOOL_STSO, "tcp-segmentation-offload"},
                                {ETHTOOL_SGSO, "generic-segmentation-offload"},
                                {ETHTOOL_SGRO, "generic-receive-offload"}};
    int rc = 0;
    for (const auto& f : features) {
        ethtool_value ev{};
        ev.cmd = f.cmd;
        ev.data = on ? 1 : 0;
        ifreq ifr{};
        std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[2]);
        ifr.ifr_data = reinterpret_cast<char*>(&ev);
        if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) {
            std::fprintf(stderr, "linkemu: %s: setting %s %s: %s\n", argv[2], f.name, on ? "on" : "off",
                         std::strerror(errno));
            rc = 1;
        }
    }
    close(fd);
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "ctl") == 0) return cmd_ctl(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "offloads") == 0) return cmd_offloads(argc, argv);

    std::string ctl_path;
    uint64_t seed = 1;
    size_t pool_slots = 8192;
    std::vector<const char*> ifs;
    Direction dirs[2];
    dirs[0].name = "up";
    dirs[1].name = "down";
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            std::fputs(kHelp, stdout);
            return 0;
        } else if (a == "--ctl") {
            ctl_path = value();
        } else if (a == "--seed") {
            std::string v = value();
            char* end = nullptr;
            seed = std::strtoull(v.c_str(), &end, 10);
            if (v.empty() || *end) usage_error("bad --seed '" + v + "' (want an integer)");
        } else if (a == "--pool") {
            std::string v = value();
            char* end = nullptr;
            unsigned long long n = std::strtoull(v.c_str(), &end, 10);
            if (v.empty() || *end || n < 16 || n > (1u << 20)) usage_error("bad --pool '" + v + "' (want 16..1048576 frames)");
            pool_slots = size_t(n);
        } else if (a == "--reorder") {
            dirs[0].s.reorder = dirs[1].s.reorder = true;
        } else if (a == "--up" || a == "--down" || a == "--both") {
            std::vector<std::string> w{"set", a.substr(2)};
            for (auto& kv : words(value())) w.push_back(kv);
            std::string err;
            if (!apply_set(dirs, w, 1, err)) usage_error(a + ": " + err);
        } else if (!a.empty() && a[0] == '-') {
            usage_error("unknown option '" + a + "'");
        } else {
            ifs.push_back(argv[i]);
        }
    }
    if (ifs.size() != 2) usage_error("need exactly two interfaces, IF_A and IF_B");
    if (std::strcmp(ifs[0], ifs[1]) == 0) usage_error("IF_A and IF_B are the same interface");

    // Signals through a signalfd: the loop sees them like any other event.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // wake-ups on time, not 50 us late

    unsigned mtu_a = 0, mtu_b = 0;
    int fd_a = open_port(ifs[0], mtu_a);
    int fd_b = open_port(ifs[1], mtu_b);
    // A slot holds the vnet header and the largest frame either side can carry.
    size_t slot = (kVnet + std::max(mtu_a, mtu_b) + ETH_HLEN + 4 + 63) / 64 * 64;
    slot = std::max<size_t>(slot, 2048);
    for (int i = 0; i < 2; i++) {
        Direction& d = dirs[i];
        d.from = ifs[i];
        d.to = ifs[1 - i];
        d.rx_fd = i == 0 ? fd_a : fd_b;
        d.tx_fd = i == 0 ? fd_b : fd_a;
        d.slot_size = slot;
        // mmap: pages are only touched (and paid for) when the queue gets that deep.
        void* mem = mmap(nullptr, pool_slots * slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            std::fprintf(stderr, "linkemu: frame pool of %zu x %zu bytes: %s\n", pool_slots, slot,
                         std::strerror(errno));
            return 1;
        }
        d.pool = static_cast<uint8_t*>(mem);
        d.free_slots.reserve(pool_slots);
        for (size_t k = pool_slots; k-- > 0;) d.free_slots.push_back(uint32_t(k));
        d.heap.reserve(pool_slots);
        d.scratch.resize(slot);
        d.rng.seed(seed * 2 + uint64_t(i));
    }
    int ctl_fd = ctl_path.empty() ? -1 : open_ctl(ctl_path);
    std::vector<CtlClient> clients;
    clients.reserve(kMaxCtlClients);

    std::fprintf(stderr, "linkemu: forwarding %s <-> %s, pool %zu x %zu bytes per direction, seed %llu%s%s\n",
                 ifs[0], ifs[1], pool_slots, slot, (unsigned long long)seed, ctl_path.empty() ? "" : ", control ",
                 ctl_path.c_str());
    for (auto& d : dirs) std::fprintf(stderr, "linkemu: %s %s\n", d.name, fmt_settings(d.s).c_str());

    bool stop = false;
    std::vector<pollfd> pfds;
    pfds.reserve(4 + kMaxCtlClients);
    while (!stop) {
        int64_t now = now_ns();
        for (auto& d : dirs) release_due(d, now);
        int64_t next = INT64_MAX;
        for (auto& d : dirs)
            if (!d.heap.empty()) next = std::min(next, d.heap.front().release);
        timespec ts{}, *tsp = nullptr;
        if (next != INT64_MAX) {
            int64_t wait = std::max<int64_t>(0, next - now_ns());
            ts.tv_sec = time_t(wait / kSec);
            ts.tv_nsec = long(wait % kSec);
            tsp = &ts;
        }
        pfds.clear();
        pfds.push_back({fd_a, POLLIN, 0});
        pfds.push_back({fd_b, POLLIN, 0});
        pfds.push_back({sfd, POLLIN, 0});
        if (ctl_fd >= 0) pfds.push_back({ctl_fd, POLLIN, 0});
        for (auto& c : clients) pfds.push_back({c.fd, POLLIN, 0});
        int r = ppoll(pfds.data(), pfds.size(), tsp, nullptr);
        if (r < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "linkemu: ppoll: %s\n", std::strerror(errno));
            return 1;
        }
        if (r == 0) continue;
        if (pfds[0].revents) receive(dirs[0]);
        if (pfds[1].revents) receive(dirs[1]);
        if (pfds[2].revents) {
            signalfd_siginfo si{};
            if (read(sfd, &si, sizeof si) > 0) {
                std::fprintf(stderr, "linkemu: signal %u, stopping\n", si.ssi_signo);
                stop = true;
            }
        }
        if (ctl_fd < 0) continue;
        // Control clients first (their pollfds follow the listener's), then new ones.
        for (size_t k = clients.size(); k-- > 0;) {
            if (!pfds[4 + k].revents) continue;
            CtlClient& c = clients[k];
            char buf[1024];
            ssize_t n = read(c.fd, buf, sizeof buf);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            bool eof = n <= 0;
            if (n > 0) c.in.append(buf, size_t(n));
            if (eof && !c.in.empty() && c.in.back() != '\n') c.in += '\n';
            size_t nl;
            while ((nl = c.in.find('\n')) != std::string::npos) {
                std::string reply = handle_command(dirs, std::string_view(c.in).substr(0, nl));
                c.in.erase(0, nl + 1);
                if (!reply.empty()) (void)send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            }
            if (eof || c.in.size() > 4096) {
                close(c.fd);
                clients.erase(clients.begin() + long(k));
            }
        }
        if (pfds[3].revents) {
            int cfd = accept4(ctl_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (cfd >= 0) {
                if (clients.size() >= kMaxCtlClients) {
                    const char* busy = "error: too many control connections\n";
                    (void)send(cfd, busy, std::strlen(busy), MSG_NOSIGNAL | MSG_DONTWAIT);
                    close(cfd);
                } else {
                    clients.push_back(CtlClient{cfd, {}});
                }
            }
        }
    }
    for (auto& d : dirs) std::fprintf(stderr, "linkemu: final %s\n", show_line(d).c_str());
    for (auto& c : clients) close(c.fd);
    if (ctl_fd >= 0) {
        close(ctl_fd);
        unlink(ctl_path.c_str());
    }
    close(fd_a);
    close(fd_b);
    return 0;
}
