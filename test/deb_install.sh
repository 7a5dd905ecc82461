#!/usr/bin/env bash
# deb_install: the onebox .deb installed into, upgraded in and removed from a
# throw-away copy of this very system, and the host shown untouched.
#
# The copy is an overlayfs over / (writes go to a tmpfs) inside private mount,
# PID and network namespaces, with an empty /run: dpkg, the maintainer
# scripts and the programs run chrooted there, cannot see the host's /run
# (pid files, D-Bus socket), its processes or its network. The steps:
#   1. dpkg -i without systemd: files in place with their modes, the conffiles
#      registered, no unit enabled, nothing started, systemctl never called,
#      `onebox-client --version` runs from /usr/sbin;
#   2. "systemd running" (/run/systemd/system, a systemctl that logs): a
#      reinstall stops the daemons (prerm), reloads systemd and starts
#      nothing; with onebox-client enabled by the admin, a reinstall starts
#      that one only;
#   3. dpkg -r: binaries and units gone, configs kept (mode 600), systemd
#      told; dpkg -P: configs and every trace gone, nothing named onebox left
#      in the overlay's upper layer, dpkg has forgotten the package.
# Before and after, the host's dpkg database and every path the package
# holds are compared, and nothing under /etc /usr /var/lib/dpkg
# /var/lib/systemd may be newer than the test's start.
#
# Env: ONEBOX_BUILD (build dir; its CPackConfig.cmake makes the .deb), or
# ONEBOX_DEB=path/to/onebox_*.deb to test a given package.
# Needs root (namespaces, overlayfs, dpkg); skipped (77) without it.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ONEBOX_BUILD:-$HERE/build}
skip() { echo "SKIP: $*"; exit 77; }
# A build dir configured before the install prefix became /usr still has
# /usr/local: the package and the recipe are about /usr.
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
[ "${prefix:-/usr}" = /usr ] || { echo "FAIL: $BUILD has CMAKE_INSTALL_PREFIX=$prefix; reconfigure it: cmake -S . -B $BUILD -DCMAKE_INSTALL_PREFIX=/usr"; exit 1; }

if [ "${1:-}" != --inner ]; then
  # ---------------------------------------------------------------- outer
  [ "$(id -u)" -eq 0 ] || skip "needs root (mount namespace, overlayfs, dpkg)"
  for t in dpkg dpkg-deb dpkg-query unshare chroot md5sum; do
    command -v "$t" >/dev/null || skip "$t not installed"
  done
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
  grep -qw overlay /proc/filesystems || skip "the kernel has no overlayfs"
  if dpkg-query -W -f='${Status}' onebox 2>/dev/null | grep -q 'ok installed'; then
    skip "the onebox package is installed on this host; this test wants a host without it"
  fi

  work=$(mktemp -d /tmp/deb-install-test.XXXXXX) || { echo "FAIL: mktemp"; exit 1; }
  # The mounts live and die with the test's namespace; should one ever be
  # seen here, the directory is left alone rather than removed through it.
  cleanup() {
    if grep -qF "$work" /proc/self/mountinfo; then
      echo "deb_install: $work is still mounted; not removing it" >&2
    else
      rm -rf --one-file-system "$work"
    fi
  }
  trap cleanup EXIT
  touch "$work/marker"
  sleep 1   # so that -newer sees a change made in the same second

  deb=${ONEBOX_DEB:-}
  if [ -z "$deb" ]; then
    [ -f "$BUILD/CPackConfig.cmake" ] || { echo "FAIL: no $BUILD/CPackConfig.cmake (configure the build first)"; exit 1; }
    command -v cpack >/dev/null || skip "cpack not installed"
    if ! cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1; then
      echo "FAIL: cpack -G DEB failed:"; tail -n 30 "$work/cpack.log"; exit 1
    fi
    deb=$(ls "$work"/pkg/onebox_*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || { echo "FAIL: cpack made no onebox_*.deb:"; tail -n 30 "$work/cpack.log"; exit 1; }
  fi
  [ -f "$deb" ] || { echo "FAIL: $deb: no such package"; exit 1; }
  arch=$(dpkg-deb -f "$deb" Architecture)
  [ "$arch" = "$(dpkg --print-architecture)" ] || skip "$deb is for $arch, this host is $(dpkg --print-architecture)"
  echo "package: $deb ($(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version) $arch)"

  # Every path the package holds (plus the places the scripts touch), as the host has them.
  dpkg-deb -c "$deb" | awk '{print $6}' | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^$' >"$work/paths"
  printf '%s\n' /etc/onebox /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked /run/systemd/system >>"$work/paths"
  snapshot() {
    md5sum /var/lib/dpkg/status
    ls /var/lib/dpkg/info | md5sum | sed 's/-$/info listing/'
    while IFS= read -r p; do
      if [ -e "$p" ] || [ -L "$p" ]; then stat -c '%n %F %a %u:%g %s %Y' "$p"; else echo "$p absent"; fi
    done <"$work/paths"
    find /etc/systemd/system -name '*onebox*' 2>/dev/null
  }
  snapshot >"$work/host.before"

  unshare --mount --pid --net --fork --propagation private -- bash "$0" --inner "$work" "$deb"
  rc=$?

  snapshot >"$work/host.after"
  if ! diff -u "$work/host.before" "$work/host.after" >"$work/host.diff"; then
    echo "FAIL: the host changed during the test (dpkg database or the package's paths):"
    cat "$work/host.diff"
    rc=1
  fi
  newer=$(find /etc /usr /var/lib/dpkg /var/lib/systemd -xdev -newer "$work/marker" 2>/dev/null | head -n 20)
  if [ -n "$newer" ]; then
    echo "FAIL: files on the host changed while the test ran (another apt/dpkg run at the same time would do this too):"
    printf '  %s\n' $newer
    rc=1
  fi
  if grep -qF "$work" /proc/self/mountinfo; then
    echo "FAIL: a mount under $work leaked out of the test's namespace"; rc=1
  fi
  [ $rc -eq 0 ] && echo "PASS: host untouched: dpkg database, the package's paths and /etc /usr /var/lib/{dpkg,systemd} as before"
  if [ $rc -eq 0 ]; then echo "PASS: deb_install"; else echo "FAIL: deb_install"; fi
  exit $rc
fi

# ------------------------------------------------------------------ inner
# Runs in fresh mount, PID and network namespaces (unshare above).
work=$2
deb=$3
root=$work/root
layer=$work/layer
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LC_ALL=C DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
}
dpkg_in_root() {
  if ! in_root dpkg "$@" >"$work/dpkg.log" 2>&1; then
    echo "dpkg $* failed:"; sed 's/^/  | /' "$work/dpkg.log"; return 1
  fi
}

mkdir -p "$layer" "$root" || exit 1
mount -t tmpfs -o mode=0755 deb-install-layer "$layer" || { echo "FAIL: mount tmpfs"; exit 1; }
mkdir "$layer/upper" "$layer/work"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$layer/upper,workdir=$layer/work" "$root"; then
  echo "FAIL: overlayfs over / did not mount"; exit 1
fi
mount -t proc proc "$root/proc" || { echo "FAIL: mount proc"; exit 1; }
mount --rbind /dev "$root/dev" || { echo "FAIL: bind /dev"; exit 1; }
mount -t tmpfs -o mode=0755 deb-install-run "$root/run" || { echo "FAIL: tmpfs /run"; exit 1; }
[ -e "$root/proc/1/exe" ] && [ "$(ls -d "$root"/proc/[0-9]* | wc -l)" -lt 20 ] \
  || { echo "FAIL: not in a PID namespace of its own"; exit 1; }

# Leftovers of a `cmake --install` on the host would be taken over by dpkg:
# hide them in the copy (the host keeps them).
while IFS= read -r p; do
  case $p in /|/etc|/usr|/usr/*/|/lib|/lib/*/) continue ;; esac
  if [ -f "$root$p" ] && [ ! -d "$root$p" ]; then
    echo "note: hiding the host's $p (not from a package) in the copy"; rm -f "$root$p"
  fi
done < <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|')
[ -d "$root/etc/onebox" ] && { echo "note: hiding the host's /etc/onebox in the copy"; rm -rf "$root/etc/onebox"; }

cp "$deb" "$root/tmp/deb-under-test.deb" || exit 1
version=$(dpkg-deb -f "$deb" Version)
unitdir=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed -n 's|^\.\(/.*\)/onebox-client\.service$|\1|p')
[ -n "$unitdir" ] || fail "the package holds no onebox-client.service"

# A systemctl that logs every call. Offline calls (--root=, as
# deb-systemd-helper's preset) go to the real one, and so does is-enabled;
# is-active says inactive; anything else (start, stop, daemon-reload)
# "succeeds". Without /run/systemd/system (step 1) nothing may call it at all.
cat >"$root/usr/local/sbin/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>/run/systemctl.log
case " $* " in *" --root="*) exec /usr/bin/systemctl "$@" ;; esac
verb=
for a in "$@"; do
  case $a in -*) ;; *) if [ -z "$verb" ]; then verb=$a; else units="${units:-} $a"; fi ;; esac
done
case $verb in
  is-enabled) exec /usr/bin/systemctl --root=/ is-enabled $units ;;
  is-active) exit 3 ;;
  *) exit 0 ;;
esac
EOF
chmod 755 "$root/usr/local/sbin/systemctl"
: >"$root/run/systemctl.log"
# On a failed check about systemctl, what it was asked.
log_check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what; systemctl was called as:"; sed 's/^/     | /' "$root/run/systemctl.log"; fi; }
# A start/restart/enable/preset call in the log (is-enabled and is-active do not count).
starts() { grep -E '(^| )(start|restart|reload-or-restart|try-restart|enable|reenable|preset|preset-all)( |$)' "$root/run/systemctl.log"; }

onebox_procs() {
  local p exe
  for p in "$root"/proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case $exe in */onebox-client*|*/onebox-server*) echo "${p##*/} $exe" ;; esac
  done
}

mode_is() {  # mode_is PATH MODE: a regular file (or dir) owned by root with MODE
  local st
  st=$(stat -c '%a %U:%G' "$root$1" 2>/dev/null) || { echo "     $1: missing"; return 1; }
  [ "$st" = "$2 root:root" ] || { echo "     $1: $st, want $2 root:root"; return 1; }
}

echo "--- 1. dpkg -i, no systemd running"
if dpkg_in_root -i /tmp/deb-under-test.deb; then pass "dpkg -i"; else fail "dpkg -i"; fi
check "status: install ok installed" \
  test "$(in_root dpkg-query -W -f='${Status}' onebox 2>&1)" = "install ok installed"

expected=(
  "/usr/sbin/onebox-client 755" "/usr/sbin/onebox-server 755"
  "/etc/onebox 755" "/etc/onebox/client.conf 600" "/etc/onebox/server.conf 600"
  "$unitdir/onebox-client.service 644" "$unitdir/onebox-server.service 644"
  "/usr/share/dbus-1/system.d/org.onebox.conf 644"
  "/usr/share/man/man8/onebox-client.8.gz 644" "/usr/share/man/man8/onebox-server.8.gz 644"
  "/usr/share/man/man5/onebox.conf.5.gz 644"
  "/usr/share/doc/onebox/copyright 644" "/usr/share/doc/onebox/changelog.gz 644"
  "/usr/share/lintian/overrides/onebox 644"
)
for x in "$HERE"/control/*.xml; do
  [ -e "$x" ] && expected+=("/usr/share/dbus-1/interfaces/$(basename "$x") 644")
done
bad=0
for e in "${expected[@]}"; do mode_is ${e% *} ${e##* } || bad=1; done
check "${#expected[@]} paths in place, root-owned, with their modes (binaries 755, configs 600)" test $bad = 0
# Nothing else: every file dpkg lists is one of those.
extra=$(in_root dpkg -L onebox | while IFS= read -r f; do
  [ -d "$root$f" ] && continue
  printf '%s\n' "${expected[@]}" | grep -qx "$f [0-9]*" || echo "$f"
done)
check "no file beyond those${extra:+ (extra: $extra)}" test -z "$extra"

conff=$(in_root dpkg-query -W -f='${Conffiles}\n' onebox)
bad=0
for c in /etc/onebox/client.conf /etc/onebox/server.conf; do
  sum=$(md5sum <"$root$c" | cut -d' ' -f1)
  grep -qE "^ $c $sum\$" <<<"$conff" || { echo "     $c ($sum) not registered: $conff"; bad=1; }
done
[ "$(grep -c . <<<"$conff")" -eq 2 ] || { echo "     conffiles: $conff"; bad=1; }
check "conffiles registered: client.conf and server.conf, with their md5sums" test $bad = 0

check "units known to deb-systemd-helper (state for purge recorded)" \
  test -e "$root/var/lib/systemd/deb-systemd-helper-enabled/onebox-client.service.dsh-also" \
    -a -e "$root/var/lib/systemd/deb-systemd-helper-enabled/onebox-server.service.dsh-also"
links=$(find "$root/etc/systemd" -name 'onebox*' 2>/dev/null)
check "no unit enabled (no symlink under /etc/systemd${links:+: $links})" test -z "$links"
for u in onebox-client.service onebox-server.service; do
  st=$(in_root /usr/bin/systemctl --root=/ is-enabled "$u" 2>&1)
  check "systemctl is-enabled $u: disabled (got: $st)" test "$st" = disabled
done
procs=$(onebox_procs)
check "no onebox process started${procs:+: $procs}" test -z "$procs"
check "without systemd, the scripts never call systemctl${procs:+}" test ! -s "$root/run/systemctl.log"
for prog in onebox-client onebox-server; do
  out=$(in_root /usr/sbin/$prog --version 2>&1)
  check "/usr/sbin/$prog --version: '$out'" test "$out" = "$prog $version"
done
if [ -x "$root/usr/bin/man" ]; then
  out=$(in_root man --warnings -E UTF-8 -l /usr/share/man/man8/onebox-client.8.gz 2>&1 >/dev/null)
  check "installed onebox-client.8.gz renders without warnings${out:+: $out}" test -z "$out"
fi

echo "--- 2. with systemd running (a logging systemctl)"
mkdir -p "$root/run/systemd/system"
# The host may forbid service actions (a container's policy-rc.d exits 101);
# in the copy, allow them all, so that what the scripts ask for is seen.
printf '#!/bin/sh\nexit 0\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
if dpkg_in_root -i /tmp/deb-under-test.deb; then pass "dpkg -i again (upgrade path)"; else fail "dpkg -i again"; fi
log_check "prerm stopped both daemons" grep -qx 'stop onebox-client.service onebox-server.service' "$root/run/systemctl.log"
log_check "postinst reloaded systemd" grep -qx -- '--system daemon-reload' "$root/run/systemctl.log"
s=$(starts)
check "nothing started or enabled${s:+: $s}" test -z "$s"
links=$(find "$root/etc/systemd" -name 'onebox*' 2>/dev/null)
check "still no unit enabled${links:+: $links}" test -z "$links"

in_root /usr/bin/systemctl --root=/ enable onebox-client.service >/dev/null 2>&1
check "the admin enables onebox-client" \
  test "$(in_root /usr/bin/systemctl --root=/ is-enabled onebox-client.service 2>&1)" = enabled
: >"$root/run/systemctl.log"
if dpkg_in_root -i /tmp/deb-under-test.deb; then pass "dpkg -i again"; else fail "dpkg -i again"; fi
s=$(starts)
log_check "the enabled onebox-client is started again after the upgrade, onebox-server is not (${s:-no start})" \
  test "$s" = "--quiet --system start onebox-client.service"
check "onebox-client stays enabled" \
  test "$(in_root /usr/bin/systemctl --root=/ is-enabled onebox-client.service 2>&1)" = enabled
in_root /usr/bin/systemctl --root=/ disable onebox-client.service >/dev/null 2>&1

echo "--- 3. dpkg -r, then dpkg -P"
: >"$root/run/systemctl.log"
if dpkg_in_root -r onebox; then pass "dpkg -r"; else fail "dpkg -r"; fi
log_check "prerm stopped both daemons" grep -qx 'stop onebox-client.service onebox-server.service' "$root/run/systemctl.log"
log_check "postrm reloaded systemd" grep -qx -- '--system daemon-reload' "$root/run/systemctl.log"
s=$(starts)
check "nothing started on remove${s:+: $s}" test -z "$s"
check "status: deinstall ok config-files" \
  test "$(in_root dpkg-query -W -f='${Status}' onebox 2>&1)" = "deinstall ok config-files"
gone=1
for f in /usr/sbin/onebox-client /usr/sbin/onebox-server "$unitdir/onebox-client.service" \
    "$unitdir/onebox-server.service" /usr/share/dbus-1/system.d/org.onebox.conf \
    /usr/share/man/man8/onebox-client.8.gz; do
  [ -e "$root$f" ] && { echo "     $f still there"; gone=0; }
done
check "binaries, units, D-Bus policy and man pages gone" test $gone = 1
bad=0
for c in /etc/onebox/client.conf /etc/onebox/server.conf; do mode_is $c 600 || bad=1; done
check "configs kept, mode 600" test $bad = 0

# Leftovers purge must take too: a config edited by the admin and a dpkg backup.
echo "# edited" >>"$root/etc/onebox/client.conf"
echo "old" >"$root/etc/onebox/client.conf.dpkg-old"
if dpkg_in_root -P onebox; then pass "dpkg -P"; else fail "dpkg -P"; fi
check "/etc/onebox gone" test ! -e "$root/etc/onebox"
check "dpkg has forgotten the package" bash -c "! chroot '$root' dpkg-query -W onebox >/dev/null 2>&1"
check "no onebox entry left in /var/lib/dpkg/status" bash -c "! grep -q '^Package: onebox\$' '$root/var/lib/dpkg/status'"
rm -f "$root/usr/local/sbin/systemctl" "$root/tmp/deb-under-test.deb" "$root/usr/sbin/policy-rc.d"
left=$(cd "$layer/upper" && find . -iname '*onebox*' ! -type c 2>/dev/null)
check "nothing named onebox left anywhere in the copy's changes${left:+: $left}" test -z "$left"
left=$(find "$root/etc/systemd" "$root/var/lib/systemd" -iname '*onebox*' 2>/dev/null)
check "no unit symlink, mask or deb-systemd-helper state left${left:+: $left}" test -z "$left"
procs=$(onebox_procs)
check "no onebox process at the end${procs:+: $procs}" test -z "$procs"

echo "--- $fails failed check(s) in the copy"
[ $fails -eq 0 ]
