#!/usr/bin/env bash
# lab_modes: mode = "redundant" and mode = "backup" do what they say, both
# ways. Both WANs run through linkemu (LAB_EMU=1) at 40 and 20 Mbit/s, 10 ms
# each way.
#
#  (a) redundant, 30 % random loss on wan1 (both directions), 0 % on wan0:
#      a ping flood (every 10 ms, 500 pings) loses nothing, and both links
#      carry every packet (each end's per-link packet counts within 10 %);
#  (b) backup, wan0 priority 1, wan1 priority 2: during a 4 s iperf3 upload
#      and download wan1 carries < 1 % of the bytes each end sends; then wan0
#      is cut under a ping flood: both ends move to wan1 (their stats show
#      it used), the slowest ping across the cut takes at most 1 s (what was
#      in flight on wan0 is sent again on wan1) and at most 100 (1 s worth)
#      are lost (printed); after wan0 is back and its 2 s hold is over, wan1
#      is idle again;
#  (c) SIGHUP after the config's mode became "round-robin": both ends split
#      1:1 (0.9 .. 1.1) without a restart, under 30 Mbit/s of iperf3 each
#      way (all datagrams counted: data, Feedback and its copies, probes); SIGHUP with a broken config: an
#      error line, and the tunnel keeps working;
#  (d) mode bond: under a ping flood each end copies pings (requests,
#      replies) onto the other link, within each link's 1/16 share
#      (light_copies); a reload to light_copies = false stops it, one back
#      to true restarts it; no ping lost.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"

LAB_TEST=modes
lab_require_emu "$LAB_TEST"
lab_test_init "$LAB_TEST"
fails=()

lab_emu_set wan0 "set both rate=40mbit delay=10ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"

# ---- (a) redundant -----------------------------------------------------------
lab_client_with 'mode = "redundant"'
lab_emu_set wan1 "set both loss=30" || lab_fail "linkemu wan1 loss"
for who in client server; do eval "before_$who=\$(daemon_stats $who)"; done
r=$(lab_ping_flood 500 "$LAB_DIR/ping-a.out"); r=${r% *}
echo "measured: (a) redundant, 30 % loss on wan1: ${r% *} of ${r#* } pings lost"
[ "${r% *}" -eq 0 ] && [ "${r#* }" -eq 500 ] || fails+=("(a) redundant: ${r% *} of ${r#* } pings lost")
for who in client server; do
  a=$(daemon_stats "$who"); eval "b=\$before_$who"
  p0=$(( $(link_stat "$a" "$L0" tx_packets) - $(link_stat "$b" "$L0" tx_packets) ))
  p1=$(( $(link_stat "$a" "$L1" tx_packets) - $(link_stat "$b" "$L1" tx_packets) ))
  c=$(( $(stat_get "$a" redundant_copies) - $(stat_get "$b" redundant_copies) ))
  echo "measured: (a) $who sent wan0 $p0, wan1 $p1 datagrams, $c of them extra copies"
  # Every ping (request or reply) copied once; wan0 also carries the Feedback.
  [ "$c" -ge 500 ] && [ "$p1" -ge 500 ] || fails+=("(a) $who made $c copies and sent $p1 on wan1, want >= 500 each")
done
lab_emu_set wan1 "set both loss=0" || lab_fail "linkemu wan1 loss"

# ---- (b) backup --------------------------------------------------------------
lab_client_with 'mode = "backup"' $'[client.link.wan0]\npriority = 1\n[client.link.wan1]\npriority = 2'
# share WHO IPERF_ARGS...: wan1's share of WHO's sent bytes over a 4 s run, in %.
share() {
  local who=$1 b a; shift
  b=$(daemon_stats "$who")
  lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 4 "$@" >/dev/null 2>&1 || fails+=("(b) iperf3 $* failed")
  a=$(daemon_stats "$who")
  awk -v x="$(( $(link_stat "$a" "$L0" tx_bytes) - $(link_stat "$b" "$L0" tx_bytes) ))" \
      -v y="$(( $(link_stat "$a" "$L1" tx_bytes) - $(link_stat "$b" "$L1" tx_bytes) ))" \
      'BEGIN { printf "%.3f %d %d", (x + y > 0 ? 100 * y / (x + y) : 100), x, y }'
}
for run in "client up" "server down"; do
  who=${run% *}; dir=${run#* }
  if [ "$dir" = down ]; then s=$(share "$who" -R); else s=$(share "$who"); fi
  set -- $s
  echo "measured: (b) backup, $dir: $who sent wan1 $1 % of its bytes (wan0 $2, wan1 $3)"
  awk -v p="$1" -v x="$2" 'BEGIN { exit !(p < 1 && x > 5000000) }' || fails+=("(b) $dir: wan1 carried $1 % (wan0 $2 bytes)")
done

# Cut wan0 under a ping flood: wan1 must take over.
lab_exec cli ping -n -i 0.01 -W 1 -c 400 "$LAB_INET_IP" >"$LAB_DIR/ping-b.out" 2>&1 &
ping_pid=$!
sleep 1
lab_emu_set wan0 "set both cut=1" || lab_fail "linkemu wan0 cut"
t0=$(date +%s%N)
declare -A moved=()
while [ ${#moved[@]} -lt 2 ]; do
  for who in client server; do
    [ -n "${moved[$who]:-}" ] && continue
    s=$(daemon_stats "$who")
    [ "$(stat_text "$s" "link${L1}_used") $(stat_text "$s" "link${L0}_used")" = "1 0" ] \
      && moved[$who]=$(( ($(date +%s%N) - t0) / 1000000 ))
  done
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 3000 ] && break
done
for who in client server; do
  ms=${moved[$who]:-never}
  echo "measured: (b) wan0 cut: $who stats show wan1 alone after $ms ms (each poll takes a few hundred ms)"
  [ "$ms" != never ] || fails+=("(b) $who did not move to wan1 within 3 s")
done
sleep 1
lab_emu_set wan0 "set both cut=0" || lab_fail "linkemu wan0 restore"
wait "$ping_pid"
read -r lost sent max < <(lab_ping_summary "$LAB_DIR/ping-b.out")
echo "measured: (b) ping flood across the wan0 cut: $lost of $sent lost, slowest reply $max ms"
# Taken over within 1 s: the ping that waited longest (sent just before the
# cut, sent again on wan1, answered over wan1) took under a second.
awk -v m="${max:-99999}" 'BEGIN { exit !(m <= 1000) }' || fails+=("(b) slowest ping across the cut took ${max:-?} ms (want <= 1000)")
for who in client server; do
  s=$(daemon_stats "$who")
  echo "measured: (b) $who link0 stalls=$(stat_text "$s" "link${L0}_stalls") downs=$(stat_text "$s" "link${L0}_downs") resent=$(stat_text "$s" resent) resend_dropped=$(stat_text "$s" resend_dropped) late_delivered=$(stat_text "$s" late_delivered) drop_over_budget=$(stat_text "$s" drop_over_budget)"
done
[ "$lost" -le 100 ] || fails+=("(b) lost $lost pings across the cut")
# wan0 back and past its hold: wan1 idle again.
sleep 3
s=$(daemon_stats client)
[ "$(stat_text "$s" "link${L0}_used") $(stat_text "$s" "link${L1}_used")" = "1 0" ] \
  || fails+=("(b) after wan0 came back the client uses wan0=$(stat_text "$s" "link${L0}_used") wan1=$(stat_text "$s" "link${L1}_used")")

# ---- (c) SIGHUP: the mode changes while running; a broken config is refused --
clog=$(lab_log_file client)
lab_client_with ""
sed -i 's/^\[client\]$/[client]\nmode = "round-robin"/' "$LAB_DIR/client.conf"
n=$(log_count "$clog" 'config reloaded')
kill -HUP "${LAB_DPID[client]}"
wait_for_log "$clog" 'config reloaded.*mode round-robin' 5 $((n + 1)) || fails+=("(c) the client did not log the reload")
for who in client server; do eval "before_$who=\$(daemon_stats $who)"; done
# 30 Mbit/s: half of it (15) fits wan1's 20, so what is measured is the
# split, not repairs of what wan1's full queue dropped.
lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 2 -b 30M >/dev/null 2>&1 || fails+=("(c) iperf3 up failed")
lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 2 -b 30M -R >/dev/null 2>&1 || fails+=("(c) iperf3 down failed")
for who in client server; do
  a=$(daemon_stats "$who"); eval "b=\$before_$who"
  p0=$(( $(link_stat "$a" "$L0" tx_packets) - $(link_stat "$b" "$L0" tx_packets) ))
  p1=$(( $(link_stat "$a" "$L1" tx_packets) - $(link_stat "$b" "$L1" tx_packets) ))
  r=$(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 999) }')
  echo "measured: (c) after SIGHUP to round-robin: $who sent wan0 $p0, wan1 $p1 datagrams (ratio $r)"
  echo "measured: (c) $who repaired=$(( $(stat_text "$a" repaired) - $(stat_text "$b" repaired) )) of them"
  awk -v r="$r" 'BEGIN { exit !(r >= 0.9 && r <= 1.1) }' || fails+=("(c) $who: wan0:wan1 = $r after switching to round-robin, want 0.9..1.1")
done
cp "$LAB_DIR/client.conf" "$LAB_DIR/client.conf.good"
printf 'mode = fast\n' >>"$LAB_DIR/client.conf"  # a key after the last section: a bad value
n=$(log_count "$clog" 'reload refused')
kill -HUP "${LAB_DPID[client]}"
wait_for_log "$clog" 'reload refused, the running config stays: .*mode' 5 $((n + 1)) || fails+=("(c) a broken config was not refused with an error line")
grep 'reload refused' "$clog" | tail -n 1 | sed 's/^/measured: (c) /'
r=$(lab_ping_flood 50 "$LAB_DIR/ping-c.out"); r=${r% *}
[ "${r% *}" -eq 0 ] || fails+=("(c) after the refused reload ${r% *} of 50 pings were lost")
cp "$LAB_DIR/client.conf.good" "$LAB_DIR/client.conf"

# ---- (d) light copies in mode bond, and their switch reloaded ---------------
# copies_during LABEL: a 200-ping flood; prints each end's light_copies made
# during it and the pings lost, "client server lost" (it runs in a
# subshell: the caller checks).
copies_during() {
  local who r before_c before_s after
  before_c=$(daemon_stats client); before_s=$(daemon_stats server)
  r=$(lab_ping_flood 200 "$LAB_DIR/ping-d-$1.out"); r=${r% *}
  after=$(daemon_stats client)
  printf '%s ' "$(( $(stat_get "$after" light_copies) - $(stat_get "$before_c" light_copies) ))"
  after=$(daemon_stats server)
  printf '%s ' "$(( $(stat_get "$after" light_copies) - $(stat_get "$before_s" light_copies) ))"
  echo "${r% *}"
}
lab_client_with ""
# Pings 10 ms apart, both links in use: a request (client) or a reply
# (server) is copied on the link that did not carry it, at most 1/16 of
# that link's pacing rate. Idle links are modelled at 1 Mbit/s or more, so
# a ping's share is 16 ms at gain 1, up to about 45 ms in a Drain phase:
# 120-200 of 200 copied in the runs so far, and the test wants 30.
for step in "default:" "off:false" "on:true"; do
  label=${step%%:*}; value=${step#*:}
  [ -n "$value" ] && lab_set_keys light_copies "$value"
  read -r cc sc lost < <(copies_during "$label")
  echo "measured: (d) light_copies $label: client made $cc copies, server $sc, over 200 pings ($lost lost)"
  [ "${lost:-1}" -eq 0 ] || fails+=("(d) light_copies $label: ${lost:-?} of 200 pings lost")
  if [ "$label" = off ]; then
    [ "$cc" -eq 0 ] && [ "$sc" -eq 0 ] || fails+=("(d) light_copies = false: the client made $cc copies, the server $sc")
  else
    [ "$cc" -ge 30 ] && [ "$sc" -ge 30 ] || fails+=("(d) light_copies $label: the client made $cc copies, the server $sc (want >= 30 each)")
  fi
done

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: redundant loses nothing over a 30 % lossy link; backup keeps the backup idle and takes over on a cut; SIGHUP changes the mode and refuses a broken config; light copies follow their reloaded switch"
