#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_iperf: iperf3 TCP client -> internet host and reverse (-R), 5 s each, through the tunnel.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init iperf

lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
lab_tunnel_up || lab_fail "tunnel did not come up"

run() { # label, extra args...
  local label=$1 json mbps; shift
  json=$(lab_exec cli timeout 40 iperf3 -c "$LAB_INET_IP" -p 5201 -t 5 --connect-timeout 5000 -J "$@") \
    || { echo "$json" | tail -n 20 >&2; lab_fail "iperf3 $label failed"; }
  mbps=$(printf '%s' "$json" | "$LAB_PY" -c '
import json, sys
d = json.load(sys.stdin)
if "error" in d: print("error: " + d["error"], file=sys.stderr); print(0); sys.exit()
print("%.1f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))')
  echo "measured: iperf3 TCP $label: $mbps Mbit/s" >&2
  awk -v m="$mbps" 'BEGIN{exit !(m > 0)}' || lab_fail "iperf3 $label: $mbps Mbit/s"
  echo "$mbps"
}
tcp0=$(lab_rtr_counter wan_tcp)
up=$(run "client->internet") || exit 1
down=$(run "internet->client (-R)" -R) || exit 1
tcp1=$(lab_rtr_counter wan_tcp)
[ "$tcp1" -eq "$tcp0" ] || lab_fail "$((tcp1 - tcp0)) TCP packets crossed the ISP router outside the tunnel"
echo "PASS: iperf3 through the tunnel: up $up Mbit/s, down $down Mbit/s"
