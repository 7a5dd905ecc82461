#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_two_clients: two clients (10.0.0.2 in cli, 10.0.0.3 in cli2) share the
# server; a third asking for 10.0.0.2 while the first is alive is refused
# ("in use"); a handshake naming client 1's session id from another address is
# refused; a packet from client 2 with the inner source 10.0.0.2 is dropped
# and counted as drop_spoofed_source.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init two_clients
INJECT=$HERE/tools/inject.py
fails=()

lab_add_client cli2 30 || lab_fail "could not add cli2"
lab_add_client cli3 40 || lab_fail "could not add cli3"
write_client_conf "$LAB_DIR/client2.conf" 10.0.0.3
write_client_conf "$LAB_DIR/client3.conf" 10.0.0.2
mkdir -p "$LAB_DIR/www"
head -c 2M /dev/urandom >"$LAB_DIR/www/blob"
want=$(sha256sum <"$LAB_DIR/www/blob" | cut -d' ' -f1)
lab_inet_http "$LAB_DIR/www" 8000 || lab_fail "http server did not start"

lab_tunnel_up client cli || lab_fail "client 1 tunnel did not come up"
start_client client2 cli2 "$LAB_DIR/client2.conf"
wait_tunnel client2 20 || lab_fail "client 2 tunnel did not come up"
lab_ping cli2 10.0.0.1 10 || lab_fail "client 2: 10.0.0.1 does not answer"

# both at once: pings and downloads
jobs_=()
for r in cli cli2; do
  lab_bg "$r" "$LAB_DIR/ping-$r.out" timeout 20 ping -n -c 10 -i 0.2 -W 2 "$LAB_INET_IP"
  jobs_+=("$LAB_LAST_BG")
  lab_bg "$r" "$LAB_DIR/curl-$r.out" timeout 60 curl -sS --max-time 50 -o "$LAB_DIR/blob-$r" \
    -w '%{http_code} %{speed_download}\n' "http://$LAB_INET_IP:8000/blob"
  jobs_+=("$LAB_LAST_BG")
done
for p in "${jobs_[@]}"; do wait "$p" 2>/dev/null; done
for r in cli cli2; do
  recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$LAB_DIR/ping-$r.out")
  got=$(sha256sum <"$LAB_DIR/blob-$r" 2>/dev/null | cut -d' ' -f1)
  echo "measured: $r: ping ${recv:-0}/10, curl: $(awk '{ printf "HTTP %s at %.1f Mbit/s", $1, $2 * 8 / 1e6 }' "$LAB_DIR/curl-$r.out")"
  [ "${recv:-0}" -ge 8 ] || fails+=("$r: only ${recv:-0}/10 pings answered with two clients up")
  [ "$got" = "$want" ] || fails+=("$r: download corrupted or failed with two clients up")
done

# a third client asking for 10.0.0.2 while client 1 is alive
slog=$(lab_log_file server)
n0=$(log_count "$slog" 'in use')
start_client client3 cli3 "$LAB_DIR/client3.conf"
if wait_for_log "$slog" 'in use' 20 $((n0 + 1)); then
  line=$(grep 'in use' "$slog" | tail -n 1)
  echo "server: $line"
  grep -q 'refused' "$slog" || fails+=("server logged 'in use' but never 'refused'")
else
  fails+=("server did not log 'in use' for a second client asking for 10.0.0.2")
fi
if log_since_start client3 | grep -q 'session established'; then
  fails+=("client 3 (duplicate 10.0.0.2) logged 'session established'")
fi
sleep 1
lab_ping cli 10.0.0.1 5 || fails+=("client 1 lost its tunnel after client 3 asked for its address")
daemon_alive client3 && stop_client client3 >/dev/null 2>&1
daemon_alive client3 || stop_daemon client3 TERM 1 >/dev/null 2>&1
echo "client 3 log:"; log_since_start client3 | tail -n 5 | sed 's/^/    /'

# taking over client 1's session: anyone with the PSK can see its session id
# in the headers and send an Init naming it; the server must refuse it from
# any other address (hs_probe speaks the real handshake and reports the answer)
PROBE=$ONEBOX_BUILD/hs_probe
sid=$(grep -o 'session [0-9a-f]\{8\}' "$(lab_log_file client)" | tail -n 1 | cut -d' ' -f2)
ok=$(lab_exec cli2 "$PROBE" "$LAB_SERVER_IP" "$LAB_PORT" "$LAB_PSK" 0badc0de 10.0.0.9 --confirm 2>&1)
echo "probe, fresh session for 10.0.0.9: $ok"
echo "$ok" | grep -q 'status ok' || fails+=("hs_probe control case did not get 'status ok': $ok")
steal=$(lab_exec cli2 "$PROBE" "$LAB_SERVER_IP" "$LAB_PORT" "$LAB_PSK" "$sid" 10.0.0.2 --confirm 2>&1)
echo "probe, client 1's session $sid from cli2: $steal"
echo "$steal" | grep -q 'status address-in-use' || fails+=("takeover of session $sid was not refused: $steal")
lab_ping cli 10.0.0.1 5 || fails+=("client 1 lost its tunnel after a takeover attempt")

# spoofed inner source from client 2
# notrack: the client's masquerade must not rewrite the forged source to 10.0.0.3
lab_exec cli2 nft -f - <<'NFT' || lab_fail "could not add the notrack rule in cli2"
table ip labspoof {
  chain out { type filter hook output priority raw; ip saddr 10.0.0.2 ip protocol icmp notrack; }
}
NFT
s0=$(daemon_stats server) || lab_fail "no stats from the server"
res=$(lab_exec cli2 timeout 20 "$LAB_PY" "$INJECT" spoof --src 10.0.0.2 --dst "$LAB_INET_IP" --dev onebox0 --count 10) \
  || fails+=("inject.py spoof failed: $res")
sleep 1
s1=$(daemon_stats server) || lab_fail "no stats from the server"
d=$(stat_delta "$s0" "$s1" drop_spoofed_source)
echo "measured: sent $res; drop_spoofed_source +$d"
[ "$d" -ge 10 ] || fails+=("drop_spoofed_source rose by $d < 10 spoofed packets sent from client 2")
lab_exec cli2 nft delete table ip labspoof
lab_ping cli2 10.0.0.1 5 || fails+=("client 2 lost its tunnel after the spoof test")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: two clients, duplicate address refused, spoofed source dropped"
