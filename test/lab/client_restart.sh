#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_client_restart: a client stopped cleanly tells the server (a sealed
# Close), so when it starts again the server hands it its tunnel address at
# once: tunnel back within 2 s and no "in use" refusal. After kill -9 nobody
# said goodbye: the server frees the address once the old session has been
# silent for 3 s, so the tunnel must be back within 6 s. Both times are printed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init client_restart
fails=()
slog=$(lab_log_file server)

# restart_and_time SIGNAL: stops the client with SIGNAL, starts it again and
# sets $took to the seconds from the new start to its "session established".
# (Not called in $(...): the daemon bookkeeping must stay in this shell.)
restart_and_time() {
  stop_daemon client "$1" 10 >/dev/null || return 1
  local t0 t1
  t0=$(date +%s%N)
  start_client
  wait_tunnel client 20 || return 1
  t1=$(date +%s%N)
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
}

lab_tunnel_up || lab_fail "tunnel did not come up"

n0=$(log_count "$slog" 'in use')
restart_and_time TERM || lab_fail "client did not come back after SIGTERM"
n1=$(log_count "$slog" 'in use')
echo "measured: SIGTERM restart: tunnel back ${took} s after start, $((n1 - n0)) 'in use' refusals (limit 2 s, 0)"
grep -q 'the client disconnected' "$slog" || fails+=("server never logged that the client disconnected")
[ "$n1" -eq "$n0" ] || fails+=("server refused the restarted client's address $((n1 - n0)) time(s)")
awk -v t="$took" 'BEGIN { exit !(t <= 2) }' || fails+=("SIGTERM restart took ${took} s > 2 s")
lab_ping cli "$LAB_INET_IP" 3 || fails+=("no ping through the tunnel after the SIGTERM restart")

restart_and_time KILL || lab_fail "client did not come back after kill -9"
echo "measured: kill -9 restart: tunnel back ${took} s after start (limit 6 s)"
awk -v t="$took" 'BEGIN { exit !(t <= 6) }' || fails+=("kill -9 restart took ${took} s > 6 s")
lab_ping cli "$LAB_INET_IP" 3 || fails+=("no ping through the tunnel after the kill -9 restart")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: client back within limits after a clean restart and after kill -9"
