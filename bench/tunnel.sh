#!/usr/bin/env bash
# bench/tunnel.sh — throughput of the tunnel vs the bare path and vs peer VPNs,
# on the namespace lab's unlimited veth links, with each tunnel's CPU cost per
# GB moved and the daemons' memory (issue #7).
#
# iperf3 TCP, 1 and 4 streams (-P 4), both directions (-R), BENCH_SECONDS (10)
# each, from the client namespace to the internet host, all in one lab:
#   bare:    no tunnel, traffic through the ISP NAT (wan0);
#   onebox:  through onebox (client ns -> server -> internet host, both WANs
#            bonded; on unlimited links both are the same veth kind);
#   peers:   (bench/peers.sh) OpenVPN 2.6 p2p UDP with AES-256-GCM and with
#            CHACHA20-POLY1305, and wireguard-go, each between the cli and srv
#            namespaces over wan0, the srv side masquerading to the internet.
# Only one tunnel runs at a time: onebox is stopped before the peers start,
# each peer is stopped before the next.
# CPU: utime+stime of each end's process (/proc/PID/stat, all threads) over the
# run / GB received (iperf3 --json end.sum_received.bytes). The rtr's nft
# counter of TCP crossing it unencapsulated checks that a tunnel run really
# went through its tunnel.
# Memory: VmRSS and VmHWM (/proc/PID/status) of each end idle (tunnel up,
# nothing flowing, 2 s after it came up), the largest VmRSS sampled every
# 0.2 s during the two 4-stream runs, and VmHWM after them; beside the
# onebox worker's buffer pool (dataplane/worker.h, buffers.h).
# Verdict (issue #7): onebox >= 2x the best peer's Mbit/s and <= 0.5x that
# peer's CPU s/GB (client + server), per stream count and direction.
#
# Installs what it lacks at start: apt-get install -y -q openvpn wireguard-go
# wireguard-tools openssl (only when missing). Writes its section between
# <!-- tunnel:begin --> and <!-- tunnel:end --> in bench/results.md
# (BENCH_RESULTS to write elsewhere). Needs root.
# Env: ONEBOX_BUILD (build/), BENCH_SECONDS (10), BENCH_PEERS ("openvpn-aes
# openvpn-chacha wireguard-go"; "" for none).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
# shellcheck source-path=SCRIPTDIR source=peers.sh
source "$HERE/peers.sh"
peer_bench_setup tunnel.sh "$@"
lab_start bench
write_configs "$LAB_DIR"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
TCK=$(getconf CLK_TCK)

declare -A MBPS=() CPU_C=() CPU_S=()   # key "path|streams|dir"
ROWS=()
# bench_run PATH STREAMS DIR(up|down) CLIENT_PID SERVER_PID
bench_run() {
  local path=$1 streams=$2 dir=$3 cpid=$4 spid=$5 args=() json c0 c1 s0 s1 tcp0 leak
  [ "$dir" = down ] && args+=(-R)
  [ "$streams" -gt 1 ] && args+=(-P "$streams")
  tcp0=$(lab_rtr_counter wan_tcp)
  c0=$(lab_cpu_ticks "$cpid"); s0=$(lab_cpu_ticks "$spid")
  json=$(lab_exec cli timeout $((SECS + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -t "$SECS" -J "${args[@]}")
  c1=$(lab_cpu_ticks "$cpid"); s1=$(lab_cpu_ticks "$spid")
  leak=$(lab_rtr_tcp_leak "$tcp0")
  local res mbps gb retr err
  res=$(printf '%s' "$json" | "$LAB_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {"error": "no JSON from iperf3"}
if "error" in d:
    print("error", d["error"].replace(" ", "_")); sys.exit()
e = d["end"]
rx = e["sum_received"]
print("%.0f %.3f %s" % (rx["bits_per_second"] / 1e6, rx["bytes"] / 1e9, e.get("sum_sent", {}).get("retransmits", "-")))')
  read -r mbps gb retr <<<"$res"
  local key="$path|$streams|$dir" dtxt note="" cs ss
  [ "$dir" = up ] && dtxt="client->inet" || dtxt="inet->client (-R)"
  if [ "$mbps" = error ]; then
    err=${gb//_/ }
    ROWS+=("| $path | $streams | $dtxt | error: $err | | | | | |")
    echo "${ROWS[-1]}"
    return 0
  fi
  if [ "$path" != bare ] && awk -v g="$gb" 'BEGIN { exit !(g < 0.01) }'; then
    cs="-"; ss="-"; note=" (**stalled: under 10 MB moved**)"
  elif [ "$path" != bare ]; then
    cs=$(awk -v a="$c0" -v b="$c1" -v t="$TCK" -v g="$gb" 'BEGIN { printf "%.2f", (g > 0 ? (b - a) / t / g : 0) }')
    ss=$(awk -v a="$s0" -v b="$s1" -v t="$TCK" -v g="$gb" 'BEGIN { printf "%.2f", (g > 0 ? (b - a) / t / g : 0) }')
    CPU_C[$key]=$cs; CPU_S[$key]=$ss
    [ "$leak" -gt 100 ] && note=" (**$leak TCP packets crossed rtr outside the tunnel**)"
  else
    cs="-"; ss="-"
  fi
  MBPS[$key]=$mbps
  ROWS+=("| $path$note | $streams | $dtxt | $mbps | $gb | $retr | $cs | $ss |")
  echo "${ROWS[-1]}"
}

MEMROWS=()
# mem_row LABEL PID IDLE("rss hwm") SAMPLER_FILE
mem_row() {
  local label=$1 pid=$2 idle=$3 smp=$4 hwm load
  read -r _ hwm < <(lab_proc_mem "$pid")
  load=$(awk -v p="$pid" '$1 == p { print $2 }' "$smp" 2>/dev/null)
  MEMROWS+=("| $label | ${idle% *} | ${idle#* } | ${load:-?} | $hwm |")
  echo "memory $label: idle VmRSS/VmHWM ${idle% *}/${idle#* } kB, max VmRSS under 4-stream load ${load:-?} kB, VmHWM after $hwm kB"
}

# run_path PATH CLIENT_PID SERVER_PID MEMLABEL: the four runs and the memory rows.
run_path() {
  local path=$1 cpid=$2 spid=$3 st dir idle_c idle_s smp
  sleep 2
  idle_c=$(lab_proc_mem "$cpid"); idle_s=$(lab_proc_mem "$spid")
  for st in 1 4; do
    if [ "$st" = 4 ]; then
      smp=$LAB_DIR/mem-$path.txt
      lab_mem_sampler "$smp" "$cpid" "$spid"
    fi
    for dir in up down; do bench_run "$path" "$st" "$dir" "$cpid" "$spid"; done
  done
  kill "$LAB_LAST_SAMPLER" 2>/dev/null; wait "$LAB_LAST_SAMPLER" 2>/dev/null
  mem_row "$path client" "$cpid" "$idle_c" "$smp"
  mem_row "$path server" "$spid" "$idle_s" "$smp"
}

echo "== bare path (no tunnel), ${SECS}s per run"
for st in 1 4; do for dir in up down; do bench_run bare "$st" "$dir" "" ""; done; done

echo "== onebox, ${SECS}s per run"
lab_tunnel_up || lab_fail "onebox tunnel did not come up"
run_path onebox "$(daemon_pid client)" "$(daemon_pid server)"
echo "server: $(daemon_stats server)"
echo "client: $(daemon_stats client)"
stop_daemon client TERM 10 || lab_fail "onebox-client did not stop"
stop_daemon server TERM 10 || lab_fail "onebox-server did not stop"
POOL=$(lab_pool_size)

peer_run_all "| @ | | | did not come up (see the run's output) | | | | |" run_path
T_END=$(date +%s)

# verdict per stream count and direction against the best peer
VERDICTS=()
for st in 1 4; do
  for dir in up down; do
    k="onebox|$st|$dir"
    [ -n "${MBPS[$k]:-}" ] || { VERDICTS+=("| $st | $dir | onebox run failed | | | | |"); continue; }
    best=""; bm=0
    for p in $PEERS; do
      l=$(peer_label "$p"); v=${MBPS[$l|$st|$dir]:-}
      [ -n "$v" ] && [ "$v" -gt "$bm" ] && { best=$l; bm=$v; }
    done
    if [ -z "$best" ]; then VERDICTS+=("| $st | $dir | ${MBPS[$k]} | no peer measured | | | |"); continue; fi
    if [ -z "${CPU_C[$k]:-}" ] || [ -z "${CPU_C[$best|$st|$dir]:-}" ]; then
      rt=$(awk -v a="${MBPS[$k]}" -v b="$bm" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      VERDICTS+=("| $st | $dir | ${MBPS[$k]} | $best: $bm | ${rt}x (≥ 2x) | no CPU figure (a run stalled) | throughput $(awk -v t="$rt" 'BEGIN { print (t >= 2 ? "met" : "**missed**") }'), CPU not judged |")
      continue
    fi
    oc=$(awk -v a="${CPU_C[$k]}" -v b="${CPU_S[$k]}" 'BEGIN { printf "%.2f", a + b }')
    pc=$(awk -v a="${CPU_C[$best|$st|$dir]}" -v b="${CPU_S[$best|$st|$dir]}" 'BEGIN { printf "%.2f", a + b }')
    rt=$(awk -v a="${MBPS[$k]}" -v b="$bm" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    rc=$(awk -v a="$oc" -v b="$pc" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    v=$(awk -v t="$rt" -v c="$rc" 'BEGIN {
      s = (t >= 2 ? "throughput met" : "throughput **missed**") ", " (c <= 0.5 ? "CPU met" : "CPU **missed**"); print s }')
    VERDICTS+=("| $st | $dir | ${MBPS[$k]} | $best: $bm | ${rt}x (≥ 2x) | $oc vs $pc: ${rc}x (≤ 0.5x) | $v |")
  done
done

SECTION=$LAB_DIR/section.md
{
  echo "<!-- tunnel:begin -->"
  echo "### Tunnel vs bare path and peer VPNs (veth, unlimited; issue #7)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- load average (1/5/15 min) before the run: $LOAD_START; at its end (this run included): $(lab_loadavg);"
  echo "  other labs and builds seen on the machine during the run (sampled every 2 s): $(lab_others_seen "$OTHERS")"
  echo "- iperf3 TCP from the client namespace to the internet host, ${SECS} s per run, all"
  echo "  paths in one lab and one run, one tunnel at a time; took $((T_END - T_START)) s in all;"
  echo "  CPU s/GB = utime+stime of that end's process during the run / GB received;"
  echo "  both tunnel ends, both iperf3 ends and the kernel share the $(nproc) cores"
  echo "- onebox bonds both lab WANs (veth, unlimited); the peers run over wan0; bare uses wan0"
  printf '%s\n' "${INFOS[@]}"
  echo
  echo "| path | streams | direction | Mbit/s | GB moved | retransmits | client CPU s/GB | server CPU s/GB |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Target (#7): onebox ≥ 2x the best peer's Mbit/s and ≤ 0.5x its CPU s/GB (client + server):"
  echo
  echo "| streams | dir | onebox Mbit/s | best peer Mbit/s | throughput ratio | CPU s/GB onebox vs that peer | verdict |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${VERDICTS[@]}"
  echo
  echo "Memory (kB; onebox's worker pool: ${POOL% *} buffers of ${POOL#* } bytes = $(( ${POOL% *} * ${POOL#* } / 1024 / 1024 )) MiB per worker, dataplane/worker.h):"
  echo
  echo "| process | idle VmRSS | idle VmHWM | max VmRSS during the 4-stream runs | VmHWM after them |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${MEMROWS[@]}"
  echo "<!-- tunnel:end -->"
} >"$SECTION"
kill "$LAB_LAST_WATCH" 2>/dev/null; rm -f "$OTHERS"

lab_write_section "$RESULTS" tunnel "$SECTION"
echo "== wrote $RESULTS"
cat "$SECTION"
