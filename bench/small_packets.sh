#!/usr/bin/env bash
# bench/small_packets.sh — 64-byte UDP through the tunnel (issue #7): packets
# per second delivered at the far end, and per fully used core of each
# tunnel end, beside the bare path and the peer VPNs of bench/peers.sh, on
# the namespace lab's unlimited veth links, in one run.
#
# Generator: iperf3 -u -l 64 -b 0 (as fast as it can), one stream,
# BENCH_SECONDS (10), up (client ns -> internet host) and down (-R).
# Received: an nft counter in the input hook of the receiving namespace (inet
# for up: udp dport 5201; cli for down: udp sport 5201) counts what the path
# delivered, whether or not the receiving iperf3 keeps up; iperf3's own sent
# count is the offered load. The bare path shows what the generator and the
# kernel reach without a tunnel.
# CPU: utime+stime of each tunnel end's process over the run; "% core" =
# CPU seconds / run seconds; pps per core = received pps / (that end's CPU
# seconds / run seconds), i.e. what one fully used core of that end moves.
#
# Installs what it lacks at start (peers: apt-get install -y -q openvpn
# wireguard-go wireguard-tools openssl, only when missing). Writes its section
# between <!-- small-packets:begin --> and <!-- small-packets:end --> in
# bench/results.md (BENCH_RESULTS to write elsewhere). Needs root.
# Env: ONEBOX_BUILD (build/), BENCH_SECONDS (10), BENCH_PEERS ("openvpn-aes
# openvpn-chacha wireguard-go"; "" for none).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
# shellcheck source-path=SCRIPTDIR source=peers.sh
source "$HERE/peers.sh"
peer_bench_setup small_packets.sh "$@"
lab_start bench-pps
write_configs "$LAB_DIR"
lab_inet_iperf 5201 || lab_fail "iperf3 server did not start"
TCK=$(getconf CLK_TCK)

# receive counters: inet counts what arrives for the iperf3 server, cli what
# arrives from it (after decapsulation for a tunnel: the input hook sees the
# inner packets)
lab_exec inet nft -f - <<'EOF' || lab_fail "nft counter in inet"
table ip benchpps {
  counter rx {}
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport 5201 counter name "rx"
  }
}
EOF
lab_exec cli nft -f - <<'EOF' || lab_fail "nft counter in cli"
table ip benchpps {
  counter rx {}
  chain input {
    type filter hook input priority filter; policy accept;
    udp sport 5201 counter name "rx"
  }
}
EOF
rx_count() { lab_exec "$1" nft list counter ip benchpps rx | sed -n 's/.*packets \([0-9]*\).*/\1/p' | head -n 1; }

ROWS=()
# pps_run PATH DIR(up|down) CLIENT_PID SERVER_PID
pps_run() {
  local path=$1 dir=$2 cpid=$3 spid=$4 args=() rxns json c0 c1 s0 s1 r0 r1
  if [ "$dir" = down ]; then args+=(-R); rxns=cli; else rxns=inet; fi
  r0=$(rx_count "$rxns")
  c0=$(lab_cpu_ticks "$cpid"); s0=$(lab_cpu_ticks "$spid")
  json=$(lab_exec cli timeout $((SECS + 30)) iperf3 -c "$LAB_INET_IP" -p 5201 -u -l 64 -b 0 -t "$SECS" -J "${args[@]}")
  c1=$(lab_cpu_ticks "$cpid"); s1=$(lab_cpu_ticks "$spid")
  sleep 0.5   # what is still queued arrives
  r1=$(rx_count "$rxns")
  local row
  row=$(printf '%s' "$json" | "$LAB_PY" -c '
import json, sys
path, direction, c0, c1, s0, s1, r0, r1, tck, tunnel = sys.argv[1:]
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {"error": "no JSON from iperf3"}
dtxt = "client->inet" if direction == "up" else "inet->client (-R)"
if "error" in d:
    print("| %s | %s | error: %s | | | | | |" % (path, dtxt, d["error"])); sys.exit()
s = d["end"]["sum"]
secs = s["seconds"]
sent = s["packets"]
rx = int(r1) - int(r0)
rx_pps = rx / secs
def core(a, b):
    return (int(b) - int(a)) / int(tck) / secs
def cell(a, b):
    if tunnel != "1": return "-", "-"
    c = core(a, b)
    return "%.0f %%" % (100 * c), ("%.0f" % (rx_pps / c) if c > 0 else "-")
cc, cp = cell(c0, c1)
sc, sp = cell(s0, s1)
print("| %s | %s | %.0f | %.0f | %.1f %% | %s / %s | %s / %s |" % (path, dtxt, sent / secs, rx_pps,
      max(0.0, 100.0 * (sent - rx) / sent) if sent else 0, cc, sc, cp, sp))
' "$path" "$dir" "$c0" "$c1" "$s0" "$s1" "$r0" "$r1" "$TCK" "$([ "$path" = bare ] && echo 0 || echo 1)")
  echo "$row"
  ROWS+=("$row")
}

echo "== bare path (no tunnel), ${SECS}s per run"
for dir in up down; do pps_run bare "$dir" "" ""; done

echo "== onebox, ${SECS}s per run"
lab_tunnel_up || lab_fail "onebox tunnel did not come up"
for dir in up down; do pps_run onebox "$dir" "$(daemon_pid client)" "$(daemon_pid server)"; done
echo "server: $(daemon_stats server)"
echo "client: $(daemon_stats client)"
stop_daemon client TERM 10 || lab_fail "onebox-client did not stop"
stop_daemon server TERM 10 || lab_fail "onebox-server did not stop"

peer_pps_runs() { for dir in up down; do pps_run "$1" "$dir" "$2" "$3"; done; }
peer_run_all "| @ | | did not come up (see the run's output) | | | | |" peer_pps_runs
T_END=$(date +%s)

SECTION=$LAB_DIR/section.md
{
  echo "<!-- small-packets:begin -->"
  echo "### Small packets: 64-byte UDP (veth, unlimited; issue #7)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- load average (1/5/15 min) before the run: $LOAD_START; at its end (this run included): $(lab_loadavg);"
  echo "  other labs and builds seen on the machine during the run (sampled every 2 s): $(lab_others_seen "$OTHERS")"
  echo "- iperf3 -u -l 64 -b 0, one stream, ${SECS} s per run, from the client namespace to the"
  echo "  internet host (up) and back (-R); took $((T_END - T_START)) s in all; sent = iperf3's"
  echo "  packets / s; received = an nft counter in the receiving namespace's input hook"
  echo "  (the inner packets, after the tunnel); % core = CPU s of that tunnel end / run s;"
  echo "  per core = received pps / that end's cores used; generator, receiver, both tunnel"
  echo "  ends and the kernel share the $(nproc) cores"
  printf '%s\n' "${INFOS[@]}"
  echo
  echo "| path | direction | sent pps | received pps | lost | % core client / server | received pps per core, client / server |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo "<!-- small-packets:end -->"
} >"$SECTION"
kill "$LAB_LAST_WATCH" 2>/dev/null; rm -f "$OTHERS"

lab_write_section "$RESULTS" small-packets "$SECTION"
echo "== wrote $RESULTS"
cat "$SECTION"
