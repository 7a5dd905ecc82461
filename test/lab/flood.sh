#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_flood: a handshake flood against the server, from the internet host:
# FLOOD_PPS (100000) Init-shaped datagrams per second with random MACs from
# random addresses of 198.18.0.0/15 and random ports (test/tools/hs_flood),
# for FLOOD_SECONDS (10). Meanwhile client 1's tunnel carries a ping every
# 20 ms, and a second client starts 2 s into the flood. Wanted: the second
# client's session is established during the flood (within 5 s of its
# start), client 1 loses no ping, the server answers none of the flood and
# counts it (handshake_bad_mac, or drop_handshake_queue when its queue to
# the control thread is full), and no Diffie-Hellman was done for it
# (handshake_ok grows by exactly the one real client). The server's CPU
# time over the flood is printed. Then a key holder sends 2000 real Inits a
# second from one address for 5 s: at most 20 a second get past the
# per-source rate limit (handshake_ratelimited counts the rest), and client
# 1 still loses no ping; while it spoofs the lab clients' NAT address, a
# new client behind that NAT still connects. Last, a key holder sends COOKIE_PPS (3000) real
# Inits a second from random spoofed addresses: once the server is busy
# they get cookies instead of key exchanges (at most 400 in 6 s), and a
# third client connects through its cookie.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init flood
fails=()
PPS=${FLOOD_PPS:-100000}
SECS=${FLOOD_SECONDS:-10}
FLOOD=$ONEBOX_BUILD/hs_flood
[ -x "$FLOOD" ] || lab_fail "$FLOOD not built (ninja hs_flood)"

# The second column of /proc/net/softnet_stat, summed over CPUs: packets
# dropped because a CPU's input backlog (netdev_max_backlog) was full.
softnet_dropped() {
  local n=0 _a b _r
  while read -r _a b _r; do n=$((n + 16#$b)); done </proc/net/softnet_stat
  echo "$n"
}

lab_add_client cli2 30 || lab_fail "could not add cli2"
write_client_conf "$LAB_DIR/client2.conf" 10.0.0.3
lab_tunnel_up client cli || lab_fail "client 1 tunnel did not come up"
s0=$(daemon_stats server) || lab_fail "no stats from the server"
c0=$(daemon_stats client) || lab_fail "no stats from client 1"
spid=$(daemon_pid server)
cpu0=$(awk '{ print $14 + $15 }' "/proc/$spid/stat")

softnet0=$(softnet_dropped)
udp0=$(lab_exec srv nstat -az UdpRcvbufErrors UdpInErrors 2>/dev/null | awk '$1 ~ /^Udp/ { printf "%s=%s ", $1, $2 }')
lab_bg cli "$LAB_DIR/ping.out" ping -n -i 0.02 -W 1 -c $(((SECS + 2) * 50)) "$LAB_INET_IP"
ping_pid=$LAB_LAST_BG
sleep 0.5
# Two senders of half the rate each: one alone tops out near 70k/s here.
lab_bg inet "$LAB_DIR/flood1.out" "$FLOOD" "$LAB_SERVER_IP" "$LAB_PORT" $((PPS / 2)) "$SECS" 198.18.0.0/16
flood_pid=$LAB_LAST_BG
lab_bg inet "$LAB_DIR/flood2.out" "$FLOOD" "$LAB_SERVER_IP" "$LAB_PORT" $((PPS / 2)) "$SECS" 198.19.0.0/16
flood2_pid=$LAB_LAST_BG
sleep 2
t0=$(date +%s%N)
start_client client2 cli2 "$LAB_DIR/client2.conf"
if wait_tunnel client2 5; then
  took=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  echo "measured: client 2 established its session ${took} s after it started, during the flood"
else
  fails+=("client 2 did not get a session within 5 s during the flood")
fi
# The server's view of client 1's links mid-flood: its probes' RTTs end at
# the kernel's receive time, so the flood queued in its socket is not read
# as queue on the links (which would make admission refuse client 1's pings).
mid=$(daemon_stats server) && echo "measured: mid-flood, the server's smoothed RTTs: $(printf '%s\n' "$mid" | tr ' ' '\n' | grep -E '^link[0-9]+_srtt_us=' | tr '\n' ' ')"
flood_alive=0; kill -0 "$flood_pid" 2>/dev/null && flood_alive=1
[ "$flood_alive" = 1 ] || fails+=("the flood had ended before client 2 was up: nothing was tested")
wait "$flood_pid" "$flood2_pid" "$ping_pid" 2>/dev/null
cpu1=$(awk '{ print $14 + $15 }' "/proc/$spid/stat")
s1=$(daemon_stats server) || lab_fail "no stats from the server"
# Where a lost ping may have gone: the kernel's per-CPU input backlogs
# (shared by every namespace on this machine) and the server's UDP socket.
echo "measured: kernel input backlog drops over the flood: $(( $(softnet_dropped) - softnet0 )) (all namespaces); server UDP before: $udp0 after: $(lab_exec srv nstat -az UdpRcvbufErrors UdpInErrors 2>/dev/null | awk '$1 ~ /^Udp/ { printf "%s=%s ", $1, $2 }')"
c1=$(daemon_stats client) || lab_fail "no stats from client 1"
echo "measured: over the flood, server: $(stat_changes "$s0" "$s1" '^(drop_|no_buffer|multishot_arms|hold|queue_hold|resen|repair|reorder_(timeouts|overflows)|late_delivered|events_lost|probe_r)')"
echo "measured: over the flood, client 1: $(stat_changes "$c0" "$c1" '^(drop_|no_buffer|hold|queue_hold|resen|repair|reorder_(timeouts|overflows)|late_delivered|events_lost)')"
echo "measured: flood: $(cat "$LAB_DIR/flood1.out"); $(cat "$LAB_DIR/flood2.out")"
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping.out")
echo "measured: client 1: $lost of $sent pings lost during the flood (slowest reply $max ms)"
[ "$lost" -eq 0 ] || fails+=("client 1 lost $lost pings during the flood")
bad=$(stat_delta "$s0" "$s1" handshake_bad_mac)
queue=$(stat_delta "$s0" "$s1" drop_handshake_queue)
ok=$(stat_delta "$s0" "$s1" handshake_ok)
hz=$(getconf CLK_TCK)
echo "measured: server: handshake_bad_mac +$bad, drop_handshake_queue +$queue, handshake_ok +$ok; CPU $(awk -v c=$((cpu1 - cpu0)) -v hz="$hz" -v s="$SECS" 'BEGIN { printf "%.2f s over the %d s flood", c / hz, s }')"
sent_n=$(cat "$LAB_DIR/flood1.out" "$LAB_DIR/flood2.out" | sed -nE 's/^sent ([0-9]+) .*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
rate=$(awk -v n="$sent_n" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }')
echo "measured: the two senders together: ${sent_n} datagrams, ${rate} per second"
[ $((bad + queue)) -ge $(( ${sent_n:-1} * 9 / 10 )) ] || fails+=("only $((bad + queue)) of ${sent_n:-?} flood datagrams were seen and counted")
[ "$ok" = 1 ] || fails+=("handshake_ok grew by $ok, want exactly 1 (client 2)")

# A key holder flooding real Inits from one address: 20 a second get as far
# as the replay guard and the address check, the rest are counted and cost
# nothing more than their MAC.
s0=$(daemon_stats server) || lab_fail "no stats from the server"
lab_bg cli "$LAB_DIR/ping2.out" ping -n -i 0.02 -W 1 -c 350 "$LAB_INET_IP"
ping_pid=$LAB_LAST_BG
lab_exec inet "$FLOOD" --psk "$LAB_PSK" "$LAB_SERVER_IP" "$LAB_PORT" 2000 5 198.18.7.7/32 >"$LAB_DIR/flood3.out" 2>&1
wait "$ping_pid" 2>/dev/null
s1=$(daemon_stats server) || lab_fail "no stats from the server"
sent_n=$(sed -nE 's/^sent ([0-9]+) .*/\1/p' "$LAB_DIR/flood3.out")
limited=$(stat_delta "$s0" "$s1" handshake_ratelimited)
passed=$(( $(stat_delta "$s0" "$s1" handshake_ok) + $(stat_delta "$s0" "$s1" handshake_refused) + $(stat_delta "$s0" "$s1" handshake_replayed) ))
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping2.out")
echo "measured: valid Inits from one address: $(cat "$LAB_DIR/flood3.out"); rate-limited $limited, let through $passed; client 1 lost $lost of $sent pings"
[ "${sent_n:-0}" -gt 1000 ] || fails+=("the valid-Init flood sent only ${sent_n:-0}")
[ "$passed" -le $((20 + 20 * 6)) ] || fails+=("$passed valid Inits from one address got past the rate limit in 5 s")
[ "$limited" -ge $(( ${sent_n:-0} - 20 - 20 * 6 )) ] || fails+=("only $limited of ${sent_n:-0} were rate-limited")
[ "$lost" -eq 0 ] || fails+=("client 1 lost $lost pings during the valid-Init flood")

# The same key holder spoofing the address every lab client is seen from
# (the NAT router's, 192.0.2.1): it spends that address's unproven bucket,
# and a new client behind that NAT must still get in (its rate-limited Init
# is answered with a cookie; proven Inits have buckets of their own).
lab_add_client cli4 70 || lab_fail "could not add cli4"
write_client_conf "$LAB_DIR/client4.conf" 10.0.0.5
s0=$(daemon_stats server) || lab_fail "no stats from the server"
lab_bg inet "$LAB_DIR/flood5.out" "$FLOOD" --psk "$LAB_PSK" "$LAB_SERVER_IP" "$LAB_PORT" 2000 6 192.0.2.1/32
flood_pid=$LAB_LAST_BG
sleep 2
t0=$(date +%s%N)
start_client client4 cli4 "$LAB_DIR/client4.conf"
if wait_tunnel client4 5; then
  took=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  echo "measured: client 4 (behind the spoofed address) established its session ${took} s after it started"
else
  fails+=("client 4 did not get a session within 5 s while its NAT address was spoofed")
fi
kill -0 "$flood_pid" 2>/dev/null || fails+=("the flood spoofing the NAT address had ended before client 4 was up")
wait "$flood_pid" 2>/dev/null
s1=$(daemon_stats server) || lab_fail "no stats from the server"
echo "measured: spoofing 192.0.2.1: $(cat "$LAB_DIR/flood5.out"); rate-limited $(stat_delta "$s0" "$s1" handshake_ratelimited), cookies $(stat_delta "$s0" "$s1" handshake_cookie); client 4 received $(stat_get "$(daemon_stats client4)" handshake_cookie) cookie(s)"
stop_client client4 >/dev/null

# A key holder flooding real Inits from spoofed addresses (each its own
# per-source bucket), asking for tunnel addresses in 10.0.0.128/25 so that
# every one would hold a half-open session: the server turns busy (over 200
# key exchanges a second, or 32 half-open) and answers the rest with cookies
# that the spoofed addresses never receive. A third client starting 2 s in
# gets its cookie, asks again and connects.
COOKIE_PPS=${COOKIE_PPS:-3000}
lab_add_client cli3 40 || lab_fail "could not add cli3"
write_client_conf "$LAB_DIR/client3.conf" 10.0.0.4
s0=$(daemon_stats server) || lab_fail "no stats from the server"
lab_bg cli "$LAB_DIR/ping3.out" ping -n -i 0.02 -W 1 -c 400 "$LAB_INET_IP"
ping_pid=$LAB_LAST_BG
lab_bg inet "$LAB_DIR/flood4.out" "$FLOOD" --psk "$LAB_PSK" --tunnel-net 10.0.0.128/25 "$LAB_SERVER_IP" "$LAB_PORT" "$COOKIE_PPS" 6
flood_pid=$LAB_LAST_BG
sleep 2
t0=$(date +%s%N)
start_client client3 cli3 "$LAB_DIR/client3.conf"
if wait_tunnel client3 5; then
  took=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  echo "measured: client 3 established its session ${took} s after it started, during the spoofed valid-Init flood"
else
  fails+=("client 3 did not get a session within 5 s during the spoofed valid-Init flood")
fi
kill -0 "$flood_pid" 2>/dev/null || fails+=("the spoofed flood had ended before client 3 was up: nothing was tested")
wait "$flood_pid" "$ping_pid" 2>/dev/null
s1=$(daemon_stats server) || lab_fail "no stats from the server"
c3=$(daemon_stats client3)
sent_n=$(sed -nE 's/^sent ([0-9]+) .*/\1/p' "$LAB_DIR/flood4.out")
cookies=$(stat_delta "$s0" "$s1" handshake_cookie)
dh=$(( $(stat_delta "$s0" "$s1" handshake_ok) + $(stat_delta "$s0" "$s1" handshake_refused) ))
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping3.out")
echo "measured: spoofed valid Inits: $(cat "$LAB_DIR/flood4.out"); key exchanges $dh, answered with a cookie $cookies; client 3 received $(stat_get "$c3" handshake_cookie) cookie(s); client 1 lost $lost of $sent pings"
[ "${sent_n:-0}" -gt 5000 ] || fails+=("the spoofed valid-Init flood sent only ${sent_n:-0}")
[ "$dh" -le 400 ] || fails+=("$dh key exchanges for ${sent_n:-0} spoofed Inits: the cookies did not hold")
[ "$cookies" -ge $(( ${sent_n:-0} / 2 )) ] || fails+=("only $cookies of ${sent_n:-0} spoofed Inits were answered with a cookie")
[ "$(stat_get "$c3" handshake_cookie)" -ge 1 ] || fails+=("client 3 connected without a cookie: the server was not busy")
[ "$lost" -eq 0 ] || fails+=("client 1 lost $lost pings during the spoofed valid-Init flood")

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: a ${PPS}/s handshake flood: a new client still connects, the live tunnel loses nothing; one address gets 20 handshakes a second; spoofed valid Inits cost no key exchange once the server is busy"
