#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_caps: the capabilities the units grant are all the daemons need. Both run
# as root but with every capability but CAP_NET_ADMIN (TUN, routes, rules,
# nftables, SO_MARK), and the server's CAP_BPF (its workers' TUN steering),
# out of their bounding set and no_new_privs (setpriv, as
# CapabilityBoundingSet= and NoNewPrivileges= do under systemd). The client's
# SO_BINDTODEVICE needs no CAP_NET_RAW on Linux 5.7 and later. The tunnel comes up, pings go through,
# and both stop cleanly with routes and firewall restored; both take their
# D-Bus names on a private system bus (Debian's policy and ours) and answer
# `status`. Without CAP_NET_ADMIN the client refuses to start with one line
# and exit 1.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
command -v setpriv >/dev/null || { echo "SKIP: setpriv (util-linux) not installed"; exit 77; }
lab_test_init caps
lab_dbus_start

# Wrappers in place of the binaries: the lab starts them as usual.
wrap() { # NAME REAL CAPS
  printf '#!/bin/sh\nexec setpriv --bounding-set=-all,%s --inh-caps=-all --no-new-privs %s "$@"\n' "$3" "$2" >"$LAB_DIR/$1"
  chmod +x "$LAB_DIR/$1"
}
wrap onebox-client "$ONEBOX_CLIENT_BIN" +net_admin
wrap onebox-server "$ONEBOX_SERVER_BIN" +net_admin,+bpf
wrap onebox-client-noadmin "$ONEBOX_CLIENT_BIN" +net_raw
REAL_CLIENT=$ONEBOX_CLIENT_BIN
REAL_SERVER=$ONEBOX_SERVER_BIN
ONEBOX_CLIENT_BIN=$LAB_DIR/onebox-client
ONEBOX_SERVER_BIN=$LAB_DIR/onebox-server

lab_tunnel_up || lab_fail "tunnel did not come up with the units' capabilities only"
sleep 1
for who in client server; do
  bin=$REAL_CLIENT; [ "$who" = server ] && bin=$REAL_SERVER
  out=$("$bin" status 2>&1) || lab_fail "status of the $who with the units' capabilities: $out"
  echo "measured: $who status: $(head -n 1 <<<"$out")"
done
for name in client server; do
  caps=$(grep CapBnd "/proc/$(daemon_pid $name)/status" | awk '{print $2}')
  nnp=$(grep NoNewPrivs "/proc/$(daemon_pid $name)/status" | awk '{print $2}')
  echo "measured: $name runs with CapBnd=$caps NoNewPrivs=$nnp"
  [ "$nnp" = 1 ] || lab_fail "$name: no_new_privs is not set: the wrapper did not apply"
done
out=$(lab_exec cli timeout 20 ping -n -c 10 -i 0.2 -W 2 "$LAB_INET_IP" 2>&1)
recv=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
echo "measured: $recv/10 pings through the tunnel"
[ "${recv:-0}" -ge 8 ] || lab_fail "only ${recv:-0}/10 pings answered"
stop_client || lab_fail "client did not stop"
stop_server || lab_fail "server did not stop"
for name in client server; do
  grep -q "stopped; routes and firewall restored" "$(lab_log_file $name)" ||
    lab_fail "$name did not log a clean stop"
  errs=$(grep -v ' stats: ' "$(lab_log_file $name)" | grep -iE 'failed|error|not permitted' || true)
  [ -z "$errs" ] || { printf '%s\n' "$errs"; lab_fail "$name logged an error with the units' capabilities"; }
done

# Without CAP_NET_ADMIN: a one-line refusal, exit 1, nothing left behind.
start_server
ONEBOX_CLIENT_BIN=$LAB_DIR/onebox-client-noadmin
start_client
for _ in $(seq 50); do daemon_alive client || break; sleep 0.1; done
daemon_alive client && lab_fail "the client runs without CAP_NET_ADMIN"
wait "$(daemon_pid client)" 2>/dev/null
rc=$?
line=$(log_since_start client | grep -v '^###' | tail -n 1)
echo "measured: without CAP_NET_ADMIN: exit $rc, '$line'"
[ "$rc" -eq 1 ] || lab_fail "exit $rc without CAP_NET_ADMIN, want 1"
ONEBOX_CLIENT_BIN=$REAL_CLIENT
echo "PASS: CAP_NET_ADMIN is all the daemons need"
