#!/usr/bin/env bash
# lab_queue_hold: queue_hold lets what the admission budget refuses wait at
# the tunnel entry instead of being dropped, and a ping goes ahead of it.
# wan0 40 Mbit/s and wan1 20 Mbit/s, 10 ms each way, no cut (no failover):
# a 4-stream iperf3 download for 8 s (LOAD_SECONDS) under a ping every
# 20 ms, twice in the same run:
#   A. queue_budget = 10ms, queue_hold = 0ms (the default) on both ends;
#   B. the same with queue_hold = 10ms, after a reload of both ends.
# Checked: A's server held nothing by queue_hold (queue_held 0) and dropped
# over budget, and the client wrote ping replies that came ahead of a gap
# in the download at once instead of holding them in its reorder buffer
# (reorder_passed > 0); B's server held packets by queue_hold (queue_held > 0) and
# its hold refused none (hold_refused); the ping lost nothing in B. Printed,
# not checked: how many of B's waited their 10 ms and were dropped
# (queue_hold_expired, the congestion signal TCP still gets), the slowest
# ping replies and the downloads' rates (bench/latency.sh measures those),
# and what the client's admission dropped on its upstream, which carries
# only acknowledgements and pings (README "Performance": the download's
# queue reads as queue there; now and then a ping is lost that way).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"

LAB_TEST=queue_hold
lab_require_emu "$LAB_TEST"
lab_test_init "$LAB_TEST"
fails=()
SECS=${LOAD_SECONDS:-8}
lab_emu_set wan0 "set both rate=40mbit delay=10ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_client_with 'queue_budget = "10ms"'

# run_phase NAME: the download and the pings; sets HELD OVER EXPIRED
# REFUSED (server counters over the phase: queue_held, drop_over_budget,
# queue_hold_expired, hold_refused; the client's reorder_passed), LOST SENT SLOWEST and MBIT.
run_phase() {
  local name=$1 json=$LAB_DIR/iperf-$1.json s0 s1 c0 c1
  s0=$(daemon_stats server); c0=$(daemon_stats client)
  lab_bg cli "$json" timeout $((SECS + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -R -P 4 -t "$SECS" -J
  local iperf_pid=$LAB_LAST_BG
  sleep 1
  lab_exec cli ping -n -i 0.02 -W 1 -c $(((SECS - 2) * 50)) "$LAB_INET_IP" >"$LAB_DIR/ping-$name.out" 2>&1
  wait "$iperf_pid"
  s1=$(daemon_stats server); c1=$(daemon_stats client)
  read -r LOST SENT SLOWEST < <(lab_ping_summary "$LAB_DIR/ping-$name.out")
  MBIT=$("$LAB_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("0" if d.get("error") else "%.1f" % (d["end"]["sum_received"]["bits_per_second"]/1e6))' "$json" 2>/dev/null)
  HELD=$(stat_delta "$s0" "$s1" queue_held); OVER=$(stat_delta "$s0" "$s1" drop_over_budget)
  EXPIRED=$(stat_delta "$s0" "$s1" queue_hold_expired); REFUSED=$(stat_delta "$s0" "$s1" hold_refused)
  PASSED=$(stat_delta "$c0" "$c1" reorder_passed); COVER=$(stat_delta "$c0" "$c1" drop_over_budget)
  echo "measured: $name: download ${MBIT:-0} Mbit/s; server queue_held $HELD (of which queue_hold_expired $EXPIRED), dropped over budget $OVER, hold_refused $REFUSED; client reorder_passed $PASSED, dropped over budget $COVER (its upstream: acknowledgements, pings); $LOST of $SENT pings lost, slowest ${SLOWEST} ms"
}

# Warm-up: the bond learns the links' rates.
lab_exec cli timeout 20 iperf3 -c "$LAB_INET_IP" -p 5201 -R -t 3 >/dev/null 2>&1

lab_set_keys queue_budget 10ms queue_hold 0ms
run_phase A
[ "$HELD" -eq 0 ] || fails+=("A (queue_hold 0): the server held $HELD packets by queue_hold")
[ "$OVER" -gt 0 ] || fails+=("A: the server dropped nothing over budget under a 4-stream download (the budget never refused: the test shows nothing)")
[ "$PASSED" -gt 0 ] || fails+=("A: no ping reply passed a gap in the client's reorder buffer (reorder_passed 0)")

lab_set_keys queue_budget 10ms queue_hold 10ms
run_phase B
[ "$HELD" -gt 0 ] || fails+=("B (queue_hold 10ms): the server held nothing by queue_hold")
[ "$REFUSED" -eq 0 ] || fails+=("B: the hold refused $REFUSED packets")
[ "${LOST:-1}" -eq 0 ] || fails+=("B: $LOST of $SENT pings lost")

for who in client server; do daemon_alive "$who" || fails+=("the $who died"); done

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: with queue_hold the server held what the budget refused ($HELD packets, $EXPIRED of them dropped after 10 ms, none refused) and the pings under the load lost nothing (slowest $SLOWEST ms)"
