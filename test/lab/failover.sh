#!/usr/bin/env bash
# lab_failover: a link that dies stops carrying traffic at once, both ways,
# and comes back only after it has been clean for 2 s. Both WANs run through
# linkemu (LAB_EMU=1) at 40 and 20 Mbit/s, 10 ms each way; a ping flood
# (every 10 ms) runs through the tunnel while
#
#   wan1 is cut (both directions), then restored, then
#   wan0 (the faster one, which carries the pings) is cut, then restored.
#
# Checked: during each cut both daemons stop using the cut link (linkN_used=0
# in their stats) and take it Down after 4 lost probes; after the restore
# both use it again (after the 2 s hold); the tunnel never goes down (the
# ping flood's loss is bounded, the last pings all came back); then an
# iperf3 download keeps moving data every second while wan0 is cut for 2 s.
# Printed: the pings lost, how long each change took to show in the stats,
# and what was sent again (resent) after a stall.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"

LAB_TEST=failover
lab_require_emu "$LAB_TEST"
lab_test_init "$LAB_TEST"
fails=()

lab_emu_set wan0 "set both rate=40mbit delay=10ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
lab_tunnel_up || lab_fail "tunnel did not come up"
L0=$(lab_link_slot wan0); L1=$(lab_link_slot wan1)
[ -n "$L0" ] && [ -n "$L1" ] || lab_fail "client did not report both WAN links"

# link_view WHO SLOT: "used state" of one link in WHO's stats.
link_view() {
  local s
  s=$(daemon_stats "$1") || { echo "? ?"; return; }
  echo "$(stat_text "$s" "link$2_used") $(stat_text "$s" "link$2_state")"
}
# expect_link WHO SLOT WANT_USED WANT_STATE WHEN: within 3 s of the event
# (EVENT_NS, set when the link was cut or restored); prints how long after it.
expect_link() {
  local who=$1 slot=$2 used=$3 state=$4 when=$5 v t0=$EVENT_NS
  while :; do
    v=$(link_view "$who" "$slot")
    [ "$v" = "$used $state" ] && break
    if [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 3000 ]; then
      fails+=("$when: $who link$slot is '$v', want used=$used state=$state")
      return
    fi
    sleep 0.1
  done
  echo "measured: $when: $who link$slot used=$used state=$state after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

PINGS=1500
lab_exec cli ping -n -i 0.01 -W 1 -c $PINGS "$LAB_INET_IP" >"$LAB_DIR/ping.out" 2>&1 &
ping_pid=$!
sleep 2

# phase LINK SLOT: cut one WAN for 3 s, restore it, give it 3 s to come back.
phase() {
  local wan=$1 slot=$2
  lab_emu_set "$wan" "set both cut=1" || lab_fail "linkemu $wan cut"
  EVENT_NS=$(date +%s%N)
  expect_link client "$slot" 0 down "$wan cut"
  expect_link server "$slot" 0 down "$wan cut"
  sleep 1
  lab_emu_set "$wan" "set both cut=0" || lab_fail "linkemu $wan restore"
  EVENT_NS=$(date +%s%N)
  expect_link client "$slot" 1 up "$wan restored"
  expect_link server "$slot" 1 up "$wan restored"
}
phase wan1 "$L1"
phase wan0 "$L0"
wait "$ping_pid"

sed -n '/statistics/,$p' "$LAB_DIR/ping.out"
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping.out")
[ "$sent" -gt 0 ] || lab_fail "no ping summary"
echo "measured: ping flood through two cuts: $lost of $sent lost, slowest reply $max ms"
# The tunnel stayed up: most pings came back (an outage would lose seconds'
# worth, 100 a second) ...
[ "$lost" -le 100 ] || fails+=("lost $lost of $sent pings across two cuts")
# ... and so did the last 50, sent after both restores.
tail_lost=$(grep -oE 'icmp_seq=[0-9]+' "$LAB_DIR/ping.out" | sed 's/icmp_seq=//' | awk -v n=$PINGS '$1 > n - 50' | wc -l)
[ "$tail_lost" -ge 48 ] || fails+=("only $tail_lost of the last 50 pings came back")
for who in client server; do
  c=$(daemon_stats $who)
  echo "measured: $who link$L0 downs=$(stat_text "$c" "link${L0}_downs") stalls=$(stat_text "$c" "link${L0}_stalls"), link$L1 downs=$(stat_text "$c" "link${L1}_downs") stalls=$(stat_text "$c" "link${L1}_stalls"); resent=$(stat_text "$c" resent) resend_dropped=$(stat_text "$c" resend_dropped) late_delivered=$(stat_text "$c" late_delivered)"
done

# A TCP download keeps going through a cut of the link carrying most of it:
# no one-second interval of the iperf3 run is empty.
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -R -t 8 -i 1 -f m >"$LAB_DIR/iperf.out" 2>&1 &
iperf_pid=$!
sleep 3
lab_emu_set wan0 "set both cut=1" || lab_fail "linkemu wan0 cut"
sleep 2
lab_emu_set wan0 "set both cut=0" || lab_fail "linkemu wan0 restore"
wait "$iperf_pid" || fails+=("iperf3 download through a wan0 cut failed")
rates=$(grep -E '^\[ *[0-9]+\] +[0-9.]+-[0-9.]+ +sec' "$LAB_DIR/iperf.out" | grep -vE 'sender|receiver' | awk '{ print $7 }' | tr '\n' ' ')
echo "measured: iperf3 download, wan0 cut from 3 s to 5 s, Mbit/s per second: $rates"
n=$(echo "$rates" | wc -w)
[ "$n" -ge 8 ] || fails+=("iperf3 printed $n intervals, want 8")
for r in $rates; do
  awk -v r="$r" 'BEGIN { exit !(r > 0) }' || { fails+=("an iperf3 interval moved nothing: $rates"); break; }
done

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: a cut link stops carrying traffic both ways, comes back after its hold, and the tunnel stays up"
