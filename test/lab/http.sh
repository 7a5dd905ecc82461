#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_http: 100 MB random file from python3 -m http.server on the internet host,
# downloaded with curl in the client namespace through the tunnel; sha256 must match.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init http

SIZE_MB=${LAB_HTTP_MB:-100}
mkdir -p "$LAB_DIR/www"
head -c "${SIZE_MB}M" /dev/urandom >"$LAB_DIR/www/blob"
want=$(sha256sum <"$LAB_DIR/www/blob" | cut -d' ' -f1)
lab_inet_http "$LAB_DIR/www" 8000 || lab_fail "http server did not start"
lab_tunnel_up || lab_fail "tunnel did not come up"

tcp0=$(lab_rtr_counter wan_tcp)
res=$(lab_exec cli timeout 200 curl -sS --max-time 180 -o "$LAB_DIR/blob.out" \
  -w '%{http_code} %{size_download} %{time_total} %{speed_download}' "http://$LAB_INET_IP:8000/blob") \
  || lab_fail "curl failed: $res"
tcp1=$(lab_rtr_counter wan_tcp)
read -r code size secs speed <<<"$res"
got=$(sha256sum <"$LAB_DIR/blob.out" | cut -d' ' -f1)
mbit=$(awk -v s="$speed" 'BEGIN{printf "%.1f", s*8/1e6}')
echo "measured: HTTP $code, $size bytes in ${secs}s = $mbit Mbit/s; TCP packets outside the tunnel at the ISP router: $((tcp1 - tcp0))"
[ "$code" = 200 ] || lab_fail "HTTP status $code"
[ "$got" = "$want" ] || lab_fail "sha256 mismatch: got $got want $want ($size bytes)"
[ "$tcp1" -eq "$tcp0" ] || lab_fail "$((tcp1 - tcp0)) TCP packets crossed the ISP router outside the tunnel"
echo "PASS: ${SIZE_MB} MB over HTTP through the tunnel, sha256 $got, $mbit Mbit/s"
