#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_faults: what real links do to a tunnel, on two emulated links (wan0
# 40 Mbit/s, wan1 20 Mbit/s, 10 ms each way), each fault under a ping every
# 50 ms and an iperf3 TCP download through the tunnel:
#   1. wan1 flaps, cut and back every 200 ms, for FAULT_FLAP_SECONDS (60);
#   2. wan1 loses 50 % of its packets both ways for 20 s;
#   3. wan1 delivers, then blackholes its downstream only for 10 s (the
#      client's packets still reach the server);
# Each: both daemons alive, the download keeps at least half of wan0's rate
# (the healthy link carries it), pings lost and the download's rate are
# printed; after all three, the daemons' resident memory and open fds are
# back near where they started (no leak). (A link whose address changes is
# `multilink`'s; a cut of a whole link `failover`'s.)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_require_emu faults
lab_test_init faults
fails=()
FLAP=${FAULT_FLAP_SECONDS:-60}
lab_emu_set wan0 "set both rate=40mbit delay=10ms" >/dev/null || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" >/dev/null || lab_fail "linkemu wan1"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_tunnel_up || lab_fail "tunnel did not come up"
L1=$(lab_link_slot wan1)
sleep 2

footprint() { # NAME -> "RSS_KB FDS"
  local pid; pid=$(daemon_pid "$1")
  echo "$(lab_proc_mem "$pid" | cut -d' ' -f1) $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
}
# a warm-up download so buffers and rings are at their working size
lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -R -t 3 >/dev/null 2>&1
read -r c_rss0 c_fd0 < <(footprint client)
read -r s_rss0 s_fd0 < <(footprint server)

# under_fault NAME SECONDS FAULT_FN: ping + download while FAULT_FN runs.
under_fault() {
  local name=$1 secs=$2 fn=$3 pingf=$LAB_DIR/ping-$1.out jsonf=$LAB_DIR/iperf-$1.json
  # -c, not a deadline (-w): ping would count the one in flight at its deadline as lost.
  lab_bg cli "$pingf" ping -n -i 0.05 -W 1 -c "$((secs * 20))" "$LAB_INET_IP"
  local ping_pid=$LAB_LAST_BG
  lab_bg cli "$jsonf" timeout $((secs + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -R -t "$secs" -J
  local iperf_pid=$LAB_LAST_BG
  "$fn" "$secs"
  wait "$iperf_pid" "$ping_pid" 2>/dev/null
  local lost sent max mbit
  read -r lost sent max < <(lab_ping_summary "$pingf")
  mbit=$("$LAB_PY" -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' "$jsonf" 2>/dev/null)
  echo "measured: $name: download ${mbit:-0} Mbit/s; $lost of $sent pings lost (slowest reply $max ms)"
  local c sv; c=$(daemon_stats client); sv=$(daemon_stats server)
  echo "measured: $name: wan1 so far (client / server): taken out for loss $(stat_text "$c" "link${L1}_lossy") / $(stat_text "$sv" "link${L1}_lossy"), stalls $(stat_text "$c" "link${L1}_stalls") / $(stat_text "$sv" "link${L1}_stalls"), downs $(stat_text "$c" "link${L1}_downs") / $(stat_text "$sv" "link${L1}_downs"); resent $(stat_text "$c" resent) / $(stat_text "$sv" resent); repaired $(stat_text "$c" repaired) / $(stat_text "$sv" repaired), repairs dropped $(stat_text "$c" repair_dropped) / $(stat_text "$sv" repair_dropped)"
  for who in client server; do daemon_alive "$who" || fails+=("$name: the $who died"); done
  awk -v m="${mbit:-0}" 'BEGIN { exit !(m >= 20) }' || fails+=("$name: download ${mbit:-0} Mbit/s, below half of wan0's 40")
  lab_emu_set wan1 "set both cut=0 loss=0" >/dev/null
  sleep 3  # past the hold: wan1 back in use before the next fault
}

flap() {
  local end=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$end" ]; do
    lab_emu_set wan1 "set both cut=1" >/dev/null; sleep 0.2
    lab_emu_set wan1 "set both cut=0" >/dev/null; sleep 0.2
  done
}
lossy() { lab_emu_set wan1 "set both loss=50" >/dev/null; sleep "$1"; }
blackhole_down() { lab_emu_set wan1 "set down cut=1" >/dev/null; sleep "$1"; }

under_fault "wan1 flapping every 200 ms for ${FLAP} s" "$FLAP" flap
under_fault "wan1 with 50 % loss both ways for 20 s" 20 lossy
under_fault "wan1 blackholing its downstream for 10 s" 10 blackhole_down

read -r c_rss1 c_fd1 < <(footprint client)
read -r s_rss1 s_fd1 < <(footprint server)
echo "measured: client RSS ${c_rss0} -> ${c_rss1} kB, fds ${c_fd0} -> ${c_fd1}; server RSS ${s_rss0} -> ${s_rss1} kB, fds ${s_fd0} -> ${s_fd1}"
[ "$c_fd1" -le "$c_fd0" ] || fails+=("the client holds more fds than before the faults")
[ "$s_fd1" -le "$s_fd0" ] || fails+=("the server holds more fds than before the faults")
# The pools are preallocated: a few MB of slack for allocator and page-cache noise.
[ "$c_rss1" -le $((c_rss0 + 4096)) ] || fails+=("client RSS grew by $((c_rss1 - c_rss0)) kB")
[ "$s_rss1" -le $((s_rss0 + 4096)) ] || fails+=("server RSS grew by $((s_rss1 - s_rss0)) kB")

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: flapping, lossy and half-blackholed links: both daemons up, the download on the healthy link, no leak"
