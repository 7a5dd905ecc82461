#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_restart_tcp: a TCP download through the tunnel (iperf3 -R, 10 s) while
# a daemon restarts (SIGTERM, then started again at once), with a ping every
# 20 ms beside it; each time the pings must come back within 2 s.
#   A. the client restarts: the download must finish without an error and
#      keep moving data (it gets its tunnel address back; the server's NAT
#      mapping is kernel state that never went away);
#   B. the server restarts, with the NAT its operator keeps (masquerade =
#      false and a masquerade rule of their own): the download must survive;
#   D. the same with keep_nat = true: the table stays through the gap and
#      the download must survive;
#   C. the server restarts with its own masquerade, not under systemd
#      (keep_nat = restart, the default, finds no restart job): printed, not
#      asserted. Its nftables table goes at stop, as everything it set up
#      does, and with it the namespace's last NAT hook: the internet's
#      segments of the connection reach the server's own stack untranslated
#      during the gap and are answered with RST (README, "Hardening");
#   E. the default again, "under systemd": INVOCATION_ID set, and
#      systemd_standin on a private system bus answering the three questions
#      the server asks at stop (there is no systemd as PID 1 in the lab).
#      A "restart" job keeps the table and the download must survive; a
#      "stop" job removes it.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init restart_tcp
fails=()
LIMIT=2
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"

# back_after PINGLOG T0: seconds from T0 to the first ping reply after it.
back_after() {
  local first=""
  for _ in $(seq 100); do
    first=$(awk -v t0="$2" '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts + 0 > t0 + 0) { print ts; exit } }' "$1")
    [ -n "$first" ] && break
    sleep 0.1
  done
  [ -n "$first" ] && awk -v a="$2" -v b="$first" 'BEGIN { printf "%.2f", b - a }'
}

# download_across NAME WHO(client|server): restart WHO 4 s into a 10 s
# download; sets SURVIVED (1/0) and prints what happened.
download_across() {
  local name=$1 who=$2 pinglog=$LAB_DIR/ping-$1.out json=$LAB_DIR/iperf-$1.json t0 t_start took rc summary
  lab_bg cli "$pinglog" timeout 30 stdbuf -oL ping -n -D -O -i 0.02 -W 1 -w 12 "$LAB_INET_IP"
  local ping_pid=$LAB_LAST_BG
  t_start=$(date +%s.%N)
  lab_bg cli "$json" timeout 40 iperf3 -c "$LAB_INET_IP" -p 5201 -R -t 10 -i 0.5 -J
  local iperf_pid=$LAB_LAST_BG
  sleep 4
  if [ "$who" = server ]; then
    stop_server >/dev/null || fails+=("$name: server did not stop")
    t0=$(date +%s.%N)  # from the moment it is gone
    start_server
  else
    stop_client >/dev/null || fails+=("$name: client did not stop")
    t0=$(date +%s.%N)
    start_client
    wait_tunnel client 10 || fails+=("$name: client did not come back")
  fi
  took=$(back_after "$pinglog" "$t0")
  wait "$iperf_pid"; rc=$?
  wait "$ping_pid" 2>/dev/null
  summary=$("$LAB_PY" - "$json" "$t_start" "$t0" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("error"):
    print("0 error: " + d["error"]); sys.exit()
t0, back = float(sys.argv[2]), float(sys.argv[3])
after = sum(i["sum"]["bytes"] for i in d.get("intervals", []) if i["sum"]["start"] > back - t0 + 2.5)
print("%d %.1f Mbit/s over the run, %.1f MB from 2.5 s after the restart on" % (1 if after > 0 else 0,
      d["end"]["sum_received"]["bits_per_second"] / 1e6, after / 1e6))
PY
)
  SURVIVED=${summary%% *}
  [ "$rc" = 0 ] || SURVIVED=0
  echo "measured: $name: pings back ${took:-never} s after the restart; download (iperf3 exit $rc): ${summary#* }"
  awk -v t="${took:-99}" -v l="$LIMIT" 'BEGIN { exit !(t <= l) }' || fails+=("$name: pings back ${took:-never} s after the restart")
}

lab_tunnel_up || lab_fail "tunnel did not come up"
download_across "A. client restart" client
[ "$SURVIVED" = 1 ] || fails+=("A: the download did not survive a client restart")

stop_server >/dev/null
sed -i 's/^\[server\]$/[server]\nmasquerade = false/' "$LAB_DIR/server.conf"
lab_exec srv nft -f - <<'NFT' || lab_fail "operator NAT rule"
table ip operator {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.0.0.0/24 oifname != "onebox0" masquerade
  }
}
NFT
start_server
wait_tunnel client 10 || lab_fail "tunnel did not come back with masquerade = false"
lab_ping cli "$LAB_INET_IP" 20 || lab_fail "no ping through the operator's NAT"
download_across "B. server restart, operator's NAT" server
[ "$SURVIVED" = 1 ] || fails+=("B: the download did not survive a server restart with the operator's NAT")

stop_server >/dev/null
lab_exec srv nft delete table ip operator
write_server_conf "$LAB_DIR/server.conf"
start_server
lab_ping cli "$LAB_INET_IP" 20 || lab_fail "no ping with the server's own masquerade again"
download_across "C. server restart, its own masquerade" server
echo "measured: C: the download $([ "$SURVIVED" = 1 ] && echo survived || echo "did not survive (RST from the server's stack while no NAT hook was left)")"

# D. its own masquerade with keep_nat = true: the table stays through the
# gap (the next start takes it over), so the NAT mappings hold.
stop_server >/dev/null
sed -i 's/^\[server\]$/[server]\nkeep_nat = true/' "$LAB_DIR/server.conf"
start_server
wait_tunnel client 10 || lab_fail "tunnel did not come back with keep_nat"
lab_ping cli "$LAB_INET_IP" 20 || lab_fail "no ping with keep_nat"
download_across "D. server restart, its own masquerade, keep_nat" server
[ "$SURVIVED" = 1 ] || fails+=("D: the download did not survive a server restart with keep_nat")
stop_server >/dev/null
lab_exec srv nft list table ip onebox-server >/dev/null 2>&1 || fails+=("D: keep_nat did not keep the table after the stop")
grep -q "the NAT table kept (keep_nat)" "$(lab_log_file server)" || fails+=("D: the server did not say it kept the NAT table")

# E. the default, keep_nat = restart, with systemd's answers from the stand-in.
cat >"$LAB_DIR/systemd-standin.conf" <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root"><allow own="org.freedesktop.systemd1"/></policy>
  <policy context="default"><allow send_destination="org.freedesktop.systemd1"/></policy>
</busconfig>
EOF
lab_dbus_start "$LAB_DIR/systemd-standin.conf"
# standin JOBTYPE: (re)start the stand-in; its calls go to standin-JOBTYPE.out.
STANDIN_PID=""
standin() {
  [ -n "$STANDIN_PID" ] && { kill "$STANDIN_PID" 2>/dev/null; wait "$STANDIN_PID" 2>/dev/null; }
  "$ONEBOX_BUILD/systemd_standin" "$1" >"$LAB_DIR/standin-$1.out" 2>&1 &
  STANDIN_PID=$!
  LAB_BG_PIDS+=("$STANDIN_PID")
  for _ in $(seq 50); do grep -q '^ready' "$LAB_DIR/standin-$1.out" && return 0; sleep 0.1; done
  lab_fail "systemd_standin did not start: $(cat "$LAB_DIR/standin-$1.out")"
}
standin restart
write_server_conf "$LAB_DIR/server.conf"
export INVOCATION_ID=0123456789abcdef0123456789abcdef
start_server
wait_tunnel client 10 || lab_fail "tunnel did not come back for E"
lab_ping cli "$LAB_INET_IP" 20 || lab_fail "no ping in E"
download_across "E. server restart by systemd, keep_nat = restart" server
[ "$SURVIVED" = 1 ] || fails+=("E: the download did not survive a systemd restart with keep_nat = restart")
grep -q "systemd is restarting the unit" "$(lab_log_file server)" || fails+=("E: the server did not say systemd was restarting it")
grep -q "^Job.JobType restart" "$LAB_DIR/standin-restart.out" || fails+=("E: the server did not ask systemd for its job")
standin stop
stop_server >/dev/null
unset INVOCATION_ID
grep -q "^Job.JobType stop" "$LAB_DIR/standin-stop.out" || fails+=("E: the server did not ask systemd at the final stop")
if lab_exec srv nft list table ip onebox-server >/dev/null 2>&1; then
  fails+=("E: a final stop (systemd job stop) left the NAT table behind")
else
  echo "measured: E: a final stop (job type stop) removed the NAT table"
fi

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: restarts: the tunnel back within ${LIMIT} s; TCP survives a client restart, and a server restart under the operator's NAT, with keep_nat = true, or by systemd with the default keep_nat = restart"
