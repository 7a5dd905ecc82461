#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_client_keys: per-client keys ([server.client.NAME]). The server lists
# alice (10.0.0.2) and bob (10.0.0.3) with keys of their own and keeps the
# shared key for everyone else.
#   - alice and bob connect with their own keys and reach the internet host;
#   - alice's key asking for bob's address, and the shared key asking for
#     alice's, are refused at the MAC (counted handshake_bad_mac, logged),
#     no session;
#   - the shared key for an unlisted address (10.0.0.4) still works;
#   - bob's key naming alice's session id (with a far-future timestamp) is
#     refused and alice still rekeys;
#   - a reload without bob's section shuts bob out at once (his session is
#     closed, his next handshake refused) while alice's session stays;
#   - a server with no shared key at all: alice connects, the shared key is
#     refused ("no shared preshared_key").
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init client_keys
fails=()
ALICE_KEY="alice-own-key-1"
BOB_KEY="bob-own-key-22"

# clients_section [no-bob]: the [server.client.NAME] sections.
clients_section() {
  printf '[server.client.alice]\npreshared_key = "%s"\nip = "10.0.0.2"\n' "$ALICE_KEY"
  [ "${1:-}" = no-bob ] || printf '[server.client.bob]\npreshared_key = "%s"\nip = "10.0.0.3"\n' "$BOB_KEY"
}
clients_section >>"$LAB_DIR/server.conf"
write_client_conf "$LAB_DIR/client.conf" 10.0.0.2 "$ALICE_KEY"
sed -i 's/^\[client\]$/[client]\nrekey_interval = "10s"/' "$LAB_DIR/client.conf"
lab_add_client cli2 30 || lab_fail "could not add cli2"
lab_add_client cli3 40 || lab_fail "could not add cli3"
write_client_conf "$LAB_DIR/bob.conf" 10.0.0.3 "$BOB_KEY"
slog=$(lab_log_file server)

lab_tunnel_up client cli || lab_fail "alice (own key) did not connect"
start_client bob cli2 "$LAB_DIR/bob.conf"
wait_tunnel bob 20 || lab_fail "bob (own key) did not connect"
for r in cli cli2; do lab_ping "$r" "$LAB_INET_IP" 10 || fails+=("$r: no ping through the tunnel with its own key"); done
grep -q 'connected (tunnel 10.0.0.2, client alice)' "$slog" || fails+=("server did not name alice in its log")
grep -q "2 clients with keys of their own" "$slog" || fails+=("server did not say it has 2 client keys")

# refused NAME CONF PATTERN: a client in cli3 must get no session, and the
# server must log a rejection matching PATTERN and count a bad MAC.
refused() {
  local name=$1 conf=$2 pat=$3 n0 b0 b1
  n0=$(log_count "$slog" "$pat")
  b0=$(stat_get "$(daemon_stats server)" handshake_bad_mac)
  start_client "$name" cli3 "$conf"
  wait_for_log "$slog" "$pat" 10 $((n0 + 1)) || fails+=("$name: no rejection /$pat/ in the server log")
  sleep 2
  if log_since_start "$name" | grep -q 'session established'; then fails+=("$name: got a session"); fi
  b1=$(stat_get "$(daemon_stats server)" handshake_bad_mac)
  echo "measured: $name: refused, handshake_bad_mac +$((b1 - b0)): $(grep -E "$pat" "$slog" | tail -n 1 | sed 's/^onebox-server: //')"
  [ $((b1 - b0)) -ge 1 ] || fails+=("$name: not counted as a bad MAC")
  stop_client "$name" >/dev/null
}
write_client_conf "$LAB_DIR/mallory.conf" 10.0.0.3 "$ALICE_KEY"
refused "alice-key-as-bob" "$LAB_DIR/mallory.conf" "not client bob's key"
write_client_conf "$LAB_DIR/shared-as-alice.conf" 10.0.0.2
refused "shared-key-as-alice" "$LAB_DIR/shared-as-alice.conf" "not client alice's key"

write_client_conf "$LAB_DIR/carol.conf" 10.0.0.4
start_client carol cli3 "$LAB_DIR/carol.conf"
wait_tunnel carol 20 || fails+=("carol (shared key, unlisted address) did not connect")
lab_ping cli3 "$LAB_INET_IP" 10 || fails+=("carol: no ping through the tunnel with the shared key")
stop_client carol >/dev/null

# Bob's key naming alice's session id (visible in every header), for bob's
# own address and with the largest timestamp there is: refused, and neither
# her session nor her next rekey (every 10 s here) is harmed.
PROBE=$ONEBOX_BUILD/hs_probe
sid=$(grep -o 'session [0-9a-f]\{8\}' "$(lab_log_file client)" | tail -n 1 | cut -d' ' -f2)
rk0=$(stat_get "$(daemon_stats client)" rekeys)
squat=$(lab_exec cli3 "$PROBE" "$LAB_SERVER_IP" "$LAB_PORT" "$BOB_KEY" "$sid" 10.0.0.3 --confirm --future 2>&1)
echo "measured: bob's key naming alice's session $sid: $squat; server: $(grep 'made with another key' "$slog" | tail -n 1 | sed 's/^onebox-server: //')"
echo "$squat" | grep -q 'status address-in-use' || fails+=("bob's key took alice's session id: $squat")
for _ in $(seq 120); do
  [ "$(stat_get "$(daemon_stats client)" rekeys)" -gt "$rk0" ] && break
  sleep 0.1
done
[ "$(stat_get "$(daemon_stats client)" rekeys)" -gt "$rk0" ] || fails+=("alice could not rekey after bob named her session id")
lab_ping cli "$LAB_INET_IP" 5 || fails+=("alice lost her tunnel after bob named her session id")

# Reload without bob: his session goes at once, alice's stays.
write_server_conf "$LAB_DIR/server.conf"
clients_section no-bob >>"$LAB_DIR/server.conf"
alice_new=$(log_count "$(lab_log_file client)" 'session established')  # fresh sessions (a rekey says nothing)
n0=$(log_count "$slog" "its key is no longer in the config")
kill -HUP "$(daemon_pid server)"
wait_for_log "$slog" "its key is no longer in the config" 10 $((n0 + 1)) || fails+=("reload did not close bob's session")
sleep 3
if lab_exec cli2 ping -n -c 3 -i 0.3 -W 1 "$LAB_INET_IP" >/dev/null 2>&1; then
  fails+=("bob still reaches the internet after his key was removed")
else
  echo "measured: bob removed by a reload: session closed, ping fails; $(grep -cE 'rejected: bad mac \(wrong preshared' "$slog") refusals logged"
fi
lab_ping cli "$LAB_INET_IP" 5 || fails+=("alice lost her tunnel in the reload")
[ "$(log_count "$(lab_log_file client)" 'session established')" = "$alice_new" ] || fails+=("alice had to start a new session over the reload")
stop_client bob >/dev/null

# No shared key at all: only listed clients.
stop_server >/dev/null
write_server_conf "$LAB_DIR/server.conf"
sed -i '/^preshared_key = /d' "$LAB_DIR/server.conf"
clients_section >>"$LAB_DIR/server.conf"
start_server
sleep 0.5
daemon_alive server || lab_fail "server without a shared key did not start: $(tail -n 3 "$slog")"
wait_for_log "$slog" "no shared preshared_key" 5 1 || fails+=("server did not say it has no shared key")
n=0
until lab_exec cli ping -n -c 1 -W 1 "$LAB_INET_IP" >/dev/null 2>&1 || [ $n -ge 10 ]; do n=$((n + 1)); done
[ $n -lt 10 ] || fails+=("alice did not come back to a server without a shared key")
refused "shared-key-no-shared" "$LAB_DIR/carol.conf" "no client listed for tunnel address 10.0.0.4 and no shared preshared_key"

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: per-client keys: each client only at its own address, the shared key for the rest, removal at reload, and no shared key at all"
