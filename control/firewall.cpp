// firewall.cpp — onebox's nftables tables through libnftables (see firewall.h).
//
// Each install is one nft transaction: "table X; delete table X; table X {...}"
// creates the table if missing, drops whatever an earlier run left in it and
// writes the new contents, all or nothing. Re-running is therefore harmless.
#include "firewall.h"

#include <nftables/libnftables.h>

#include <cerrno>
#include <cstring>

#include "../proto/config.h"

namespace onebox::firewall {
namespace {

constexpr const char* kServerTable = "onebox-server";
constexpr const char* kClientTable = "onebox-client";

const char* table_name(bool server) { return server ? kServerTable : kClientTable; }

// Names go inside double quotes in the ruleset; the config parser allows less
// than this, but a caller could pass anything.
bool safe_ifname(const std::string& name) {
    if (name.empty() || name.size() > 15) return false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

// libnftables' error text is several lines (message, the offending command,
// a caret line); keep the "Error:" lines so the Status stays one line.
std::string summarize(const std::string& text) {
    std::string out, line;
    auto flush = [&] {
        if (line.find("Error:") != std::string::npos) out += (out.empty() ? "" : "; ") + line;
        line.clear();
    };
    for (char c : text) {
        if (c == '\n') flush();
        else line += c;
    }
    flush();
    return out.empty() ? text.substr(0, text.find('\n')) : out;
}

// nft reports kernel errors only as text ("Error: Could not process rule:
// Operation not permitted"); recover the errno from a line ending in ": <strerror>"
// so callers can tell EPERM and friends apart.
int errno_in(const std::string& text) {
    for (int e = 1; e < 134; ++e) {
        const std::string tail = std::string(": ") + std::strerror(e);
        for (size_t at = text.find(tail); at != std::string::npos; at = text.find(tail, at + 1)) {
            const size_t end = at + tail.size();
            if (end == text.size() || text[end] == '\n') return e;
        }
    }
    return 0;
}

// Runs one nft script. Output and errors are captured instead of printed, and
// nft's message goes into `what`. libnftables sets no reliable errno (syntax
// errors leave EAGAIN behind), so it is only trusted when nft said nothing.
Status run(const std::string& script, const std::string& what) {
    nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) return Status::fail(ENOMEM, what);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    errno = 0;
    const int rc = nft_run_cmd_from_buffer(ctx, script.c_str());
    const int saved_errno = errno;
    Status s;
    if (rc != 0) {
        const char* buffered = nft_ctx_get_error_buffer(ctx);
        const std::string text = buffered ? buffered : "";
        const int err = text.empty() ? saved_errno : errno_in(text);
        s = Status::fail(err ? err : EIO, what + (text.empty() ? "" : " (" + summarize(text) + ")"));
    }
    nft_ctx_free(ctx);
    return s;
}

std::string mss_clamp_chain(const std::string& tun) {
    // Clamp SYN and SYN-ACK both ways through the TUN to the route MTU, so TCP
    // never relies on PMTU discovery across the tunnel. Policy accept: this
    // chain only rewrites, it never blocks anything.
    return "  chain forward {\n"
           "    type filter hook forward priority 0; policy accept;\n"
           "    iifname \"" + tun + "\" tcp flags syn tcp option maxseg size set rt mtu\n"
           "    oifname \"" + tun + "\" tcp flags syn tcp option maxseg size set rt mtu\n"
           "  }\n";
}

std::string nat_chain(const std::string& rule) {
    return "  chain postrouting {\n"
           "    type nat hook postrouting priority srcnat; policy accept;\n"
           "    " + rule + "\n"
           "  }\n";
}

std::string replace_table_script(const std::string& table, const std::string& body) {
    return "table ip " + table + "\n" +
           "delete table ip " + table + "\n" +
           "table ip " + table + " {\n" + body + "}\n";
}

}  // namespace

Status install_server(const std::string& tun, uint32_t subnet, int prefix, const std::string& nat_interface,
                      bool masquerade) {
    const std::string what = std::string("install nftables table ip ") + kServerTable;
    if (!safe_ifname(tun) || (!nat_interface.empty() && !safe_ifname(nat_interface)) || prefix < 0 || prefix > 32) {
        return Status::fail(EINVAL, what);
    }
    const uint32_t mask = prefix == 0 ? 0 : ~0u << (32 - prefix);
    const std::string source = "ip saddr " + proto::format_ipv4(subnet & mask) + "/" + std::to_string(prefix);
    const std::string out = nat_interface.empty() ? "oifname != \"" + tun + "\"" : "oifname \"" + nat_interface + "\"";
    std::string body = masquerade ? nat_chain(source + " " + out + " masquerade") : std::string();
    body += mss_clamp_chain(tun);
    return run(replace_table_script(kServerTable, body), what);
}

Status install_server(const std::string& tun, uint32_t subnet, int prefix, const std::string& nat_interface) {
    return install_server(tun, subnet, prefix, nat_interface, true);
}

Status install_client(const std::string& tun, bool masquerade_lan) {
    const std::string what = std::string("install nftables table ip ") + kClientTable;
    if (!safe_ifname(tun)) return Status::fail(EINVAL, what);
    std::string body = masquerade_lan ? nat_chain("oifname \"" + tun + "\" masquerade") : std::string();
    body += mss_clamp_chain(tun);
    return run(replace_table_script(kClientTable, body), what);
}

Status remove(bool server) {
    const std::string table = table_name(server);
    // Adding the table first makes the delete succeed when it is absent.
    return run("table ip " + table + "\ndelete table ip " + table + "\n", "delete nftables table ip " + table);
}

bool table_exists(bool server) {
    return run(std::string("list table ip ") + table_name(server), "list table").ok();
}

}  // namespace onebox::firewall
