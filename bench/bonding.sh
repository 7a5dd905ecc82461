#!/usr/bin/env bash
# bench/bonding.sh — bonded throughput against the links themselves, on
# emulated WAN links (linkemu, LAB_EMU=1), as issue #4 asks:
#
#   (a) 40 + 20 Mbit/s, both 10 ms one way             target >= 90 % of the sum
#   (b) 40 Mbit/s at 10 ms + 20 Mbit/s at 40 ms         target >= 85 %
#   (c) 50 + 20 + 10 Mbit/s, all 10 ms (three WANs)     target >= 90 %
#   (d) scenario (a) with mode = "round-robin"          for comparison, no target
#
# Each scenario is one lab. Rates and delays are set on both directions of each
# emulated link (linkemu 'set both rate=.. delay=..'). First every link alone
# ("bare": iperf3 bound to that WAN with --bind-dev, onebox not running), then
# the tunnel; all with iperf3 TCP, 1 and 4 streams (-P 4), up (client ->
# internet) and down (-R), BENCH_SECONDS (10) each after leaving out the first
# 2 s (-O 2: TCP slow start, and in the tunnel the links' rate discovery).
# "% of sum" = tunnel / sum of the bare links, same direction and streams.
# Per-link figures of a tunnel run come from the daemons' linkN_tx_bytes
# (client for up, server for down: inner IP bytes) over the whole iperf3 run.
# The 4- vs 1-stream column is the gap between the two tunnel figures
# (target: within 10 %).
#
# Writes the tables between <!-- bonding:begin --> and <!-- bonding:end --> in
# bench/results.md (BENCH_RESULTS to write elsewhere). Needs root and
# build/linkemu. Env: ONEBOX_BUILD (build/), BENCH_SECONDS (10),
# BENCH_SCENARIOS ("a b c d").
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
CMDLINE="bash bench/bonding.sh${*:+ $*}"
[ -n "${BENCH_SECONDS:-}" ] && CMDLINE="BENCH_SECONDS=$BENCH_SECONDS $CMDLINE"
[ -n "${BENCH_SCENARIOS:-}" ] && CMDLINE="BENCH_SCENARIOS=\"$BENCH_SCENARIOS\" $CMDLINE"
SECS=${BENCH_SECONDS:-10}
RESULTS=${BENCH_RESULTS:-$HERE/results.md}
SCENARIOS=${BENCH_SCENARIOS:-a b c d}

[ "$(id -u)" -eq 0 ] || lab_fail "bench/bonding.sh needs root (network namespaces)"
lab_check_binaries || lab_fail "build first: cmake -B build -G Ninja && cmake --build build"
[ -x "$LAB_LINKEMU_BIN" ] || lab_fail "$LAB_LINKEMU_BIN not built (cmake --build build --target linkemu)"

# scenario NAME -> "MODE RATE@DELAY ..." (rates in Mbit/s, one-way delays in ms)
scenario_links() {
  case $1 in
    a) echo "bond 40@10 20@10" ;;
    b) echo "bond 40@10 20@40" ;;
    c) echo "bond 50@10 20@10 10@10" ;;
    d) echo "round-robin 40@10 20@10" ;;
  esac
}
scenario_target() { case $1 in a | c) echo 90 ;; b) echo 85 ;; *) echo "" ;; esac; }

# iperf_mbps ARGS...: received Mbit/s of one iperf3 run from the client namespace.
iperf_mbps() {
  local json
  json=$(lab_exec cli timeout $((SECS + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -t "$SECS" -O 2 -J "$@")
  printf '%s' "$json" | "$LAB_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {"error": "no JSON from iperf3"}
if "error" in d:
    print("0"); print("iperf3: " + d["error"], file=sys.stderr); sys.exit()
print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))'
}


ROWS=()        # result table rows
SUMMARY=()     # one line per scenario and direction/streams for the note

run_scenario() {
  local sc=$1 spec mode links n i rate delay
  spec=$(scenario_links "$sc"); mode=${spec%% *}; links=(${spec#* })
  n=${#links[@]}
  echo "== scenario ($sc): mode $mode, links ${links[*]} (Mbit/s @ one-way ms)"
  LAB_EMU=1 LAB_WANS=$n lab_start "bench-$sc"
  LAB_EMU=1; LAB_WANS=$n
  write_configs "$LAB_DIR"
  if [ "$mode" = round-robin ]; then
    sed -i 's/^\[client\]$/[client]\nmode = "round-robin"/' "$LAB_DIR/client.conf"
  fi
  lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
  for ((i = 0; i < n; i++)); do
    rate=${links[$i]%@*}; delay=${links[$i]#*@}
    lab_emu_set "wan$i" "set both rate=${rate}mbit delay=${delay}ms" || lab_fail "linkemu wan$i"
  done

  declare -A bare=()
  local st dir args v
  for st in 1 4; do
    for dir in up down; do
      args=(-P "$st"); [ "$dir" = down ] && args+=(-R)
      for ((i = 0; i < n; i++)); do
        v=$(iperf_mbps "${args[@]}" -B "192.168.$(lab_wan_octet "$i").2" --bind-dev "wan$i")
        # A failed bare run (iperf3 error: 0) is not a baseline; once more,
        # and if it fails again the scenario's ratios say so (lab_fail).
        if [ "$v" = 0 ]; then
          echo "bare wan$i P$st $dir: iperf3 failed, once more"
          sleep 1
          v=$(iperf_mbps "${args[@]}" -B "192.168.$(lab_wan_octet "$i").2" --bind-dev "wan$i")
          [ "$v" = 0 ] && lab_fail "bare wan$i P$st $dir: iperf3 failed twice: no baseline for scenario ($sc)"
        fi
        bare[$st.$dir.$i]=$v
        echo "bare wan$i P$st $dir: $v Mbit/s"
      done
    done
  done

  lab_tunnel_up || lab_fail "tunnel did not come up"
  sleep 1
  declare -A tun=()
  local b a who key sum per pct
  for st in 1 4; do
    for dir in up down; do
      args=(-P "$st"); [ "$dir" = down ] && args+=(-R)
      if [ "$dir" = up ]; then who=client; else who=server; fi
      b=$(daemon_stats "$who")
      local t0 t1
      t0=$(date +%s%N)
      v=$(iperf_mbps "${args[@]}")
      t1=$(date +%s%N)
      a=$(daemon_stats "$who")
      tun[$st.$dir]=$v
      sum=0; per=""
      for ((i = 0; i < n; i++)); do
        sum=$(awk -v s="$sum" -v x="${bare[$st.$dir.$i]}" 'BEGIN { printf "%.2f", s + x }')
        # link share over the whole iperf3 run (incl. the omitted 2 s), Mbit/s
        key=$(awk -v b="$(link_stat "$b" "$i" tx_bytes)" -v a="$(link_stat "$a" "$i" tx_bytes)" \
          -v t="$(( (t1 - t0) / 1000000 ))" 'BEGIN { printf "%.1f", (a - b) * 8 / 1000 / t }')
        per+="${per:+ + }$key"
      done
      pct=$(awk -v v="$v" -v s="$sum" 'BEGIN { printf "%.1f", (s > 0 ? 100 * v / s : 0) }')
      echo "tunnel P$st $dir: $v Mbit/s = $pct % of $sum (links: $per Mbit/s)"
      local bare_list=""
      for ((i = 0; i < n; i++)); do bare_list+="${bare_list:+ + }${bare[$st.$dir.$i]}"; done
      ROWS+=("| ($sc) $mode ${links[*]} | $st | $([ "$dir" = up ] && echo up || echo down) | $bare_list = $sum | $v | $pct % | $per |")
    done
  done
  local target; target=$(scenario_target "$sc")
  for dir in up down; do
    local v1=${tun[1.$dir]} v4=${tun[4.$dir]} s1 s4 p1 p4 gap verdict
    s1=0; s4=0
    for ((i = 0; i < n; i++)); do
      s1=$(awk -v s="$s1" -v x="${bare[1.$dir.$i]}" 'BEGIN { print s + x }')
      s4=$(awk -v s="$s4" -v x="${bare[4.$dir.$i]}" 'BEGIN { print s + x }')
    done
    p1=$(awk -v v="$v1" -v s="$s1" 'BEGIN { printf "%.1f", (s > 0 ? 100 * v / s : 0) }')
    p4=$(awk -v v="$v4" -v s="$s4" 'BEGIN { printf "%.1f", (s > 0 ? 100 * v / s : 0) }')
    gap=$(awk -v a="$v1" -v b="$v4" 'BEGIN { m = a > b ? a : b; d = a - b; if (d < 0) d = -d; printf "%.1f", (m > 0 ? 100 * d / m : 0) }')
    if [ -n "$target" ]; then
      verdict=$(awk -v p1="$p1" -v p4="$p4" -v t="$target" -v g="$gap" \
        'BEGIN { print (p1 >= t && p4 >= t && g <= 10) ? "meets" : "MISSES" }')
      verdict="$verdict (target >= $target %, 1 vs 4 streams within 10 %)"
    else
      verdict="comparison only"
    fi
    SUMMARY+=("| ($sc) | $dir | $p1 % | $p4 % | $gap % | $verdict |")
  done
  echo "server: $(daemon_stats server)"
  echo "client: $(daemon_stats client)"
  # the next scenario gets a lab of its own (lab_start sets the traps again)
  trap - EXIT
  lab_teardown
}

for sc in $SCENARIOS; do
  [ -n "$(scenario_links "$sc")" ] || lab_fail "unknown scenario '$sc' (a b c d)"
  run_scenario "$sc"
done

SECTION=$(mktemp)
{
  echo "<!-- bonding:begin -->"
  echo "### Bonding on emulated links (issue #4)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- links: linkemu per WAN, rate and one-way delay on both directions, 100 ms queue;"
  echo "  iperf3 TCP from the client namespace to the internet host, ${SECS} s per run after -O 2;"
  echo "  bare = each link alone, same streams and direction; per link = each link's share of"
  echo "  the tunnel run from the sending daemon's linkN_tx_bytes (inner IP bytes, whole run"
  echo "  incl. the omitted 2 s, so a little below the iperf3 figure)"
  echo
  echo "| scenario | streams | dir | bare links, Mbit/s | tunnel Mbit/s | % of sum | per link in the tunnel, Mbit/s |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "| scenario | dir | 1 stream % of sum | 4 streams % of sum | 1 vs 4 gap | verdict |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${SUMMARY[@]}"
  echo "<!-- bonding:end -->"
} >"$SECTION"

lab_write_section "$RESULTS" bonding "$SECTION"
echo "== wrote $RESULTS"
cat "$SECTION"
rm -f "$SECTION"
