#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_server_restart: with a ping running through the tunnel, the server is
# stopped (SIGTERM), 2 s later started again; replies must resume within 5 s
# of the restart.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init server_restart
LIMIT=${LAB_RESTART_LIMIT:-5}

lab_tunnel_up || lab_fail "tunnel did not come up"
PINGLOG=$LAB_DIR/ping.out
lab_bg cli "$PINGLOG" timeout 60 stdbuf -oL ping -n -D -O -i 0.2 -W 1 "$LAB_INET_IP"
sleep 2
grep -q 'bytes from' "$PINGLOG" || lab_fail "no ping replies through the tunnel before the restart"
est0=$(log_count "$(lab_log_file client)" 'session established')

stop_server || lab_fail "server did not exit on SIGTERM"
echo "server exited with status $LAB_LAST_RC"
sleep 2
t0=$(date +%s.%N)
start_server
first=""
for _ in $(seq 200); do
  first=$(awk -v t0="$t0" '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts + 0 > t0 + 0) { print ts; exit } }' "$PINGLOG")
  [ -n "$first" ] && break
  sleep 0.1
done
[ -n "$first" ] || lab_fail "ping replies did not resume within 20 s of the server restart"
took=$(awk -v a="$t0" -v b="$first" 'BEGIN { printf "%.2f", b - a }')
est1=$(log_count "$(lab_log_file client)" 'session established')
lost=$(awk -v t0="$t0" '/no answer yet/ { n++ } END { print n + 0 }' "$PINGLOG")
echo "measured: ping replies resumed ${took} s after the server restart (limit ${LIMIT} s); client re-established $((est1 - est0)) session(s); $lost unanswered pings in all"
awk -v t="$took" -v l="$LIMIT" 'BEGIN { exit !(t <= l) }' || lab_fail "replies resumed after ${took} s > ${LIMIT} s"
echo "PASS: tunnel back ${took} s after the server restart"
