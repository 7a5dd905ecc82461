#!/usr/bin/env bash
# ci/package.sh — build the onebox .deb with cpack, the way a Debian package
# is built: CMAKE_BUILD_TYPE=None with dpkg-buildflags' flags (hardening=+all:
# fortify, stack protector, relro, bindnow), stripped, Depends from
# dpkg-shlibdeps; then lintian on it, when lintian is installed (errors and
# warnings fail; overridden tags are shown).
#
#   bash ci/package.sh                   this machine's arch -> build-deb/onebox_VERSION_amd64.deb
#   bash ci/package.sh --arch arm64      cross build (ci/aarch64-linux-gnu.cmake; ci/cross.sh
#                                        installs the toolchain) -> build-deb-arm64/onebox_VERSION_arm64.deb
# Options: --build-dir DIR (default build-deb or build-deb-ARCH), --tests (also build
# the tests in that dir, as ci/cross.sh does to run them under qemu), --no-lintian,
# -DNAME=VALUE (passed to cmake).
# Env: ONEBOX_DEB_OUT, if set, gets the path of the .deb written to it.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "package.sh: $*" >&2; exit 1; }

host_arch=$(dpkg --print-architecture 2>/dev/null) || die "dpkg not found (this script builds Debian packages)"
arch=$host_arch
build_dir=
tests=OFF
lintian=1
extra_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --arch) [ $# -ge 2 ] || die "--arch needs a value"; arch=$2; shift 2 ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; build_dir=$2; shift 2 ;;
    --tests) tests=ON; shift ;;
    --no-lintian) lintian=0; shift ;;
    -D*) extra_args+=("$1"); shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
for t in cmake cpack ninja dpkg-buildflags dpkg-shlibdeps; do
  command -v "$t" >/dev/null || die "$t not found: run bash ci/deps.sh"
done

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX=/usr -DONEBOX_BUILD_TESTS=$tests)
if [ "$arch" = "$host_arch" ]; then
  : "${build_dir:=build-deb}"
elif [ "$arch" = arm64 ]; then
  : "${build_dir:=build-deb-arm64}"
  command -v aarch64-linux-gnu-g++ >/dev/null || die "aarch64-linux-gnu-g++ not found: run bash ci/cross.sh first"
  cmake_args+=(-DCMAKE_TOOLCHAIN_FILE="$PWD/ci/aarch64-linux-gnu.cmake" -DONEBOX_DEB_ARCH=arm64)
else
  die "--arch $arch: only $host_arch and arm64 are set up"
fi

# Debian's flags for this architecture; CMake does not read CPPFLAGS, so they
# go into the compile flags (as debhelper's cmake build system does). With
# --tests, without reproducible=fixfilepath (-ffile-prefix-map=$PWD=.): the
# unit tests find the source tree through an absolute __FILE__.
maint=hardening=+all
[ "$tests" = ON ] && maint="$maint reproducible=-fixfilepath"
flags() { DEB_HOST_ARCH=$arch DEB_BUILD_MAINT_OPTIONS=$maint dpkg-buildflags --get "$1"; }
cppflags=$(flags CPPFLAGS)
cmake_args+=(-DCMAKE_C_FLAGS="$(flags CFLAGS) $cppflags" -DCMAKE_CXX_FLAGS="$(flags CXXFLAGS) $cppflags"
             -DCMAKE_EXE_LINKER_FLAGS="$(flags LDFLAGS)")

cmake_args+=("${extra_args[@]}")
echo "package.sh: configure $build_dir ($arch, tests $tests)"
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" "${cmake_args[@]}" >"$build_dir/configure.log" 2>&1 \
  || { tail -n 30 "$build_dir/configure.log"; die "cmake configure of $build_dir failed (log: $build_dir/configure.log)"; }
echo "package.sh: build $build_dir"
cmake --build "$build_dir" || die "build of $build_dir failed"

version=$(sed -nE 's/^set\(CPACK_PACKAGE_VERSION "([^"]+)"\)$/\1/p' "$build_dir/CPackConfig.cmake")
deb=$build_dir/onebox_${version}_${arch}.deb
rm -f "$deb"
echo "package.sh: cpack -G DEB"
# dpkg-shlibdeps asks dpkg-architecture for the host arch: for arm64 it must
# look at the arm64 libraries' symbols files.
(cd "$build_dir" && DEB_HOST_ARCH=$arch cpack -G DEB >cpack.log 2>&1) \
  || { tail -n 30 "$build_dir/cpack.log"; die "cpack failed (log: $build_dir/cpack.log)"; }
[ -f "$deb" ] || die "cpack did not write $deb (log: $build_dir/cpack.log)"
got=$(dpkg-deb -f "$deb" Architecture)
[ "$got" = "$arch" ] || die "$deb says Architecture: $got, wanted $arch"
echo "package.sh: $deb"
dpkg-deb -f "$deb" Package Version Architecture Depends Recommends Installed-Size | sed 's/^/  /'
[ -n "${ONEBOX_DEB_OUT:-}" ] && echo "$deb" >"$ONEBOX_DEB_OUT"

if [ "$lintian" = 1 ]; then
  if command -v lintian >/dev/null; then
    echo "package.sh: lintian $deb"
    # -I: also informational tags; --show-overrides: the tags we silence on purpose.
    # (--fail-on warning would also count the overridden warnings shown
    # with --show-overrides, so the E:/W: lines are counted here.)
    rc=0
    out=$(lintian -I --show-overrides "$deb" 2>&1) || rc=$?
    grep -v 'running with root privileges is not recommended' <<<"$out" | sed 's/^/  /' || true
    [ $rc -eq 0 ] || die "lintian failed (exit $rc) on $deb"
    if grep -qE '^[EW]: ' <<<"$out"; then die "lintian reports errors or warnings for $deb (above)"; fi
    echo "package.sh: lintian: no errors, no warnings"
  else
    echo "package.sh: lintian not installed, not run (apt-get install lintian)"
  fi
fi
