#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_cleanup: the daemons leave their namespace exactly as they found it
# (links, addresses, rules, routes, nftables, sysctls) after SIGTERM and after
# `stop`; after kill -9 the next start cleans up what was left.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init cleanup
CLI_NS=$(lab_ns cli); SRV_NS=$(lab_ns srv)
fails=()

snap_cmp() { # NS BEFORE_FILE LABEL
  local now=$LAB_DIR/snap-$RANDOM
  snapshot_ns "$1" >"$now"
  if diff -u "$2" "$now" >"$now.diff"; then
    echo "ok: $3: namespace $1 identical to before"
  else
    echo "FAIL: $3: namespace $1 differs from before:" >&2
    cat "$now.diff" >&2
    fails+=("$3")
  fi
}

snapshot_ns "$CLI_NS" >"$LAB_DIR/cli.before"
snapshot_ns "$SRV_NS" >"$LAB_DIR/srv.before"

# 1. client SIGTERM
lab_tunnel_up || lab_fail "tunnel did not come up"
snapshot_ns "$CLI_NS" >"$LAB_DIR/cli.running"
echo "client's changes while running:"; diff "$LAB_DIR/cli.before" "$LAB_DIR/cli.running" | grep '^[<>]' | sed 's/^/    /'
stop_client || lab_fail "client did not exit on SIGTERM"
[ "$LAB_LAST_RC" -eq 0 ] || fails+=("client exit status $LAB_LAST_RC after SIGTERM")
snap_cmp "$CLI_NS" "$LAB_DIR/cli.before" "client after SIGTERM"

# 2. client kill -9, start again (must clean the leftovers), `stop`
start_client
wait_tunnel client 20 || lab_fail "second client start: no session"
kill9_daemon client
snapshot_ns "$CLI_NS" >"$LAB_DIR/cli.killed"
echo "leftovers after kill -9 (expected, cleaned by the next start):"
diff "$LAB_DIR/cli.before" "$LAB_DIR/cli.killed" | grep '^[<>]' | sed 's/^/    /'
if [ -e "$(lab_pid_file client).state" ]; then echo "state file $(lab_pid_file client).state present"
else echo "info: no state file at $(lab_pid_file client).state"; fi
t0=$(date +%s.%N)
start_client
wait_tunnel client 40 || lab_fail "client restarted after kill -9: no session within 40 s"
t1=$(date +%s.%N)
echo "measured: session re-established $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s after restarting a kill -9'd client"
lab_ping cli 10.0.0.1 10 || fails+=("no ping through the tunnel after restart following kill -9")
out=$(ip netns exec "$CLI_NS" "$ONEBOX_CLIENT_BIN" stop -c "$LAB_DIR/client.conf" --pid-file "$(lab_pid_file client)" 2>&1)
rc=$?
echo "onebox-client stop: exit $rc: $out"
[ "$rc" -eq 0 ] || fails+=("onebox-client stop exited $rc")
for _ in $(seq 50); do daemon_alive client || break; sleep 0.1; done
if daemon_alive client; then fails+=("client still running after 'stop' returned"); stop_client; else stop_daemon client TERM 1; fi
snap_cmp "$CLI_NS" "$LAB_DIR/cli.before" "client after kill -9, restart, stop"
out=$(ip netns exec "$CLI_NS" "$ONEBOX_CLIENT_BIN" stop -c "$LAB_DIR/client.conf" --pid-file "$(lab_pid_file client)" 2>&1)
rc=$?
echo "onebox-client stop when not running: exit $rc: $out"
[ "$rc" -eq 3 ] || fails+=("'stop' with nothing running exited $rc, expected 3 (not running)")

# 3. the original default route works again (ISP NAT, no tunnel)
lab_ping cli "$LAB_INET_IP" 5 || fails+=("$LAB_INET_IP unreachable from the client ns after the client stopped")

# 4. server SIGTERM
stop_server || lab_fail "server did not exit on SIGTERM"
[ "$LAB_LAST_RC" -eq 0 ] || fails+=("server exit status $LAB_LAST_RC after SIGTERM")
snap_cmp "$SRV_NS" "$LAB_DIR/srv.before" "server after SIGTERM"

# 5. server kill -9, start again, `stop`
start_server; sleep 1
daemon_alive server || lab_fail "server did not start"
snapshot_ns "$SRV_NS" >"$LAB_DIR/srv.running"
echo "server's changes while running:"; diff "$LAB_DIR/srv.before" "$LAB_DIR/srv.running" | grep '^[<>]' | sed 's/^/    /'
kill9_daemon server
start_server
sleep 1
daemon_alive server || lab_fail "server did not start after kill -9"
lab_tunnel_up || fails+=("no tunnel with a server restarted after kill -9")
stop_client
out=$(ip netns exec "$SRV_NS" "$ONEBOX_SERVER_BIN" stop -c "$LAB_DIR/server.conf" --pid-file "$(lab_pid_file server)" 2>&1)
rc=$?
echo "onebox-server stop: exit $rc: $out"
[ "$rc" -eq 0 ] || fails+=("onebox-server stop exited $rc")
for _ in $(seq 50); do daemon_alive server || break; sleep 0.1; done
if daemon_alive server; then fails+=("server still running after 'stop' returned"); stop_server; else stop_daemon server TERM 1; fi
snap_cmp "$SRV_NS" "$LAB_DIR/srv.before" "server after kill -9, restart, stop"
snap_cmp "$CLI_NS" "$LAB_DIR/cli.before" "client at the end"
lab_ping cli "$LAB_INET_IP" 5 || fails+=("$LAB_INET_IP unreachable from the client ns at the end")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: namespaces restored after SIGTERM, stop and kill -9 + restart"
