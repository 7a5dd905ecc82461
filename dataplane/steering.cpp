#include "steering.h"

#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace onebox::dataplane {

namespace {

// Offset of the session id in our header (proto/wire.h, PROTOCOL.md "Header").
constexpr uint32_t kSessionIdOffset = 4;
// Offset of the destination address in the inner IPv4 header.
constexpr int32_t kIpv4DstOffset = 16;

long bpf(int cmd, bpf_attr& attr) { return ::syscall(__NR_bpf, cmd, &attr, sizeof attr); }

constexpr bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}

}  // namespace

int attach_reuseport_steering(int fd, unsigned workers) {
    if (workers == 0) return -EINVAL;
    // A = the session id (a failed load, a datagram under 8 bytes, returns 0:
    // socket 0); A %= workers; return A. Handshakes carry the id too, so a
    // client's Init reaches its session's owner, which passes it to control.
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kSessionIdOffset),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, workers),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0) return -errno;
    return 0;
}

int open_tun_steering(int tun_fd, unsigned max_entries, TunSteering& out) {
    bpf_attr attr{};
    attr.map_type = BPF_MAP_TYPE_HASH;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = max_entries ? max_entries : 1;
    std::strncpy(attr.map_name, "onebox_steer", sizeof attr.map_name - 1);
    long mfd = bpf(BPF_MAP_CREATE, attr);
    if (mfd < 0) return -errno;
    out.map = Fd(int(mfd));

    // r6 = ctx (LD_ABS reads through it); r0 = ntohl(dst address);
    // key at fp-4; r0 = lookup(map, &key); return r0 ? *r0 : 0.
    const bpf_insn code[] = {
        insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0),
        insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0, kIpv4DstOffset),
        insn(BPF_STX | BPF_W | BPF_MEM, BPF_REG_10, BPF_REG_0, -4, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
        insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
        insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, out.map.get()),
        insn(0, 0, 0, 0, 0),
        insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
        insn(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 2, 0),
        insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_0, BPF_REG_0, 0, 0),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    static const char kLicense[] = "Dual BSD/GPL";
    attr = {};
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insn_cnt = sizeof code / sizeof code[0];
    attr.insns = reinterpret_cast<uint64_t>(code);
    attr.license = reinterpret_cast<uint64_t>(kLicense);
    std::strncpy(attr.prog_name, "onebox_steer", sizeof attr.prog_name - 1);
    long pfd = bpf(BPF_PROG_LOAD, attr);
    if (pfd < 0) return -errno;
    out.prog = Fd(int(pfd));
    int prog_fd = out.prog.get();
    if (::ioctl(tun_fd, TUNSETSTEERINGEBPF, &prog_fd) < 0) return -errno;
    return 0;
}

int detach_tun_steering(int tun_fd) {
    int none = -1;
    return ::ioctl(tun_fd, TUNSETSTEERINGEBPF, &none) < 0 ? -errno : 0;
}

int steer_address(const TunSteering& s, uint32_t ip, uint32_t queue) {
    bpf_attr attr{};
    attr.map_fd = uint32_t(s.map.get());
    attr.key = reinterpret_cast<uint64_t>(&ip);
    attr.value = reinterpret_cast<uint64_t>(&queue);
    attr.flags = BPF_ANY;
    return bpf(BPF_MAP_UPDATE_ELEM, attr) < 0 ? -errno : 0;
}

int unsteer_address(const TunSteering& s, uint32_t ip) {
    bpf_attr attr{};
    attr.map_fd = uint32_t(s.map.get());
    attr.key = reinterpret_cast<uint64_t>(&ip);
    if (bpf(BPF_MAP_DELETE_ELEM, attr) < 0 && errno != ENOENT) return -errno;
    return 0;
}

}  // namespace onebox::dataplane
