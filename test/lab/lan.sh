#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_lan: a LAN host behind the client pings and downloads from the internet
# host; the client forwards and masquerades it into the tunnel.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init lan

mkdir -p "$LAB_DIR/www"
head -c 5M /dev/urandom >"$LAB_DIR/www/blob"
want=$(sha256sum <"$LAB_DIR/www/blob" | cut -d' ' -f1)
lab_inet_http "$LAB_DIR/www" 8000 || lab_fail "http server did not start"
lab_tunnel_up || lab_fail "tunnel did not come up"

icmp0=$(lab_rtr_counter wan_icmp); tcp0=$(lab_rtr_counter wan_tcp)
out=$(lab_exec lan timeout 20 ping -n -c 10 -i 0.2 -W 2 "$LAB_INET_IP" 2>&1)
echo "$out" | tail -n 2
recv=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
[ "${recv:-0}" -ge 8 ] || lab_fail "LAN host: only ${recv:-0}/10 pings to $LAB_INET_IP answered"
res=$(lab_exec lan timeout 60 curl -sS --max-time 50 -o "$LAB_DIR/blob.out" \
  -w '%{http_code} %{size_download} %{speed_download}' "http://$LAB_INET_IP:8000/blob") \
  || lab_fail "LAN host: curl failed: $res"
read -r code size speed <<<"$res"
got=$(sha256sum <"$LAB_DIR/blob.out" | cut -d' ' -f1)
icmp1=$(lab_rtr_counter wan_icmp); tcp1=$(lab_rtr_counter wan_tcp)
echo "measured: LAN ping $recv/10; HTTP $code $size bytes at $(awk -v s="$speed" 'BEGIN{printf "%.1f", s*8/1e6}') Mbit/s; outside-tunnel ICMP +$((icmp1 - icmp0)) TCP +$((tcp1 - tcp0))"
[ "$code" = 200 ] || lab_fail "LAN host: HTTP status $code"
[ "$got" = "$want" ] || lab_fail "LAN host: sha256 mismatch"
{ [ "$icmp1" -eq "$icmp0" ] && [ "$tcp1" -eq "$tcp0" ]; } || lab_fail "LAN traffic crossed the ISP router outside the tunnel"
echo "PASS: LAN host reaches the internet through the client's tunnel"
