#!/usr/bin/env bash
# lab_pmtu: a WAN path narrower than its interface. wan1's far end (the ISP
# router's rwan1) takes frames of at most 1400 bytes and drops bigger ones
# without a word (as many mobile networks do: no ICMP), while wan1 itself
# stays at 1500. Checked:
#  - the client's path MTU search finds 1400 on wan1 (linkN_pmtu) and 1500 on
#    wan0, and the tunnel's MTU follows: 1400 - 28 - 32 = 1340 (logged);
#  - wan1 carries its share of an upload (nothing lost to the blackhole);
#  - a ping of 1312 bytes (a 1340-byte packet) with DF goes through the
#    tunnel, one of 1400 is refused at the tunnel as too big (the kernel
#    answers it, the path is not blackholed);
#  - the server's side: downstream goes through, the ICMP the router sends
#    it for its own 1500-byte datagrams brings its search down as well.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init pmtu
fails=()
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_exec rtr ip link set rwan1 mtu 1400 || lab_fail "cannot narrow rwan1"
lab_tunnel_up || lab_fail "tunnel did not come up"
L1=$(lab_link_slot wan1); L0=$(lab_link_slot wan0)

# wait_for PATTERN TIMEOUT: a line of the client's log.
mtu_line=""
for _ in $(seq 150); do
  mtu_line=$(grep -m1 'tunnel MTU 1340' "$(lab_log_file client)") && break
  sleep 0.1
done
c=$(daemon_stats client)
echo "measured: client link$L0 (wan0) pmtu=$(stat_text "$c" "link${L0}_pmtu"), link$L1 (wan1) pmtu=$(stat_text "$c" "link${L1}_pmtu"); pmtu_probes=$(stat_text "$c" pmtu_probes)"
echo "measured: ${mtu_line:-no tunnel MTU line}"
[ "$(stat_text "$c" "link${L1}_pmtu")" = 1400 ] || fails+=("wan1's path MTU is $(stat_text "$c" "link${L1}_pmtu"), not 1400")
[ "$(stat_text "$c" "link${L0}_pmtu")" = 1500 ] || fails+=("wan0's path MTU is $(stat_text "$c" "link${L0}_pmtu"), not 1500")
[ -n "$mtu_line" ] || fails+=("the client did not set the tunnel MTU to 1340 within 15 s")
mtu=$(lab_exec cli cat /sys/class/net/onebox0/mtu)
[ "$mtu" = 1340 ] || fails+=("onebox0's MTU is $mtu, not 1340")

# Traffic over both links, the narrow one included.
b=$(daemon_stats client)
up=$(lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 3 -J 2>/dev/null | "$LAB_PY" -c 'import json,sys
try: print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception: print(0)')
down=$(lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 3 -R -J 2>/dev/null | "$LAB_PY" -c 'import json,sys
try: print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception: print(0)')
a=$(daemon_stats client)
s=$(daemon_stats server)
d1=$(( $(link_stat "$a" "$L1" tx_bytes) - $(link_stat "$b" "$L1" tx_bytes) ))
d0=$(( $(link_stat "$a" "$L0" tx_bytes) - $(link_stat "$b" "$L0" tx_bytes) ))
echo "measured: upload $up Mbit/s (wan0 $d0 bytes, wan1 $d1 bytes), download $down Mbit/s; client stalls link$L1=$(stat_text "$a" "link${L1}_stalls"), drop_too_big $(stat_text "$a" drop_too_big); server link$L1 pmtu=$(stat_text "$s" "link${L1}_pmtu") drop_too_big $(stat_text "$s" drop_too_big)"
[ "$up" -gt 0 ] && [ "$down" -gt 0 ] || fails+=("iperf3 failed: up $up, down $down")
[ "$d1" -gt $((d0 / 10)) ] || fails+=("wan1 carried $d1 bytes of the upload beside wan0's $d0")
[ "$(stat_text "$s" "link${L1}_pmtu")" -le 1400 ] || fails+=("the server still sends 1500-byte datagrams on wan1's path")

lab_exec cli ping -n -c 3 -W 2 -M do -s 1312 "$LAB_INET_IP" >/dev/null 2>&1 || fails+=("a 1340-byte ping with DF did not go through")
big=$(lab_exec cli ping -n -c 1 -W 2 -M do -s 1372 "$LAB_INET_IP" 2>&1)
grep -qi 'message too long\|mtu' <<<"$big" || fails+=("a 1400-byte ping with DF was not refused at the tunnel: $big")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}"
  exit 1
fi
echo "PASS: the path MTU search found wan1's 1400, the tunnel MTU followed, traffic flows on both links"
