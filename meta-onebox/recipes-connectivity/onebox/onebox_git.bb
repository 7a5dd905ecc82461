SUMMARY = "Bond several internet links into one encrypted tunnel"
DESCRIPTION = "onebox-client carries the traffic of a box with several WAN \
links (and of the LAN behind it), encrypted, over all links at once to an \
onebox-server on a VPS, which puts it on the internet through NAT. Packets \
are spread by each link's learned rate and delay; a failed link is left out \
within a round trip."
SECTION = "net"
# The onebox sources do not declare a license yet. CLOSED until they do; then
# set LICENSE and LIC_FILES_CHKSUM to the project's license file.
LICENSE = "CLOSED"

# Sources: by default the git checkout this layer sits in (meta-onebox/ is at
# the top of the onebox repository; ONEBOX_SOURCE_REPO comes from
# conf/layer.conf), branch main, its newest commit. To build from the
# project's hosted repository instead, set in local.conf or a bbappend:
#   ONEBOX_SRC_URI = "git://HOST/PATH/onebox.git;protocol=https;branch=main"
#   SRCREV:pn-onebox = "<commit>"
ONEBOX_BRANCH ??= "main"
ONEBOX_SRC_URI ??= "git://${ONEBOX_SOURCE_REPO};protocol=file;branch=${ONEBOX_BRANCH}"
SRC_URI = "${ONEBOX_SRC_URI}"
SRCREV ??= "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

DEPENDS = "liburing libsodium systemd libinih libmnl nftables"

inherit cmake pkgconfig systemd features_check
# libsystemd (sd_notify, the journal) and the units: a systemd distro.
REQUIRED_DISTRO_FEATURES = "systemd"

# No tests (no doctest or clang in the target sysroot), warnings not fatal
# with another compiler; units where this distro keeps them (cmake --install
# would otherwise ask systemd.pc, which also works).
EXTRA_OECMAKE = "-DONEBOX_BUILD_TESTS=OFF -DONEBOX_WERROR=OFF \
                 -DONEBOX_SYSTEMD_UNITDIR=${systemd_system_unitdir}"

# What cmake --install puts into ${D} (checked against
# DESTDIR=... cmake --install with -DONEBOX_BUILD_TESTS=OFF, see README.md):
#   ${sbindir}/onebox-client, ${sbindir}/onebox-server
#   ${sysconfdir}/onebox/client.conf, server.conf (mode 0600)
#   ${systemd_system_unitdir}/onebox-client.service, onebox-server.service
#   ${datadir}/dbus-1/system.d/org.onebox.conf
#   ${datadir}/dbus-1/interfaces/org.onebox.*.xml (once control/ has them)
#   ${mandir}/man8/onebox-client.8.gz, onebox-server.8.gz, ${mandir}/man5/onebox.conf.5.gz
#
# One package per daemon (install the one the machine runs), one for what
# both share; "onebox" itself is empty and pulls in both.
PACKAGES =+ "${PN}-client ${PN}-server ${PN}-common"

FILES:${PN}-client = "${sbindir}/onebox-client \
                      ${sysconfdir}/onebox/client.conf \
                      ${systemd_system_unitdir}/onebox-client.service \
                      ${mandir}/man8/onebox-client.8*"
FILES:${PN}-server = "${sbindir}/onebox-server \
                      ${sysconfdir}/onebox/server.conf \
                      ${systemd_system_unitdir}/onebox-server.service \
                      ${mandir}/man8/onebox-server.8*"
FILES:${PN}-common = "${datadir}/dbus-1/system.d/org.onebox.conf \
                      ${datadir}/dbus-1/interfaces/org.onebox.*.xml \
                      ${mandir}/man5/onebox.conf.5*"
FILES:${PN} = ""
ALLOW_EMPTY:${PN} = "1"

# The example configs hold the preshared key: an upgrade keeps local edits.
CONFFILES:${PN}-client = "${sysconfdir}/onebox/client.conf"
CONFFILES:${PN}-server = "${sysconfdir}/onebox/server.conf"

# The libraries (liburing, libsodium, libsystemd, libinih, libmnl, and
# libnftables from the nftables package) are found by the shlib dependency
# scan; nothing else is run at runtime (no nft or ip binary). The kernel
# must provide TUN and nf_tables with NAT, masquerade, TCP option and route
# expressions: built in, or these modules (missing ones are skipped).
RDEPENDS:${PN}-client = "${PN}-common"
RDEPENDS:${PN}-server = "${PN}-common"
RDEPENDS:${PN} = "${PN}-client ${PN}-server"
RRECOMMENDS:${PN}-common = "dbus"
ONEBOX_KERNEL_MODULES = "kernel-module-tun kernel-module-nf-tables kernel-module-nft-chain-nat \
                         kernel-module-nft-masq kernel-module-nft-exthdr kernel-module-nft-rt"
RRECOMMENDS:${PN}-client = "${ONEBOX_KERNEL_MODULES}"
RRECOMMENDS:${PN}-server = "${ONEBOX_KERNEL_MODULES}"

# The units are installed but not enabled: which daemon runs on a machine is
# the user's say (systemctl enable --now onebox-client, or a preset / a
# bbappend setting SYSTEMD_AUTO_ENABLE:onebox-client = "enable").
SYSTEMD_PACKAGES = "${PN}-client ${PN}-server"
SYSTEMD_SERVICE:${PN}-client = "onebox-client.service"
SYSTEMD_SERVICE:${PN}-server = "onebox-server.service"
SYSTEMD_AUTO_ENABLE = "disable"
