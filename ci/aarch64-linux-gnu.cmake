# ci/aarch64-linux-gnu.cmake — CMake toolchain file: cross-compile onebox for
# 64-bit ARM (Raspberry Pi 4/5 with a 64-bit OS) on Debian 12 with
# crossbuild-essential-arm64 and the arm64 -dev packages installed through
# multiarch (dpkg --add-architecture arm64; ci/cross.sh does it).
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=ci/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Debian's cross compilers search the multiarch dirs (/usr/include/aarch64-linux-gnu,
# /usr/lib/aarch64-linux-gnu) themselves; programs (ninja, gzip, pkg-config)
# are the build machine's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# pkg-config must only see the arm64 .pc files (and the arch-independent
# ones, e.g. systemd.pc), never the build machine's x86_64 ones.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Target binaries (the unit tests, the fuzz corpus replays) run under
# qemu-user, with the cross libc's loader and the multiarch libraries.
find_program(ONEBOX_QEMU_AARCH64 qemu-aarch64)
if(ONEBOX_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ONEBOX_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
