#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_storage: the disk under a running tunnel fails. The client's config
# sits on a read-only mount and its pid and state files on a 1 MiB tmpfs.
# With the tmpfs full: a reload still applies (it only reads); a new WAN
# link's routes cannot be journaled, so it is not taken and the client says
# why in one line; the tunnel keeps carrying pings, and the client stays up.
# Once there is room again, the next change of that link is journaled and
# the link taken. SIGTERM then puts the namespace back exactly as it was.
# Runs in a mount namespace of its own, so no mount outlives it.
set -uo pipefail
if [ -z "${ONEBOX_IN_MOUNT_NS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "SKIP: lab_storage needs root (network namespaces)"; exit 77; }
  exec unshare --mount --propagation private env ONEBOX_IN_MOUNT_NS=1 bash "$0" "$@"
fi
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init storage
fails=()
before_cli=$(snapshot_ns cli)

mkdir -p "$LAB_DIR/etc" "$LAB_DIR/run"
cp "$LAB_DIR/client.conf" "$LAB_DIR/etc/client.conf"
{ mount --bind "$LAB_DIR/etc" "$LAB_DIR/etc" && mount -o remount,bind,ro "$LAB_DIR/etc"; } || lab_fail "read-only bind mount"
mount -t tmpfs -o size=1m tmpfs "$LAB_DIR/run" || lab_fail "tmpfs"
touch "$LAB_DIR/etc/x" 2>/dev/null && lab_fail "the config mount is writable"
start_server
LAB_PID_DIR=$LAB_DIR/run start_client client cli "$LAB_DIR/etc/client.conf"
wait_tunnel client 20 || lab_fail "tunnel did not come up"
lab_ping cli 10.0.0.1 10 || lab_fail "10.0.0.1 does not answer"
clog=$(lab_log_file client)

dd if=/dev/zero of="$LAB_DIR/run/fill" bs=64k 2>/dev/null
echo "measured: tmpfs full: $(df -h "$LAB_DIR/run" | awk 'NR == 2 { print $3 " of " $2 " used" }')"
n=$(log_count "$clog" "config reloaded")
kill -HUP "$(daemon_pid client)"
wait_for_log "$clog" "config reloaded" 5 $((n + 1)) || fails+=("no reload with a read-only config and a full disk")

# A new WAN link (a veth with a default route) needs its routes
# journaled before they are made: on the full disk it is refused, in a line.
nerr=$(log_count "$clog" "No space left on device")
lab_exec cli ip link add wan2 type veth peer name wan2p
lab_exec cli ip link set wan2p up
lab_exec cli ip addr add 192.168.77.2/24 dev wan2
lab_exec cli ip link set wan2 up
lab_exec cli ip route add default via 192.168.77.1 dev wan2 metric 300
if wait_for_log "$clog" "No space left on device" 5 $((nerr + 1)); then
  echo "measured: client: $(grep "No space left on device" "$clog" | tail -n 1)"
else
  fails+=("the client did not say it could not journal wan2 on a full disk")
fi
log_since_start client | grep -q "added: wan2 " && fails+=("wan2 was taken although its routes could not be journaled")
got=$(lab_exec cli ping -n -c 50 -i 0.05 -W 1 "$LAB_INET_IP" 2>/dev/null | sed -nE 's/.* ([0-9]+) received.*/\1/p')
echo "measured: with the disk full: ${got:-0}/50 pings answered"
[ "${got:-0}" -ge 48 ] || fails+=("only ${got:-0}/50 pings with the disk full")
daemon_alive client || lab_fail "the client died on a full disk"

# Room again: the next change of wan2 is journaled, routed and taken.
rm -f "$LAB_DIR/run/fill"
lab_exec cli ip link set wan2 down
sleep 0.5
lab_exec cli ip link set wan2 up
lab_exec cli ip route replace default via 192.168.77.1 dev wan2 metric 300
if wait_for_log "$clog" "added: wan2 " 10; then
  echo "measured: client: $(grep "added: wan2 " "$clog" | tail -n 1)"
else
  fails+=("wan2 was not taken once there was room")
fi
lab_exec cli ip link del wan2
wait_for_log "$clog" "removed: wan2" 5 || fails+=("wan2 was not let go when it was deleted")
lab_ping cli "$LAB_INET_IP" 5 || fails+=("no ping through the tunnel after the disk recovered")

stop_client || fails+=("client did not stop")
grep -q "stopped; routes and firewall restored" "$clog" || fails+=("client did not log a clean stop")
[ "$(snapshot_ns cli)" = "$before_cli" ] || fails+=("the client namespace differs after stop")

if [ ${#fails[@]} -gt 0 ]; then printf 'FAIL: %s\n' "${fails[@]}"; exit 1; fi
echo "PASS: a read-only config and a full disk cost a link its route, not the tunnel"
