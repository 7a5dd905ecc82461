#!/usr/bin/env bash
# bench/tunnel.sh — throughput of the tunnel vs the bare path, on the namespace
# lab's unlimited veth links, and the daemons' CPU cost per GB moved.
#
# iperf3 TCP, 1 and 4 streams (-P 4), both directions (-R), BENCH_SECONDS (10)
# each, from the client namespace to the internet host:
#   bare:   onebox not running, traffic through the ISP NAT;
#   tunnel: through onebox (client ns -> server -> internet host).
# CPU: utime+stime of each daemon from /proc/PID/stat before/after each run,
# bytes from iperf3 --json (end.sum_received.bytes).
# Writes the table between <!-- tunnel:begin --> and <!-- tunnel:end --> in
# bench/results.md (BENCH_RESULTS to write elsewhere). Needs root.
# Env: ONEBOX_BUILD (build/), BENCH_SECONDS (10).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
CMDLINE="bash bench/tunnel.sh${*:+ $*}"
[ -n "${BENCH_SECONDS:-}" ] && CMDLINE="BENCH_SECONDS=$BENCH_SECONDS $CMDLINE"
SECS=${BENCH_SECONDS:-10}
RESULTS=${BENCH_RESULTS:-$HERE/results.md}

[ "$(id -u)" -eq 0 ] || lab_fail "bench/tunnel.sh needs root (network namespaces)"
lab_check_binaries || lab_fail "build first: cmake -B build -G Ninja && cmake --build build"
lab_start bench
write_configs "$LAB_DIR"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
TCK=$(getconf CLK_TCK)

cpu_ticks() { # PID -> utime+stime of the whole process (all threads)
  if [ -z "$1" ] || [ ! -r "/proc/$1/stat" ]; then echo 0; return; fi
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

ROWS=()
# bench_run PATH STREAMS DIR(up|down)
bench_run() {
  local path=$1 streams=$2 dir=$3 args=() json c0 c1 s0 s1 cpid spid
  [ "$dir" = down ] && args+=(-R)
  [ "$streams" -gt 1 ] && args+=(-P "$streams")
  cpid=$(daemon_pid client); spid=$(daemon_pid server)
  c0=$(cpu_ticks "$cpid"); s0=$(cpu_ticks "$spid")
  json=$(lab_exec cli timeout $((SECS + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -t "$SECS" -J "${args[@]}")
  c1=$(cpu_ticks "$cpid"); s1=$(cpu_ticks "$spid")
  local row
  row=$(printf '%s' "$json" | "$LAB_PY" -c '
import json, sys
path, streams, direction, c0, c1, s0, s1, tck, tunnel = sys.argv[1:]
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {"error": "no JSON from iperf3"}
if "error" in d:
    print("| %s | %s | %s | error: %s | | | |" % (path, streams, direction, d["error"])); sys.exit()
e = d["end"]
rx = e["sum_received"]
gb = rx["bytes"] / 1e9
retr = e.get("sum_sent", {}).get("retransmits", "")
def per_gb(a, b):
    if tunnel != "1" or gb <= 0: return "-"
    return "%.2f" % ((int(b) - int(a)) / int(tck) / gb)
print("| %s | %s | %s | %.0f | %.2f | %s | %s | %s |" % (path, streams,
      "client->inet" if direction == "up" else "inet->client (-R)",
      rx["bits_per_second"] / 1e6, gb, retr, per_gb(c0, c1), per_gb(s0, s1)))
' "$path" "$streams" "$dir" "$c0" "$c1" "$s0" "$s1" "$TCK" "$([ "$path" = tunnel ] && echo 1 || echo 0)")
  echo "$row"
  ROWS+=("$row")
}

echo "== bare path (no onebox), ${SECS}s per run"
for st in 1 4; do for dir in up down; do bench_run bare "$st" "$dir"; done; done
echo "== through the tunnel, ${SECS}s per run"
lab_tunnel_up || lab_fail "tunnel did not come up"
for st in 1 4; do for dir in up down; do bench_run tunnel "$st" "$dir"; done; done
echo "server: $(daemon_stats server)"
echo "client: $(daemon_stats client)"

SECTION=$LAB_DIR/section.md
{
  echo "<!-- tunnel:begin -->"
  echo "### Tunnel vs bare path (veth, unlimited)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- iperf3 TCP from the client namespace to the internet host, ${SECS} s per run;"
  echo "  CPU s/GB = utime+stime of the daemon during the run / GB received"
  echo
  echo "| path | streams | direction | Mbit/s | GB moved | retransmits | client CPU s/GB | server CPU s/GB |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo "<!-- tunnel:end -->"
} >"$SECTION"

lab_write_section "$RESULTS" tunnel "$SECTION"
echo "== wrote $RESULTS"
cat "$SECTION"
