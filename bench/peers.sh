# shellcheck shell=bash disable=SC2034  # PEER_* are read by the scripts that source this
# bench/peers.sh — peer VPNs for the benchmarks (issue #7), sourced after
# ci/lab.sh, run inside the lab's namespaces between the client box (cli) and
# the server (srv), over the lab's wan0 path (cli -> rtr NAT -> srv):
#
#   openvpn-aes     OpenVPN 2.6 (Debian), p2p, UDP 1194, dev tun, TLS with
#                   self-signed certificates made with openssl in the run's
#                   work dir and pinned with --peer-fingerprint (no CA), data
#                   cipher AES-256-GCM (its default), --disable-dco (userspace)
#   openvpn-chacha  the same with --data-ciphers CHACHA20-POLY1305 (onebox's AEAD)
#   wireguard-go    wireguard-go (Debian) in the foreground (-f), userspace TUN,
#                   keys from wg genkey, configured with wg set, UDP 51820
#
# Tunnel subnets: OpenVPN 10.8.0.0/24, WireGuard 10.9.0.0/24 (onebox has
# 10.0.0.0/24). The cli namespace routes only the internet host 192.0.2.88/32
# into the peer's tunnel (its WAN default route stays, so the encapsulated
# traffic leaves by wan0); the srv namespace forwards and masquerades the
# tunnel subnet out of eth0 (nft table ip benchpeer). peer_stop removes it all.
#
# peer_start NAME: start both ends, wait until a ping to 192.0.2.88 goes
# through the tunnel; sets PEER_CPID, PEER_SPID (the client's and server's
# processes, for CPU and memory) and PEER_INFO (version and cipher in use).
# peer_stop: stop both ends (TERM), remove route and nft table.
# peer_packages: the Debian packages the peers need.

PEER_NAMES=(openvpn-aes openvpn-chacha wireguard-go)
PEER_CPID=""; PEER_SPID=""; PEER_INFO=""; PEER_DEV=""; PEER_CUR=""
peer_packages() { echo "openvpn wireguard-go wireguard-tools openssl"; }

peer_label() {
  case $1 in
    openvpn-aes) echo "openvpn (aes-256-gcm)" ;;
    openvpn-chacha) echo "openvpn (chacha20-poly1305)" ;;
    wireguard-go) echo "wireguard-go" ;;
    *) echo "$1" ;;
  esac
}

_peer_dir() { printf '%s/peers' "$LAB_DIR"; }

# _peer_wait_log FILE PATTERN SECONDS PID: the pattern in FILE while PID lives.
_peer_wait_log() {
  local t
  for ((t = 0; t < $3 * 10; t++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    _lab_running "$4" || { lab_log "$(basename "$1" .log) exited: $(tail -n 3 "$1" | tr '\n' ' ')"; return 1; }
    sleep 0.1
  done
  lab_log "timeout (${3}s) waiting for /$2/ in $1: $(tail -n 3 "$1" | tr '\n' ' ')"
  return 1
}

# _peer_forward SUBNET: the srv side routes and masquerades SUBNET to the internet.
_peer_forward() {
  lab_exec srv sysctl -qw net.ipv4.ip_forward=1 || return 1
  lab_exec srv nft -f - <<EOF || { lab_log "nft in srv failed"; return 1; }
table ip benchpeer {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $1 oifname "eth0" masquerade
  }
}
EOF
}

# _peer_route DEV: the internet host through DEV in cli; checks a ping gets through.
_peer_route() {
  lab_exec cli ip route replace 192.0.2.88/32 dev "$1" || { lab_log "route via $1 failed"; return 1; }
  lab_exec cli ip route get 192.0.2.88 | grep -q "dev $1" || { lab_log "192.0.2.88 is not routed via $1"; return 1; }
  lab_ping cli "$LAB_INET_IP" 10 || { lab_log "no ping through $1 to $LAB_INET_IP"; return 1; }
}

_peer_openvpn_certs() {
  local d=$1 who
  for who in srv cli; do
    [ -s "$d/$who.crt" ] && continue
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj "/CN=onebox-bench-$who" -keyout "$d/$who.key" -out "$d/$who.crt" >/dev/null 2>&1 \
      || { lab_log "openssl could not make the $who certificate"; return 1; }
    chmod 600 "$d/$who.key"
  done
}
_peer_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/^.*=//'; }

_peer_start_openvpn() {
  local cipher=$1 d sfp cfp common
  d=$(_peer_dir)
  _peer_openvpn_certs "$d" || return 1
  sfp=$(_peer_fp "$d/srv.crt"); cfp=$(_peer_fp "$d/cli.crt")
  common=(--dev ovpn0 --dev-type tun --proto udp --data-ciphers "$cipher" --disable-dco
    --verb 3 --script-security 1 --ping 10 --ping-exit 60)
  lab_bg srv "$d/openvpn-srv.log" openvpn "${common[@]}" --local "$LAB_SERVER_IP" --lport 1194 \
    --tls-server --dh none --cert "$d/srv.crt" --key "$d/srv.key" --peer-fingerprint "$cfp" \
    --ifconfig 10.8.0.1 10.8.0.2
  PEER_SPID=$LAB_LAST_BG
  lab_wait_listen srv 1194 10 udp || return 1
  lab_bg cli "$d/openvpn-cli.log" openvpn "${common[@]}" --remote "$LAB_SERVER_IP" 1194 --nobind \
    --tls-client --cert "$d/cli.crt" --key "$d/cli.key" --peer-fingerprint "$sfp" \
    --ifconfig 10.8.0.2 10.8.0.1
  PEER_CPID=$LAB_LAST_BG
  _peer_wait_log "$d/openvpn-cli.log" 'Initialization Sequence Completed' 30 "$PEER_CPID" || return 1
  _peer_wait_log "$d/openvpn-srv.log" 'Initialization Sequence Completed' 10 "$PEER_SPID" || return 1
  # the cipher the data channel really uses, from both logs
  local used
  used=$(grep -hoE "Data Channel: cipher '[^']+'" "$d/openvpn-cli.log" "$d/openvpn-srv.log" \
    | sed -E "s/.*'([^']+)'/\1/" | sort -u | tr '\n' ' ')
  [ "${used% }" = "$cipher" ] || { lab_log "openvpn data channel uses '${used% }', wanted $cipher"; return 1; }
  PEER_INFO="$(openvpn --version | head -n 1 | awk '{print $1, $2}'), data cipher $cipher (from both logs), no DCO"
  _peer_forward 10.8.0.0/24 || return 1
  PEER_DEV=ovpn0
  _peer_route ovpn0
}

_peer_start_wireguard() {
  local d spub cpub sdev cdev t
  d=$(_peer_dir)
  # the UAPI sockets live in the host's /var/run/wireguard/: names unique per lab
  sdev="wgs${LAB_P##*_}"; cdev="wgc${LAB_P##*_}"
  (umask 077 && wg genkey >"$d/wg-srv.key" && wg genkey >"$d/wg-cli.key") || { lab_log "wg genkey failed"; return 1; }
  spub=$(wg pubkey <"$d/wg-srv.key"); cpub=$(wg pubkey <"$d/wg-cli.key")
  lab_bg srv "$d/wireguard-srv.log" wireguard-go -f "$sdev"
  PEER_SPID=$LAB_LAST_BG
  lab_bg cli "$d/wireguard-cli.log" wireguard-go -f "$cdev"
  PEER_CPID=$LAB_LAST_BG
  for ((t = 0; t < 50; t++)); do
    [ -S "/var/run/wireguard/$sdev.sock" ] && [ -S "/var/run/wireguard/$cdev.sock" ] && break
    sleep 0.1
  done
  if [ ! -S "/var/run/wireguard/$sdev.sock" ] || [ ! -S "/var/run/wireguard/$cdev.sock" ]; then
    lab_log "wireguard-go did not come up: $(tail -n 3 "$d"/wireguard-*.log | tr '\n' ' ')"; return 1
  fi
  lab_exec srv wg set "$sdev" listen-port 51820 private-key "$d/wg-srv.key" \
    peer "$cpub" allowed-ips 10.9.0.2/32 || { lab_log "wg set (srv) failed"; return 1; }
  lab_exec srv ip addr add 10.9.0.1/24 dev "$sdev" && lab_exec srv ip link set "$sdev" up || return 1
  lab_exec cli wg set "$cdev" private-key "$d/wg-cli.key" \
    peer "$spub" endpoint "$LAB_SERVER_IP:51820" allowed-ips 10.9.0.0/24,192.0.2.88/32 \
    || { lab_log "wg set (cli) failed"; return 1; }
  lab_exec cli ip addr add 10.9.0.2/24 dev "$cdev" && lab_exec cli ip link set "$cdev" up || return 1
  PEER_INFO="$(wireguard-go --version | head -n 1), MTU $(lab_exec cli cat "/sys/class/net/$cdev/mtu"), userspace TUN"
  _peer_forward 10.9.0.0/24 || return 1
  PEER_DEV=$cdev
  _peer_route "$cdev"
}

peer_start() {
  PEER_CPID=""; PEER_SPID=""; PEER_INFO=""; PEER_DEV=""; PEER_CUR=$1
  mkdir -p "$(_peer_dir)"
  case $1 in
    openvpn-aes) _peer_start_openvpn AES-256-GCM ;;
    openvpn-chacha) _peer_start_openvpn CHACHA20-POLY1305 ;;
    wireguard-go) _peer_start_wireguard ;;
    *) lab_log "unknown peer $1"; return 1 ;;
  esac
}

# _peer_kill PID: TERM, wait up to 5 s, then KILL.
_peer_kill() {
  local pid=$1 t
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((t = 0; t < 50; t++)); do _lab_running "$pid" || break; sleep 0.1; done
  _lab_running "$pid" && { lab_log "peer pid $pid ignored TERM; killing it"; kill -KILL "$pid" 2>/dev/null; }
  wait "$pid" 2>/dev/null
  return 0
}

peer_stop() {
  _peer_kill "$PEER_CPID"; _peer_kill "$PEER_SPID"
  lab_exec cli ip route del 192.0.2.88/32 2>/dev/null
  lab_exec srv nft delete table ip benchpeer 2>/dev/null
  # a wireguard-go that died on KILL leaves its socket behind
  [ "$PEER_CUR" = wireguard-go ] && rm -f "/var/run/wireguard/wgs${LAB_P##*_}.sock" "/var/run/wireguard/wgc${LAB_P##*_}.sock"
  PEER_CPID=""; PEER_SPID=""; PEER_DEV=""; PEER_CUR=""
  return 0
}

# peer_bench_setup SCRIPT ARGS...: what bench/tunnel.sh and small_packets.sh
# share before their runs: the command line as recorded (with BENCH_PEERS and
# BENCH_SECONDS), SECS, RESULTS, PEERS (BENCH_PEERS, default all), root and
# the binaries checked, the peers' packages installed, T_START, LOAD_START
# and the watch on other labs (OTHERS). Sets globals for the caller.
peer_bench_setup() {
  local name=$1; shift
  CMDLINE="bash bench/$name${*:+ $*}"
  [ -n "${BENCH_PEERS+x}" ] && CMDLINE="BENCH_PEERS=\"$BENCH_PEERS\" $CMDLINE"
  [ -n "${BENCH_SECONDS:-}" ] && CMDLINE="BENCH_SECONDS=$BENCH_SECONDS $CMDLINE"
  SECS=${BENCH_SECONDS:-10}
  RESULTS=${BENCH_RESULTS:-$HERE/results.md}
  PEERS=${BENCH_PEERS-${PEER_NAMES[*]}}
  [ "$(id -u)" -eq 0 ] || lab_fail "bench/$name needs root (network namespaces)"
  lab_check_binaries || lab_fail "build first: cmake -B build -G Ninja && cmake --build build"
  if [ -n "$PEERS" ]; then
    # shellcheck disable=SC2046
    lab_pkg_ensure $(peer_packages) || lab_fail "could not install the peers' packages ($(peer_packages))"
  fi
  T_START=$(date +%s)
  LOAD_START=$(lab_loadavg)
  OTHERS=$(mktemp /tmp/onebox-bench-others.XXXXXX)
  lab_watch_others "$OTHERS"
}

# peer_run_all FAILED_ROW FN: each of $PEERS in turn: started, FN LABEL
# CLIENT_PID SERVER_PID, stopped; INFOS gets its version line. One that
# does not come up adds FAILED_ROW to ROWS, its @ replaced by its label.
peer_run_all() {
  local failed=$1 fn=$2 p label
  INFOS=()
  for p in $PEERS; do
    label=$(peer_label "$p")
    echo "== $label, ${SECS}s per run"
    if ! peer_start "$p"; then
      lab_log "$label did not come up; its logs:"; tail -n 5 "$LAB_DIR"/peers/*.log >&2
      ROWS+=("${failed/@/$label}")
      peer_stop
      continue
    fi
    INFOS+=("- $label: $PEER_INFO")
    "$fn" "$label" "$PEER_CPID" "$PEER_SPID"
    peer_stop
  done
}
