#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_ping: ping the internet host from the client namespace through the tunnel.
# Proof that it really is the tunnel: the server's rx/tx counters grow by at
# least the pings sent, no ICMP crosses the ISP router unencapsulated (nft
# counter wan_icmp in the rtr namespace), and a UDP datagram sent from the
# client reaches the internet host with the server's address (192.0.2.2) as
# its source, not the ISP NAT's (192.0.2.1).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init ping

lab_tunnel_up || lab_fail "tunnel did not come up"

N=20
icmp0=$(lab_rtr_counter wan_icmp)
s0=$(daemon_stats server) || lab_fail "no stats line from the server after SIGUSR1"
echo "server stats before: $s0"
out=$(lab_exec cli timeout 20 ping -n -c "$N" -i 0.2 -W 2 "$LAB_INET_IP" 2>&1)
echo "$out" | tail -n 2
recv=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
s1=$(daemon_stats server) || lab_fail "no stats line from the server after SIGUSR1"
echo "server stats after:  $s1"
icmp1=$(lab_rtr_counter wan_icmp)
rx=$(stat_delta "$s0" "$s1" rx_packets)
tx=$(stat_delta "$s0" "$s1" tx_packets)
echo "measured: $recv/$N replies; server rx_packets +$rx, tx_packets +$tx; unencapsulated ICMP at the ISP router +$((icmp1 - icmp0))"

[ "${recv:-0}" -ge $((N - 2)) ] || lab_fail "only ${recv:-0}/$N pings to $LAB_INET_IP answered through the tunnel"
[ "$rx" -ge "$recv" ] || lab_fail "server rx_packets grew by $rx < $recv replies: the pings did not go through the tunnel"
[ "$tx" -ge "$recv" ] || lab_fail "server tx_packets grew by $tx < $recv replies"
[ "$icmp1" -eq "$icmp0" ] || lab_fail "$((icmp1 - icmp0)) ICMP packets crossed the ISP router outside the tunnel"

# Source address the internet host sees.
lab_bg inet "$LAB_DIR/udp-peer.out" "$LAB_PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.88", 9999)); s.settimeout(15)
d, a = s.recvfrom(2048)
print(a[0]); sys.stdout.flush()'
lab_wait_listen inet 9999 10 udp || lab_fail "UDP peer reporter did not start"
lab_exec cli "$LAB_PY" -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"hello", ("192.0.2.88", 9999)); time.sleep(0.2)'
for _ in $(seq 50); do [ -s "$LAB_DIR/udp-peer.out" ] && break; sleep 0.1; done
peer=$(head -n 1 "$LAB_DIR/udp-peer.out" 2>/dev/null)
echo "measured: the internet host sees the client's UDP from ${peer:-nothing}"
[ "$peer" = "$LAB_SERVER_IP" ] || lab_fail "internet host saw source '${peer:-none}', expected the server $LAB_SERVER_IP"

echo "PASS: ping through the tunnel ($recv/$N replies)"
