#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_forged: forged, tampered and replayed packets sent to the server's UDP port
# from the internet host must be dropped and counted, and the tunnel must keep working.
# Real tunnel packets are captured with an AF_PACKET socket on the server's eth0.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init forged
INJECT=$HERE/tools/inject.py
N=${LAB_FORGED_N:-25}

lab_tunnel_up || lab_fail "tunnel did not come up"

# Capture client->server Data packets while pings flow through the tunnel.
lab_bg srv "$LAB_DIR/capture.out" "$LAB_PY" "$INJECT" capture --iface eth0 --dst-ip "$LAB_SERVER_IP" \
  --port "$LAB_PORT" --types 3 --count "$N" --min 5 --timeout 20 --out "$LAB_DIR/cap.hex"
cap_pid=$LAB_LAST_BG
sleep 0.5
lab_exec cli timeout 20 ping -n -q -c $((N + 10)) -i 0.1 -W 1 10.0.0.1 >/dev/null 2>&1
wait "$cap_pid"; rc=$?
cat "$LAB_DIR/capture.out"
[ "$rc" -eq 0 ] || lab_fail "captured fewer than 5 Data packets of the tunnel on the server's eth0"
ncap=$(wc -l <"$LAB_DIR/cap.hex")
echo "captured $ncap Data packets; first header: $(head -c 32 "$LAB_DIR/cap.hex")"

s0=$(daemon_stats server) || lab_fail "no stats from the server"
echo "server stats before: $s0"
res=$(lab_exec inet timeout 60 "$LAB_PY" "$INJECT" forge --dst "$LAB_SERVER_IP:$LAB_PORT" \
  --capture "$LAB_DIR/cap.hex" --short "$N" --bad-header "$N" --unknown "$N" --garbage "$N" \
  --tamper "$ncap" --replay "$ncap") || lab_fail "inject.py forge failed: $res"
echo "sent: $res"
sleep 1
s1=$(daemon_stats server) || lab_fail "no stats from the server"
echo "server stats after:  $s1"

j() { printf '%s' "$res" | "$LAB_PY" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
short=$(j short); badh=$(j bad_header); unk=$(j unknown_session); garb=$(j garbage)
tamp=$(j tampered); repl=$(j replayed)
d_hdr=$(stat_delta "$s0" "$s1" drop_short drop_bad_header) || lab_fail "stats keys missing"
d_unk=$(stat_delta "$s0" "$s1" drop_unknown_session) || lab_fail "stats keys missing"
d_tag=$(stat_delta "$s0" "$s1" drop_bad_tag) || lab_fail "stats keys missing"
d_rep=$(stat_delta "$s0" "$s1" drop_replay drop_duplicate) || lab_fail "stats keys missing"
d_ok=$(stat_delta "$s0" "$s1" handshake_ok) || lab_fail "stats keys missing"
echo "measured: drop_short+drop_bad_header +$d_hdr (sent $((short + badh)));" \
  "drop_unknown_session +$d_unk (sent $unk); drop_bad_tag +$d_tag (garbage $garb, tampered $tamp);" \
  "drop_replay+drop_duplicate +$d_rep (replayed $repl)"

fails=()
[ "$d_hdr" -ge $((short + badh)) ] || fails+=("drop_short+drop_bad_header rose by $d_hdr < $((short + badh)) sent")
[ "$d_unk" -ge "$unk" ] || fails+=("drop_unknown_session rose by $d_unk < $unk sent")
[ "$d_tag" -ge "$garb" ] || fails+=("drop_bad_tag rose by $d_tag < $garb garbage packets sent")
# A tampered packet carries an already-seen sequence number: a server may count
# it as bad tag or as replay, depending on which check comes first.
[ $((d_tag + d_rep)) -ge $((garb + tamp + repl)) ] ||
  fails+=("drop_bad_tag+drop_replay+drop_duplicate rose by $((d_tag + d_rep)) < $((garb + tamp + repl)) (garbage+tampered+replayed)")
[ "$d_rep" -ge "$repl" ] || fails+=("drop_replay+drop_duplicate rose by $d_rep < $repl replayed packets")
[ "$d_ok" -eq 0 ] || fails+=("handshake_ok rose by $d_ok during the injection")

# The tunnel must be unaffected.
lab_ping cli 10.0.0.1 5 || fails+=("10.0.0.1 no longer answers through the tunnel after the injection")
lab_ping cli "$LAB_INET_IP" 5 || fails+=("$LAB_INET_IP no longer answers through the tunnel after the injection")
daemon_alive server || fails+=("the server died")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: forged/tampered/replayed packets dropped and counted; tunnel still up"
