#!/usr/bin/env bash
# bench/failover_repeat.sh — bench/failover.sh's part 2 (an iperf3 download
# across 3 cuts of each link, longest TCP stall during a cut) run many times
# on one lab, for the rare long stalls a single bench run seldom meets.
# Per run it prints the longest stall, the cut it belongs to, and what moved
# meanwhile on the server (held, dropped early, expired, refused over
# budget, resent, repaired, TCP retransmissions and how many went
# ahead) and in the client namespace (UDP receive-buffer
# and softnet drops, TUN and WAN interface drops); at the end how many runs
# missed 300 ms. Prints only; record what it found in bench/results.md by
# hand. Needs root and build/linkemu.
# Env: ONEBOX_BUILD (build/), BENCH_RUNS (30), BENCH_CC (cubic).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
RUNS=${BENCH_RUNS:-30}
CC=${BENCH_CC:-cubic}

[ "$(id -u)" -eq 0 ] || lab_fail "bench/failover_repeat.sh needs root (network namespaces)"
lab_check_binaries || lab_fail "build first: cmake -B build -G Ninja && cmake --build build"
[ -x "$LAB_LINKEMU_BIN" ] || lab_fail "$LAB_LINKEMU_BIN not built (cmake --build build --target linkemu)"

LAB_EMU=1 lab_start bench-failover-repeat
LAB_EMU=1
write_configs "$LAB_DIR"
lab_emu_set wan0 "set both rate=40mbit delay=10ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_client_with ""

# host_drops: drops inside the client host that no daemon counter sees, as
# one number each: UDP receive-buffer overflows (client namespace), the
# softnet backlog's drops (all CPUs, the whole machine), and the client
# namespace's interfaces' rx/tx drops.
host_drops() {
  local rcvbuf softnet=0 ifdrops
  rcvbuf=$(lab_exec cli awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) n[$i] = i; h = 1 } else print $n["RcvbufErrors"] }' /proc/net/snmp)
  while read -r _ d _; do softnet=$((softnet + 16#$d)); done </proc/net/softnet_stat
  ifdrops=$(lab_exec cli sh -c 'cat /sys/class/net/*/statistics/rx_dropped /sys/class/net/*/statistics/tx_dropped' | awk '{ s += $1 } END { print s + 0 }')
  echo "${rcvbuf:-0} $softnet $ifdrops"
}

echo "== $RUNS runs: iperf3 download ($CC) across 3 cuts of each link"
missed=0 worst=0 expired_runs=0
for ((r = 1; r <= RUNS; r++)); do
  s0=$(daemon_stats server); read -r rb0 sn0 if0 < <(host_drops)
  : >"$LAB_DIR/cuts.txt"
  t0=$(date +%s.%N)
  lab_exec cli timeout 60 iperf3 -c "$LAB_INET_IP" -p 5201 -R -C "$CC" -t 28 -i 0.1 -J >"$LAB_DIR/iperf.json" 2>/dev/null &
  pid=$!
  sleep 3
  for ((k = 0; k < 3; k++)); do
    for w in wan0 wan1; do echo "$w $(date +%s.%N)" >>"$LAB_DIR/cuts.txt"; lab_cut_cycle "$w"; done
  done
  wait "$pid"
  s1=$(daemon_stats server); read -r rb1 sn1 if1 < <(host_drops)
  read -r stall outside median < <("$LAB_PY" "$HERE/stall.py" "$LAB_DIR/iperf.json" "$LAB_DIR/cuts.txt" "$t0" 2>"$LAB_DIR/which")
  expired=$(stat_delta "$s0" "$s1" hold_expired)
  echo "run $r: longest stall during a cut ${stall} ms ($(cat "$LAB_DIR/which"); outside cuts ${outside} ms; median ${median} Mbit/s);" \
    "server: held $(stat_delta "$s0" "$s1" held), dropped early $(stat_delta "$s0" "$s1" hold_signals), expired $expired," \
    "refused over budget $(stat_delta "$s0" "$s1" drop_over_budget), resent $(stat_delta "$s0" "$s1" resent), repaired $(stat_delta "$s0" "$s1" repaired)," \
    "TCP retransmissions $(stat_delta "$s0" "$s1" tcp_retransmits) (sent ahead $(stat_delta "$s0" "$s1" retransmits_ahead));" \
    "client host: UDP rcvbuf drops $((rb1 - rb0)), softnet drops $((sn1 - sn0)), interface drops $((if1 - if0))"
  [ "${stall:-0}" -ge 300 ] && missed=$((missed + 1))
  [ "${stall:-0}" -gt "$worst" ] && worst=$stall
  [ "$expired" -gt 0 ] && expired_runs=$((expired_runs + 1))
done
echo "result: $RUNS runs ($CC), longest stall during a cut ${worst} ms; $missed runs at 300 ms or more; $expired_runs runs in which the server's hold expired packets"
lab_teardown
