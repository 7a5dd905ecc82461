#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_workers: a server with two data-plane workers ([server] workers = 2).
# A session lives on worker session_id % 2; the socket steering program
# (SO_REUSEPORT group) and the TUN steering program (multi-queue TUN, eBPF)
# must deliver every packet of it there. Two clients whose sessions belong
# to different workers move traffic at once (pings, downloads checked by
# hash, an iperf3 upload each); each worker reports one session and traffic
# of its own, and no packet reached a worker that did not own its session
# (no drop_unknown_session while they send, drop_no_session 0). Then a server without CAP_BPF (setpriv) logs
# that it runs one worker, and the tunnel works as before.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init workers
fails=()

sed -i 's/^\[server\]$/[server]\nworkers = 2/' "$LAB_DIR/server.conf"
lab_add_client cli2 30 || lab_fail "could not add cli2"
write_client_conf "$LAB_DIR/client2.conf" 10.0.0.3
mkdir -p "$LAB_DIR/www"
head -c 20M /dev/urandom >"$LAB_DIR/www/blob"
want=$(sha256sum <"$LAB_DIR/www/blob" | cut -d' ' -f1)
lab_inet_http "$LAB_DIR/www" 8000 || lab_fail "http server did not start"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"

session_of() { log_since_start "$1" | sed -nE 's/.*session established.*\(session ([0-9a-f]+),.*/\1/p' | tail -n 1; }
worker_of() { echo $((16#$1 % 2)); }

lab_tunnel_up client cli || lab_fail "client 1 tunnel did not come up"
grep -q "2 data-plane workers" "$(lab_log_file server)" || lab_fail "the server did not start 2 workers"
s1=$(session_of client)
# Session ids are the clients' own random choice: restart client 2 until its
# session belongs to the other worker (each try is a coin toss).
for try in $(seq 12); do
  start_client client2 cli2 "$LAB_DIR/client2.conf"
  wait_tunnel client2 20 || lab_fail "client 2 tunnel did not come up"
  s2=$(session_of client2)
  [ "$(worker_of "$s2")" != "$(worker_of "$s1")" ] && break
  stop_client client2 >/dev/null || lab_fail "client 2 did not stop"
done
echo "measured: client 1 session $s1 on worker $(worker_of "$s1"), client 2 session $s2 on worker $(worker_of "$s2") (try $try)"
[ "$(worker_of "$s2")" != "$(worker_of "$s1")" ] || lab_fail "no session of client 2 landed on the other worker in 12 tries"
lab_ping cli2 10.0.0.1 10 || lab_fail "client 2: 10.0.0.1 does not answer"

# Baseline: a stopped try's last packets may have come in after its session
# was removed (drop_unknown_session on its worker); only what follows counts.
daemon_stats server >/dev/null || lab_fail "no stats from the server"
slog=$(lab_log_file server)
declare -A before
for w in 0 1; do before[$w]=$(stat_get "$(grep -E "worker $w of 2:" "$slog" | tail -n 1)" drop_unknown_session); done

jobs_=()
for r in cli cli2; do
  lab_bg "$r" "$LAB_DIR/ping-$r.out" timeout 30 ping -n -c 50 -i 0.1 -W 2 "$LAB_INET_IP"
  jobs_+=("$LAB_LAST_BG")
  lab_bg "$r" "$LAB_DIR/curl-$r.out" timeout 60 curl -sS --max-time 50 -o "$LAB_DIR/blob-$r" \
    -w '%{http_code} %{speed_download}\n' "http://$LAB_INET_IP:8000/blob"
  jobs_+=("$LAB_LAST_BG")
done
for p in "${jobs_[@]}"; do wait "$p" 2>/dev/null; done
for r in cli cli2; do
  recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$LAB_DIR/ping-$r.out")
  got=$(sha256sum <"$LAB_DIR/blob-$r" 2>/dev/null | cut -d' ' -f1)
  echo "measured: $r: ping ${recv:-0}/50, download $(awk '{ printf "HTTP %s at %.1f Mbit/s", $1, $2 * 8 / 1e6 }' "$LAB_DIR/curl-$r.out")"
  [ "${recv:-0}" -ge 48 ] || fails+=("$r: only ${recv:-0}/50 pings answered")
  [ "$got" = "$want" ] || fails+=("$r: download corrupted or failed")
  up=$(lab_exec "$r" timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 3 -J 2>/dev/null |
    "$LAB_PY" -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))' 2>/dev/null)
  echo "measured: $r: iperf3 upload ${up:-0} Mbit/s"
  [ "${up:-0}" -gt 0 ] || fails+=("$r: iperf3 upload failed")
done

stats=$(daemon_stats server) || lab_fail "no stats from the server"
for w in 0 1; do
  line=$(grep -E "worker $w of 2:" "$slog" | tail -n 1)
  echo "measured: $line"
  [ "$(stat_get "$line" sessions)" = 1 ] || fails+=("worker $w does not hold exactly one session")
  [ "$(stat_get "$line" rx_packets)" -gt 1000 ] || fails+=("worker $w delivered almost nothing to the TUN")
  [ "$(stat_get "$line" tx_packets)" -gt 1000 ] || fails+=("worker $w sent almost nothing")
  [ "$(stat_get "$line" drop_unknown_session)" = "${before[$w]}" ] ||
    fails+=("worker $w got packets of a session it does not own while both clients sent")
done
echo "measured: summed drop_unknown_session=$(stat_get "$stats" drop_unknown_session) drop_no_session=$(stat_get "$stats" drop_no_session)"
[ "$(stat_get "$stats" drop_no_session)" = 0 ] || fails+=("downstream packets reached a worker without their session")

# Without CAP_BPF: one worker, said in one line, and a working tunnel.
if command -v setpriv >/dev/null; then
  stop_client client2 >/dev/null; stop_client >/dev/null; stop_server >/dev/null || lab_fail "server did not stop"
  printf '#!/bin/sh\nexec setpriv --bounding-set=-all,+net_admin --inh-caps=-all --no-new-privs %s "$@"\n' \
    "$ONEBOX_SERVER_BIN" >"$LAB_DIR/onebox-server"
  chmod +x "$LAB_DIR/onebox-server"
  ONEBOX_SERVER_BIN=$LAB_DIR/onebox-server
  lab_tunnel_up client cli || lab_fail "tunnel did not come up with a server without CAP_BPF"
  line=$(log_since_start server | grep "running one data-plane worker" | head -n 1)
  echo "measured: without CAP_BPF: ${line#*: }"
  [ -n "$line" ] || fails+=("a server without CAP_BPF did not say it runs one worker")
  lab_ping cli "$LAB_INET_IP" 10 || fails+=("no ping through a one-worker server")
fi

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: two workers, each with its own session, nothing misdelivered; one worker without CAP_BPF"
