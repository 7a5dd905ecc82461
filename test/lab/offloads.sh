#!/usr/bin/env bash
# lab_offloads: UDP GSO, GRO, multishot receives and their fallbacks, on the
# unlimited veth lab.
#  (a) offloads on (the default): an iperf3 upload and download go through,
#      both daemons batch their sends (gso_sends, gso_datagrams > 0) and
#      receive GRO batches through multishot receives from the slab ring
#      (multishot_arms, gro_receives > 0), and write runs of TCP packets to
#      their TUN as one GSO write (tun_runs, tun_run_packets > 0), with the
#      TUN and sockets in the ring's file table (files_registered > 0);
#  (b) ONEBOX_MULTISHOT=0 ONEBOX_FIXED_FILES=0 (a kernel without buffer
#      rings or file tables): one receive per slab, plain fds, no multishot
#      armed, GRO batches still received, traffic flows;
#  (c) offloads = false in both configs: nothing is batched, traffic flows
#      (the path a kernel without UDP_SEGMENT takes).
# Not here: a path that refuses GSO at run time (the worker's EIO/EINVAL
# fallback): no link of this lab refuses it.
# Throughput is printed for each, not judged (bench/tunnel.sh measures it).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init offloads
fails=()
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"

# run_iperf DIR: Mbit/s of a 3 s iperf3 run (-R for down), or 0.
run_iperf() {
  local a=(); [ "$1" = down ] && a=(-R)
  lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 3 -J "${a[@]}" 2>/dev/null |
    "$LAB_PY" -c 'import json,sys
try: print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception: print(0)'
}
restart_with() { # VALUE of offloads
  stop_daemon client TERM 5 >/dev/null 2>&1; stop_daemon server TERM 5 >/dev/null 2>&1
  write_configs "$LAB_DIR"
  if [ -n "$1" ]; then
    sed -i "s/^\[client\]$/[client]\noffloads = $1/" "$LAB_DIR/client.conf"
    sed -i "s/^\[server\]$/[server]\noffloads = $1/" "$LAB_DIR/server.conf"
  fi
  lab_tunnel_up || lab_fail "tunnel did not come up (offloads=${1:-default})"
}

# (a)
restart_with ""
up=$(run_iperf up); down=$(run_iperf down)
c=$(daemon_stats client); s=$(daemon_stats server)
echo "measured: (a) offloads on: up $up, down $down Mbit/s; client gso_sends=$(stat_text "$c" gso_sends) gso_datagrams=$(stat_text "$c" gso_datagrams), server gso_sends=$(stat_text "$s" gso_sends) gso_datagrams=$(stat_text "$s" gso_datagrams)"
[ "$up" -gt 0 ] && [ "$down" -gt 0 ] || fails+=("(a) iperf3 failed: up $up, down $down")
[ "$(stat_text "$c" gso_sends)" -gt 0 ] || fails+=("(a) the client batched nothing")
[ "$(stat_text "$s" gso_sends)" -gt 0 ] || fails+=("(a) the server batched nothing")
[ "$(stat_text "$c" gso_datagrams)" -gt "$(stat_text "$c" gso_sends)" ] || fails+=("(a) client batches of one datagram")
echo "measured: (a) multishot_arms client $(stat_text "$c" multishot_arms), server $(stat_text "$s" multishot_arms); gro_receives client $(stat_text "$c" gro_receives), server $(stat_text "$s" gro_receives)"
for who in client server; do
  st=$c; [ $who = server ] && st=$s
  [ "$(stat_text "$st" multishot_arms)" -gt 0 ] || fails+=("(a) the $who armed no multishot receive")
  [ "$(stat_text "$st" gro_receives)" -gt 0 ] || fails+=("(a) the $who received no GRO batch")
  [ "$(stat_text "$st" tun_run_packets)" -gt "$(stat_text "$st" tun_runs)" ] || fails+=("(a) the $who wrote no run of packets to its TUN")
  [ "$(stat_text "$st" files_registered)" -ge 2 ] || fails+=("(a) the $who registered fewer than 2 files")
done
echo "measured: (a) tun_runs client $(stat_text "$c" tun_runs) of $(stat_text "$c" tun_run_packets) packets, server $(stat_text "$s" tun_runs) of $(stat_text "$s" tun_run_packets)"

# (b)
export ONEBOX_MULTISHOT=0 ONEBOX_FIXED_FILES=0
restart_with ""
up=$(run_iperf up); down=$(run_iperf down)
c=$(daemon_stats client); s=$(daemon_stats server)
unset ONEBOX_MULTISHOT ONEBOX_FIXED_FILES
echo "measured: (b) ONEBOX_MULTISHOT=0 ONEBOX_FIXED_FILES=0: files_registered client $(stat_text "$c" files_registered), server $(stat_text "$s" files_registered); up $up, down $down Mbit/s; multishot_arms client $(stat_text "$c" multishot_arms), server $(stat_text "$s" multishot_arms); gro_receives client $(stat_text "$c" gro_receives), server $(stat_text "$s" gro_receives)"
[ "$up" -gt 0 ] && [ "$down" -gt 0 ] || fails+=("(b) iperf3 failed: up $up, down $down")
for who in client server; do
  st=$c; [ $who = server ] && st=$s
  [ "$(stat_text "$st" multishot_arms)" -eq 0 ] || fails+=("(b) the $who armed multishot receives with ONEBOX_MULTISHOT=0")
  [ "$(stat_text "$st" files_registered)" -eq 0 ] || fails+=("(b) the $who registered files with ONEBOX_FIXED_FILES=0")
  [ "$(stat_text "$st" gro_receives)" -gt 0 ] || fails+=("(b) the $who received no GRO batch")
done

# (c)
restart_with false
up=$(run_iperf up); down=$(run_iperf down)
c=$(daemon_stats client); s=$(daemon_stats server)
echo "measured: (c) offloads = false: up $up, down $down Mbit/s; gso_sends client $(stat_text "$c" gso_sends), server $(stat_text "$s" gso_sends)"
[ "$up" -gt 0 ] && [ "$down" -gt 0 ] || fails+=("(c) iperf3 failed: up $up, down $down")
[ "$(stat_text "$c" gso_sends)" -eq 0 ] && [ "$(stat_text "$s" gso_sends)" -eq 0 ] || fails+=("(c) batched with offloads = false")
[ "$(stat_text "$c" multishot_arms)" -eq 0 ] && [ "$(stat_text "$s" multishot_arms)" -eq 0 ] || fails+=("(c) multishot receives with offloads = false")
[ "$(stat_text "$c" tun_runs)" -eq 0 ] && [ "$(stat_text "$s" tun_runs)" -eq 0 ] || fails+=("(c) TUN runs with offloads = false")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}"
  exit 1
fi
echo "PASS: UDP GSO, GRO, multishot receives and TUN runs on; one receive per slab; offloads off"
