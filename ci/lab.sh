#!/usr/bin/env bash
# ci/lab.sh — network-namespace lab for onebox: a sourceable library and a CLI.
#
#   bash ci/lab.sh up [PREFIX]   build the topology and leave it running (prints PREFIX)
#   bash ci/lab.sh down PREFIX   tear it down (kills what runs inside its namespaces)
#   bash ci/lab.sh demo          lab + server + client, download/iperf3/stats, tear down
#   bash ci/lab.sh list          namespaces that look like lab namespaces
#   bash ci/lab.sh gc            remove labs whose creator died (also done by lab_up)
#   bash ci/lab.sh emu PREFIX WAN CMD   talk to a link emulator (LAB_EMU=1 labs), e.g.
#                                wan0 'set up rate=20mbit delay=10ms', wan1 show
#
# Topology (all of it inside namespaces named "$PREFIX-<role>"; nothing is created
# in the caller's namespace: every veth is created directly inside its namespaces):
#
#   $P-lan  eth0 192.168.100.2/24 --- lan0 192.168.100.1/24  $P-cli
#                                     wan0 192.168.10.2/24 --- rwan0 192.168.10.1/24  $P-rtr
#                                     wan1 192.168.20.2/24 --- rwan1 192.168.20.1/24  (ISP NAT:
#                                     (default via .10.1 metric 100,                   masquerade
#                                      default via .20.1 metric 200)                   192.168.0.0/16
#   [lab_add_client cli2 30 adds      $P-cli2 wan0 192.168.30.2 --- rwan30 .30.1/24     out br-pub)
#                                                                 br-pub 192.0.2.1/24
#   [LAB_WANS=3 adds wan2 192.168.50.2/24 --- rwan2 .50.1/24, default metric 300;
#    LAB_WANS=1 leaves out wan1]
#   $P-srv  eth0 192.0.2.2/24  --- psrv  (port of br-pub)
#   $P-inet eth0 192.0.2.88/24 --- pinet (port of br-pub); test servers run here
#
# With LAB_EMU=1 (off by default) each client WAN runs through a link emulator
# namespace: cli wanN --- e0 [$P-emuN: linkemu] e1 --- rwanN rtr. Addresses and
# routes are the same; linkemu (test/emu/linkemu.cpp) forwards every frame and
# applies rate, delay, jitter, loss and cut per direction (up = cli -> rtr),
# changeable at run time: lab_emu_set wan0 'set up delay=20ms', lab_emu_show wan0.
# Its control socket is $LAB_DIR/emu-wanN.sock (/tmp/onebox-lab-$P/ when LAB_DIR
# is unset), its log emu-wanN.log next to it; LAB_EMU_OPTS adds linkemu flags
# (e.g. "--both delay=10ms,jitter=1ms"). Offloads (tx checksum, TSO, GSO, GRO)
# are off on the four veth ends of an emulated link, so linkemu sees real frames.
#
# The rtr namespace also keeps nft counters (table ip lab) of the ICMP/TCP that
# crosses from the WAN subnets to br-pub *unencapsulated*: traffic that really
# goes through the tunnel crosses as UDP to the server and leaves them at zero.
#
# Library conventions: functions return non-zero on failure and print what went
# wrong to stderr; lab_fail prints and exits. Globals: LAB_P (prefix), LAB_DIR
# (work dir for configs, logs, pid files), ONEBOX_BUILD (dir with the binaries).

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ONEBOX_BUILD=${ONEBOX_BUILD:-$LAB_REPO/build}
ONEBOX_CLIENT_BIN=${ONEBOX_CLIENT_BIN:-$ONEBOX_BUILD/onebox-client}
ONEBOX_SERVER_BIN=${ONEBOX_SERVER_BIN:-$ONEBOX_BUILD/onebox-server}
# The daemons in the lab are not systemd's, even where the shell running the
# tests is (a CI runner as a service): keep_nat = restart must not ask the
# real systemd about them (restart_tcp sets INVOCATION_ID itself, for E).
unset INVOCATION_ID
if [ -z "${LAB_PY:-}" ]; then
  if [ -x /usr/bin/python3 ]; then LAB_PY=/usr/bin/python3; else LAB_PY=$(command -v python3); fi
fi
LAB_PSK=${LAB_PSK:-lab-secret-key-123}
LAB_PORT=${LAB_PORT:-8080}
LAB_SERVER_IP=192.0.2.2
LAB_INET_IP=192.0.2.88
LAB_P=${LAB_P:-}
LAB_DIR=${LAB_DIR:-}
LAB_ROLES=(rtr cli lan srv inet)
LAB_EMU=${LAB_EMU:-0}     # 1: client WAN links go through linkemu namespaces (see above)
LAB_WANS=${LAB_WANS:-2}   # client WAN links, 1..4: wan0 .10, wan1 .20, wan2 .50, wan3 .60
# lab_wan_octet N: the third octet of wanN's subnet 192.168.X.0/24 (30 and 40
# are left to lab_add_client's extra client boxes).
lab_wan_octet() { local o=(10 20 50 60); printf '%s' "${o[$1]}"; }
LAB_LINKEMU_BIN=${LAB_LINKEMU_BIN:-$ONEBOX_BUILD/linkemu}
declare -gA LAB_DPID=()   # daemon name -> pid
declare -gA LAB_LOGBASE=() # daemon name -> lines in its log when it was last started
LAB_BG_PIDS=()            # helper processes (test servers, pingers) we started
LAB_LAST_RC=0

lab_log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
lab_fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# Prefix "ob<pid>_<hex>": unique per run; the pid lets lab_gc find labs whose
# creator died without cleaning up (e.g. a test killed by a ctest timeout).
lab_new_prefix() { printf 'ob%s_%03x' "$$" $((RANDOM % 4096)); }

# lab_gc: tear down labs whose creating shell no longer exists.
lab_gc() {
  local p pid
  while read -r p; do
    pid=${p#ob}; pid=${pid%%_*}
    [ -d "/proc/$pid" ] && continue
    lab_log "removing stale lab $p (creator pid $pid is gone)"
    lab_down "$p"
    rm -rf "/tmp/onebox-"*"-$p."*
  done < <(ip netns list 2>/dev/null | awk '{print $1}' | sed -nE 's/^(ob[0-9]+_[0-9a-f]+)-[a-z0-9]+$/\1/p' | sort -u)
}
lab_ns() { printf '%s-%s' "$LAB_P" "$1"; }
# lab_exec ROLE cmd...: run cmd inside the namespace of ROLE (rtr, cli, lan, srv, inet, cli2...).
lab_exec() { local role=$1; shift; ip netns exec "$(lab_ns "$role")" "$@"; }

_lab_veth() { # NS_A IF_A NS_B IF_B: a veth pair born inside the two namespaces
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
}
# _lab_ns_init NS: lo up; no IPv6 duplicate address detection (links are born
# "tentative" otherwise, which makes before/after snapshots flap).
_lab_ns_init() {
  _lab_run ip -n "$1" link set lo up || return 1
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1
  return 0
}
_lab_run() { "$@" || { lab_log "command failed: $*"; return 1; }; }

# The namespaces of a prefix that exist right now.
lab_list_ns() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${1}-" || true; }

lab_up() {
  local p=${1:-${LAB_P:-}}
  [ -n "$p" ] || p=$(lab_new_prefix)
  LAB_P=$p
  lab_gc
  if [ -n "$(lab_list_ns "$p")" ]; then lab_log "namespaces with prefix $p already exist"; return 1; fi
  lab_log "lab up: prefix $p"
  if ! _lab_up_inner; then
    lab_log "lab_up failed; tearing down $p"
    lab_down "$p"
    return 1
  fi
  if ! lab_sanity; then
    lab_log "lab sanity check failed; tearing down $p"
    lab_down "$p"
    return 1
  fi
  return 0
}

_lab_up_inner() {
  local r ns
  for r in "${LAB_ROLES[@]}"; do
    ns=$(lab_ns "$r")
    _lab_run ip netns add "$ns" || return 1
    _lab_ns_init "$ns" || return 1
  done
  local rtr cli lan srv inet
  rtr=$(lab_ns rtr); cli=$(lab_ns cli); lan=$(lab_ns lan); srv=$(lab_ns srv); inet=$(lab_ns inet)

  # rtr: the internet with the ISPs' routers.
  _lab_run ip -n "$rtr" link add br-pub type bridge || return 1
  _lab_run ip -n "$rtr" addr add 192.0.2.1/24 dev br-pub || return 1
  _lab_run ip -n "$rtr" link set br-pub up || return 1
  _lab_run ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1 || return 1
  _lab_run ip netns exec "$rtr" nft -f - <<'NFT' || return 1
table ip lab {
  counter wan_icmp {}
  counter wan_tcp {}
  counter wan_udp {}
  chain lab_forward {
    type filter hook forward priority filter; policy accept;
    ip saddr 192.168.0.0/16 oifname "br-pub" ip protocol icmp counter name "wan_icmp"
    ip saddr 192.168.0.0/16 oifname "br-pub" ip protocol tcp counter name "wan_tcp"
    ip saddr 192.168.0.0/16 oifname "br-pub" ip protocol udp counter name "wan_udp"
  }
  chain lab_postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 192.168.0.0/16 oifname "br-pub" masquerade
  }
}
NFT

  # client box: LAB_WANS WANs (wanN 192.168.X.2/24, X from lab_wan_octet) and a LAN.
  local n oct i
  for ((n = 0; n < LAB_WANS; n++)); do
    oct=$(lab_wan_octet "$n")
    _lab_wan_veth "$n" || return 1
    _lab_run ip -n "$rtr" addr add "192.168.$oct.1/24" dev "rwan$n" || return 1
    _lab_run ip -n "$rtr" link set "rwan$n" up || return 1
    _lab_run ip -n "$cli" addr add "192.168.$oct.2/24" dev "wan$n" || return 1
    _lab_run ip -n "$cli" link set "wan$n" up || return 1
    _lab_run ip -n "$cli" route add default via "192.168.$oct.1" dev "wan$n" metric $((100 * (n + 1))) || return 1
  done
  _lab_run _lab_veth "$cli" lan0 "$lan" eth0 || return 1
  _lab_run ip -n "$cli" addr add 192.168.100.1/24 dev lan0 || return 1
  _lab_run ip -n "$cli" link set lan0 up || return 1

  # LAN host behind the client.
  _lab_run ip -n "$lan" addr add 192.168.100.2/24 dev eth0 || return 1
  _lab_run ip -n "$lan" link set eth0 up || return 1
  _lab_run ip -n "$lan" route add default via 192.168.100.1 || return 1

  # server and internet host on the public segment.
  _lab_run _lab_veth "$srv" eth0 "$rtr" psrv || return 1
  _lab_run _lab_veth "$inet" eth0 "$rtr" pinet || return 1
  for i in psrv pinet; do
    _lab_run ip -n "$rtr" link set "$i" master br-pub || return 1
    _lab_run ip -n "$rtr" link set "$i" up || return 1
  done
  _lab_run ip -n "$srv" addr add 192.0.2.2/24 dev eth0 || return 1
  _lab_run ip -n "$srv" link set eth0 up || return 1
  _lab_run ip -n "$srv" route add default via 192.0.2.1 || return 1
  _lab_run ip -n "$inet" addr add 192.0.2.88/24 dev eth0 || return 1
  _lab_run ip -n "$inet" link set eth0 up || return 1
  _lab_run ip -n "$inet" route add default via 192.0.2.1 || return 1
  return 0
}

# _lab_wan_veth N: the cli's wanN and the rtr's rwanN, a plain veth pair or, with
# LAB_EMU=1, two pairs through the emulator namespace $P-emuN with linkemu running.
_lab_wan_veth() {
  local n=$1 cli rtr emu
  cli=$(lab_ns cli); rtr=$(lab_ns rtr)
  if [ "$LAB_EMU" != 1 ]; then _lab_run _lab_veth "$cli" "wan$n" "$rtr" "rwan$n"; return; fi
  [ -x "$LAB_LINKEMU_BIN" ] || { lab_log "LAB_EMU=1 but $LAB_LINKEMU_BIN is not built (ninja linkemu)"; return 1; }
  emu=$(lab_ns "emu$n")
  _lab_run ip netns add "$emu" || return 1
  _lab_ns_init "$emu" || return 1
  # a pure layer-2 box: no IPv6 of its own on e0/e1
  _lab_run ip netns exec "$emu" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || return 1
  _lab_run _lab_veth "$cli" "wan$n" "$emu" e0 || return 1
  _lab_run _lab_veth "$emu" e1 "$rtr" "rwan$n" || return 1
  _lab_run ip netns exec "$cli" "$LAB_LINKEMU_BIN" offloads "wan$n" off || return 1
  _lab_run ip netns exec "$rtr" "$LAB_LINKEMU_BIN" offloads "rwan$n" off || return 1
  local i
  for i in e0 e1; do
    _lab_run ip netns exec "$emu" "$LAB_LINKEMU_BIN" offloads "$i" off || return 1
    _lab_run ip -n "$emu" link set "$i" up || return 1
  done
  local dir sock log t
  dir=$(_lab_emu_dir); sock=$(lab_emu_sock "$n"); log=$dir/emu-wan$n.log
  mkdir -p "$dir" || return 1
  # shellcheck disable=SC2086  # LAB_EMU_OPTS is a list of flags
  ip netns exec "$emu" "$LAB_LINKEMU_BIN" --ctl "$sock" --seed $((n + 1)) ${LAB_EMU_OPTS:-} e0 e1 \
    >>"$log" 2>&1 </dev/null &
  LAB_BG_PIDS+=("$!")
  for ((t = 0; t < 50; t++)); do
    "$LAB_LINKEMU_BIN" ctl "$sock" show >/dev/null 2>&1 && { lab_log "linkemu for wan$n in $emu ($sock)"; return 0; }
    sleep 0.1
  done
  lab_log "linkemu for wan$n did not come up; its log:"; tail -n 5 "$log" >&2
  return 1
}
_lab_emu_dir() { printf '%s' "${LAB_DIR:-/tmp/onebox-lab-$LAB_P}"; }
# lab_emu_sock WAN: control socket of the emulator of wanN (WAN: wan0, wan1 or 0, 1).
lab_emu_sock() { printf '%s/emu-wan%s.sock' "$(_lab_emu_dir)" "${1#wan}"; }
# lab_emu_set WAN 'COMMAND': one linkemu command, e.g. 'set up rate=20mbit delay=10ms',
# 'set both cut=1', 'reset'. Quiet on success; the answer goes to stderr on error.
lab_emu_set() {
  local out
  lab_log "emu wan${1#wan}: $2"
  out=$(timeout 10 "$LAB_LINKEMU_BIN" ctl "$(lab_emu_sock "$1")" "$2" 2>&1) && return 0
  lab_log "emu wan${1#wan}: '$2' failed: $out"
  return 1
}
# lab_emu_show WAN: settings and counters, a line per direction ("up ...", "down ...").
lab_emu_show() { timeout 10 "$LAB_LINKEMU_BIN" ctl "$(lab_emu_sock "$1")" show; }
# lab_emu_counter WAN up|down KEY: one counter of lab_emu_show (e.g. drop_loss).
lab_emu_counter() {
  lab_emu_show "$1" | awk -v d="$2" -v k="$3" '$1 == d { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }'
}

# lab_add_client ROLE OCTET: another client box $P-ROLE with wan0 192.168.OCTET.2/24
# behind the rtr (rwanOCTET 192.168.OCTET.1/24), default route via it.
lab_add_client() {
  local role=$1 oct=$2 ns rtr
  ns=$(lab_ns "$role"); rtr=$(lab_ns rtr)
  _lab_run ip netns add "$ns" || return 1
  _lab_ns_init "$ns" || return 1
  _lab_run _lab_veth "$ns" wan0 "$rtr" "rwan$oct" || return 1
  _lab_run ip -n "$rtr" addr add "192.168.$oct.1/24" dev "rwan$oct" || return 1
  _lab_run ip -n "$rtr" link set "rwan$oct" up || return 1
  _lab_run ip -n "$ns" addr add "192.168.$oct.2/24" dev wan0 || return 1
  _lab_run ip -n "$ns" link set wan0 up || return 1
  _lab_run ip -n "$ns" route add default via "192.168.$oct.1" dev wan0 metric 100 || return 1
  lab_ping "$role" "$LAB_INET_IP" 5 || { lab_log "$role cannot reach $LAB_INET_IP"; return 1; }
}

# lab_ping ROLE DST [TRIES] [extra ping args...]: succeeds if one of TRIES pings is answered.
lab_ping() {
  local role=$1 dst=$2 tries=${3:-3}
  shift 3 2>/dev/null || shift $#
  local n
  for ((n = 0; n < tries; n++)); do
    if lab_exec "$role" timeout 3 ping -n -q -c 1 -W 1 "$@" "$dst" >/dev/null 2>&1; then return 0; fi
  done
  return 1
}

lab_sanity() {
  local ok=0 c
  local checks=(
    "cli 192.168.10.1" "cli 192.0.2.88" "cli 192.0.2.2"
    "lan 192.168.100.1" "srv 192.0.2.88" "inet 192.0.2.2" "srv 192.0.2.1" "rtr 192.0.2.88"
  )
  for c in "${checks[@]}"; do
    # shellcheck disable=SC2086
    if ! lab_ping $c 5; then lab_log "sanity: ping from ${c% *} to ${c#* } failed"; ok=1; fi
  done
  # every further WAN must work on its own too
  local n
  for ((n = 1; n < LAB_WANS; n++)); do
    if ! lab_ping cli "192.168.$(lab_wan_octet "$n").1" 5; then lab_log "sanity: cli cannot reach wan$n's gateway"; ok=1; fi
    if ! lab_ping cli 192.0.2.88 5 -I "wan$n"; then lab_log "sanity: ping from cli via wan$n failed"; ok=1; fi
  done
  [ $ok -eq 0 ] && lab_log "lab sanity: all pings OK"
  return $ok
}

# lab_down PREFIX: kill what runs inside the prefix's namespaces (TERM, then KILL)
# and delete them. Deleting a namespace destroys its veths and the bridge.
lab_down() {
  local p=${1:-$LAB_P} ns pids t
  [ -n "$p" ] || return 0
  local all=()
  mapfile -t all < <(lab_list_ns "$p")
  [ ${#all[@]} -gt 0 ] || return 0
  for ns in "${all[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -n "${pids// /}" ] && kill -TERM $pids 2>/dev/null
  done
  for ((t = 0; t < 50; t++)); do
    pids=""
    for ns in "${all[@]}"; do pids+=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' '); done
    [ -z "${pids// /}" ] && break
    sleep 0.1
  done
  if [ -n "${pids// /}" ]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.2
  fi
  for ns in "${all[@]}"; do ip netns del "$ns" 2>/dev/null || lab_log "could not delete $ns"; done
  [ -d "/tmp/onebox-lab-$p" ] && rm -rf "/tmp/onebox-lab-$p" # emulator sockets of a CLI-made lab
  lab_log "lab down: prefix $p"
}

# ---------------------------------------------------------------- configs

# write_server_conf FILE [PSK]
write_server_conf() {
  install -m 600 /dev/null "$1"
  cat >"$1" <<EOF
[server]
listen_address = "0.0.0.0"
listen_port = $LAB_PORT
preshared_key = "${2:-$LAB_PSK}"
log_level = "${LAB_LOG_LEVEL:-info}"
[server.tun]
name = "onebox0"
ip = "10.0.0.1"
netmask = "255.255.255.0"
EOF
}

# write_client_conf FILE [TUN_IP] [PSK]
write_client_conf() {
  install -m 600 /dev/null "$1"
  cat >"$1" <<EOF
[client]
server_address = "$LAB_SERVER_IP"
server_port = $LAB_PORT
preshared_key = "${3:-$LAB_PSK}"
log_level = "${LAB_LOG_LEVEL:-info}"
[client.tun]
name = "onebox0"
ip = "${2:-10.0.0.2}"
netmask = "255.255.255.0"
EOF
}

# write_configs DIR: DIR/server.conf and DIR/client.conf (tunnel 10.0.0.1 / 10.0.0.2).
write_configs() {
  mkdir -p "$1"
  write_server_conf "$1/server.conf"
  write_client_conf "$1/client.conf"
}

# ---------------------------------------------------------------- daemons

lab_check_binaries() {
  local b
  for b in "$ONEBOX_CLIENT_BIN" "$ONEBOX_SERVER_BIN"; do
    [ -x "$b" ] || { lab_log "missing binary $b (set ONEBOX_BUILD)"; return 1; }
  done
}

# lab_start_daemon KIND(client|server) NAME ROLE CONF: starts it in the background
# in ROLE's namespace; log $LAB_DIR/NAME.log (appended, a marker line per start),
# pid file (and the state file beside it) ${LAB_PID_DIR:-$LAB_DIR}/NAME.pid. The
# pid is in LAB_DPID[NAME].
lab_start_daemon() {
  local kind=$1 name=$2 role=$3 conf=$4 bin
  [ "$kind" = client ] && bin=$ONEBOX_CLIENT_BIN || bin=$ONEBOX_SERVER_BIN
  local log=$LAB_DIR/$name.log pidf=${LAB_PID_DIR:-$LAB_DIR}/$name.pid
  touch "$log"
  LAB_LOGBASE[$name]=$(wc -l <"$log")
  printf '### lab: start %s in %s at %s\n' "$name" "$(lab_ns "$role")" "$(date +%s.%N)" >>"$log"
  ip netns exec "$(lab_ns "$role")" "$bin" start -c "$conf" --pid-file "$pidf" >>"$log" 2>&1 </dev/null &
  LAB_DPID[$name]=$!
  lab_log "started $name (pid ${LAB_DPID[$name]}) in $(lab_ns "$role")"
}
# start_server [NAME=server] [CONF=$LAB_DIR/server.conf]
# shellcheck disable=SC2120
start_server() { lab_start_daemon server "${1:-server}" srv "${2:-$LAB_DIR/server.conf}"; }
# start_client [NAME=client] [ROLE=cli] [CONF=$LAB_DIR/client.conf]
start_client() { lab_start_daemon client "${1:-client}" "${2:-cli}" "${3:-$LAB_DIR/client.conf}"; }

lab_log_file() { printf '%s/%s.log' "$LAB_DIR" "$1"; }
lab_pid_file() { printf '%s/%s.pid' "${LAB_PID_DIR:-$LAB_DIR}" "$1"; }
daemon_pid() { printf '%s' "${LAB_DPID[$1]:-}"; }

_lab_running() { # PID: alive and not a zombie
  local st
  [ -r "/proc/$1/stat" ] || return 1
  st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$st" != Z ] && [ "$st" != X ]
}
daemon_alive() { local pid=${LAB_DPID[$1]:-}; [ -n "$pid" ] && _lab_running "$pid"; }

# stop_daemon NAME [SIGNAL=TERM] [TIMEOUT=10]: signal it, wait for it to exit.
# Exit status in LAB_LAST_RC. Returns 1 if it did not exit in time (then it is KILLed).
stop_daemon() {
  local name=$1 sig=${2:-TERM} to=${3:-10} pid t
  pid=${LAB_DPID[$name]:-}
  [ -n "$pid" ] || { lab_log "stop_daemon: $name was not started"; return 1; }
  kill -"$sig" "$pid" 2>/dev/null
  for ((t = 0; t < to * 10; t++)); do _lab_running "$pid" || break; sleep 0.1; done
  if _lab_running "$pid"; then
    lab_log "$name (pid $pid) did not exit within ${to}s of SIG$sig; killing it"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "LAB_DPID[$name]"
    return 1
  fi
  wait "$pid" 2>/dev/null
  LAB_LAST_RC=$?
  unset "LAB_DPID[$name]"
  lab_log "$name (pid $pid) exited with status $LAB_LAST_RC after SIG$sig"
  return 0
}
kill9_daemon() { stop_daemon "$1" KILL 5; }
stop_server() { stop_daemon "${1:-server}" TERM "${2:-10}"; }
stop_client() { stop_daemon "${1:-client}" TERM "${2:-10}"; }

# wait_for_log FILE PATTERN TIMEOUT [MIN_COUNT=1]: wait until FILE has at least
# MIN_COUNT lines matching the extended regex PATTERN.
wait_for_log() {
  local f=$1 pat=$2 to=${3:-10} min=${4:-1} end
  end=$(($(date +%s%N) + to * 1000000000))
  while [ "$(date +%s%N)" -lt "$end" ]; do
    [ "$(log_count "$f" "$pat")" -ge "$min" ] && return 0
    sleep 0.1
  done
  lab_log "timeout (${to}s) waiting for /$pat/ x$min in $f"
  return 1
}
log_count() { local n; n=$(grep -Ec -- "$2" "$1" 2>/dev/null) || true; echo "${n:-0}"; }

# daemon_stats NAME [TIMEOUT=5]: SIGUSR1 the daemon, print its new "stats:" line.
daemon_stats() {
  local name=$1 to=${2:-5} f n pid
  f=$(lab_log_file "$name"); pid=${LAB_DPID[$name]:-}
  [ -n "$pid" ] || { lab_log "daemon_stats: $name not running"; return 1; }
  n=$(log_count "$f" 'stats:')
  kill -USR1 "$pid" 2>/dev/null || { lab_log "daemon_stats: cannot signal $name"; return 1; }
  wait_for_log "$f" 'stats:' "$to" $((n + 1)) || return 1
  grep -E 'stats:' "$f" | tail -n 1
}
# stat_get "STATS_LINE" KEY: the value of KEY (empty if missing).
stat_get() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=\\([0-9]*\\).*/\\1/p" | head -n 1; }
# link_stat "STATS_LINE" N KEY: linkN_KEY, 0 when the link never carried anything.
link_stat() { local v; v=$(stat_get "$1" "link$2_$3"); echo "${v:-0}"; }
# stat_text "STATS_LINE" KEY: the value of KEY as text (e.g. linkN_state=up).
stat_text() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# lab_ping_flood COUNT OUT: a ping every 10 ms from the client namespace to the
# internet host through the tunnel, output in OUT; prints "lost sent max_ms".
lab_ping_flood() {
  lab_exec cli ping -n -i 0.01 -W 1 -c "$1" "$LAB_INET_IP" >"$2" 2>&1
  lab_ping_summary "$2"
}
# lab_ping_summary OUT: "lost sent max_ms" of a finished ping's output.
lab_ping_summary() {
  local sent got max
  sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' "$1")
  got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$1")
  max=$(sed -nE 's|^rtt min/avg/max/mdev = [0-9.]+/[0-9.]+/([0-9.]+)/.*|\1|p' "$1")
  echo "$(( ${sent:-0} - ${got:-0} )) ${sent:-0} ${max:-0}"
}
# stat_delta "BEFORE" "AFTER" KEY...: sum over KEYs of after-before (missing key -> error).
stat_delta() {
  local b=$1 a=$2 sum=0 k vb va; shift 2
  for k in "$@"; do
    vb=$(stat_get "$b" "$k"); va=$(stat_get "$a" "$k")
    if [ -z "$vb" ] || [ -z "$va" ]; then lab_log "stats key $k missing"; echo "-999999"; return 1; fi
    sum=$((sum + va - vb))
  done
  echo "$sum"
}
# stat_changes "BEFORE" "AFTER" REGEX: "key=+delta" for each counter whose
# name matches REGEX (grep -E) and that changed, on one line.
stat_changes() {
  local b=$1 a=$2 re=$3 kv k va vb out=()
  for kv in $a; do
    k=${kv%%=*}; va=${kv#*=}
    if ! [[ $va =~ ^[0-9]+$ ]] || ! grep -qE "$re" <<<"$k"; then continue; fi
    vb=$(stat_get "$b" "$k")
    [ "${vb:-0}" != "$va" ] && out+=("$k=+$((va - ${vb:-0}))")
  done
  echo "${out[*]:-none}"
}

# log_since_start NAME: NAME's log lines written since it was last started.
log_since_start() { tail -n +"$((${LAB_LOGBASE[$1]:-0} + 1))" "$(lab_log_file "$1")"; }
# wait_tunnel NAME [TIMEOUT=15]: wait for a "session established" line from NAME
# written since its last start.
wait_tunnel() {
  local name=$1 to=${2:-15} end
  end=$(($(date +%s%N) + to * 1000000000))
  while [ "$(date +%s%N)" -lt "$end" ]; do
    log_since_start "$name" | grep -q 'session established' && return 0
    daemon_alive "$name" || { lab_log "$name exited before a session was established"; return 1; }
    sleep 0.1
  done
  lab_log "timeout (${to}s) waiting for 'session established' from $name"
  return 1
}

# ---------------------------------------------------------------- helpers in the lab

# lab_bg ROLE LOGFILE cmd...: run cmd in the background in ROLE's namespace; pid in LAB_BG_PIDS.
lab_bg() {
  local role=$1 log=$2; shift 2
  ip netns exec "$(lab_ns "$role")" "$@" >"$log" 2>&1 </dev/null &
  LAB_BG_PIDS+=("$!")
  LAB_LAST_BG=$!
  export LAB_LAST_BG
}

# lab_wait_listen ROLE PORT [TIMEOUT=10] [PROTO=tcp|udp]: wait for a listener on PORT in ROLE.
lab_wait_listen() {
  local role=$1 port=$2 to=${3:-10} proto=${4:-tcp} t flag=-Hltn
  [ "$proto" = udp ] && flag=-Hlun
  for ((t = 0; t < to * 10; t++)); do
    lab_exec "$role" ss "$flag" "sport = :$port" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  lab_log "nothing listens on $proto port $port in $role"; return 1
}

# lab_inet_http DIR [PORT=8000]: python3 http.server for DIR on 192.0.2.88.
lab_inet_http() {
  local port=${2:-8000}
  lab_bg inet "$LAB_DIR/http-$port.log" "$LAB_PY" -m http.server "$port" --bind "$LAB_INET_IP" --directory "$1"
  lab_wait_listen inet "$port"
}
# lab_inet_iperf [PORT=5201]: iperf3 server on 192.0.2.88.
lab_inet_iperf() {
  local port=${1:-5201}
  lab_bg inet "$LAB_DIR/iperf3-$port.log" iperf3 -s -B "$LAB_INET_IP" -p "$port"
  lab_wait_listen inet "$port"
}

# lab_rtr_counter NAME: packets of nft counter NAME (wan_icmp, wan_tcp, wan_udp) in rtr.
lab_rtr_counter() {
  lab_exec rtr nft list counter ip lab "$1" 2>/dev/null | sed -n 's/.*packets \([0-9]*\).*/\1/p' | head -n 1
}

# snapshot_ns NS: the namespace's network state, normalized for diffing.
snapshot_ns() {
  local ns=$1
  echo "## links"
  ip -n "$ns" -d link show | sed -E 's/^[0-9]+: /N: /; s/@if[0-9]+/@ifN/'
  echo "## addresses"
  ip -n "$ns" addr show | sed -E 's/^[0-9]+: /N: /; s/@if[0-9]+/@ifN/; s/ (tentative|dadfailed|optimistic)//g'
  echo "## rules"
  ip -n "$ns" -4 rule show; ip -n "$ns" -6 rule show
  echo "## routes"
  ip -n "$ns" -4 route show table all | sort; ip -n "$ns" -6 route show table all | sort
  echo "## nftables"
  ip netns exec "$ns" nft list ruleset
  echo "## sysctls"
  ip netns exec "$ns" sysctl -a 2>/dev/null | grep -E \
    '^net\.ipv4\.(ip_forward|conf\.[^.]+\.(rp_filter|src_valid_mark|forwarding|accept_local|route_localnet)|ip_nonlocal_bind) |^net\.ipv6\.conf\.(all|default)\.(forwarding|disable_ipv6) ' | sort
}

# lab_dump_logs: tail of every log in LAB_DIR (for failures).
lab_dump_logs() {
  local f
  [ -n "$LAB_DIR" ] && [ -d "$LAB_DIR" ] || return 0
  for f in "$LAB_DIR"/*.log; do
    [ -s "$f" ] || continue
    printf '\n----- %s (last 40 lines) -----\n' "$(basename "$f")" >&2
    tail -n 40 "$f" >&2
  done
}

# lab_cleanup: EXIT trap of tests/demo: stop daemons (TERM), helpers, the lab, the work dir.
lab_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then lab_dump_logs; fi
  lab_teardown
  exit "$rc"
}

# lab_teardown: stop the daemons (TERM) and helpers, remove the lab and its work
# dir (kept with LAB_KEEP=1). The script goes on; a later lab_start starts afresh.
lab_teardown() {
  local name pid
  for name in "${!LAB_DPID[@]}"; do
    pid=${LAB_DPID[$name]}
    _lab_running "$pid" && stop_daemon "$name" TERM 5 >/dev/null 2>&1
  done
  LAB_DPID=()
  for pid in "${LAB_BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  LAB_BG_PIDS=()
  lab_down "$LAB_P"
  if [ -n "$LAB_DIR" ] && [ -d "$LAB_DIR" ] && [ "${LAB_KEEP:-0}" != 1 ]; then rm -rf "$LAB_DIR"; fi
  [ "${LAB_KEEP:-0}" = 1 ] && lab_log "kept $LAB_DIR"
  return 0
}

# lab_start NAME: a unique prefix and work dir /tmp/onebox-NAME-*, the cleanup
# traps, and lab_up (honouring LAB_EMU). Exits on failure.
lab_start() {
  LAB_P=$(lab_new_prefix)
  LAB_DIR=$(mktemp -d "/tmp/onebox-$1-$LAB_P.XXXXXX")
  trap lab_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  lab_up "$LAB_P" || lab_fail "$1: lab_up failed"
}

# lab_link_slot IFNAME: the link id the client gave WAN interface IFNAME (from
# its log; the last time it came up).
lab_link_slot() {
  grep -E "link [0-9]+ added: $1 " "$(lab_log_file client)" | tail -n 1 | sed -E 's/.*link ([0-9]+) added.*/\1/'
}

# lab_client_with [CLIENT_KEYS] [SECTIONS]: restart the client with
# CLIENT_KEYS (lines) added to its [client] section and SECTIONS appended to
# its config; waits for the tunnel and sets L0/L1 to wan0's/wan1's link ids.
lab_client_with() {
  stop_daemon client TERM 5 >/dev/null 2>&1
  write_client_conf "$LAB_DIR/client.conf"
  if [ -n "${1:-}" ]; then
    "$LAB_PY" - "$LAB_DIR/client.conf" "$1" <<'PY'
import sys
path, keys = sys.argv[1], sys.argv[2]
text = open(path).read().replace("[client]\n", "[client]\n" + keys + "\n", 1)
open(path, "w").write(text)
PY
  fi
  [ -n "${2:-}" ] && printf '%s\n' "$2" >>"$LAB_DIR/client.conf"
  lab_tunnel_up || lab_fail "tunnel did not come up with: $*"
  L0=$(lab_link_slot wan0); L1=$(lab_link_slot wan1)
  [ -n "$L0" ] && [ -n "$L1" ] || lab_fail "client did not report both WAN links"
}

# lab_set_keys KEY VALUE [KEY VALUE...]: each KEY = "VALUE" in both daemons'
# configs (in [client] / [server], replacing an earlier line of it), then a
# reload (SIGHUP) of both, waiting for each to log it.
lab_set_keys() {
  local who f n
  for who in client server; do
    f=$LAB_DIR/$who.conf
    "$LAB_PY" - "$f" "$who" "$@" <<'PY' || lab_fail "could not write $f"
import re, sys
path, who, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(path).read()
lines = ""
for key, value in zip(pairs[::2], pairs[1::2]):
    text = re.sub(r'(?m)^%s = .*\n' % key, '', text)
    lines += '%s = "%s"\n' % (key, value)
text = text.replace("[%s]\n" % who, "[%s]\n%s" % (who, lines), 1)
open(path, "w").write(text)
PY
    n=$(log_count "$(lab_log_file "$who")" 'config reloaded')
    kill -HUP "$(daemon_pid "$who")"
    wait_for_log "$(lab_log_file "$who")" 'config reloaded' 5 $((n + 1)) || lab_fail "$who did not reload $*"
  done
}

# lab_cut_cycle WAN: cuts WAN both ways for 1 s (LAB_EMU labs), restores it,
# then waits 2.5 s: past the client's link_hold (2 s), so the link is in use
# again before the next cut.
lab_cut_cycle() {
  lab_emu_set "$1" "set both cut=1" >/dev/null || lab_fail "linkemu $1 cut"
  sleep 1
  lab_emu_set "$1" "set both cut=0" >/dev/null || lab_fail "linkemu $1 restore"
  sleep 2.5
}

# lab_require_emu NAME: a test that needs the link emulator: root (else exit 77)
# and build/linkemu; turns LAB_EMU on for the lab it starts next.
lab_require_emu() {
  if [ "$(id -u)" -ne 0 ]; then echo "SKIP: $1 needs root (network namespaces)"; exit 77; fi
  [ -x "$LAB_LINKEMU_BIN" ] || lab_fail "$1: $LAB_LINKEMU_BIN not built (ninja linkemu)"
  LAB_EMU=1
}

# lab_test_init NAME: common start of a lab test: root check (exit 77), binaries,
# lab_start and the default configs.
lab_test_init() {
  LAB_TEST=$1
  if [ "$(id -u)" -ne 0 ]; then echo "SKIP: $LAB_TEST needs root (network namespaces)"; exit 77; fi
  lab_check_binaries || lab_fail "$LAB_TEST: onebox binaries not built"
  lab_start "$LAB_TEST"
  write_configs "$LAB_DIR"
}

# lab_dbus_start [POLICY...]: a private system bus for a test: dbus-daemon
# with Debian's own system.conf policy (default deny), control/org.onebox.conf,
# the test's own POLICY files and nothing else; DBUS_SYSTEM_BUS_ADDRESS is
# exported for the daemons and busctl.
lab_dbus_start() {
  command -v dbus-daemon >/dev/null || lab_fail "dbus-daemon not installed (apt-get install dbus-daemon)"
  [ -r /usr/share/dbus-1/system.conf ] || lab_fail "no /usr/share/dbus-1/system.conf"
  "$LAB_PY" - "$LAB_DIR" "$LAB_REPO/control/org.onebox.conf" "$@" <<'PY2' || lab_fail "could not write the bus config"
import re, sys
d, policies = sys.argv[1], sys.argv[2:]
s = open("/usr/share/dbus-1/system.conf").read()
# Not a system service: no user switch, fork, pid file, syslog, activation,
# and none of the host's policies, only ours.
for pat in [r"<user>.*?</user>", r"<fork/>", r"<pidfile>.*?</pidfile>", r"<syslog/>",
            r"<servicehelper>.*?</servicehelper>", r"<standard_system_servicedirs/>",
            r"<includedir>.*?</includedir>", r"<include [^>]*>.*?</include>"]:
    s = re.sub(pat, "", s, flags=re.S)
s = re.sub(r"<listen>.*?</listen>", "<listen>unix:path=%s/dbus.sock</listen>" % d, s)
s = s.replace("</busconfig>", "".join("<include>%s</include>\n" % p for p in policies) + "</busconfig>")
open(d + "/dbus.conf", "w").write(s)
PY2
  rm -f "$LAB_DIR/dbus.sock"
  dbus-daemon --config-file="$LAB_DIR/dbus.conf" --nofork >>"$LAB_DIR/dbus.log" 2>&1 </dev/null &
  LAB_DBUS_PID=$!
  LAB_BG_PIDS+=("$!")
  local t
  for ((t = 0; t < 50; t++)); do [ -S "$LAB_DIR/dbus.sock" ] && break; sleep 0.1; done
  [ -S "$LAB_DIR/dbus.sock" ] || lab_fail "dbus-daemon did not start: $(cat "$LAB_DIR/dbus.log")"
  DBUS_SYSTEM_BUS_ADDRESS="unix:path=$LAB_DIR/dbus.sock"
  export DBUS_SYSTEM_BUS_ADDRESS
  lab_log "private system bus at $DBUS_SYSTEM_BUS_ADDRESS"
}

# lab_tunnel_up [CLIENT_NAME=client] [ROLE=cli]: start server (if not running) and a
# client, wait for "session established" and a ping to 10.0.0.1.
# shellcheck disable=SC2120
lab_tunnel_up() {
  local c=${1:-client} role=${2:-cli}
  if ! daemon_alive server; then
    start_server
    sleep 0.3
    daemon_alive server || { lab_log "server exited right away"; return 1; }
  fi
  start_client "$c" "$role"
  wait_tunnel "$c" 20 || return 1
  lab_ping "$role" 10.0.0.1 10 || { lab_log "tunnel up but 10.0.0.1 does not answer from $role"; return 1; }
  lab_log "tunnel up ($c in $role)"
}

# ---------------------------------------------------------------- benchmarks
# lab_bench_header CMDLINE: the date, commit, command, version and machine
# lines every benchmark section starts with.
lab_bench_header() {
  local cpu
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$LAB_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`$1\` ($("$ONEBOX_CLIENT_BIN" --version 2>&1 | head -n 1))"
  echo "- kernel: $(uname -r), nproc: $(nproc), CPU: ${cpu:-unknown}"
}

# lab_write_section FILE NAME SECTION_FILE: replace the text between
# "<!-- NAME:begin -->" and "<!-- NAME:end -->" in FILE (markdown) with
# SECTION_FILE's (which carries the markers itself), or append it.
lab_write_section() {
  "$LAB_PY" - "$1" "$2" "$3" <<'PY'
import os, re, sys
path, name, section = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().rstrip("\n")
text = open(path).read() if os.path.exists(path) else "# onebox benchmarks\n"
pat = re.compile(r"<!-- %s:begin -->.*?<!-- %s:end -->" % (name, name), re.S)
if pat.search(text):
    text = pat.sub(lambda m: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text if text.endswith("\n") else text + "\n")
PY
}

# ---------------------------------------------------------------- demo
# The demo bonds two emulated WAN links (DEMO_EMU=0: the plain veth lab, no
# rate limits): wan0 40 Mbit/s and wan1 20 Mbit/s, 10 ms each way (linkemu).
# Each step is a function; append to DEMO_STEPS to extend the demo.
DEMO_EMU=${DEMO_EMU:-1}
DEMO_LINKS=(${DEMO_LINKS:-40@10 20@10})   # Mbit/s @ one-way ms, per WAN

# _demo_per_link WHO BEFORE AFTER MS: "wan0 X + wan1 Y Mbit/s" from WHO's
# linkN_tx_bytes between two stats lines over MS milliseconds.
_demo_per_link() {
  local b=$2 a=$3 ms=$4 out="" n v
  for ((n = 0; n < LAB_WANS; n++)); do
    v=$(awk -v b="$(stat_get "$b" "link${n}_tx_bytes")" -v a="$(stat_get "$a" "link${n}_tx_bytes")" -v ms="$ms" \
      'BEGIN { printf "%.1f", (a - b) * 8 / 1000 / ms }')
    out+="${out:+ + }wan$n $v"
  done
  printf '%s Mbit/s' "$out"
}
# _demo_iperf LABEL WHO ARGS...: one 5 s iperf3 run; prints the bond's and each link's speed.
_demo_iperf() {
  local label=$1 who=$2 b a t0 t1 json bond; shift 2
  b=$(daemon_stats "$who") || return 1
  t0=$(date +%s%N)
  json=$(lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 5 -J "$@") || return 1
  t1=$(date +%s%N)
  a=$(daemon_stats "$who") || return 1
  bond=$(printf '%s' "$json" | "$LAB_PY" -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))')
  printf '%-28s bond %6s Mbit/s   links: %s\n' "$label" "$bond" "$(_demo_per_link "$who" "$b" "$a" $(((t1 - t0) / 1000000)))"
}
demo_links() {
  lab_inet_iperf 5201 || return 1
  [ "$DEMO_EMU" = 1 ] || return 0
  local n rate delay
  for ((n = 0; n < LAB_WANS; n++)); do
    rate=${DEMO_LINKS[$n]%@*}; delay=${DEMO_LINKS[$n]#*@}
    lab_emu_set "wan$n" "set both rate=${rate}mbit delay=${delay}ms" || return 1
  done
  echo "== each WAN link on its own (iperf3 TCP 5 s, bound to the interface, no onebox)"
  for ((n = 0; n < LAB_WANS; n++)); do
    printf 'wan%s (emulated %s Mbit/s, %s ms each way): %s\n' "$n" "${DEMO_LINKS[$n]%@*}" "${DEMO_LINKS[$n]#*@}" \
      "$(lab_exec cli timeout 30 iperf3 -c "$LAB_INET_IP" -p 5201 -t 5 -f m -B "192.168.$(lab_wan_octet "$n").2" \
        --bind-dev "wan$n" | awk '/receiver/ { print $7, $8 }')"
  done
}
demo_download() {
  local d=$LAB_DIR/www size=${DEMO_DOWNLOAD_MB:-50}
  [ "$DEMO_EMU" = 1 ] || size=100
  mkdir -p "$d"
  head -c "${size}M" /dev/urandom >"$d/blob"
  lab_inet_http "$d" 8000 || return 1
  echo "== ${size} MB HTTP download through the tunnel (client ns -> 192.0.2.88)"
  local res b a t0 t1
  b=$(daemon_stats server) || return 1
  t0=$(date +%s%N)
  res=$(lab_exec cli timeout 120 curl -sS --max-time 110 -o "$LAB_DIR/blob.out" \
    -w '%{size_download} %{time_total} %{speed_download}' "http://$LAB_INET_IP:8000/blob") || return 1
  t1=$(date +%s%N)
  a=$(daemon_stats server) || return 1
  awk -v r="$res" 'BEGIN { split(r, a, " "); printf "downloaded %d bytes in %.2f s = %.1f Mbit/s\n", a[1], a[2], a[3] * 8 / 1e6 }'
  echo "the server sent it over: $(_demo_per_link server "$b" "$a" $(((t1 - t0) / 1000000)))"
  local s1 s2
  s1=$(sha256sum <"$d/blob" | cut -d' ' -f1); s2=$(sha256sum <"$LAB_DIR/blob.out" | cut -d' ' -f1)
  if [ "$s1" != "$s2" ]; then echo "sha256 MISMATCH $s1 != $s2"; return 1; fi
  echo "sha256 OK $s1"
  rm -f "$LAB_DIR/blob.out"
}
demo_iperf() {
  echo "== iperf3 TCP 5 s through the tunnel: the bond and each link's share"
  _demo_iperf "up (client -> internet)" client || return 1
  _demo_iperf "down (internet -> client)" server -R || return 1
  _demo_iperf "up, 4 streams" client -P 4 || return 1
  _demo_iperf "down, 4 streams" server -P 4 -R || return 1
}
demo_stats() {
  echo "== daemon stats (SIGUSR1)"
  echo "server: $(daemon_stats server)"
  echo "client: $(daemon_stats client)"
}
DEMO_STEPS=(demo_download demo_iperf demo_stats)

lab_demo() {
  [ "$(id -u)" -eq 0 ] || lab_fail "demo needs root"
  lab_check_binaries || lab_fail "build first (cmake -B build -G Ninja && ninja -C build)"
  [ "$DEMO_EMU" != 1 ] || [ -x "$LAB_LINKEMU_BIN" ] || lab_fail "build linkemu first (ninja -C build linkemu) or DEMO_EMU=0"
  LAB_EMU=$DEMO_EMU
  LAB_WANS=${#DEMO_LINKS[@]}
  lab_start demo
  write_configs "$LAB_DIR"
  demo_links || lab_fail "demo step demo_links failed"
  lab_tunnel_up || lab_fail "tunnel did not come up"
  local s
  for s in "${DEMO_STEPS[@]}"; do "$s" || lab_fail "demo step $s failed"; done
  echo "== demo done; tearing down"
}

# ---------------------------------------------------------------- CLI
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  cmd=${1:-}
  case "$cmd" in
    up)
      [ "$(id -u)" -eq 0 ] || lab_fail "needs root"
      # not "ob<pid>_...": this lab outlives this shell, so lab_gc must leave it alone
      lab_up "${2:-oblab_$(printf '%04x' $RANDOM)}" || exit 1
      echo "lab up with prefix $LAB_P: $(lab_list_ns "$LAB_P" | tr '\n' ' ')"
      echo "enter one:  ip netns exec $LAB_P-cli bash"
      echo "tear down:  bash $0 down $LAB_P"
      [ "$LAB_EMU" = 1 ] && echo "emulators:  bash $0 emu $LAB_P wan0 show   (or 'set up delay=20ms', ...)"
      ;;
    down)
      [ -n "${2:-}" ] || lab_fail "usage: $0 down PREFIX"
      lab_down "$2"
      ;;
    demo) lab_demo ;;
    list) ip netns list | awk '{print $1}' | grep -E '^ob[0-9]+_[0-9a-f]+-' || true ;;
    gc) lab_gc ;;
    emu)
      [ $# -ge 4 ] || lab_fail "usage: $0 emu PREFIX WAN COMMAND..."
      LAB_P=$2
      timeout 10 "$LAB_LINKEMU_BIN" ctl "$(lab_emu_sock "$3")" "${@:4}"
      ;;
    *) echo "usage: $0 up [PREFIX] | down PREFIX | demo | list | gc | emu PREFIX WAN COMMAND" >&2; exit 2 ;;
  esac
fi

# ---------------------------------------------------------------- benchmark helpers (issue #7)
# Defined after the CLI block on purpose: only scripts that source this file use them.

# lab_pkg_ensure PKG...: apt-get install the Debian packages that are missing
# (benchmarks only; tests get theirs from ci/deps.sh). Fails with one line.
lab_pkg_ensure() {
  local p miss=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || miss+=("$p"); done
  [ ${#miss[@]} -eq 0 ] && return 0
  lab_log "installing ${miss[*]} (apt-get install -y -q)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${miss[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${miss[@]}" >/dev/null 2>&1; } \
    || { lab_log "apt-get install ${miss[*]} failed"; return 1; }
}

# lab_cpu_ticks PID...: utime+stime (clock ticks, all threads) summed over the
# PIDs; a PID that is gone or empty counts 0.
lab_cpu_ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || continue
    t=$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

# lab_proc_mem PID: "VmRSS VmHWM" of PID in kB ("0 0" if it is gone).
lab_proc_mem() {
  awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { printf "%d %d\n", r, h }' "/proc/$1/status" 2>/dev/null || echo "0 0"
}

# lab_mem_sampler OUT PID...: in the background, the largest VmRSS (kB) of each
# PID every 0.2 s, rewritten into OUT as "PID MAX_KB" lines; stop it with
# kill "$LAB_LAST_SAMPLER" (its pid, also in LAB_BG_PIDS).
lab_mem_sampler() {
  local out=$1; shift
  (
    declare -A max=()
    local p r
    while :; do
      for p in "$@"; do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        [ -n "$r" ] && [ "$r" -gt "${max[$p]:-0}" ] && max[$p]=$r
      done
      : >"$out.tmp"; for p in "$@"; do echo "$p ${max[$p]:-0}" >>"$out.tmp"; done
      mv -f "$out.tmp" "$out"
      sleep 0.2
    done
  ) &
  LAB_LAST_SAMPLER=$!
  LAB_BG_PIDS+=("$!")
}

# lab_ping_rtts PING_OUTPUT: the RTTs (ms) of the replies, one per line.
lab_ping_rtts() { sed -nE 's/.* time=([0-9.]+) ms.*/\1/p' "$1"; }

# lab_percentiles [FILE]: of numbers one per line (stdin without FILE):
# "count median p95 p99 max min" (nearest-rank percentiles; zeros if empty).
lab_percentiles() {
  sort -g ${1:+"$1"} | awk '{ v[NR] = $1 }
    function q(p,  k) { k = int(p * NR + 0.999999); if (k < 1) k = 1; if (k > NR) k = NR; return v[k] }
    END { if (NR == 0) { print "0 0 0 0 0 0"; exit }
          printf "%d %.3f %.3f %.3f %.3f %.3f\n", NR, q(0.5), q(0.95), q(0.99), v[NR], v[1] }'
}

# lab_pool_size: the data-plane worker's compiled-in buffer pool, from the
# sources the binaries were built from: "BUFFERS BYTES_EACH" (e.g. 8192 2048).
lab_pool_size() {
  local n s
  n=$(sed -nE 's/.*uint32_t buffers = ([0-9]+);.*/\1/p' "$LAB_REPO/dataplane/worker.h" | head -n 1)
  s=$(sed -nE 's/.*kBufferSize = ([0-9]+);.*/\1/p' "$LAB_REPO/dataplane/buffers.h" | head -n 1)
  echo "${n:-?} ${s:-?}"
}

# lab_rtr_tcp_leak BEFORE: TCP packets that crossed rtr unencapsulated since the
# counter read BEFORE (lab_rtr_counter wan_tcp): 0 when all went through a tunnel.
lab_rtr_tcp_leak() { echo $(( $(lab_rtr_counter wan_tcp) - $1 )); }

# lab_loadavg: the machine's 1/5/15-minute load averages (for benchmark headers:
# others' work on the same cores skews the figures).
lab_loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# lab_watch_others OUT: in the background, every 2 s, note in OUT other labs'
# prefixes (namespaces not made by this shell, whose labs are "ob$$_...") and
# builds or test runs (cc1plus, ninja, ctest, make) on the machine: work that
# competes for the cores during a benchmark. Its pid is LAB_LAST_WATCH; it
# outlives lab teardowns (a script may run several labs) and ends with the
# shell that started it, or with kill "$LAB_LAST_WATCH".
lab_watch_others() {
  local out=$1 mine="ob$$_" parent=$$
  : >"$out"
  (
    while kill -0 "$parent" 2>/dev/null; do
      {
        ip netns list 2>/dev/null | awk '{print $1}' | sed -nE 's/^(ob[a-z0-9]*_[0-9a-f]+)-[a-z0-9]+$/\1/p' \
          | grep -v "^$mine" | sort -u | sed 's/^/lab /'
        for n in cc1plus ninja ctest make; do pgrep -x "$n" >/dev/null 2>&1 && echo "process $n"; done
      } >"$out.now"
      if [ -s "$out.now" ]; then echo "sample busy" >>"$out"; cat "$out.now" >>"$out"; else echo "sample quiet" >>"$out"; fi
      sleep 2
    done
    rm -f "$out" "$out.now"   # the shell died without reading it
  ) &
  LAB_LAST_WATCH=$!
}
# lab_others_seen OUT: "none (in N samples)", or what lab_watch_others saw and
# in how many of its samples, e.g. "lab ob123_abc, process cc1plus (in 7 of 100 samples)".
lab_others_seen() {
  local s n k
  n=$(grep -c '^sample ' "$1" 2>/dev/null); k=$(grep -c '^sample busy' "$1" 2>/dev/null)
  s=$(grep -v '^sample ' "$1" 2>/dev/null | sort -u | paste -sd, - | sed 's/,/, /g')
  rm -f "$1.now"
  if [ -z "$s" ]; then echo "none (in ${n:-0} samples)"; else echo "$s (in ${k:-0} of ${n:-0} samples)"; fi
}
