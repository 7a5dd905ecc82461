#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_multilink: the client finds both WANs (wan0, wan1: each has a default
# route) and sends over both; the server receives on both. A link that goes
# down is dropped while the tunnel keeps working; a link that comes back is
# used again within 2 s; a WAN whose address changes keeps the session.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init multilink
fails=()
clog=$(lab_log_file client)

burst() { lab_exec cli timeout 20 ping -n -q -c "${1:-50}" -i 0.02 -W 1 "$LAB_INET_IP" | sed -n 's/.* \([0-9]*\) received.*/\1/p'; }

lab_tunnel_up || lab_fail "tunnel did not come up"
l0=$(lab_link_slot wan0); l1=$(lab_link_slot wan1)
[ -n "$l0" ] && [ -n "$l1" ] || lab_fail "client did not report both WAN links up (wan0=$l0 wan1=$l1)"
echo "client links: wan0=link $l0, wan1=link $l1"

# (1) both links carry traffic, both ways
c0=$(daemon_stats client) && s0=$(daemon_stats server) || lab_fail "no stats"
got=$(burst 100)
c1=$(daemon_stats client) && s1=$(daemon_stats server) || lab_fail "no stats"
for l in "$l0" "$l1"; do
  tx=$(( $(link_stat "$c1" "$l" tx_packets) - $(link_stat "$c0" "$l" tx_packets) ))
  rx=$(( $(link_stat "$c1" "$l" rx_packets) - $(link_stat "$c0" "$l" rx_packets) ))
  srx=$(( $(link_stat "$s1" "$l" rx_packets) - $(link_stat "$s0" "$l" rx_packets) ))
  echo "measured: link $l: client sent $tx, client received $rx, server received $srx"
  [ "$tx" -gt 10 ] || fails+=("client sent only $tx packets on link $l")
  [ "$rx" -gt 10 ] || fails+=("client received only $rx packets on link $l")
  [ "$srx" -gt 10 ] || fails+=("server received only $srx packets on link $l")
done
[ "${got:-0}" -ge 95 ] || fails+=("only ${got:-0}/100 pings answered over two links")

# (2) wan1 goes down: dropped, tunnel keeps working, no new handshake
est0=$(log_count "$clog" 'session established')
lab_exec cli ip link set wan1 down
wait_for_log "$clog" "link $l1 removed" 5 || fails+=("client did not drop link $l1 after wan1 went down")
got=$(burst 50)
echo "measured: with wan1 down: ${got:-0}/50 pings answered"
[ "${got:-0}" -ge 48 ] || fails+=("only ${got:-0}/50 pings with wan1 down")

# (3) wan1 comes back: used again within 2 s
n_up=$(log_count "$clog" "added: wan1 ")
t0=$(date +%s%N)
lab_exec cli ip link set wan1 up
lab_exec cli ip route replace default via 192.168.20.1 dev wan1 metric 200
wait_for_log "$clog" "added: wan1 " 5 $((n_up + 1)) || fails+=("client did not take wan1 back")
l1=$(lab_link_slot wan1)
c0=$(daemon_stats client)
while :; do
  burst 5 >/dev/null
  c1=$(daemon_stats client)
  tx=$(( $(link_stat "$c1" "$l1" tx_packets) - $(link_stat "$c0" "$l1" tx_packets) ))
  [ "$tx" -gt 0 ] && break
  [ $(( $(date +%s%N) - t0 )) -gt 5000000000 ] && break
done
took=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
echo "measured: wan1 back: carrying traffic ${took} s after it came up (limit 2 s)"
[ "$tx" -gt 0 ] || fails+=("wan1 came back but carried nothing")
awk -v t="$took" 'BEGIN { exit !(t <= 2) }' || fails+=("wan1 carried traffic only after ${took} s > 2 s")

# (4) wan1's address changes: the session stays, wan1 is used at its new address
# (deleting the primary address first: deleting it second would take the new,
# secondary one with it unless promote_secondaries is set)
lab_exec cli ip addr del 192.168.20.2/24 dev wan1
lab_exec cli ip addr add 192.168.20.7/24 dev wan1
lab_exec cli ip route replace default via 192.168.20.1 dev wan1 metric 200
sleep 1
got=$(burst 50)
c1=$(daemon_stats client)
l1=$(lab_link_slot wan1)
est1=$(log_count "$clog" 'session established')
echo "measured: after wan1's address change: ${got:-0}/50 pings, handshakes since the first cut: $((est1 - est0))"
[ "${got:-0}" -ge 45 ] || fails+=("only ${got:-0}/50 pings after wan1's address changed")
[ "$est1" -eq "$est0" ] || fails+=("the client handshook again ($((est1 - est0))x): the session did not survive")
grep -q "added: wan1 via 192.168.20.1 (address 192.168.20.7)" "$clog" || fails+=("wan1 was not taken at its new address 192.168.20.7")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: both links used; link down, back and readdressed without losing the session"
