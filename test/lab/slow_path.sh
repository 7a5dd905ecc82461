#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_slow_path: a path slower than the client's handshake retry (1 s): both
# WANs through linkemu with 600 ms each way, so every Init is retried before
# its answer comes back, and the answer the client gets first is the one to
# its older Init. The server keeps the keys of its two newest Inits, so the
# client must still connect (its session established and pings answered
# through the tunnel), and a rekey every 10 s must still take, over 25 s,
# with no packet dropped for a bad tag and no fresh start of the session.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"

LAB_TEST=slow_path
lab_require_emu "$LAB_TEST"
lab_test_init "$LAB_TEST"
fails=()
for w in wan0 wan1; do lab_emu_set "$w" "set both delay=600ms" || lab_fail "linkemu $w"; done
sed -i 's/^\[client\]$/[client]\nrekey_interval = "10s"/' "$LAB_DIR/client.conf"

start_server
sleep 0.3
t0=$(date +%s%N)
start_client
wait_tunnel client 20 || lab_fail "no session over a 1.2 s round trip"
took=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
c=$(daemon_stats client)
echo "measured: session established ${took} s after the client started, round trip 1.2 s; handshake_ok $(stat_get "$c" handshake_ok)"
lab_exec cli ping -n -c 25 -i 1 -W 5 "$LAB_INET_IP" >"$LAB_DIR/ping.out" 2>&1
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping.out")
c=$(daemon_stats client); s=$(daemon_stats server)
echo "measured: $lost of $sent pings lost over 25 s (slowest $max ms); client rekeys $(stat_get "$c" rekeys), drop_bad_tag $(stat_get "$c" drop_bad_tag); server rekeys $(stat_get "$s" rekeys), drop_bad_tag $(stat_get "$s" drop_bad_tag), sessions_promoted $(stat_get "$s" sessions_promoted)"
[ "$sent" -gt 0 ] && [ "$lost" -eq 0 ] || fails+=("$lost of $sent pings lost over the slow path")
[ "$(stat_get "$c" rekeys)" -ge 2 ] || fails+=("the client rekeyed $(stat_get "$c" rekeys) times in 25 s, want 2 or more")
[ "$(stat_get "$s" rekeys)" -ge 2 ] || fails+=("the server took up $(stat_get "$s" rekeys) rekeys, want 2 or more")
[ "$(stat_get "$s" sessions_promoted)" = 1 ] || fails+=("the session was started afresh (sessions_promoted $(stat_get "$s" sessions_promoted))")
[ "$(( $(stat_get "$c" drop_bad_tag) + $(stat_get "$s" drop_bad_tag) ))" -eq 0 ] || fails+=("packets dropped for a bad tag")

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: a 1.2 s round trip: the client connects and rekeys, nothing lost"
