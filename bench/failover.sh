#!/usr/bin/env bash
# bench/failover.sh — what a link failure costs, as issue #5 asks, on two
# emulated WAN links (linkemu, LAB_EMU=1): wan0 40 Mbit/s, wan1 20 Mbit/s,
# 10 ms one way each, default config (probe_interval 500ms, link_hold 2s).
#
#  1. bond: a ping every 10 ms through the tunnel while each link in turn is
#     cut (both directions) for 1 s and restored, BENCH_CUTS (10) times per
#     link, 2.5 s apart after each restore (past the 2 s hold). Lost pings
#     and the slowest reply. Target: 0 lost.
#  2. bond: an iperf3 TCP download (client <- internet, 0.1 s intervals)
#     while each link is cut for 1 s, 3 times each, once with Cubic and once
#     with BBR at the sender. The longest run of 0.1 s intervals that moved
#     less than 10 % of the median interval, starting during a cut (or up to
#     1 s after the restore), or going on when a cut came (counted from the
#     cut): the longest stall. Target < 300 ms. Beside it,
#     the same download without cuts (BBR's ProbeRTT stalls on its own).
#  3. redundant: 30 % random loss on wan1 both ways, 0 % on wan0: 2000 pings.
#     Target: 0 lost.
#  4. backup (wan0 priority 1, wan1 priority 2): wan1's share of the bytes of
#     a 10 s iperf3 upload and download (target < 1 %); then wan0 cut under a
#     ping flood: lost pings and the slowest reply (target: wan1 carries the
#     traffic within 1 s, i.e. slowest reply < 1000 ms).
#
# Writes the table between <!-- failover:begin --> and <!-- failover:end -->
# in bench/results.md (BENCH_RESULTS to write elsewhere). Needs root and
# build/linkemu. Env: ONEBOX_BUILD (build/), BENCH_CUTS (10).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
CMDLINE="bash bench/failover.sh"
[ -n "${BENCH_CUTS:-}" ] && CMDLINE="BENCH_CUTS=$BENCH_CUTS $CMDLINE"
CUTS=${BENCH_CUTS:-10}
RESULTS=${BENCH_RESULTS:-$HERE/results.md}

[ "$(id -u)" -eq 0 ] || lab_fail "bench/failover.sh needs root (network namespaces)"
lab_check_binaries || lab_fail "build first: cmake -B build -G Ninja && cmake --build build"
[ -x "$LAB_LINKEMU_BIN" ] || lab_fail "$LAB_LINKEMU_BIN not built (cmake --build build --target linkemu)"

LAB_EMU=1 lab_start bench-failover
LAB_EMU=1
write_configs "$LAB_DIR"
lab_emu_set wan0 "set both rate=40mbit delay=10ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_client_with ""

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); echo "result: $1: $2 ($4)"; }
verdict() { if [ "${1:-0}" = 1 ]; then echo "met"; else echo "**missed**"; fi; }
resent_line() {
  local c s
  c=$(daemon_stats client); s=$(daemon_stats server)
  echo "resent client/server $(stat_text "$c" resent)/$(stat_text "$s" resent), late_delivered $(stat_text "$c" late_delivered)/$(stat_text "$s" late_delivered)"
}


# ---- 1. bond, ping flood across 2 x CUTS cuts ---------------------------------
echo "== 1. bond: ping flood, $CUTS cuts of each link"
n=$(( 2 * CUTS * 350 + 300 ))
lab_exec cli ping -n -i 0.01 -W 1 -c "$n" "$LAB_INET_IP" >"$LAB_DIR/ping1.out" 2>&1 &
pid=$!
sleep 1
for ((k = 0; k < CUTS; k++)); do lab_cut_cycle wan0; lab_cut_cycle wan1; done
wait "$pid"
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping1.out")
row "1. bond, ping every 10 ms, $CUTS cuts of wan0 (primary) and $CUTS of wan1, 1 s each" \
  "$lost of $sent pings lost; slowest reply $max ms" "0 lost" "$(verdict $([ "$lost" -eq 0 ] && echo 1)); $(resent_line)"

# ---- 2. bond, longest TCP stall of a download across cuts ------------------------
# For each congestion control the internet host's sender may run: Cubic (the
# Linux default) and BBR (this VM's default, which new namespaces inherit).
# A stall is a run of 0.1 s intervals below 10 % of the run's median; the
# longest stall *during a cut* counts, i.e. one that starts between the cut
# and 1 s after the link is back, or one that was going on when the cut came,
# from the cut to its end. The same download without cuts is measured
# too: BBR drains its queue for ~200 ms every 10 s (ProbeRTT) on its own.
stall_of() { # IPERF_JSON CUTS_FILE T0 -> "during_cut_ms outside_ms median_mbit" (bench/stall.py)
  "$LAB_PY" "$HERE/stall.py" "$@" 2>/dev/null
}
for cc in cubic bbr; do
  echo "== 2. bond: iperf3 download ($cc) across 3 cuts of each link"
  secs=$(( 6 * 4 + 4 ))
  : >"$LAB_DIR/cuts-$cc.txt"
  s0=$(daemon_stats server)
  t0=$(date +%s.%N)
  lab_exec cli timeout $((secs + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -R -C "$cc" -t "$secs" -i 0.1 -J >"$LAB_DIR/iperf2-$cc.json" 2>/dev/null &
  pid=$!
  sleep 3
  for ((k = 0; k < 3; k++)); do
    for w in wan0 wan1; do echo "$w $(date +%s.%N)" >>"$LAB_DIR/cuts-$cc.txt"; lab_cut_cycle "$w"; done
  done
  wait "$pid"
  s1=$(daemon_stats server)
  # What the server did with the download meanwhile: packets its admission
  # refused (every usable link's queue past the budget), stall resends, loss
  # repairs, and packets held for a failover (dropped early: hold_signals;
  # waited 250 ms: hold_expired).
  sent_line="server: $(stat_delta "$s0" "$s1" drop_over_budget) refused over budget, $(stat_delta "$s0" "$s1" resent) resent, $(stat_delta "$s0" "$s1" repaired) repaired, $(stat_delta "$s0" "$s1" held) held of which $(stat_delta "$s0" "$s1" hold_signals) dropped early and $(stat_delta "$s0" "$s1" hold_expired) expired"
  read -r stall _ median < <(stall_of "$LAB_DIR/iperf2-$cc.json" "$LAB_DIR/cuts-$cc.txt" "$t0")
  lab_exec cli timeout 40 iperf3 -c "$LAB_INET_IP" -p 5201 -R -C "$cc" -t 14 -i 0.1 -J >"$LAB_DIR/iperf2-$cc-nocut.json" 2>/dev/null
  read -r _ base _ < <(stall_of "$LAB_DIR/iperf2-$cc-nocut.json" - 0)
  row "2. bond, iperf3 TCP download ($cc at the sender), 3 cuts of each link, 1 s each" \
    "longest stall during a cut ${stall} ms (0.1 s intervals below 10 % of the median ${median} Mbit/s); the same download without cuts: longest stall ${base} ms" \
    "< 300 ms" "$(verdict $([ "$stall" -lt 300 ] && echo 1)); $sent_line"
done

# ---- 3. redundant, 30 % loss on wan1 ---------------------------------------------
echo "== 3. redundant: 30 % loss on wan1"
lab_client_with 'mode = "redundant"'
lab_emu_set wan1 "set both loss=30" >/dev/null || lab_fail "linkemu wan1 loss"
read -r lost sent max < <(lab_ping_flood 2000 "$LAB_DIR/ping3.out")
lab_emu_set wan1 "set both loss=0" >/dev/null
row "3. redundant, 30 % random loss on wan1 both ways, 0 % on wan0, ping every 10 ms" \
  "$lost of $sent pings lost" "0 lost" "$(verdict $([ "$lost" -eq 0 ] && echo 1))"

# ---- 4. backup ----------------------------------------------------------------------
echo "== 4. backup: wan0 priority 1, wan1 priority 2"
lab_client_with 'mode = "backup"' $'[client.link.wan0]\npriority = 1\n[client.link.wan1]\npriority = 2'
for dir in up down; do
  who=client; args=(); [ "$dir" = down ] && { who=server; args=(-R); }
  b=$(daemon_stats "$who")
  lab_exec cli timeout 40 iperf3 -c "$LAB_INET_IP" -p 5201 -t 10 "${args[@]}" >/dev/null 2>&1
  a=$(daemon_stats "$who")
  x=$(( $(link_stat "$a" "$L0" tx_bytes) - $(link_stat "$b" "$L0" tx_bytes) ))
  y=$(( $(link_stat "$a" "$L1" tx_bytes) - $(link_stat "$b" "$L1" tx_bytes) ))
  pct=$(awk -v x="$x" -v y="$y" 'BEGIN { printf "%.3f", (x + y > 0 ? 100 * y / (x + y) : 100) }')
  row "4. backup, 10 s iperf3 $dir, wan0 up" "wan1 carried $pct % of the bytes ($y of $((x + y)))" "< 1 %" \
    "$(verdict $(awk -v p="$pct" 'BEGIN { if (p < 1) print 1 }'))"
done
lab_exec cli ping -n -i 0.01 -W 1 -c 400 "$LAB_INET_IP" >"$LAB_DIR/ping4.out" 2>&1 &
pid=$!
sleep 1
lab_emu_set wan0 "set both cut=1" >/dev/null || lab_fail "linkemu wan0 cut"
sleep 2
lab_emu_set wan0 "set both cut=0" >/dev/null
wait "$pid"
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping4.out")
row "4. backup, wan0 cut under a ping every 10 ms" "$lost of $sent pings lost; slowest reply $max ms" \
  "wan1 takes over within 1 s" "$(verdict $(awk -v m="$max" 'BEGIN { if (m < 1000) print 1 }'))"

trap - EXIT
lab_teardown

SECTION=$(mktemp)
{
  echo "<!-- failover:begin -->"
  echo "### Failover on emulated links (issue #5)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- links: linkemu, wan0 40 Mbit/s and wan1 20 Mbit/s, 10 ms one way each; a cut drops"
  echo "  everything both ways; default probe_interval (500 ms) and link_hold (2 s)"
  echo
  echo "| run | measured | target | verdict |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo "<!-- failover:end -->"
} >"$SECTION"
lab_write_section "$RESULTS" failover "$SECTION"
rm -f "$SECTION"
cat "$RESULTS" | sed -n '/<!-- failover:begin -->/,/<!-- failover:end -->/p'
