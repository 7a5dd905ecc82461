#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_wrong_psk: a client with another PSK gets no tunnel; the server logs "bad mac".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init wrong_psk

write_client_conf "$LAB_DIR/client-bad.conf" 10.0.0.2 "not-the-lab-secret-456"
start_server
sleep 0.5
daemon_alive server || lab_fail "server exited right away"
start_client client cli "$LAB_DIR/client-bad.conf"
wait_for_log "$(lab_log_file server)" 'bad mac' 20 || lab_fail "server never logged 'bad mac'"
grep -m1 'bad mac' "$(lab_log_file server)"
sleep 2
if grep -q 'session established' "$(lab_log_file client)"; then lab_fail "client with a wrong PSK logged 'session established'"; fi
if lab_ping cli 10.0.0.1 3; then lab_fail "10.0.0.1 answers although the PSK is wrong"; fi
s=$(daemon_stats server) || lab_fail "no stats from the server"
bad=$(stat_get "$s" handshake_bad_mac); ok=$(stat_get "$s" handshake_ok)
echo "measured: server handshake_bad_mac=${bad:-missing} handshake_ok=${ok:-missing}"
[ "${bad:-0}" -ge 1 ] || lab_fail "handshake_bad_mac=${bad:-missing}, expected >= 1"
[ "${ok:-1}" -eq 0 ] || lab_fail "handshake_ok=${ok:-missing}, expected 0"
if lab_ping cli "$LAB_INET_IP" 2; then leak="reachable (traffic leaves via the ISP)"; else leak="unreachable (blocked while no tunnel)"; fi
echo "info: with no tunnel, $LAB_INET_IP from the client ns is $leak"
daemon_alive client || echo "info: the client exited on its own"
echo "PASS: wrong PSK rejected"
