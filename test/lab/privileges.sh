#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_privileges: started as root with every capability, both daemons keep
# only what they use once set-up is done: effective, permitted and bounding
# sets of CAP_NET_ADMIN (and CAP_BPF on the server, which steers its two
# workers), nothing inheritable or ambient, no_new_privs, in the main thread
# and in every other thread (the workers). With that alone they still do
# what needs a capability after set-up: wan1 going away and coming back is
# routed again and carries traffic (client), `status` answers over a private
# system bus, a reload applies, and SIGTERM
# puts routes and firewall back (checked against snapshots).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init privileges
lab_dbus_start  # a private system bus: D-Bus keeps working after the drop too
fails=()
sed -i 's/^\[server\]$/[server]\nworkers = 2/' "$LAB_DIR/server.conf"
before_cli=$(snapshot_ns cli)
before_srv=$(snapshot_ns srv)

lab_tunnel_up || lab_fail "tunnel did not come up"
NET_ADMIN=0000000000001000
NET_ADMIN_BPF=0000008000001000
check_caps() { # NAME WANT
  local pid t f line threads=0
  pid=$(daemon_pid "$1")
  for t in /proc/"$pid"/task/*; do
    threads=$((threads + 1))
    for f in CapEff CapPrm CapBnd CapInh CapAmb NoNewPrivs; do
      line=$(awk -v k="$f:" '$1 == k { print $2 }' "$t/status")
      case $f in
        CapEff | CapPrm | CapBnd) want=$2 ;;
        CapInh | CapAmb) want=0000000000000000 ;;
        NoNewPrivs) want=1 ;;
      esac
      [ "$line" = "$want" ] || fails+=("$1 thread $(cat "$t/comm"): $f=$line, want $want")
    done
  done
  echo "measured: $1: $threads threads, each $(grep -E '^(CapEff|CapBnd)' "/proc/$pid/status" | tr '\t\n' '  ')"
}
check_caps client "$NET_ADMIN"
check_caps server "$NET_ADMIN_BPF"
for who in client server; do
  bin=$ONEBOX_CLIENT_BIN; [ "$who" = server ] && bin=$ONEBOX_SERVER_BIN
  out=$("$bin" status 2>&1) || fails+=("status of the $who after the drop: $out")
done
grep -q "2 data-plane workers" "$(lab_log_file server)" || fails+=("the server did not keep its 2 workers")

# After set-up, with CAP_NET_ADMIN only: a link that goes and comes back.
clog=$(lab_log_file client)
l1=$(lab_link_slot wan1)
lab_exec cli ip link set wan1 down
wait_for_log "$clog" "link $l1 removed" 5 || fails+=("client did not drop wan1")
n_up=$(log_count "$clog" "added: wan1 ")
lab_exec cli ip link set wan1 up
lab_exec cli ip route replace default via 192.168.20.1 dev wan1 metric 200
wait_for_log "$clog" "added: wan1 " 5 $((n_up + 1)) || fails+=("client did not take wan1 back")
l1=$(lab_link_slot wan1)
c0=$(daemon_stats client)
lab_exec cli ping -n -q -c 40 -i 0.05 -W 2 "$LAB_INET_IP" >/dev/null 2>&1
c1=$(daemon_stats client)
tx=$(( $(link_stat "$c1" "$l1" tx_packets) - $(link_stat "$c0" "$l1" tx_packets) ))
echo "measured: wan1 back as link $l1, $tx datagrams on it"
[ "$tx" -gt 0 ] || fails+=("wan1 carried nothing after it came back")
grep -iE "not permitted|Failed to" "$clog" | grep -v ' stats: ' && fails+=("the client logged a failure after dropping capabilities")

# A reload, then a clean stop that puts everything back.
n=$(log_count "$clog" "reloaded")
kill -HUP "$(daemon_pid client)"
wait_for_log "$clog" "reloaded" 5 $((n + 1)) || fails+=("client did not log a reload")
stop_client || fails+=("client did not stop")
stop_server || fails+=("server did not stop")
for name in client server; do
  grep -q "stopped; routes and firewall restored" "$(lab_log_file $name)" || fails+=("$name did not log a clean stop")
  grep -iE "not permitted|Failed to" "$(lab_log_file $name)" | grep -v ' stats: ' && fails+=("$name logged a failure")
done
[ "$(snapshot_ns cli)" = "$before_cli" ] || fails+=("the client namespace differs after stop")
[ "$(snapshot_ns srv)" = "$before_srv" ] || fails+=("the server namespace differs after stop")

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: both daemons drop to CAP_NET_ADMIN (+ CAP_BPF on the server) and still route, reload and restore"
