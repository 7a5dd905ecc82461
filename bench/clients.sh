#!/usr/bin/env bash
# bench/clients.sh — one server, several clients at once (issue #7: "the
# server must handle many clients"), on the namespace lab's unlimited veth
# links, in one run:
#   bare:    BENCH_CLIENTS (4) client namespaces, no tunnel, each an iperf3
#            TCP download (-R) from the internet host through the ISP NAT,
#            all at once (what the machine moves without onebox);
#   onebox:  the same through one onebox-server, with [server] workers = 1,
#            then workers = 2 (a session lives on worker session_id % 2: the
#            split of the clients over the workers is printed);
#            each: one client alone, then all of them at once; down (-R) and
#            up.
# Each client has its own namespace, WAN veth and tunnel address
# (10.0.0.2 ...) and its own iperf3 server port on the internet host.
# CPU: the server process's utime+stime over each run / GB the clients moved
# (iperf3 --json end.sum_received.bytes, summed). Everything (the clients,
# the server, the iperf3s, the kernel) shares the machine's cores, so the
# aggregate is what this machine moves, not what a server alone would.
#
# Writes its section between <!-- clients:begin --> and <!-- clients:end -->
# in bench/results.md (BENCH_RESULTS to write elsewhere). Needs root.
# Env: ONEBOX_BUILD (build/), BENCH_SECONDS (10), BENCH_CLIENTS (4, 2-6).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
CMDLINE="bash bench/clients.sh"
[ -n "${BENCH_CLIENTS:-}" ] && CMDLINE="BENCH_CLIENTS=$BENCH_CLIENTS $CMDLINE"
[ -n "${BENCH_SECONDS:-}" ] && CMDLINE="BENCH_SECONDS=$BENCH_SECONDS $CMDLINE"
SECS=${BENCH_SECONDS:-10}
N=${BENCH_CLIENTS:-4}
RESULTS=${BENCH_RESULTS:-$HERE/results.md}
if [ "$N" -lt 2 ] || [ "$N" -gt 6 ]; then lab_fail "BENCH_CLIENTS must be 2-6, got $N"; fi
[ "$(id -u)" -eq 0 ] || lab_fail "bench/clients.sh needs root (network namespaces)"
lab_check_binaries || lab_fail "build first: cmake -B build -G Ninja && cmake --build build"
T_START=$(date +%s)
LOAD_START=$(lab_loadavg)
OTHERS=$(mktemp /tmp/onebox-bench-others.XXXXXX)
lab_watch_others "$OTHERS"
lab_start bench-clients
write_configs "$LAB_DIR"
TCK=$(getconf CLK_TCK)

# Client k (1..N): role cli (k = 1) or cliK, WAN 192.168.(30 + 10k).2, tunnel
# 10.0.0.(k + 1), iperf3 port 5200 + k.
role_of() { if [ "$1" -eq 1 ]; then echo cli; else echo "cli$1"; fi; }
name_of() { if [ "$1" -eq 1 ]; then echo client; else echo "client$1"; fi; }
for ((k = 2; k <= N; k++)); do
  lab_add_client "cli$k" $((60 + 10 * k)) || lab_fail "could not add cli$k"
  write_client_conf "$LAB_DIR/client$k.conf" "10.0.0.$((k + 1))"
done
for ((k = 1; k <= N; k++)); do lab_inet_iperf $((5200 + k)) || lab_fail "iperf3 server on $((5200 + k)) did not start"; done

# run_clients DIR(up|down) COUNT SERVER_PID: iperf3 in the first COUNT client
# namespaces at once; prints "SUM_MBIT SERVER_CPU_S GB PER_CLIENT_MBITS".
run_clients() {
  local dir=$1 count=$2 spid=$3 args=() k s0 s1 pids=()
  [ "$dir" = down ] && args+=(-R)
  s0=$(lab_cpu_ticks "$spid")
  for ((k = 1; k <= count; k++)); do
    lab_bg "$(role_of "$k")" "$LAB_DIR/iperf-$k.json" timeout $((SECS + 30)) \
      iperf3 -c "$LAB_INET_IP" -p $((5200 + k)) -t "$SECS" -J "${args[@]}"
    pids+=("$LAB_LAST_BG")
  done
  for k in "${pids[@]}"; do wait "$k" 2>/dev/null; done
  s1=$(lab_cpu_ticks "$spid")
  "$LAB_PY" - "$count" "$LAB_DIR" "$s0" "$s1" "$TCK" <<'PY'
import json, sys
count, d, s0, s1, tck = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
total_bits = total_bytes = 0.0
each = []
for k in range(1, count + 1):
    try:
        r = json.load(open("%s/iperf-%d.json" % (d, k)))["end"]["sum_received"]
        total_bits += r["bits_per_second"]; total_bytes += r["bytes"]
        each.append("%.0f" % (r["bits_per_second"] / 1e6))
    except (ValueError, KeyError, OSError):
        each.append("failed")
print("%.0f %.2f %.3f %s" % (total_bits / 1e6, (s1 - s0) / tck, total_bytes / 1e9, "/".join(each)))
PY
}

ROWS=()
# row PATH WORKERS DIR COUNT SPLIT: one table row from run_clients.
row() {
  local path=$1 workers=$2 dir=$3 count=$4 split=$5 sum cpu gb each cell
  read -r sum cpu gb each < <(run_clients "$dir" "$count" "${SPID:-}")
  if [ "$path" = bare ]; then cell="-"; else cell=$(awk -v c="$cpu" -v g="$gb" 'BEGIN { if (g > 0) printf "%.2f", c / g; else print "-" }'); fi
  local r="| $path | $workers | $dir | $count | ${sum} | ${each} | ${cell} | ${split} |"
  echo "$r"
  ROWS+=("$r")
  SUM=$sum
}

echo "== bare path, ${SECS}s per run"
SPID=""
for dir in down up; do
  row bare - "$dir" 1 -
  row bare - "$dir" "$N" -
done

session_of() { log_since_start "$1" | sed -nE 's/.*session established.*\(session ([0-9a-f]+),.*/\1/p' | tail -n 1; }
declare -A ALONE=() ALL=()
for workers in 1 2; do
  echo "== onebox, server workers = $workers, ${SECS}s per run"
  write_server_conf "$LAB_DIR/server.conf"
  sed -i "s/^\[server\]\$/[server]\nworkers = $workers/" "$LAB_DIR/server.conf"
  lab_tunnel_up client cli || lab_fail "client 1 tunnel did not come up"
  for ((k = 2; k <= N; k++)); do
    start_client "client$k" "cli$k" "$LAB_DIR/client$k.conf"
    wait_tunnel "client$k" 20 || lab_fail "client $k tunnel did not come up"
    lab_ping "cli$k" 10.0.0.1 10 || lab_fail "client $k: 10.0.0.1 does not answer"
  done
  split=""
  if [ "$workers" -gt 1 ]; then
    on0=0
    for ((k = 1; k <= N; k++)); do s=$(session_of "$(name_of "$k")"); [ $((16#${s:-0} % 2)) -eq 0 ] && on0=$((on0 + 1)); done
    split="$on0 on worker 0, $((N - on0)) on worker 1"
  fi
  SPID=$(daemon_pid server)
  for dir in down up; do
    row onebox "$workers" "$dir" 1 "${split:--}"; ALONE[$workers$dir]=$SUM
    row onebox "$workers" "$dir" "$N" "${split:--}"; ALL[$workers$dir]=$SUM
  done
  echo "server: $(daemon_stats server)"
  for ((k = N; k >= 1; k--)); do stop_daemon "$(name_of "$k")" TERM 10 >/dev/null || lab_fail "client $k did not stop"; done
  stop_daemon server TERM 10 >/dev/null || lab_fail "onebox-server did not stop"
done
T_END=$(date +%s)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
SECTION=$LAB_DIR/section.md
{
  echo "<!-- clients:begin -->"
  echo "### One server, $N clients at once (veth, unlimited; issue #7)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- load average (1/5/15 min) before the run: $LOAD_START; at its end (this run included): $(lab_loadavg);"
  echo "  other labs and builds seen on the machine during the run (sampled every 2 s): $(lab_others_seen "$OTHERS")"
  echo "- iperf3 TCP, one stream per client, ${SECS} s per run, each client from its own namespace"
  echo "  to its own iperf3 server port on the internet host, down (-R) and up; took"
  echo "  $((T_END - T_START)) s in all. Server CPU = the onebox-server process's utime+stime"
  echo "  over the run / GB the clients received. The clients, the server, the iperf3s and the"
  echo "  kernel share the $(nproc) cores: the sums are what this machine moves with them all on it;"
  echo "  client 1 bonds the lab's two WAN veths, the others have one each"
  echo
  echo "| path | server workers | direction | clients | sum Mbit/s | per client Mbit/s | server CPU s/GB | sessions per worker |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  for dir in down up; do
    echo "- $dir: $N clients at once against one alone, 1 worker $(ratio "${ALL[1$dir]}" "${ALONE[1$dir]}")x, 2 workers $(ratio "${ALL[2$dir]}" "${ALONE[2$dir]}")x; $N clients with 2 workers against 1 worker $(ratio "${ALL[2$dir]}" "${ALL[1$dir]}")x"
  done
  echo "<!-- clients:end -->"
} >"$SECTION"
kill "$LAB_LAST_WATCH" 2>/dev/null; rm -f "$OTHERS"

lab_write_section "$RESULTS" clients "$SECTION"
echo "== wrote $RESULTS"
cat "$SECTION"
