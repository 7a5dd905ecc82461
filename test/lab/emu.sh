#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_emu: the lab's link emulator itself (linkemu, test/emu/linkemu.cpp); no
# onebox daemons. LAB_EMU=1 puts linkemu between the client's wan0 and the ISP
# router; the client's default route is via wan0, so everything below goes
# cli -> linkemu(wan0) -> rtr -> internet host 192.0.2.88 and back. Every
# setting is changed at run time through the control socket, and every measured
# figure is printed next to its target ("measured: ...").
#
#  (a) delay: RTT with delay=20ms each way is 40 ms + the baseline RTT (±10%);
#      with 30 ms up and 0 down it is 30 ms + baseline (directions independent).
#  (b) jitter=5ms on both directions: uniform in ±5 ms gives a one-way sigma of
#      5/sqrt(3) = 2.89 ms, so the RTT's standard deviation (ping's mdev) should be
#      sqrt(2) * 2.89 = 4.08 ms; dist=normal (sigma 5 ms): 7.07 ms. From 100
#      pings that estimate itself wobbles by ~10%, so the test demands 1..10 ms
#      and prints the figure against the expectation.
#  (c) order: with jitter, a direction keeps its frames in order (iperf3 UDP sees
#      0 out-of-order datagrams) unless reorder=1 (then it sees some).
#  (d) rate: linkemu counts whole Ethernet frames against the rate (like tc), so
#      what an application can get is less than the link rate. The honest check
#      is the goodput a perfect sender would see:
#        UDP, 1400-byte datagrams: 1400 / (1400+8+20+14) = 97.1% of the rate,
#        TCP, MSS 1448 (timestamps on): 1448 / (1448+32+20+14) = 95.6%.
#      UDP is offered at 1.5x the rate, so the queue is always full and what the
#      receiver gets is the link's rate exactly (tail drops shed the rest); TCP
#      must also fill the pipe by itself (iperf3 -O 1 leaves out slow start).
#      Both are checked within 10% of those goodputs, up (20 Mbit/s) and down
#      (10 Mbit/s, a different figure so a swapped direction would show).
#  (e) loss=10 on one direction: 10% of round trips lost (ping -c 400 -i 0.01:
#      the estimate's sigma is 1.5 points, the test accepts 5..15%); up, then down.
#  (f) cut=1: every ping lost (and counted as drop_cut); cut=0: pings are back
#      within 2 s.
#  (g) a change lands while traffic flows: during one ping run delay goes from 0
#      to 50 ms each way, and that run's own RTTs show it.
#  (h) a bad command is refused with a one-line error and changes nothing.
#  (i) an emulator that loses the CPU does not drop what the link would have
#      carried: UDP at half of rate=10mbit (queue=50ms) while linkemu is
#      stopped (SIGSTOP) for 300 ms, three times; the frames that came
#      meanwhile are admitted at their kernel arrival times, so none is
#      tail-dropped (read at once on waking they would make 150 ms of queue).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"

LAB_TEST=emu
lab_require_emu "$LAB_TEST"
lab_start "$LAB_TEST"

fails=()
# check LABEL VALUE TARGET PCT [UNIT]: VALUE within PCT% of TARGET; prints both.
check() {
  local label=$1 v=$2 t=$3 pct=$4 unit=${5:-} ok
  ok=$(awk -v v="$v" -v t="$t" -v p="$pct" 'BEGIN { d = v - t; if (d < 0) d = -d; print (d <= t * p / 100) ? "OK" : "FAIL" }')
  printf 'measured: %-44s %9.3f %s vs target %9.3f %s (±%s%%, off by %+.1f%%) %s\n' "$label" "$v" "$unit" "$t" "$unit" "$pct" \
    "$(awk -v v="$v" -v t="$t" 'BEGIN { print (v - t) * 100 / t }')" "$ok"
  [ "$ok" = OK ] || fails+=("$label: $v $unit vs $t $unit ±$pct%")
}
# check_range LABEL VALUE LO HI [UNIT] [NOTE]
check_range() {
  local label=$1 v=$2 lo=$3 hi=$4 unit=${5:-} note=${6:-} ok
  ok=$(awk -v v="$v" -v lo="$lo" -v hi="$hi" 'BEGIN { print (v >= lo && v <= hi) ? "OK" : "FAIL" }')
  printf 'measured: %-44s %9s %s, want %s..%s %s %s %s\n' "$label" "$v" "$unit" "$lo" "$hi" "$unit" "$note" "$ok"
  [ "$ok" = OK ] || fails+=("$label: $v $unit not in $lo..$hi")
}
emu() { lab_emu_set wan0 "$1" || lab_fail "linkemu refused '$1'"; }
# pings COUNT INTERVAL: "transmitted received loss% min avg max mdev" of a ping run to the internet host.
pings() {
  local out
  out=$(lab_exec cli timeout $((${1} / 20 + 20)) ping -n -q -c "$1" -i "$2" -W 1 "$LAB_INET_IP" 2>&1)
  printf '%s\n' "$out" | awk '
    / packets transmitted/ { tx = $1; rx = $4; for (i = 1; i <= NF; i++) if ($i ~ /%$/) { loss = $i; sub(/%/, "", loss) } }
    /^rtt|^round-trip/ { split($4, r, "/"); mn = r[1]; av = r[2]; mx = r[3]; md = r[4] }
    END { printf "%d %d %s %s %s %s %s\n", tx, rx, (loss == "" ? 100 : loss), mn + 0, av + 0, mx + 0, md + 0 }'
}
field() { echo "$1" | cut -d' ' -f"$2"; }
# iperf LABEL JSON_FIELD iperf3-args...: received Mbit/s (or the JSON field's value) of one iperf3 run.
iperf() {
  local label=$1 what=$2 json; shift 2
  json=$(lab_exec cli timeout 40 iperf3 -c "$LAB_INET_IP" -p 5201 --connect-timeout 5000 -J "$@") \
    || { echo "$json" | tail -n 20 >&2; lab_fail "iperf3 $label failed"; }
  printf '%s' "$json" | "$LAB_PY" -c '
import json, sys
d = json.load(sys.stdin)
if "error" in d: print("iperf3 error: " + d["error"], file=sys.stderr); print(-1); sys.exit()
e = d["end"]
if sys.argv[1] == "mbps": print("%.3f" % (e["sum_received"]["bits_per_second"] / 1e6))
else: print(sum(s["udp"].get("out_of_order", 0) for s in e["streams"]))' "$what"
}
ctr() { lab_emu_counter wan0 "$1" "$2"; }

# The path under test really is wan0 and its emulator.
lab_exec cli ip route get "$LAB_INET_IP" | grep -q ' dev wan0 ' || lab_fail "the client does not route $LAB_INET_IP via wan0"
f0=$(ctr up rx_frames)
lab_ping cli "$LAB_INET_IP" 3 || lab_fail "no ping through the emulator"
[ "$(ctr up rx_frames)" -gt "$f0" ] || lab_fail "the ping did not cross the wan0 emulator"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"

# ---- (a) delay
emu 'set both rate=0 delay=0 jitter=0 loss=0 cut=0'
r=$(pings 20 0.05); base=$(field "$r" 5)
echo "measured: baseline RTT through linkemu (delay 0): avg $base ms (min $(field "$r" 4), max $(field "$r" 6))"
emu 'set both delay=20ms'
r=$(pings 20 0.1)
check "RTT, delay=20ms each way" "$(field "$r" 5)" "$(awk -v b="$base" 'BEGIN { print 40 + b }')" 10 ms
check_range "RTT min, delay=20ms each way" "$(field "$r" 4)" 40 48 ms "(never below the delay)"
emu 'set up delay=30ms'
emu 'set down delay=0'
r=$(pings 20 0.1)
check "RTT, delay=30ms up, 0 down" "$(field "$r" 5)" "$(awk -v b="$base" 'BEGIN { print 30 + b }')" 10 ms

# ---- (b) jitter
emu 'set both delay=20ms jitter=5ms dist=uniform'
r=$(pings 100 0.05)
check "RTT avg, delay=20ms jitter=5ms uniform" "$(field "$r" 5)" "$(awk -v b="$base" 'BEGIN { print 40 + b }')" 10 ms
check_range "RTT mdev, jitter=5ms uniform" "$(field "$r" 7)" 1 10 ms "(expected 4.08)"
emu 'set both dist=normal'
r=$(pings 100 0.05)
check_range "RTT mdev, jitter=5ms normal" "$(field "$r" 7)" 1 10 ms "(expected 7.07)"

# ---- (c) order under jitter (down direction: the iperf3 client is the receiver with -R)
emu 'set both dist=uniform reorder=0'
ooo=$(iperf "order" ooo -u -b 10M -l 1000 -t 2 -R)
check_range "out-of-order datagrams, jitter, reorder=0" "$ooo" 0 0
emu 'set down reorder=1'
ooo=$(iperf "reorder" ooo -u -b 10M -l 1000 -t 2 -R)
check_range "out-of-order datagrams, jitter, reorder=1" "$ooo" 1 1000000 "" "(some)"
emu 'set both delay=0 jitter=0 reorder=0'

# ---- (d) rate
emu 'set up rate=20mbit'
q0=$(ctr up drop_queue)
check "UDP up, rate=20mbit (goodput 97.1%)" "$(iperf "UDP up" mbps -u -b 30M -l 1400 -t 5)" 19.417 10 Mbit/s
check_range "queue tail drops up (UDP offered at 30M)" "$(($(ctr up drop_queue) - q0))" 1 100000000
check "TCP up, rate=20mbit (goodput 95.6%)" "$(iperf "TCP up" mbps -t 6 -O 1)" 19.128 10 Mbit/s
emu 'set up rate=0'
emu 'set down rate=10mbit'
check "UDP down, rate=10mbit (goodput 97.1%)" "$(iperf "UDP down" mbps -u -b 15M -l 1400 -t 5 -R)" 9.709 10 Mbit/s
check "TCP down, rate=10mbit (goodput 95.6%)" "$(iperf "TCP down" mbps -t 6 -O 1 -R)" 9.564 10 Mbit/s
emu 'set down rate=0'

# ---- (e) loss
for d in up down; do
  l0=$(ctr "$d" drop_loss)
  emu "set $d loss=10"
  r=$(pings 400 0.01)
  check_range "round-trip loss, loss=10 $d only" "$(field "$r" 3)" 5 15 % "(expected 10; $(field "$r" 2)/$(field "$r" 1) back, linkemu drop_loss +$(($(ctr "$d" drop_loss) - l0)))"
  emu "set $d loss=0"
done

# ---- (f) cut
c0=$(ctr up drop_cut)
emu 'set both cut=1'
r=$(pings 10 0.1)
check_range "loss with cut=1" "$(field "$r" 3)" 100 100 % "(linkemu drop_cut up +$(($(ctr up drop_cut) - c0)))"
emu 'set both cut=0'
t0=$(date +%s%N); back=""
for _ in $(seq 20); do
  if lab_exec cli timeout 2 ping -n -q -c 1 -W 0.2 "$LAB_INET_IP" >/dev/null 2>&1; then back=1; break; fi
done
if [ -n "$back" ]; then
  check_range "first reply after cut=0" "$((($(date +%s%N) - t0) / 1000000))" 0 2000 ms
else
  fails+=("no ping came back after cut=0")
fi
r=$(pings 10 0.1)
check_range "loss after cut=0" "$(field "$r" 3)" 0 0 %

# ---- (g) a change in the middle of a ping run
lab_exec cli timeout 20 ping -n -c 40 -i 0.05 -W 1 "$LAB_INET_IP" >"$LAB_DIR/live-ping.out" 2>&1 &
pp=$!
sleep 1
emu 'set both delay=50ms'
wait "$pp"
mapfile -t rtts < <(sed -n 's/.*time=\([0-9.]*\) ms/\1/p' "$LAB_DIR/live-ping.out")
[ "${#rtts[@]}" -ge 30 ] || fails+=("live change: only ${#rtts[@]}/40 replies")
if [ "${#rtts[@]}" -ge 30 ]; then
  check_range "live change: first RTT of the run" "${rtts[0]}" 0 10 ms
  check "live change: last RTT of the run" "${rtts[${#rtts[@]} - 1]}" "$(awk -v b="$base" 'BEGIN { print 100 + b }')" 10 ms
fi
emu 'set both delay=0'

# ---- (h) a bad command changes nothing
if out=$(timeout 10 "$LAB_LINKEMU_BIN" ctl "$(lab_emu_sock wan0)" 'set up delay=7ms rate=fast' 2>&1); then
  fails+=("a bad rate was accepted: $out")
fi
echo "measured: bad command answered: $out"
lab_emu_show wan0 | grep -q '^up .* delay=0ms ' || fails+=("a refused command changed the settings")

# ---- (i) the emulator stalls, the link does not
emu 'set up rate=10mbit queue=50ms'
emu_pid=$(ip netns pids "$(lab_ns emu0)" | head -n 1)
q0=$(ctr up drop_queue)
lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 --connect-timeout 5000 -u -b 5M -l 1400 -t 4 >/dev/null 2>&1 &
ip=$!
sleep 1
for _ in 1 2 3; do kill -STOP "$emu_pid"; sleep 0.3; kill -CONT "$emu_pid"; sleep 0.5; done
wait "$ip"
check_range "queue tail drops, UDP at half the rate, emulator stopped 3 x 300 ms" "$(($(ctr up drop_queue) - q0))" 0 0
emu 'set up rate=0 queue=100ms'

echo "linkemu wan0 at the end:"
lab_emu_show wan0
if [ "${#fails[@]}" -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}" >&2
  exit 1
fi
echo "PASS: linkemu delay, jitter, order, rate, loss, cut and live changes as asked"
